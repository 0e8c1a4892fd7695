"""hcore_io.Limits: one object for every bound, and each bound crossed.

The bounds already crossed in test_server_limits.py (413, 431, the HTTP/2
reset, 503, the timeouts, HTTP/3's stream refusal), test_websocket_server.py
(1009), test_client_sse.py (an event too large) and test_server_shutdown.py
are not repeated here; these cross the others, and the same bounds given
through a :class:`~hcore_io.Limits` instead of the keyword arguments.
Every test runs on asyncio and Trio and on both socket backends.
"""

from __future__ import annotations

import argparse
import dataclasses

import anyio
import h2.config
import h2.connection
import h2.events
import pytest

from hcore import HCoreError
from hcore.sse import EventStreamError
from hcore_io import Limits
from hcore_io.cli import _server as cli_server
from hcore_io.client import Client, ConnectionPool, WebSocketClosed
from hcore_io.server import ASGIServer, ProxyServer, Receive, Scope, Send

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import VERSIONS, Running, Serve, fetch

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _limits_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/big-head``: a 4 KiB header; ``/events``: a 5000-byte SSE event;
    ``/ws``: a WebSocket echo; anything else: the shared test app."""
    path = scope.get("path")
    if scope["type"] == "websocket":
        connect = await receive()
        assert connect["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        # Bounded by the client's messages.
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes")})
    if path == "/big-head":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-big", b"a" * 4096), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if path == "/events":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"data: " + b"x" * 5000 + b"\n\n"}
        )
        return
    await app(scope, receive, send)


def _client(served: Running, version: str, **options: object) -> Client:
    """A client of the server under test speaking ``version`` (see VERSIONS)."""
    return Client(
        networking=served.networking,
        tls_config=served.client_tls,
        http_versions=("2",) if version == "h2c" else (version,),
        http2_prior_knowledge=version == "h2c",
        **options,  # type: ignore[arg-type]
    )


# -- the object and who takes it ----------------------------------------------------


def test_limits_are_the_default_of_every_server_and_client() -> None:
    defaults = Limits()
    assert ASGIServer(app).limits == defaults
    assert ProxyServer().limits == defaults
    assert ConnectionPool().limits == defaults
    assert Client().pool.limits == defaults


def test_a_keyword_argument_wins_over_the_limits_field() -> None:
    limits = Limits(max_body_size=5000, keep_alive_timeout=1.0)
    server = ASGIServer(app, limits=limits, max_body_size=7000)
    assert server.limits == dataclasses.replace(limits, max_body_size=7000)
    proxy = ProxyServer(limits=limits, connect_timeout=2.0)
    assert proxy.limits.connect_timeout == 2.0
    assert proxy.limits.keep_alive_timeout == 1.0
    pool = ConnectionPool(limits=limits, max_buffered_data=4096)
    assert pool.limits.max_buffered_data == 4096


@pytest.mark.parametrize(
    "field",
    [f.name for f in dataclasses.fields(Limits) if f.name != "shutdown_timeout"],
)
def test_a_bound_that_is_not_positive_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})
    assert Limits(shutdown_timeout=0).shutdown_timeout == 0
    with pytest.raises(ValueError, match="shutdown_timeout"):
        Limits(shutdown_timeout=-1)


def test_the_command_line_maps_its_options_onto_limits() -> None:
    parser = argparse.ArgumentParser()
    cli_server.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            *("server", "m:app", "http://127.0.0.1:0", "--body-timeout=2.5"),
            *("--max-header-count=7", "--websocket-max-message-size=99"),
        ]
    )
    assert cli_server.limits_of(args) == Limits(
        body_timeout=2.5, max_header_count=7, websocket_max_message_size=99
    )
    defaults = parser.parse_args(["server", "m:app", "http://127.0.0.1:0"])
    assert cli_server.limits_of(defaults) == Limits()


# -- server bounds crossed -------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_limits_object_bounds_the_body(version: str, serve: Serve) -> None:
    async with serve(app, limits=Limits(max_body_size=1000)) as served:
        async with await served.connect(version) as connection:
            refused = await fetch(connection, "POST", "/digest", body=b"x" * 5000)
            accepted = await fetch(connection, "POST", "/digest", body=b"x" * 500)
    assert refused.status == 413
    assert accepted.status == 200


async def test_too_many_header_fields_get_431_on_http1(serve: Serve) -> None:
    async with serve(app, limits=Limits(max_header_count=10)) as served:
        async with await served.connect("1.1") as connection:
            many = tuple((b"x-%d" % i, b"v") for i in range(20))
            response = await fetch(connection, "GET", "/", extra=many)
        async with await served.connect("1.1") as connection:
            few = tuple((b"x-%d" % i, b"v") for i in range(3))
            accepted = await fetch(connection, "GET", "/", extra=few)
    assert response.status == 431
    assert accepted.status == 200


async def test_http1_pipelining_beyond_the_bound_ends_the_connection(
    serve: Serve, networking: SocketBackend
) -> None:
    async with serve(app, limits=Limits(max_pipelined_size=2048)) as served:
        raw = await networking.connect_tcp(("127.0.0.1", served.http_port))
        async with raw:
            # One slow request, then 8 KiB of requests pipelined behind it.
            first = b"GET /slow/0.5 HTTP/1.1\r\nHost: x\r\n\r\n"
            behind = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 300
            await raw.send(first + behind)
            received = b""
            with anyio.fail_after(10):
                # Bounded: the server closes the connection.
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    while True:
                        received += await raw.receive()
    # Far fewer than the 300 pipelined requests were answered.
    assert received.count(b"HTTP/1.1 200") < 50


async def test_http2_streams_over_the_limit_are_refused(
    serve: Serve, networking: SocketBackend
) -> None:
    async with serve(app, limits=Limits(max_concurrent_streams=2)) as served:
        raw = await networking.connect_tcp(("127.0.0.1", served.http_port))
        async with raw:
            # A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS: three
            # requests before the server's SETTINGS are read.
            h2c = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None)
            )
            h2c.initiate_connection()
            for stream_id in (1, 3, 5):
                h2c.send_headers(
                    stream_id,
                    [
                        (b":method", b"GET"),
                        (b":scheme", b"http"),
                        (b":authority", b"x"),
                        (b":path", b"/slow/0.5"),
                    ],
                    end_stream=True,
                )
            await raw.send(h2c.data_to_send())
            statuses: dict[int, object] = {}
            with anyio.fail_after(10):
                # Bounded: three streams end, each with a response or a reset.
                while len(statuses) < 3:
                    for event in h2c.receive_data(await raw.receive()):
                        if isinstance(event, h2.events.ResponseReceived):
                            statuses[event.stream_id] = dict(event.headers)[b":status"]
                        elif isinstance(event, h2.events.StreamReset):
                            statuses[event.stream_id] = event.error_code
                    await raw.send(h2c.data_to_send())
    outcomes = list(statuses.values())
    assert outcomes.count(b"200") == 2
    assert outcomes.count(7) == 1  # REFUSED_STREAM


@pytest.mark.parametrize("version", VERSIONS)
async def test_limits_object_bounds_websocket_messages(
    version: str, serve: Serve
) -> None:
    async with serve(
        _limits_app, limits=Limits(websocket_max_message_size=1000)
    ) as served:
        port = served.http_port if version == "h2c" else served.https_port
        scheme = "ws" if version == "h2c" else "wss"
        async with _client(served, version) as client:
            async with client.websocket(f"{scheme}://localhost:{port}/ws") as socket:
                await socket.send_bytes(b"y" * 500)
                assert await socket.receive() == b"y" * 500
                await socket.send_bytes(b"y" * 3000)
                with anyio.fail_after(10), pytest.raises(WebSocketClosed) as closed:
                    await socket.receive()
    assert closed.value.code == 1009


# -- client bounds crossed --------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_client_refuses_a_response_head_over_its_limit(
    version: str, serve: Serve
) -> None:
    async with serve(_limits_app) as served:
        base = f"https://localhost:{served.https_port}"
        async with _client(
            served, version, retries=0, limits=Limits(max_header_size=1024)
        ) as client:
            with anyio.fail_after(10), pytest.raises(HCoreError):
                await client.get(base + "/big-head")
        async with _client(served, version) as client:
            with anyio.fail_after(10):
                response = await client.get(base + "/big-head")
    assert response.status == 200


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_client_limits_bound_server_sent_events(
    version: str, serve: Serve
) -> None:
    async with serve(_limits_app) as served:
        url = f"https://localhost:{served.https_port}/events"
        async with _client(
            served, version, retries=0, limits=Limits(sse_max_event_size=1000)
        ) as client:
            with anyio.fail_after(10):
                async with client.sse(url) as source:
                    with pytest.raises(EventStreamError):
                        await source.__anext__()
