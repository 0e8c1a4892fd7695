"""The bound on a request head's size, counted the same on both HTTP/1.1 servers.

The httptools server counts a head while llhttp parses it and, once it is
complete, adds the request line's remaining bytes instead of summing the
fields again; the answer (431 or not) must be the h11 server's at every size
around the bound.
"""

from __future__ import annotations

import pytest

from hcore.events import ConnectionTerminated, Event, HeadersReceived
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http1 import H11ServerProtocol
from hcore.protocols.http1._httptools_server import HTTPToolsServerProtocol
from tests.hcore.pairs import drain

BOUND = 200


def _request(pad: int, target: bytes = b"/") -> bytes:
    return (
        b"GET " + target + b" HTTP/1.1\r\nHost: example.test\r\n"
        b"X-Pad: " + b"a" * pad + b"\r\n\r\n"
    )


def _answer(server: HTTPOverTCPProtocol, data: bytes) -> tuple[str, list[Event]]:
    server.bytes_received(data)
    events = drain(server)
    if any(isinstance(e, HeadersReceived) for e in events):
        return "accepted", events
    last = events[-1]
    assert isinstance(last, ConnectionTerminated), events
    return str(last.error_code), events


@pytest.mark.parametrize("pad", range(140, 175))
def test_both_servers_draw_the_line_at_the_same_size(pad: int) -> None:
    data = _request(pad)
    h11_answer, _ = _answer(H11ServerProtocol(max_header_size=BOUND), data)
    tools_answer, _ = _answer(HTTPToolsServerProtocol(max_header_size=BOUND), data)
    assert tools_answer == h11_answer
    assert h11_answer in ("accepted", "431")


def test_the_line_is_crossed_in_the_range() -> None:
    answers = {
        _answer(HTTPToolsServerProtocol(max_header_size=BOUND), _request(pad))[0]
        for pad in range(140, 175)
    }
    assert answers == {"accepted", "431"}


def test_a_long_target_is_refused_while_parsed() -> None:
    server = HTTPToolsServerProtocol(max_header_size=BOUND)
    answer, _ = _answer(server, _request(1, b"/" + b"t" * 300))
    assert answer == "431"
    assert b" 431 " in server.bytes_to_send().split(b"\r\n")[0]


def test_fields_sent_ahead_past_the_pipelining_bound_stop_reading() -> None:
    server = HTTPToolsServerProtocol(max_pipelined_size=64)
    first = _request(1)
    # The second request is sent ahead; its fields cross the bound.
    server.bytes_received(first + _request(100))
    events = drain(server)
    assert [type(e) for e in events] == [HeadersReceived]
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    assert b"connection: close" in server.bytes_to_send().lower()
    assert server.has_expired()
