"""An idle h11 server connection, shared while it waits for the next request.

Theory of operation
===================

A keep-alive server connection spends most of its life between exchanges,
waiting for the next request, and a server holds one per open connection.
Between exchanges h11's ``Connection`` is in the state every such
connection is in: both sides ``IDLE``, keep-alive, no protocol switch
proposed, nothing received, an HTTP/1.1 peer (h11 keeps no HTTP/1.0
connection alive), no request method, the idle reader and writer.  Yet its
objects (the ``Connection``, its ``ConnectionState`` with a dict and a set,
its ``ReceiveBuffer`` with a bytearray) cost about 0.9 KB.

:func:`park` swaps such a connection for a *parked* one: one read-only
``Connection`` shared by every idle server connection with the same head
size limit, which answers every question about the state (``our_state``,
``their_state``, ``trailing_data``, what :mod:`._h11_fast` reads) exactly
as the real one would.  The real one goes to a short spare list, since it
is in that very state.  :func:`unpark` gives the protocol a connection of
its own again, from the spare list or a new one, before anything can
change h11's state: the protocol calls it first in ``bytes_received`` and
``eof_received``.  Its other entries, while no exchange is open, either
raise before reaching h11 or only read.

The parked connection refuses every change: its states are a read-only
mapping, its proposals a frozenset, and assigning an attribute of it, of
its state or of its (bytes) buffer raises, so a path that forgot to
unpark fails loudly instead of changing every parked connection at once.

Like :mod:`._h11_fast`, this touches h11's internals, so the protocol uses
it only where the direct paths run (:data:`._h11_fast.FAST_H11`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import cast

import h11
from h11._readers import READERS
from h11._receivebuffer import ReceiveBuffer
from h11._state import CLIENT, IDLE, SERVER, ConnectionState
from h11._writers import WRITERS

from hcore.protocols.http1._h11_fast import IO

__all__ = ("ParkedConnection", "park", "unpark")

# Connections kept for reuse.  Each holds about 0.7 KB; a busy server takes
# one back for every request and gives one for every response, so a few
# suffice to keep it from making new ones.
_SPARE_MAX = 64
_SPARE: list[h11.Connection] = []
# A received-bytes buffer that grew past this is not kept for reuse.
_SPARE_BUFFER_MAX = 4096
# One parked connection per head size limit (a server has one or two).
_PARKED_MAX = 16
_PARKED: dict[int, ParkedConnection] = {}

# What a server's connection reads and writes with between exchanges.
_IDLE_WRITER = cast(IO, WRITERS[(SERVER, IDLE)])
_IDLE_READER = cast(IO, READERS[(CLIENT, IDLE)])


class _Frozen:
    """Refuses attribute assignment once ``_frozen`` is set."""

    __slots__ = ()

    _frozen = False

    def __setattr__(self, name: str, value: object) -> None:
        if self._frozen:
            raise AttributeError(f"a parked h11 connection cannot change ({name})")
        object.__setattr__(self, name, value)


class _ParkedState(_Frozen, ConnectionState):
    """Both sides ``IDLE``, keep-alive, nothing proposed; read-only."""

    def __init__(self) -> None:
        super().__init__()
        self.states = MappingProxyType(  # type: ignore[assignment]
            {CLIENT: IDLE, SERVER: IDLE}
        )
        self.pending_switch_proposals = frozenset()  # type: ignore[assignment]
        self._frozen = True


class _ParkedBuffer(_Frozen, ReceiveBuffer):
    """An empty received-bytes buffer that cannot take bytes."""

    def __init__(self) -> None:
        super().__init__()
        # Bytes, not a bytearray: nothing can be cut from it in place.
        self._data = b""  # type: ignore[assignment]
        self._frozen = True


class ParkedConnection(_Frozen, h11.Connection):
    """The read-only state of an idle keep-alive server connection.

    :param max_incomplete_event_size: h11's head size limit.
    """

    def __init__(self, max_incomplete_event_size: int) -> None:
        super().__init__(SERVER, max_incomplete_event_size=max_incomplete_event_size)
        self._cstate = _ParkedState()
        self._receive_buffer = _ParkedBuffer()
        self.their_http_version = b"1.1"
        self._frozen = True


def park(conn: h11.Connection) -> ParkedConnection | None:
    """Take an idle keep-alive server connection's state, if it is that.

    :param conn: the protocol's connection, after a cycle began.
    :return: the parked connection to hold instead, or ``None`` when
        ``conn`` is in any other state (it must then be kept).
    """
    cstate = conn._cstate
    states = cstate.states
    buffer = conn._receive_buffer
    if (
        type(conn) is not h11.Connection
        or conn.our_role is not SERVER
        or type(cstate) is not ConnectionState
        or len(states) != 2
        or states[CLIENT] is not IDLE
        or states[SERVER] is not IDLE
        or not cstate.keep_alive
        or cstate.pending_switch_proposals
        or type(buffer) is not ReceiveBuffer
        or buffer._data
        or buffer._next_line_search
        or buffer._multiple_lines_search
        or conn._receive_buffer_closed
        or conn._request_method is not None
        or conn.their_http_version != b"1.1"
        or conn.client_is_waiting_for_100_continue
        or conn._writer is not _IDLE_WRITER
        or conn._reader is not _IDLE_READER
    ):
        return None
    size = conn._max_incomplete_event_size
    parked = _PARKED.get(size)
    if parked is None:
        if len(_PARKED) >= _PARKED_MAX:
            return None
        parked = _PARKED.setdefault(size, ParkedConnection(size))
    if len(_SPARE) < _SPARE_MAX and buffer._data.__alloc__() <= _SPARE_BUFFER_MAX:
        _SPARE.append(conn)
    return parked


def unpark(parked: ParkedConnection) -> h11.Connection:
    """A connection of the protocol's own in the parked state.

    :param parked: what :func:`park` returned.
    """
    size = parked._max_incomplete_event_size
    try:
        conn = _SPARE.pop()
    except IndexError:
        conn = h11.Connection(SERVER, max_incomplete_event_size=size)
        conn.their_http_version = b"1.1"
    else:
        conn._max_incomplete_event_size = size
    return conn
