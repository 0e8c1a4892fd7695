"""Writing a ``text/event-stream``: events and comments to bytes (server side)."""

from __future__ import annotations

import re

from hcore._errors import LocalProtocolError
from hcore.sse._parser import ServerSentEvent

__all__ = ("encode_comment", "encode_event")

# HTML §9.2.5: lines end at CRLF, LF or CR.
_LINE_END = re.compile(r"\r\n|\r|\n")


def _check_line(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"an event's {name} cannot hold a line break")


def encode_event(event: ServerSentEvent) -> bytes:
    """Encode one event, ending with the blank line that dispatches it.

    ``data`` is split at line breaks into one ``data:`` line each, so the
    reader joins it back with ``"\\n"`` (a CR or CRLF in the data comes back
    as LF).  ``event`` is left out when it is ``"message"``, ``id`` and
    ``retry`` when they are ``None``.

    :param event: the event to encode.
    :return: its UTF-8 encoding.
    :raises LocalProtocolError: if ``event`` or ``id`` holds a line break,
        ``id`` a NULL (readers ignore such ids), ``retry`` is negative, or
        a string holds a lone surrogate (no UTF-8 form).
    """
    lines: list[str] = []
    if event.event != "message":
        _check_line("event", event.event)
        lines.append(f"event: {event.event}")
    if event.id is not None:
        _check_line("id", event.id)
        if "\0" in event.id:
            raise LocalProtocolError("an event id cannot hold NULL")
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        if type(event.retry) is not int or event.retry < 0:
            raise LocalProtocolError("retry must be a non-negative int")
        lines.append(f"retry: {event.retry}")
    # A space after the colon keeps data that starts with a space intact:
    # the reader drops exactly one.
    lines.extend(f"data: {line}" for line in _LINE_END.split(event.data))
    return _utf8("\n".join(lines) + "\n\n")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate has no UTF-8 form (HTML §9.2.5: streams are UTF-8).
        raise LocalProtocolError(f"not encodable as UTF-8: {exc.reason}") from exc


def encode_comment(text: str = "") -> bytes:
    """Encode a comment: readers skip it (useful as a keep-alive).

    :param text: the comment; each of its lines becomes a ``:`` line.
    :return: its UTF-8 encoding.
    :raises LocalProtocolError: if ``text`` holds a lone surrogate.
    """
    return _utf8("".join(f":{line}\n" for line in _LINE_END.split(text)))
