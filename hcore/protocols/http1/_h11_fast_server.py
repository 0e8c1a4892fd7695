"""A server's h11 taking a plain request head directly (see :mod:`._h11_fast`).

:func:`take_request` parses a complete request head out of h11's receive
buffer.  While that buffer is empty, :func:`take_request_from` does the
same on the bytes just received, without copying them into the buffer and
out again: the head is parsed from ``data`` itself (its request line and
field lines known from bounded memos when seen before, as a load of
similar requests repeats them), and the caller hands what follows the
head to h11.  Both move h11's state as ``next_event`` returning that
``Request`` would (:func:`accept_request`).  Any other shape changes
nothing and returns ``None``: the bytes then go through h11 as always,
which refuses bad input with its own error.  Used only when
:data:`._h11_fast.FAST_H11` is true.
"""

from __future__ import annotations

from typing import TypeAlias, cast

import h11
from h11._readers import ContentLengthReader, header_field_re, request_line_re
from h11._state import CLIENT, IDLE, SEND_BODY, SEND_RESPONSE, SERVER
from h11._writers import WRITERS

from hcore.protocols.http1._h11_fast import (
    IO,
    LENGTH,
    consume,
    head_lines,
    incoming_fields,
)
from hcore.protocols.http1._line_memo import LineMemo, split_head

__all__ = (
    "RequestHead",
    "accept_request",
    "request_expected",
    "take_request",
    "take_request_from",
)

#: The method, the target, the fields (names lower-case) and the
#: Content-Length (0 without one) of a request head taken directly.
RequestHead: TypeAlias = tuple[bytes, bytes, list[tuple[bytes, bytes]], int]
#: Request fields the buffer path looks at; any other name is passed on.
_REQUEST_SPECIAL = frozenset(
    {
        b"host",
        b"content-length",
        b"connection",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    }
)
_WRITE_RESPONSE = cast(IO, WRITERS[(SERVER, SEND_RESPONSE)])
#: Request lines of plain requests seen before: the method and the target.
_REQUEST_LINES: LineMemo[tuple[bytes, bytes]] = LineMemo()
#: Field lines seen before: the field (name lower-case), its Content-Length
#: (else -1) and whether it is a Host.  Only lines of no concern to the
#: framing but their length.
_FIELD_LINES: LineMemo[tuple[tuple[bytes, bytes], int, bool]] = LineMemo()


def take_request(conn: h11.Connection) -> RequestHead | None:
    """Take a plain request head out of a server's buffer, as h11 would.

    The head must be complete and of the plain shape (see
    :mod:`._h11_fast`); then it is consumed, h11's state becomes what
    ``next_event()`` returning it leaves (client ``SEND_BODY``, server
    ``SEND_RESPONSE``, a Content-Length body reader) and its parts are
    returned.  Otherwise nothing changes and ``None`` is returned.
    """
    if not request_expected(conn):
        return None
    buffer = conn._receive_buffer
    head = head_lines(buffer)
    if head is None:
        return None
    end, lines = head
    first = bytes(lines[0])
    start = _REQUEST_LINES.get(first) or _request_line(first)
    if start is None:
        return None
    method, target = start
    parsed = incoming_fields(lines, _REQUEST_SPECIAL)
    if parsed is None:
        return None
    fields, length, hosts = parsed
    if hosts != 1:
        # RFC 9112 §3.2: h11 refuses none or several.
        return None
    consume(buffer, end + 4)
    length = max(length, 0)
    accept_request(conn, method, length)
    return method, target, fields, length


def request_expected(conn: h11.Connection) -> bool:
    """Whether a server's h11 waits for a plain request's head (both idle)."""
    cstate = conn._cstate
    states = cstate.states
    return (
        states[CLIENT] is IDLE
        and states[SERVER] is IDLE
        and cstate.keep_alive
        and not cstate.pending_switch_proposals
        and not conn._receive_buffer_closed
    )


def accept_request(conn: h11.Connection, method: bytes, length: int) -> None:
    """Move a server's h11 as ``next_event()`` returning a plain request would.

    Connection._process_event(CLIENT, Request) for an HTTP/1.1 keep-alive
    request: the client sends its body (``length`` bytes), the server owes
    a response.
    """
    states = conn._cstate.states
    states[CLIENT] = SEND_BODY
    states[SERVER] = SEND_RESPONSE
    conn._request_method = method
    conn.their_http_version = b"1.1"
    conn._writer = _WRITE_RESPONSE
    conn._reader = ContentLengthReader(length)


def take_request_from(
    conn: h11.Connection, data: bytes
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], int, int] | None:
    """:func:`take_request` on bytes just received, h11's buffer empty.

    What ``receive_data(data)`` then ``take_request`` would do, without the
    copy into h11's buffer and out of it.  The rest of ``data`` (from the
    returned offset) is the caller's: what h11's buffer would hold now.

    :return: the method, the target, the fields (names lower-case), the
        Content-Length (0 without one) and where the head ends in ``data``,
        or ``None`` (nothing changed: feed ``data`` to h11).
    """
    if conn._receive_buffer._data or not request_expected(conn):
        return None
    head = split_head(data)
    if head is None:
        return None
    end, lines = head
    start = _REQUEST_LINES.get(lines[0]) or _request_line(lines[0])
    if start is None:
        return None
    fields: list[tuple[bytes, bytes]] = []
    append = fields.append
    length = -1
    hosts = 0
    known_line = _FIELD_LINES.get
    for line in lines[1:]:
        known = known_line(line) or _field_line(line)
        if known is None:
            return None
        field, size, host = known
        if size >= 0:
            if length >= 0:
                return None
            length = size
        hosts += host
        append(field)
    if hosts != 1:
        # RFC 9112 §3.2: h11 refuses none or several.
        return None
    method, target = start
    length = max(length, 0)
    accept_request(conn, method, length)
    return method, target, fields, length, end


def _request_line(line: bytes) -> tuple[bytes, bytes] | None:
    """Parse a plain request line with h11's pattern, and keep it.

    :return: the method and the target, or ``None`` if the line is not
        h11's request line or not a plain request's (HTTP/1.1, not CONNECT).
    """
    match = request_line_re.fullmatch(line)
    if match is None:
        return None
    method, target, version = match.group("method", "target", "http_version")
    if version != b"1.1" or method == b"CONNECT":
        return None
    start = (method, target)
    _REQUEST_LINES.keep(line, start)
    return start


def _field_line(line: bytes) -> tuple[tuple[bytes, bytes], int, bool] | None:
    """Parse a request's field line as :func:`._h11_fast.incoming_fields`; keep it.

    :return: the field (name lower-case), its Content-Length (else -1) and
        whether it is a Host, or ``None`` if the line is not plain (no
        match, as a folded line; a bad length; ``Transfer-Encoding``,
        ``Upgrade``, ``Expect``, ``Connection: close``).
    """
    field = header_field_re.fullmatch(line)
    if field is None:
        return None
    name, value = field.group("field_name", "field_value")
    name = name.lower()
    size = -1
    if name == b"content-length":
        if not LENGTH.fullmatch(value):
            return None
        size = int(value)
    elif name in _REFUSED or (name == b"connection" and b"close" in value.lower()):
        return None
    known = ((name, value), size, name == b"host")
    _FIELD_LINES.keep(line, known)
    return known


#: Request fields that take the request off the direct path.
_REFUSED = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
