"""Direct paths through h11 for the common request and response.

Theory of operation
===================

``h11.Connection.next_event`` and ``h11.Connection.send`` pass every event
through h11's general machinery: the event object is built and its fields
normalised (twice for a response), the state machine runs its tables to a
fixed point, and the reader or writer is chosen afresh.  For the shapes a
busy server sees all the time the outcome is known in advance, so the
functions here reach it directly (the theory of operation of
:mod:`._protocol` says where they are taken):

* :mod:`._h11_fast_server` takes a complete HTTP/1.1 keep-alive request
  head with h11's own regular expressions and moves the state machine as
  ``next_event`` returning that ``Request`` would; :func:`end_request` is
  the ``EndOfMessage`` h11 reads next when the request has no content.
* :func:`response_head` writes a final response head with a
  ``Content-Length`` or chunked body, as ``send(Response)`` would write it
  (field names as given, ``Transfer-Encoding: chunked`` rewritten last);
  :func:`commit_response` moves the state machine as that ``send`` would.
* :func:`send_data`, :func:`end_message` and :func:`start_next_cycle` are
  ``send(Data)``, ``send(EndOfMessage())`` and ``start_next_cycle()``, with
  h11's own body writers doing the framing; :func:`take_body` is
  ``next_event()`` reading a Content-Length body (either role).
* :mod:`._h11_fast_client` does the same for a client's request head and
  the response head.

Each one first checks that its shape applies: HTTP/1.1 peer, keep-alive,
no protocol switch proposed (Upgrade, CONNECT), no ``Expect``, no
``Connection: close``, one ``Host``, plain framing fields; responses to
HEAD, interim responses and every other case go through h11 instead.  A
check that fails changes nothing, so h11 then does exactly what it always
does, including refusing bad input with its own error.  In the states
these paths accept, none of h11's state-triggered transitions (protocol
switch, ``MUST_CLOSE``, the peer's close) can fire, which is why the state
is set directly.

The paths touch h11's internals (``_cstate``, ``_receive_buffer``,
``_reader``, ``_writer``, the reader and writer tables), so they run only
with the h11 releases they were checked against (:data:`FAST_H11`).
tests/hcore/test_http1_h11_fast.py compares bytes, events, refusals and
h11's whole connection state with and without them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeAlias, cast

import h11
from h11._headers import _field_name_re, _field_value_re
from h11._readers import (
    READERS,
    ContentLengthReader,
    header_field_re,
)
from h11._receivebuffer import ReceiveBuffer
from h11._state import (
    CLIENT,
    CLOSED,
    DONE,
    ERROR,
    IDLE,
    SEND_BODY,
    SEND_RESPONSE,
    SERVER,
)
from h11._util import Sentinel
from h11._version import __version__ as h11_version
from h11._writers import WRITERS, BodyWriter, ChunkedWriter, ContentLengthWriter

from hcore.protocols.http1._headers import Framing, OutgoingBody

__all__ = (
    "FAST_H11",
    "GOOD_NAMES",
    "IO",
    "LENGTH",
    "WRITERS_DONE",
    "WrittenHead",
    "body_writer",
    "buffer_empty",
    "commit_response",
    "consume",
    "end_message",
    "end_request",
    "head_lines",
    "incoming_fields",
    "response_allowed",
    "response_head",
    "send_data",
    "start_next_cycle",
    "take_body",
    "valid_field",
)

#: Whether the direct paths may be used: the h11 internals they touch were
#: checked in these releases.
FAST_H11 = h11_version.split(".")[:2] == ["0", "16"]

#: A head's bytes and the body writer h11 would choose for its message.
WrittenHead: TypeAlias = tuple[bytes, BodyWriter]

# h11 reads at most 20 digits; one fewer keeps int() cheap and the value
# below any bound hcore compares it with.
LENGTH = re.compile(rb"[0-9]{1,19}")
#: Response fields the direct path looks at.
_RESPONSE_SPECIAL = frozenset(
    {b"host", b"content-length", b"connection", b"transfer-encoding"}
)
#: What :func:`incoming_fields` returns: the fields (names lower-case), the
#: Content-Length (-1 without one) and the number of Host fields.
IncomingFields = tuple[list[tuple[bytes, bytes]], int, int]
#: Field names already found valid (bounded).
GOOD_NAMES: set[bytes] = set()
#: Response fields found valid and of no concern to the framing, with the
#: line h11 writes for each: a server sends the same few over and over.
_PLAIN_LINES: dict[tuple[bytes, bytes], bytes] = {}
_PLAIN_LINES_MAX = 512
# Looked up once (an enum member costs a look-up through its metaclass).
_CHUNKED = Framing.CHUNKED
#: The (empty) fields of an end of message without trailers.
_NO_TRAILERS = h11.EndOfMessage().headers
#: A reader or writer of h11's tables, as a Connection holds it.
IO = Callable[..., object] | None
_ROLES: tuple[type[Sentinel], ...] = (CLIENT, SERVER)
_READ_NOTHING = cast(IO, READERS[(CLIENT, DONE)])
#: What h11 reads after a message's end, for the peer's role.
_READERS_DONE = {role: cast(IO, READERS[(role, DONE)]) for role in _ROLES}
#: What h11 sets after EndOfMessage (no writer: nothing may be sent).
WRITERS_DONE = {role: cast(IO, WRITERS.get((role, DONE))) for role in _ROLES}
_WRITERS_IDLE = {role: cast(IO, WRITERS[(role, IDLE)]) for role in _ROLES}
_READERS_IDLE = {role: cast(IO, READERS[(role, IDLE)]) for role in _ROLES}


def valid_field(name: bytes, value: bytes) -> bool:
    """Whether h11 would send the field as it is (RFC 9110 §5.1, §5.5)."""
    if type(name) is not bytes or type(value) is not bytes:
        return False
    if name not in GOOD_NAMES:
        if not _field_name_re.fullmatch(name):
            return False
        if len(GOOD_NAMES) < 256:
            GOOD_NAMES.add(name)
    return _field_value_re.fullmatch(value) is not None


def head_lines(buffer: ReceiveBuffer) -> tuple[int, list[bytearray]] | None:
    """Find a complete head in ``buffer`` and split it into its CRLF lines.

    h11 remembers how far it searched for the end of a head without
    finding one (``_multiple_lines_search``); no CRLF CRLF starts more than
    a few bytes before that, so a head sent a byte at a time is searched
    once over, not once per byte.  h11 splits at the first LF LF or LF CR
    LF and on every LF; the lines here, split on CRLF, are the same ones
    unless some line holds a lone LF or CR, which none of h11's line
    patterns matches.

    :return: where the head's CRLF CRLF starts and the head's lines, or
        ``None`` while the head is not complete.
    """
    data = buffer._data
    end = data.find(b"\r\n\r\n", max(0, buffer._multiple_lines_search - 3))
    if end < 0:
        return None
    return end, data[:end].split(b"\r\n")


def consume(buffer: ReceiveBuffer, count: int) -> None:
    """Drop the first ``count`` received bytes, as h11's buffer would.

    What ``ReceiveBuffer.maybe_extract_lines`` and ``maybe_extract_at_most``
    do once they take bytes: the searches start again from the beginning.
    """
    del buffer._data[:count]
    buffer._next_line_search = 0
    buffer._multiple_lines_search = 0


def buffer_empty(conn: h11.Connection) -> bool:
    """Whether h11 holds no received bytes and the peer has not closed.

    ``trailing_data == (b"", False)`` without copying the buffer.
    """
    return not conn._receive_buffer._data and not conn._receive_buffer_closed


def incoming_fields(
    lines: list[bytearray], special: frozenset[bytes]
) -> IncomingFields | None:
    """Parse a received head's field lines as h11's reader would, if plain.

    Plain: every line matches ``header_field_re``, at most one
    ``Content-Length`` (digits only) and, of the other names in
    ``special``, only Host and a Connection without ``close``.

    :param lines: the head's lines (the first, the start line, is skipped).
    :param special: the names looked at.
    :return: the fields (names lower-case), the Content-Length (-1 without
        one) and how many Host fields came, or ``None``.
    """
    fields: list[tuple[bytes, bytes]] = []
    hosts = 0
    length = -1
    for line in lines[1:]:
        # A folded line (RFC 9112 §5.2) starts with whitespace and does not
        # match: h11 unfolds it.
        field = header_field_re.fullmatch(line)
        if field is None:
            return None
        name, value = field.group("field_name", "field_value")
        name = name.lower()
        if name in special:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                if length >= 0 or not LENGTH.fullmatch(value):
                    return None
                length = int(value)
            elif name != b"connection" or b"close" in value.lower():
                # Transfer-Encoding, Upgrade, Expect, Connection: close.
                return None
        fields.append((name, value))
    return fields, length, hosts


def end_request(conn: h11.Connection) -> None:
    """Move a server's h11 as reading a content-less request's end would.

    Only right after a request head with a length of 0 was taken.
    """
    conn._cstate.states[CLIENT] = DONE
    conn.client_is_waiting_for_100_continue = False
    conn._reader = _READ_NOTHING


def response_allowed(conn: h11.Connection) -> bool:
    """Whether a server's h11 is where a direct final response head may go.

    HTTP/1.1 keep-alive, no switch proposed, not answering HEAD, the
    client's side neither closed nor failed.
    """
    cstate = conn._cstate
    states = cstate.states
    return not (
        states[SERVER] is not SEND_RESPONSE
        or not cstate.keep_alive
        or cstate.pending_switch_proposals
        or conn.their_http_version != b"1.1"
        or conn._request_method == b"HEAD"
        or states[CLIENT] in (CLOSED, ERROR)
    )


def body_writer(framing: Framing, length: int) -> BodyWriter:
    """The writer h11 would choose for a body planned as given (not CLOSE)."""
    if framing is _CHUNKED:
        return ChunkedWriter()
    return ContentLengthWriter(length)


def response_head(
    conn: h11.Connection,
    status: int,
    reason: bytes,
    fields: list[tuple[bytes, bytes]],
    body: OutgoingBody,
) -> WrittenHead | None:
    """Write a final response head as ``send(Response)`` would, if plain.

    Nothing changes here: :func:`commit_response` moves the state once the
    caller's own checks passed.

    :param fields: the fields from ``plan_response_head``.
    :param body: its framing for the body.
    :return: the head's bytes and the body writer, or ``None`` when the
        response is not of the plain shape (h11 must send it).
    """
    if not response_allowed(conn):
        return None
    framing = body.framing
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    append = lines.append
    lengths = 0
    coding = False
    for field in fields:
        try:
            line = _PLAIN_LINES.get(field)
        except TypeError:
            # Unhashable (a bytearray): h11 converts it.
            return None
        if line is not None:
            append(line)
            continue
        name, value = field
        if not valid_field(name, value):
            return None
        lower = name.lower()
        if lower not in _RESPONSE_SPECIAL:
            line = b"%s: %s\r\n" % (name, value)
            if len(_PLAIN_LINES) < _PLAIN_LINES_MAX:
                _PLAIN_LINES[name, value] = line
            append(line)
            continue
        if lower == b"content-length":
            if lengths or not LENGTH.fullmatch(value):
                return None
            lengths = 1
        elif lower == b"transfer-encoding":
            if coding or value.lower() != b"chunked":
                return None
            # h11 drops it and adds its own at the end.
            coding = True
            continue
        elif lower != b"connection" or b"close" in value.lower():
            # Host (h11 writes it first), Connection: close.
            return None
        append(b"%s: %s\r\n" % (name, value))
    writer: BodyWriter
    if framing is Framing.LENGTH:
        if coding:
            return None
        writer = ContentLengthWriter(body.remaining)
    elif framing is Framing.CHUNKED and not lengths:
        # RFC 9112 §7.1, as h11's _clean_up_response_headers_for_sending.
        append(b"Transfer-Encoding: chunked\r\n")
        writer = ChunkedWriter()
    else:
        return None
    append(b"\r\n")
    return b"".join(lines), writer


def commit_response(conn: h11.Connection, writer: BodyWriter) -> None:
    """Move a server's h11 as ``send`` of the response would.

    :param writer: the writer :func:`response_head` returned.
    """
    conn._cstate.states[SERVER] = SEND_BODY
    conn._cstate.pending_switch_proposals = set()
    conn.client_is_waiting_for_100_continue = False
    conn._writer = writer


def send_data(conn: h11.Connection, data: bytes, write: list[bytes]) -> bool:
    """Frame a piece of body as ``send(Data(data))`` would.

    The caller has checked the piece against the body's framing.

    :param write: where the bytes go.
    :return: whether it was sent (else h11 must send it).
    """
    role = conn.our_role
    if conn._cstate.states[role] is not SEND_BODY:
        return False
    if role is CLIENT:
        conn.client_is_waiting_for_100_continue = False
    writer = conn._writer
    assert isinstance(writer, BodyWriter)
    writer.send_data(data, write.append)
    return True


def end_message(conn: h11.Connection, write: list[bytes]) -> bool:
    """End the body without trailers as ``send(EndOfMessage())`` would.

    :param write: where the bytes go.
    :return: whether it was sent (else h11 must send it).
    """
    cstate = conn._cstate
    states = cstate.states
    role = conn.our_role
    if (
        states[role] is not SEND_BODY
        or not cstate.keep_alive
        or cstate.pending_switch_proposals
        or states[conn.their_role] in (CLOSED, ERROR)
    ):
        return False
    writer = conn._writer
    if type(writer) is not ContentLengthWriter or writer._length:
        assert isinstance(writer, BodyWriter)
        writer.send_eom(_NO_TRAILERS, write.append)
    # Else a complete Content-Length body, which ends with no bytes and no
    # check left (ContentLengthWriter.send_eom without trailers).
    states[role] = DONE
    if role is CLIENT:
        conn.client_is_waiting_for_100_continue = False
    conn._writer = WRITERS_DONE[role]
    return True


def start_next_cycle(conn: h11.Connection) -> None:
    """``conn.start_next_cycle()``, when both sides are ``DONE``."""
    cstate = conn._cstate
    states = cstate.states
    if states[CLIENT] is not DONE or states[SERVER] is not DONE:
        # h11 raises its own error.
        conn.start_next_cycle()
        return
    cstate.states = {CLIENT: IDLE, SERVER: IDLE}
    conn._request_method = None
    conn._writer = _WRITERS_IDLE[conn.our_role]
    conn._reader = _READERS_IDLE[conn.their_role]


def take_body(conn: h11.Connection) -> tuple[bytes, bool] | None:
    """Read the peer's Content-Length body as ``next_event()`` would.

    :return: a piece of body (maybe empty) and whether the message ended
        (``EndOfMessage``, which comes alone, after the last piece), or
        ``None`` when h11 must be asked (another framing, no bytes, the
        peer's close, or a state in which the end would trigger more).
    """
    reader = conn._reader
    if type(reader) is not ContentLengthReader:
        return None
    cstate = conn._cstate
    states = cstate.states
    role = conn.their_role
    remaining = reader._remaining
    buffer = conn._receive_buffer
    data = buffer._data
    if remaining:
        if not data:
            return None
        # ReceiveBuffer.maybe_extract_at_most.
        piece = bytes(data[:remaining])
        consume(buffer, remaining)
        reader._remaining = remaining - len(piece)
        if role is CLIENT:
            conn.client_is_waiting_for_100_continue = False
        return piece, False
    if (
        not cstate.keep_alive
        or cstate.pending_switch_proposals
        or states[conn.our_role] in (CLOSED, ERROR)
    ):
        return None
    states[role] = DONE
    if role is CLIENT:
        conn.client_is_waiting_for_100_continue = False
    conn._reader = _READERS_DONE[role]
    return b"", True
