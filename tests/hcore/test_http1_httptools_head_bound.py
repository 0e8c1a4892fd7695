"""The httptools client skips its head-size check only where the check passes.

``HTTPToolsClientProtocol.on_headers_complete`` knows the head's size on
the wire; the check's estimate of a head is at most that size plus 3 and
one per field, so below that bound the check is not run.  These tests run
heads of several shapes (no reason phrase, no space after the colons,
spaces around values), whole and cut into pieces, against limits all
around their size, and compare the outcome with what the check itself
says of the head.
"""

from __future__ import annotations

import pytest

from hcore.events import ConnectionTerminated, HeadersReceived
from hcore.protocols.http1._httptools_client import HTTPToolsClientProtocol
from hcore.protocols.http1._limits import head_limits
from tests.hcore.pairs import drain

GET = (
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"h"),
    (b":path", b"/"),
)

#: Responses, with the reason phrase and the fields httptools reports.
RESPONSES: list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]] = [
    (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n"
        b"Connection: keep-alive\r\n\r\nab",
        b"OK",
        [
            (b"server", b"nginx"),
            (b"content-length", b"2"),
            (b"connection", b"keep-alive"),
        ],
    ),
    (
        b"HTTP/1.1 200\r\nContent-Length:2\r\nX:y\r\n\r\nab",
        b"",
        [(b"content-length", b"2"), (b"x", b"y")],
    ),
    (
        b"HTTP/1.1 200 \r\nContent-Length:  2 \r\nX: \t y\r\n\r\nab",
        b"",
        [(b"content-length", b"2"), (b"x", b"y")],
    ),
]


@pytest.mark.parametrize("response, reason, fields", RESPONSES)
@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_head_limit_outcome_is_the_checks(
    response: bytes, reason: bytes, fields: list[tuple[bytes, bytes]], pieces: int
) -> None:
    size = response.find(b"\r\n\r\n") + 4
    cut = size // pieces
    parts = [response[i * cut : (i + 1) * cut] for i in range(pieces - 1)]
    parts.append(response[(pieces - 1) * cut :])
    outcomes = set()
    for limit in range(max(1, size - 30), size + 30):
        client = HTTPToolsClientProtocol(max_header_size=limit)
        client.submit_headers(1, GET, True)
        for part in parts:
            client.bytes_received(part)
        events = drain(client)
        expected = head_limits(limit, 100).check(len(reason) + 15, fields)
        accepted = any(isinstance(event, HeadersReceived) for event in events)
        refused = [e for e in events if isinstance(e, ConnectionTerminated)]
        if expected is None:
            assert accepted, (limit, events)
            assert [
                e.headers[1:] for e in events if isinstance(e, HeadersReceived)
            ] == [tuple(fields)]
        else:
            assert not accepted, (limit, events)
            assert refused and refused[0].error_code == 431
        outcomes.add(expected is None)
    # Both outcomes were met around the head's size.
    assert outcomes == {True, False}
