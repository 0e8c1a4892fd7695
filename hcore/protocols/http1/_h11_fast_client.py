"""Direct paths through h11 for a client's plain request and response.

The client's side of :mod:`._h11_fast` (whose docstring explains the
approach): :func:`request_head` writes a request head as
``send(Request)`` would and :func:`commit_request` moves h11's state the
same way; :func:`take_response` parses a final response head with h11's
``status_line_re`` and ``header_field_re`` as ``next_event()`` would, for a
keep-alive HTTP/1.1 response framed by one ``Content-Length``.  Its body
is read by :func:`._h11_fast.take_body`.  Every other request or response
goes through h11.  Used only when :data:`._h11_fast.FAST_H11` is true.
"""

from __future__ import annotations

from typing import cast

import h11
from h11._events import method_re, request_target_re
from h11._readers import (
    READERS,
    ContentLengthReader,
    status_line_re,
)
from h11._state import CLIENT, DONE, IDLE, SEND_BODY, SEND_RESPONSE, SERVER
from h11._writers import BodyWriter, ChunkedWriter, ContentLengthWriter

from hcore.protocols.http1._h11_fast import (
    IO,
    LENGTH,
    WrittenHead,
    consume,
    head_lines,
    incoming_fields,
    valid_field,
)
from hcore.protocols.http1._headers import Framing, OutgoingBody

__all__ = ("commit_request", "request_head", "take_response")

_READ_RESPONSE = cast(IO, READERS[(SERVER, SEND_RESPONSE)])
#: Request fields the client's direct path looks at.
_OUTGOING_REQUEST_SPECIAL = frozenset(
    {
        b"host",
        b"content-length",
        b"connection",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    }
)
#: Response fields the client's direct path looks at.
_INCOMING_RESPONSE_SPECIAL = frozenset(
    {b"content-length", b"connection", b"transfer-encoding"}
)
#: Responses whose framing h11 does not take from their fields.
_NO_CONTENT_STATUSES = (204, 304)
_NO_CONTENT_METHODS = (b"HEAD", b"CONNECT")


def request_head(
    conn: h11.Connection,
    method: bytes,
    target: bytes,
    fields: list[tuple[bytes, bytes]],
    body: OutgoingBody,
) -> WrittenHead | None:
    """Write a request head as ``send(Request)`` would, if plain.

    Nothing changes here: :func:`commit_request` moves the state.

    :param fields: the fields from ``plan_request_head`` (``Host`` first).
    :param body: its framing for the body (not a proposed tunnel).
    :return: the head's bytes and the body writer, or ``None`` when the
        request is not of the plain shape (h11 must send it).
    """
    cstate = conn._cstate
    states = cstate.states
    if (
        states[CLIENT] is not IDLE
        or states[SERVER] is not IDLE
        or not cstate.keep_alive
        or cstate.pending_switch_proposals
        or method == b"CONNECT"
        or type(method) is not bytes
        or type(target) is not bytes
        or not method_re.fullmatch(method)
        or not request_target_re.fullmatch(target)
    ):
        return None
    lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    append = lines.append
    hosts = lengths = 0
    coding = False
    for name, value in fields:
        if not valid_field(name, value):
            return None
        lower = name.lower()
        if lower in _OUTGOING_REQUEST_SPECIAL:
            if lower == b"host":
                # h11 writes Host first: it must be first already.
                if hosts or len(lines) > 1:
                    return None
                hosts = 1
            elif lower == b"content-length":
                if lengths or not LENGTH.fullmatch(value):
                    return None
                lengths = 1
            elif lower == b"transfer-encoding":
                # h11 writes the coding in lower case.
                if coding or value != b"chunked":
                    return None
                coding = True
            elif lower != b"connection" or b"close" in value.lower():
                # Upgrade, Expect, Connection: close.
                return None
        append(b"%s: %s\r\n" % (name, value))
    if not hosts:
        return None
    writer: BodyWriter
    if coding:
        if lengths or body.framing is not Framing.CHUNKED:
            return None
        writer = ChunkedWriter()
    elif body.framing is Framing.LENGTH:
        writer = ContentLengthWriter(body.remaining)
    else:
        return None
    append(b"\r\n")
    return b"".join(lines), writer


def commit_request(conn: h11.Connection, method: bytes, writer: BodyWriter) -> None:
    """Move a client's h11 as ``send`` of the request would.

    :param writer: the writer :func:`request_head` returned.
    """
    states = conn._cstate.states
    states[CLIENT] = SEND_BODY
    states[SERVER] = SEND_RESPONSE
    conn._request_method = method
    conn._writer = writer
    conn._reader = _READ_RESPONSE


def take_response(
    conn: h11.Connection,
) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
    """Take a plain final response head out of a client's buffer, as h11 would.

    Plain: HTTP/1.1, keep-alive, one ``Content-Length`` and no
    ``Transfer-Encoding``, to a request that is not HEAD or CONNECT, and
    not 204 or 304.  Then the head is consumed and h11's state becomes what
    ``next_event()`` returning it leaves (server ``SEND_BODY`` with a
    Content-Length body reader).  Otherwise nothing changes.

    :return: the status, the reason phrase and the fields (names
        lower-case), or ``None``.
    """
    cstate = conn._cstate
    states = cstate.states
    if (
        states[SERVER] is not SEND_RESPONSE
        or states[CLIENT] not in (DONE, SEND_BODY)
        or not cstate.keep_alive
        or cstate.pending_switch_proposals
        or conn._receive_buffer_closed
        or conn._request_method in _NO_CONTENT_METHODS
    ):
        return None
    buffer = conn._receive_buffer
    head = head_lines(buffer)
    if head is None:
        return None
    end, lines = head
    match = status_line_re.fullmatch(lines[0])
    if match is None:
        return None
    version, code, reason = match.group("http_version", "status_code", "reason")
    status = int(code)
    if version != b"1.1" or status < 200 or status in _NO_CONTENT_STATUSES:
        return None
    parsed = incoming_fields(lines, _INCOMING_RESPONSE_SPECIAL)
    if parsed is None:
        return None
    fields, length, _ = parsed
    if length < 0:
        return None
    consume(buffer, end + 4)
    # Connection._process_event(SERVER, Response).
    cstate.pending_switch_proposals = set()
    states[SERVER] = SEND_BODY
    conn.their_http_version = version
    conn.client_is_waiting_for_100_continue = False
    conn._reader = ContentLengthReader(length)
    return status, b"" if reason is None else reason, fields
