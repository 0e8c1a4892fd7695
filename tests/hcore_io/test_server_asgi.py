"""ASGIServer: an application of the common frameworks' shape on every version.

Every test runs on asyncio and Trio, against a server on 127.0.0.1 (real
sockets), fetched with HTTPConnection over HTTP/1.1, HTTP/2 (TLS and h2c)
and HTTP/3.
"""

from __future__ import annotations

import hashlib
import json
import logging

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived, InformationalResponseReceived

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import VERSIONS, fetch, read_response, request_headers, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_routes(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            hello = await fetch(connection, "GET", "/")
            assert (hello.status, hello.body) == (200, b"hello")
            assert hello.header(b"content-length") == b"5"
            missing = await fetch(connection, "GET", "/missing")
            assert missing.status == 404
            assert json.loads(missing.body) == {"error": "not found"}
            streamed = await fetch(connection, "GET", "/stream/50")
            assert streamed.status == 200
            assert streamed.body == b"".join(
                bytes([65 + i % 26]) * 1024 for i in range(50)
            )
            # The client sends the whole body before reading: the echo must
            # fit what its connection buffers (1 MiB) plus the windows.
            small = bytes(range(256)) * 1024
            echoed = await fetch(connection, "POST", "/echo", small)
            assert echoed.body == small
            body = bytes(range(256)) * 4096 * 3  # 3 MiB
            digest = await fetch(connection, "POST", "/digest", body)
            assert digest.body.decode() == hashlib.sha256(body).hexdigest()
            empty = await fetch(connection, "POST", "/digest", b"")
            assert empty.body.decode() == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("version", VERSIONS)
async def test_scope(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app,
        server_tls_config,
        client_tls_config,
        root_path="/root",
        networking=networking,
    ) as served:
        async with await served.connect(version) as connection:
            response = await fetch(
                connection, "GET", "/json?a=1&b=%20", extra=((b"x-test", b"yes"),)
            )
    scope = json.loads(response.body)
    expected_version = "2" if version == "h2c" else version
    assert scope["http_version"] == expected_version
    assert scope["method"] == "GET"
    assert scope["path"] == "/json"
    assert scope["raw_path"] == "/json"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == "/root"
    # The client's :scheme (HTTP/1.1: from the connection).
    assert scope["scheme"] == "https"
    assert ["x-test", "yes"] in scope["headers"]
    assert scope["headers"][0][0] == "host"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"][0] == "127.0.0.1"
    assert scope["extensions"] == ["http.response.trailers"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_percent_encoded_path(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            response = await fetch(connection, "GET", "/%6Ason")
    assert response.status == 200
    assert json.loads(response.body)["raw_path"] == "/%6Ason"


@pytest.mark.parametrize("version", VERSIONS)
async def test_trailers(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            response = await fetch(
                connection, "GET", "/trailers", extra=((b"te", b"trailers"),)
            )
    assert response.body == b"part1 part2"
    assert (b"x-checksum", b"abc123") in response.trailers


@pytest.mark.parametrize("version", ["1.1", "2", "h2c", "3"])
async def test_head_has_no_body(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            response = await fetch(connection, "HEAD", "/")
            after = await fetch(connection, "GET", "/")
    assert response.status == 200
    assert response.body == b""
    assert response.header(b"content-length") == b"5"
    assert after.body == b"hello"


@pytest.mark.parametrize("version", VERSIONS)
async def test_100_continue_when_the_app_reads(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            stream = await connection.open_stream(
                request_headers(
                    "POST",
                    "/digest",
                    ((b"expect", b"100-continue"), (b"content-length", b"5")),
                )
            )
            async with stream:
                with anyio.fail_after(5):
                    first = await stream.receive_event()
                assert isinstance(first, InformationalResponseReceived)
                assert dict(first.headers)[b":status"] == b"100"
                await stream.send_data(b"hello", end_stream=True)
                response = await read_response(stream)
    assert response.status == 200
    assert response.body.decode() == hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize("version", VERSIONS)
async def test_no_100_continue_when_the_app_answers_first(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            stream = await connection.open_stream(
                request_headers(
                    "POST",
                    "/",
                    ((b"expect", b"100-continue"), (b"content-length", b"5")),
                )
            )
            async with stream:
                with anyio.fail_after(5):
                    first = await stream.receive_event()
    assert isinstance(first, HeadersReceived)
    assert dict(first.headers)[b":status"] == b"200"


@pytest.mark.parametrize("version", VERSIONS)
async def test_crashing_app_gets_500_and_the_connection_carries_on(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    caplog: pytest.LogCaptureFixture,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            crashed = await fetch(connection, "GET", "/crash")
            nothing = await fetch(connection, "GET", "/nothing")
            after = await fetch(connection, "GET", "/")
    assert crashed.status == 500
    assert nothing.status == 500
    assert after.body == b"hello"
    failures = [r for r in caplog.records if r.name == "hcore.server" and r.exc_info]
    assert failures
    assert "crashed on purpose" in str(failures[0].exc_info[1])  # type: ignore[index]


@pytest.mark.parametrize("version", ["2", "h2c", "3"])
async def test_crash_mid_response_resets_only_that_stream(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            stream = await connection.open_stream(
                request_headers("GET", "/crash-late"), end_stream=True
            )
            async with stream:
                events = []
                with anyio.fail_after(5):
                    # Bounded: the reset ends the stream.
                    async for event in stream:
                        events.append(event)
            after = await fetch(connection, "GET", "/")
    assert isinstance(events[0], HeadersReceived)
    assert type(events[-1]).__name__ == "StreamResetReceived"
    assert after.body == b"hello"


async def test_crash_mid_response_closes_http1_connection(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect("1.1") as connection:
            stream = await connection.open_stream(
                request_headers("GET", "/crash-late"), end_stream=True
            )
            received = b""
            with anyio.fail_after(5):
                try:
                    # Bounded: the connection closes.
                    async for event in stream:
                        if isinstance(event, DataReceived):
                            received += event.data
                except Exception as exc:
                    assert "closed" in str(exc) or "terminated" in str(exc)
            assert received == b"partial"
            assert connection.has_expired()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_concurrent_requests_on_one_connection(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    results: list[bytes] = []
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:

            async def one(index: int) -> None:
                response = await fetch(connection, "POST", "/echo", b"%d" % index)
                results.append(response.body)

            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    for index in range(40):
                        group.start_soon(one, index)
    assert sorted(results) == sorted(b"%d" % i for i in range(40))


@pytest.mark.parametrize("version", VERSIONS)
async def test_access_log(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    caplog: pytest.LogCaptureFixture,
    networking: SocketBackend,
) -> None:
    caplog.set_level(logging.INFO, logger="hcore.access")
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            await fetch(connection, "GET", "/?q=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "hcore.access"]
    expected_version = "2" if version == "h2c" else version
    assert len(lines) == 1
    assert lines[0].startswith("127.0.0.1 - - [")
    assert lines[0].endswith(f'"GET /?q=1 HTTP/{expected_version}" 200 5')


async def test_alt_svc_advertises_http3(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        for version in ("1.1", "2"):
            async with await served.connect(version) as connection:
                response = await fetch(connection, "GET", "/")
            assert (
                response.header(b"alt-svc") == b'h3=":%d"; ma=86400' % served.https_port
            )
        async with await served.connect("h2c") as connection:
            plain = await fetch(connection, "GET", "/")
        assert plain.header(b"alt-svc") is None


@pytest.mark.parametrize("version", VERSIONS)
async def test_starlette_style_disconnect_checks(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            start = anyio.current_time()
            for _ in range(3):
                response = await fetch(connection, "GET", "/starlette")
                assert (response.status, response.body) == (200, b"one two three")
            elapsed = anyio.current_time() - start
    # Cancelling the disconnect listener costs no polling delay.
    assert elapsed < 0.25
