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
    header_field_re,
    status_line_re,
)
from h11._state import CLIENT, DONE, IDLE, SEND_BODY, SEND_RESPONSE, SERVER
from h11._writers import BodyWriter, ChunkedWriter, ContentLengthWriter

from hcore.protocols.http1._h11_fast import (
    IO,
    LENGTH,
    WRITERS_DONE,
    WrittenHead,
    consume,
    head_lines,
    incoming_fields,
    valid_field,
)
from hcore.protocols.http1._headers import Framing, OutgoingBody
from hcore.protocols.http1._line_memo import LineMemo, split_head

__all__ = (
    "body_writer",
    "commit_ended_request",
    "commit_request",
    "plain_request_state",
    "request_head",
    "request_shape",
    "take_response",
    "take_response_from",
)

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
    if not plain_request_state(conn):
        return None
    shape = request_shape(method, target, fields, body.framing)
    if shape is None:
        return None
    head, chunked = shape
    return head, body_writer(chunked, body)


def plain_request_state(conn: h11.Connection) -> bool:
    """Whether h11's state lets a request head take the direct path.

    Both sides idle, keep-alive, no protocol switch proposed.
    """
    cstate = conn._cstate
    states = cstate.states
    return (
        states[CLIENT] is IDLE
        and states[SERVER] is IDLE
        and cstate.keep_alive
        and not cstate.pending_switch_proposals
    )


def request_shape(
    method: bytes,
    target: bytes,
    fields: list[tuple[bytes, bytes]],
    framing: Framing,
) -> tuple[bytes, bool] | None:
    """Write a request head as ``send(Request)`` would, if it is plain.

    A function of its arguments alone (h11's state is
    :func:`plain_request_state`'s part), so a client may keep its result
    for a request it repeats.

    :param fields: the fields from ``plan_request_head`` (``Host`` first).
    :param framing: the body's framing (not a proposed tunnel).
    :return: the head's bytes and whether its body is chunked, or ``None``
        when the request is not of the plain shape (h11 must send it).
    """
    if (
        method == b"CONNECT"
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
    if coding:
        if lengths or framing is not Framing.CHUNKED:
            return None
    elif framing is not Framing.LENGTH:
        return None
    append(b"\r\n")
    return b"".join(lines), coding


def body_writer(chunked: bool, body: OutgoingBody) -> BodyWriter:
    """The writer h11 chooses for a plain request's body."""
    if chunked:
        return ChunkedWriter()
    return ContentLengthWriter(body.remaining)


def commit_ended_request(conn: h11.Connection, method: bytes) -> None:
    """Move a client's h11 as ``send`` of a request without a body and its end would.

    :func:`commit_request` with an empty ``Content-Length`` body, then
    :func:`~hcore.protocols.http1._h11_fast.end_message`, in one step: in
    the state :func:`plain_request_state` lets through (keep-alive, no
    switch proposed), that end writes nothing and leaves the client
    ``DONE``.
    """
    commit_request(conn, method, WRITERS_DONE[CLIENT])
    conn._cstate.states[CLIENT] = DONE
    conn.client_is_waiting_for_100_continue = False


def commit_request(conn: h11.Connection, method: bytes, writer: IO) -> None:
    """Move a client's h11 as ``send`` of the request would.

    :param writer: the writer :func:`body_writer` returned (``None``, h11's
        writer once the body ended, from :func:`commit_ended_request`).
    """
    states = conn._cstate.states
    states[CLIENT] = SEND_BODY
    states[SERVER] = SEND_RESPONSE
    conn._request_method = method
    conn._writer = writer
    conn._reader = _READ_RESPONSE


def response_expected(conn: h11.Connection) -> bool:
    """Whether a client's h11 waits for a plain response's head.

    The request sent (or being sent), keep-alive, no switch proposed, and
    not a request whose response has no content (HEAD, CONNECT).
    """
    cstate = conn._cstate
    states = cstate.states
    return (
        states[SERVER] is SEND_RESPONSE
        and states[CLIENT] in (DONE, SEND_BODY)
        and cstate.keep_alive
        and not cstate.pending_switch_proposals
        and not conn._receive_buffer_closed
        and conn._request_method not in _NO_CONTENT_METHODS
    )


def accept_response(conn: h11.Connection, length: int) -> None:
    """Move a client's h11 as ``next_event()`` returning a plain response would.

    Connection._process_event(SERVER, Response) for an HTTP/1.1 keep-alive
    response with a Content-Length body of ``length`` bytes
    (``pending_switch_proposals`` is already the empty set h11 would set).
    """
    conn._cstate.states[SERVER] = SEND_BODY
    conn.their_http_version = b"1.1"
    conn.client_is_waiting_for_100_continue = False
    conn._reader = ContentLengthReader(length)


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
    if not response_expected(conn):
        return None
    buffer = conn._receive_buffer
    head = head_lines(buffer)
    if head is None:
        return None
    end, lines = head
    first = bytes(lines[0])
    start = _STATUS_LINES.get(first) or _status_line(first)
    if start is None:
        return None
    status, _, reason = start
    parsed = incoming_fields(lines, _INCOMING_RESPONSE_SPECIAL)
    if parsed is None:
        return None
    fields, length, _ = parsed
    if length < 0:
        return None
    consume(buffer, end + 4)
    accept_response(conn, length)
    return status, reason, fields


def take_response_from(
    conn: h11.Connection, data: bytes
) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], int] | None:
    """:func:`take_response` on bytes just received, h11's buffer being empty.

    What ``receive_data(data)`` then :func:`take_response` would do, without
    the copy into h11's buffer and out of it: the head is parsed from
    ``data`` itself, and h11's state moved the same way.  The rest of
    ``data`` (from the returned offset) is the caller's: what h11's buffer
    would hold now.  Lines seen before are known from
    :func:`_status_line` and :func:`_field_line`'s bounded memos.

    :return: the status, its three digits, the reason phrase, the fields
        (names lower-case) and where the head ends in ``data`` (its size),
        or ``None`` (nothing changed: feed ``data`` to h11).
    """
    if conn._receive_buffer._data or not response_expected(conn):
        return None
    head = split_head(data)
    if head is None:
        return None
    end, lines = head
    start = _STATUS_LINES.get(lines[0]) or _status_line(lines[0])
    if start is None:
        return None
    fields: list[tuple[bytes, bytes]] = []
    append = fields.append
    length = -1
    known_line = _FIELD_LINES.get
    for line in lines[1:]:
        known = known_line(line) or _field_line(line)
        if known is None:
            return None
        field, size = known
        if size >= 0:
            if length >= 0:
                return None
            length = size
        append(field)
    if length < 0:
        return None
    status, code, reason = start
    accept_response(conn, length)
    return status, code, reason, fields, end


#: Status lines of plain responses seen before: the status, its digits and
#: the reason.
_STATUS_LINES: LineMemo[tuple[int, bytes, bytes]] = LineMemo()
#: Field lines seen before: the field (name lower-case) and, for a
#: Content-Length, its value (else -1).  Only lines of no concern to the
#: framing but their length, and not long: a server repeats most of its
#: fields (its name, the content type, a Date each second).
_FIELD_LINES: LineMemo[tuple[tuple[bytes, bytes], int]] = LineMemo()


def _status_line(line: bytes) -> tuple[int, bytes, bytes] | None:
    """Parse a plain response's status line with h11's pattern, and keep it.

    :return: the status, its three digits and the reason phrase, or
        ``None`` if the line is
        not h11's status line or not a plain response's (HTTP/1.1, a final
        status other than 204 and 304).
    """
    match = status_line_re.fullmatch(line)
    if match is None:
        return None
    version, code, reason = match.group("http_version", "status_code", "reason")
    status = int(code)
    if version != b"1.1" or status < 200 or status in _NO_CONTENT_STATUSES:
        return None
    # Three digits, the first one 2 or more: b"%d" % status.
    start = (status, code, b"" if reason is None else reason)
    _STATUS_LINES.keep(line, start)
    return start


def _field_line(line: bytes) -> tuple[tuple[bytes, bytes], int] | None:
    """Parse a response's field line as :func:`._h11_fast.incoming_fields`, and keep it.

    :return: the field (name lower-case) and its Content-Length (else -1),
        or ``None`` if the line is not plain (no match, a bad length,
        ``Transfer-Encoding``, ``Connection: close``).
    """
    field = header_field_re.fullmatch(line)
    if field is None:
        return None
    name, value = field.group("field_name", "field_value")
    name = name.lower()
    size = -1
    if name in _INCOMING_RESPONSE_SPECIAL:
        if name == b"content-length":
            if not LENGTH.fullmatch(value):
                return None
            size = int(value)
        elif name != b"connection" or b"close" in value.lower():
            return None
    known = ((name, value), size)
    _FIELD_LINES.keep(line, known)
    return known
