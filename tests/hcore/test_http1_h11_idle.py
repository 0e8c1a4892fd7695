"""An idle h11 server connection shares one read-only h11 state (issue 11).

:mod:`hcore.protocols.http1._h11_idle` swaps the h11 connection of a
server waiting for its next request for a parked one shared by all of them,
and gives a connection of its own back before anything is fed.  The
exchanges must go on exactly as without it (the direct-path tests compare
h11's whole state too); the parked state must refuse every change; an
idle server protocol must be small.
"""

from __future__ import annotations

import gc
import tracemalloc

import h11
import pytest
from h11._state import CLIENT, IDLE, SERVER

from hcore.events import ConnectionTerminated, HeadersReceived
from hcore.protocols.http1 import H11ServerProtocol
from hcore.protocols.http1._h11_idle import _SPARE, _SPARE_MAX, ParkedConnection
from tests.hcore.h11_fast_helpers import PlainServer, h11_state
from tests.hcore.pairs import drain

REQUEST = b"GET /%d HTTP/1.1\r\nHost: example.com\r\n\r\n"
RESPONSE = [(b":status", b"200"), (b"content-length", b"2")]


def exchange(server: H11ServerProtocol, number: int) -> bytes:
    """One request and its answer; what the server sent."""
    server.bytes_received(REQUEST % number)
    events = drain(server)
    assert len(events) == 1
    head = events[0]
    assert isinstance(head, HeadersReceived) and head.end_stream
    assert (b":path", b"/%d" % number) in head.headers
    server.submit_headers(head.stream_id, RESPONSE)
    server.submit_data(head.stream_id, b"ok", end_stream=True)
    return server.bytes_to_send()


def test_idle_servers_share_one_parked_state() -> None:
    first, second = H11ServerProtocol(), H11ServerProtocol()
    exchange(first, 1)
    exchange(second, 1)
    assert type(first._h11) is ParkedConnection
    assert first._h11 is second._h11
    # A different head size limit, a different parked state.
    other = H11ServerProtocol(max_header_size=1000)
    exchange(other, 1)
    assert type(other._h11) is ParkedConnection
    assert other._h11 is not first._h11


def test_exchanges_go_on_as_without_parking() -> None:
    # Two connections taking turns: each takes back a connection another
    # one left, and every step matches h11 alone, state included.
    servers = [H11ServerProtocol(), H11ServerProtocol()]
    plains = [PlainServer(), PlainServer()]
    for number in range(6):
        index = number % 2
        sent = exchange(servers[index], number)
        assert sent == exchange(plains[index], number)
        assert h11_state(servers[index]._h11) == h11_state(plains[index]._h11)
        assert servers[index]._stream_id == plains[index]._stream_id


def test_end_of_stream_while_parked() -> None:
    server, plain = H11ServerProtocol(), PlainServer()
    exchange(server, 1)
    exchange(plain, 1)
    server.eof_received()
    plain.eof_received()
    events = drain(server)
    assert events == drain(plain)
    assert len(events) == 1 and isinstance(events[0], ConnectionTerminated)
    assert server.has_expired()


def test_closing_and_losing_a_parked_connection() -> None:
    closed, lost = H11ServerProtocol(), H11ServerProtocol()
    exchange(closed, 1)
    exchange(lost, 1)
    closed.submit_close()
    lost.connection_lost()
    for server in (closed, lost):
        (event,) = drain(server)
        assert isinstance(event, ConnectionTerminated)
        assert server.has_expired()
    # Nothing reached the shared state.
    fresh = H11ServerProtocol()
    exchange(fresh, 1)
    assert fresh._h11 is closed._h11
    assert fresh._h11.our_state is IDLE and fresh._h11.their_state is IDLE


def test_a_pipelined_request_is_not_parked() -> None:
    server = H11ServerProtocol()
    server.bytes_received(REQUEST % 1 + REQUEST % 2)
    (head,) = drain(server)
    assert isinstance(head, HeadersReceived)
    server.submit_headers(head.stream_id, RESPONSE)
    server.submit_data(head.stream_id, b"ok", end_stream=True)
    # The second request was parsed at once: its exchange is open.
    assert type(server._h11) is h11.Connection
    (second,) = drain(server)
    assert isinstance(second, HeadersReceived) and second.stream_id == 3


def test_a_partial_next_request_is_not_parked() -> None:
    server = H11ServerProtocol()
    server.bytes_received(REQUEST % 1 + b"GET /2 HT")
    (head,) = drain(server)
    assert isinstance(head, HeadersReceived)
    server.submit_headers(head.stream_id, RESPONSE)
    server.submit_data(head.stream_id, b"ok", end_stream=True)
    assert type(server._h11) is h11.Connection
    server.bytes_received(b"TP/1.1\r\nHost: a\r\n\r\n")
    (second,) = drain(server)
    assert isinstance(second, HeadersReceived) and second.stream_id == 3


def test_the_head_size_limit_survives_parking() -> None:
    # The spare connections were made with the default limit.
    for number in range(3):
        exchange(H11ServerProtocol(), number)
    small = H11ServerProtocol(max_header_size=200)
    exchange(small, 1)
    small.bytes_received(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 300 + b"\r\n\r\n")
    (event,) = drain(small)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 431


def test_parked_state_refuses_changes() -> None:
    server = H11ServerProtocol()
    exchange(server, 1)
    parked = server._h11
    assert isinstance(parked, ParkedConnection)
    with pytest.raises(AttributeError):
        parked.receive_data(b"GET / HTTP/1.1\r\n")
    with pytest.raises(AttributeError):
        parked._request_method = b"GET"
    with pytest.raises(TypeError):
        parked._cstate.states[CLIENT] = h11.SEND_BODY
    with pytest.raises(AttributeError):
        parked._cstate.keep_alive = False
    with pytest.raises(AttributeError):
        parked._cstate.pending_switch_proposals.add(h11.SWITCHED_PROTOCOL)
    assert parked.our_state is IDLE and parked.their_state is IDLE
    assert dict(parked._cstate.states) == {CLIENT: IDLE, SERVER: IDLE}
    assert parked.trailing_data == (b"", False)


def test_spare_connections_are_bounded() -> None:
    servers = [H11ServerProtocol() for _ in range(_SPARE_MAX + 10)]
    for server in servers:
        exchange(server, 1)
    assert len(_SPARE) <= _SPARE_MAX
    # Taking them all back and more makes new ones.
    for server in servers:
        exchange(server, 2)
        assert type(server._h11) is ParkedConnection


def test_idle_server_protocol_is_small() -> None:
    count = 200
    exchange(H11ServerProtocol(), 0)  # caches and the parked state warm
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [H11ServerProtocol() for _ in range(count)]
        for server in kept:
            exchange(server, 1)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # Measured: about 0.4 KB each (the protocol object and two empty
    # lists) plus the spare connections; h11's own state (~0.9 KB) kept
    # per connection would pass 1 KB.
    assert grown / count < 1024
    assert all(type(server._h11) is ParkedConnection for server in kept)
