"""The HTTP/1.1 server on httptools: registration, and what h11 does not show.

The shared HTTP/1.1 tests run on this server too (``http1_helpers_implementation``);
here: the registry entry, the optional import, byte-for-byte the same
responses as the h11 server, and the paths only an eager parser has
(requests parsed ahead, a refused switch re-parsed, bad input found early).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from hcore import LocalProtocolError
from hcore.events import ConnectionTerminated, DataReceived, Event, HeadersReceived
from hcore.protocols import default_registry
from hcore.protocols.http1 import (
    HTTP1ServerFactory,
    HTTPToolsClientFactory,
    HTTPToolsServerFactory,
)
from hcore.protocols.http1._httptools_server import HTTPToolsServerProtocol
from tests.hcore.pairs import drain

Fields = list[tuple[bytes, bytes]]


def serve(
    factory: Callable[[], object], raw: bytes
) -> tuple[HTTPToolsServerProtocol, list[Event]]:
    server = factory()
    assert isinstance(server, HTTPToolsServerProtocol)
    server.bytes_received(raw)
    return server, drain(server)


def paths(events: list[Event]) -> list[bytes]:
    return [
        value
        for event in events
        if isinstance(event, HeadersReceived)
        for name, value in event.headers
        if name == b":path"
    ]


# -- registration -----------------------------------------------------------------


def test_registered_as_httptools_beside_the_default() -> None:
    assert default_registry.get("1.1").name == "h11"  # still the default
    entry = default_registry.get("1.1", "httptools")
    server_factory = default_registry.tcp_server_factory("1.1", "httptools")
    assert isinstance(server_factory, HTTPToolsServerFactory)
    assert isinstance(server_factory(), HTTPToolsServerProtocol)
    # The client side is llhttp's too.
    assert isinstance(entry.client(), HTTPToolsClientFactory)


def test_importable_without_httptools() -> None:
    # A fresh interpreter where httptools cannot be imported: the package
    # imports, the name is not registered, the factory says why.
    code = (
        "import sys; sys.modules['httptools'] = None\n"
        "import hcore.protocols as p\n"
        "assert 'httptools' not in p.default_registry.names('1.1')\n"
        "from hcore.protocols.http1 import HTTPToolsServerFactory\n"
        "try:\n"
        "    HTTPToolsServerFactory()\n"
        "except ImportError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def test_factory_limits_alpn_and_scheme() -> None:
    with pytest.raises(ValueError, match="max_header_size must be positive"):
        HTTPToolsServerFactory(max_header_size=0)
    with pytest.raises(ValueError, match="max_header_count must be positive"):
        HTTPToolsServerFactory(max_header_count=-1)
    with pytest.raises(ValueError, match="max_pipelined_size must be positive"):
        HTTPToolsServerFactory(max_pipelined_size=0)
    factory = HTTPToolsServerFactory()
    assert list(factory.alpn_protocols) == ["http/1.1"]
    with pytest.raises(LocalProtocolError):
        factory(alpn_protocol="h2")
    _, events = serve(
        lambda: factory(tls_version="TLSv1.3"),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    assert isinstance(events[0], HeadersReceived)
    assert (b":scheme", b"https") in events[0].headers
    _, events = serve(
        HTTPToolsServerFactory(scheme="http"),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    assert isinstance(events[0], HeadersReceived)
    assert (b":scheme", b"http") in events[0].headers


# -- the same bytes as the h11 server ------------------------------------------------

RESPONSES: dict[str, tuple[bytes, list[tuple[Fields, bytes | None, bool]]]] = {
    # name: (request, [(header block, data, end_stream), ...])
    "length": (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"200"), (b"content-length", b"2")], b"ok", True)],
    ),
    "chunked": (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"200"), (b"x-a", b"b")], b"abc", False), ([], b"", True)],
    ),
    "ended at once": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        [([(b":status", b"201")], None, True)],
    ),
    "HEAD without length": (
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"200")], None, True)],
    ),
    "HEAD with length": (
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"200"), (b"content-length", b"10")], None, True)],
    ),
    "HEAD from HTTP/1.0": (
        b"HEAD / HTTP/1.0\r\n\r\n",
        [([(b":status", b"200")], None, True)],
    ),
    "204 and 304": (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"204")], None, True)],
    ),
    "HTTP/1.0 close-delimited": (
        b"GET / HTTP/1.0\r\n\r\n",
        [([(b":status", b"200")], b"till close", False), ([], b"", True)],
    ),
    "HTTP/1.0 with length": (
        b"GET / HTTP/1.0\r\n\r\n",
        [([(b":status", b"200"), (b"content-length", b"1")], b"x", True)],
    ),
    "request asks to close": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, foo\r\n\r\n",
        [([(b":status", b"200"), (b"connection", b"keep-alive, up")], b"", True)],
    ),
    "response closes": (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"200"), (b"connection", b"close")], b"", True)],
    ),
    "explicit chunked with length": (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [([(b":status", b"200"), (b"transfer-encoding", b"chunked")], b"a", True)],
    ),
    "interim then final": (
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
        b"Content-Length: 1\r\n\r\n",
        [
            ([(b":status", b"100")], None, False),
            ([(b":status", b"200"), (b"content-length", b"0")], None, True),
        ],
    ),
    "trailers": (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [
            ([(b":status", b"200")], b"data", False),
            ([(b"x-checksum", b"1")], None, True),
        ],
    ),
    "upgrade": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
        [([(b":status", b"101"), (b"upgrade", b"x")], b"raw", False)],
    ),
    "refused upgrade": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
        [([(b":status", b"426"), (b"content-length", b"0")], None, True)],
    ),
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_responses_match_h11_byte_for_byte(name: str) -> None:
    request, steps = RESPONSES[name]
    outputs = []
    for factory in (HTTP1ServerFactory(), HTTPToolsServerFactory()):
        server = factory()
        server.bytes_received(request)
        wire = []
        for headers, data, end_stream in steps:
            if headers:
                server.submit_headers(1, headers, end_stream and data is None)
            if data is not None:
                server.submit_data(1, data, end_stream)
        wire.append(server.bytes_to_send())
        outputs.append((b"".join(wire), drain(server)))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "headers",
    [
        [(b":status", b"200"), (b"bad name", b"v")],
        [(b":status", b"200"), (b"x", b"line\r\nbreak")],
        [(b":status", b"200"), (b"transfer-encoding", b"gzip")],
        [(b":status", b"20")],
    ],
)
def test_bad_response_fields_refused_like_h11(headers: Fields) -> None:
    for factory in (HTTP1ServerFactory(), HTTPToolsServerFactory()):
        server = factory()
        server.bytes_received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        drain(server)
        with pytest.raises(LocalProtocolError):
            server.submit_headers(1, headers, end_stream=True)
        # Nothing changed: a good response still goes out.
        server.submit_headers(1, [(b":status", b"200")], end_stream=True)
        assert server.bytes_to_send().startswith(b"HTTP/1.1 200 OK\r\n")


# -- an eager parser ----------------------------------------------------------------


def test_bad_pipelined_request_is_answered_in_its_turn() -> None:
    server, events = serve(
        HTTPToolsServerFactory(),
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nBad Name: v\r\n\r\n",
    )
    assert paths(events) == [b"/1"]  # the error waits behind the first exchange
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400
    first, second = server.bytes_to_send().split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 0" in first
    assert second.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_bytes_after_a_bad_pipelined_request_count_against_the_bound() -> None:
    server, _ = serve(
        HTTPToolsServerFactory(max_pipelined_size=100),
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nNOT HTTP\r\n",
    )
    server.bytes_received(b"x" * 101)  # held as h11 would hold it: too much
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    assert b"connection: close" in server.bytes_to_send().lower()
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 429


def test_data_after_connection_close_is_ignored() -> None:
    server, events = serve(
        HTTPToolsServerFactory(),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\ngarbage",
    )
    assert paths(events) == [b"/"]
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    assert drain(server) == [
        ConnectionTerminated(
            0, "connection closed after the exchange (Connection: close)"
        )
    ]


def test_refused_connect_then_pipelined_request_is_parsed_afresh() -> None:
    server, events = serve(
        HTTPToolsServerFactory(),
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    assert len(events) == 1
    server.bytes_received(b"GET /third HTTP/1.1\r\nHost: h\r\n\r\n")
    server.submit_headers(1, [(b":status", b"403"), (b"content-length", b"0")], True)
    events = drain(server)
    assert events[0] == DataReceived(1, b"", end_stream=True)
    assert paths(events) == [b"/next"]
    server.submit_headers(3, [(b":status", b"200")], end_stream=True)
    assert paths(drain(server)) == [b"/third"]


def test_refused_connect_then_eof() -> None:
    server, _ = serve(
        HTTPToolsServerFactory(),
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\nGET /n",
    )
    server.eof_received()
    server.submit_headers(1, [(b":status", b"403")], end_stream=True)
    events = drain(server)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == 400 and "mid-message" in str(events[-1].message)


def test_upgrade_without_connection_option_then_bytes_cannot_switch() -> None:
    # llhttp reads an Upgrade without "Connection: upgrade" as plain HTTP,
    # so bytes after it were parsed; a 101 cannot hand them over.
    server, _ = serve(
        HTTPToolsServerFactory(),
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    server.submit_headers(1, [(b":status", b"101"), (b"upgrade", b"x")])
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400


def test_server_tunnel_misuse() -> None:
    server, _ = serve(
        HTTPToolsServerFactory(),
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    )
    server.submit_headers(1, [(b":status", b"200")])
    with pytest.raises(LocalProtocolError):
        server.submit_data(3, b"x")
    server.submit_data(1, b"bye", end_stream=True)
    with pytest.raises(LocalProtocolError):
        server.submit_data(1, b"more")
    server.eof_received()
    assert drain(server) == [
        DataReceived(1, b"", end_stream=True),
        ConnectionTerminated(0, "tunnel closed by both sides"),
    ]


def test_trailers_too_large() -> None:
    _, events = serve(
        HTTPToolsServerFactory(max_header_size=100),
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nX-Big: " + b"a" * 200 + b"\r\n\r\n",
    )
    assert events[-1] == ConnectionTerminated(
        431, "trailers: message head larger than 100 bytes"
    )


def test_trailing_whitespace_is_not_part_of_a_value() -> None:
    _, events = serve(
        HTTPToolsServerFactory(),
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-A: 1 \t\r\n\r\n"
        b"0\r\nX-T: 2  \r\n\r\n",
    )
    assert isinstance(events[0], HeadersReceived)
    assert (b"x-a", b"1") in events[0].headers
    assert events[-1].headers == ((b"x-t", b"2"),)  # type: ignore[attr-defined]


def test_trailers_must_end_the_stream() -> None:
    server, _ = serve(HTTPToolsServerFactory(), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    server.submit_headers(1, [(b":status", b"200")])
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b"x-t", b"1")], end_stream=False)


def test_connect_with_content_is_refused() -> None:
    _, events = serve(
        HTTPToolsServerFactory(),
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
    )
    assert events == [ConnectionTerminated(400, "content in a CONNECT request")]


def test_partial_head_then_connection_lost() -> None:
    server, _ = serve(HTTPToolsServerFactory(), b"GET / HTTP/1.1\r\nHo")
    server.connection_lost()
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400
