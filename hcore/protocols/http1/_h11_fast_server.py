"""A server's h11 reading a plain request head straight from received bytes.

:func:`._h11_fast.take_request` parses a request head out of h11's receive
buffer.  While that buffer is empty, :func:`take_request_from` does the
same on the bytes just received, without copying them into the buffer and
out again: the head is parsed from ``data`` itself (its request line and
field lines known from bounded memos when seen before, as a load of
similar requests repeats them), h11's state is moved as
:func:`._h11_fast.take_request` moves it, and the caller hands what
follows the head to h11 (or reads a Content-Length body from it).  Any
other shape changes nothing and returns ``None``: the bytes then go
through h11 as always, which refuses bad input with its own error.
"""

from __future__ import annotations

import h11
from h11._readers import header_field_re, request_line_re
from h11._state import CLIENT, IDLE, SERVER

from hcore.protocols.http1._h11_fast import LENGTH, accept_request
from hcore.protocols.http1._line_memo import LineMemo

__all__ = ("take_request_from",)

#: Request lines of plain requests seen before: the method and the target.
_REQUEST_LINES: LineMemo[tuple[bytes, bytes]] = LineMemo()
#: Field lines seen before: the field (name lower-case), its Content-Length
#: (else -1) and whether it is a Host.  Only lines of no concern to the
#: framing but their length.
_FIELD_LINES: LineMemo[tuple[tuple[bytes, bytes], int, bool]] = LineMemo()


def take_request_from(
    conn: h11.Connection, data: bytes
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], int, int] | None:
    """:func:`._h11_fast.take_request` on bytes just received, h11's buffer empty.

    What ``receive_data(data)`` then ``take_request`` would do, without the
    copy into h11's buffer and out of it.  The rest of ``data`` (from the
    returned offset) is the caller's: what h11's buffer would hold now.

    :return: the method, the target, the fields (names lower-case), the
        Content-Length (0 without one) and where the head ends in ``data``,
        or ``None`` (nothing changed: feed ``data`` to h11).
    """
    cstate = conn._cstate
    states = cstate.states
    if (
        states[CLIENT] is not IDLE
        or states[SERVER] is not IDLE
        or not cstate.keep_alive
        or cstate.pending_switch_proposals
        or conn._receive_buffer_closed
        or conn._receive_buffer._data
    ):
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    # As head_lines: the lines split on CRLF are h11's lines unless one
    # holds a lone CR or LF, which no line pattern matches.
    lines = data[:end].split(b"\r\n")
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
    return method, target, fields, length, end + 4


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
