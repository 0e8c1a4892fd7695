"""Listeners: serving handlers, surviving their failures and bad clients, closing.

Every test runs on asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from anyio.abc import SocketAttribute

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import StreamResetReceived
from hcore.protocols import ALPNHTTPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io import ConnectionClosed, NetworkError
from hcore_io.connections import (
    HTTP2_PREFACE,
    HTTPConnection,
    HTTPListener,
    HTTPMultiListener,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)

from .conftest import SocketBackend
from .connection_helpers import App, fetch, pattern

pytestmark = pytest.mark.anyio


def _both() -> PriorKnowledgeHTTPFactory:
    return PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_a_failing_handler_is_logged_and_the_listener_goes_on(
    version: str,
    caplog: pytest.LogCaptureFixture,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    net = networking
    listener: HTTPListener
    opener: HTTPOpener
    if version == "3":
        listener = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(),
            net,
            local_address=("127.0.0.1", 0),
            tls_config=server_tls_config,
        )
        opener = HTTPOverQUICOpener(
            HTTP3ClientFactory(), networking=net, tls_config=client_tls_config
        )
    else:
        listener = await HTTPOverTCPListener.create(
            _both(), net, local_address=("127.0.0.1", 0)
        )
        client = HTTP2ClientFactory() if version == "2" else HTTP1ClientFactory()
        opener = HTTPOverTCPOpener(client, networking=net)
    address = listener.local_addresses[0]
    tls = version == "3"

    async def serve_on_stream(connection: HTTPConnection) -> None:
        # Requests that are not /fail are answered in the same task.
        stream = await connection.accept_stream()
        assert stream is not None
        async with stream:
            first = await stream.receive_event()
            if b"/fail" in repr(first).encode():
                raise RuntimeError("the handler failed on purpose")
            await stream.send_headers(((b":status", b"204"),), end_stream=True)

    caplog.set_level(logging.ERROR, logger="hcore_io.connections")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, serve_on_stream)
            failing = await opener(address, tls=tls)
            try:
                response = await fetch(failing, "GET", "/fail")
            except ConnectionClosed:
                pass
            else:
                # The server reset the stream its handler left behind.
                assert isinstance(response.events[-1], StreamResetReceived)
                assert response.status == 0
            await failing.aclose()
            async with await opener(address, tls=tls) as healthy:
                response = await fetch(healthy, "GET", "/fine")
                assert response.status == 204
            await listener.aclose()
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "on purpose" in str(failures[0].exc_info[1])


async def test_garbage_and_silence_do_not_stop_the_listener(
    networking: SocketBackend,
) -> None:
    net = networking
    listener = await HTTPOverTCPListener.create(
        _both(), net, local_address=("127.0.0.1", 0), preface_timeout=0.2
    )
    address = listener.local_addresses[0]
    opener = HTTPOverTCPOpener(HTTP2ClientFactory(), networking=net)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, App())
            # Garbage after the HTTP/2 preface: the connection is ended.
            garbage = await net.connect_tcp(address)
            await garbage.send(HTTP2_PREFACE + b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
            with pytest.raises(anyio.EndOfStream):
                # Bounded: the server answers with a GOAWAY, then closes.
                while True:
                    await garbage.receive()
            await garbage.aclose()
            # Half a preface, then nothing: dropped after preface_timeout.
            silent = await net.connect_tcp(address)
            await silent.send(HTTP2_PREFACE[:10])
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await silent.receive()
            await silent.aclose()
            # Garbage as HTTP/1.1: answered 400, then closed.
            bad = await net.connect_tcp(address)
            await bad.send(b"NOT HTTP AT ALL\r\n\r\n")
            answer = b""
            with pytest.raises(anyio.EndOfStream):
                # Bounded: the server answers and closes.
                while True:
                    answer += await bad.receive()
            await bad.aclose()
            assert answer.startswith(b"HTTP/1.1 400")
            async with await opener(address, tls=False) as connection:
                response = await fetch(connection, "GET", "/bytes/3", scheme="http")
                assert response.body == pattern(3)
            await listener.aclose()


async def test_one_server_speaks_every_version(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    net = networking
    multi = HTTPMultiListener(
        [
            await HTTPOverTCPListener.create(
                _both(), net, local_address=("127.0.0.1", 0)
            ),
            await HTTPOverTCPListener.create(
                _both(),
                net,
                local_address=("127.0.0.1", 0),
                tls_config=server_tls_config,
            ),
            await HTTPOverQUICListener.create(
                HTTP3ServerFactory(),
                net,
                local_address=("127.0.0.1", 0),
                tls_config=server_tls_config,
            ),
        ]
    )
    plain, secure, quic = multi.local_addresses
    assert len(multi.listeners) == 3
    cases: list[tuple[HTTPOpener, tuple[str, int], bool, str]] = [
        (HTTPOverTCPOpener(HTTP1ClientFactory(), networking=net), plain, False, "1.1"),
        (HTTPOverTCPOpener(HTTP2ClientFactory(), networking=net), plain, False, "2"),
        (
            HTTPOverTCPOpener(
                ALPNHTTPFactory([HTTP1ClientFactory()]),
                networking=net,
                tls_config=client_tls_config,
            ),
            secure,
            True,
            "1.1",
        ),
        (
            HTTPOverTCPOpener(
                ALPNHTTPFactory([HTTP1ClientFactory(), HTTP2ClientFactory()]),
                networking=net,
                tls_config=client_tls_config,
            ),
            secure,
            True,
            "2",
        ),
        (
            HTTPOverQUICOpener(
                HTTP3ClientFactory(), networking=net, tls_config=client_tls_config
            ),
            quic,
            True,
            "3",
        ),
    ]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(multi.serve, App())
            for opener, address, tls, version in cases:
                async with await opener(address, tls=tls) as connection:
                    assert connection.http_version == version
                    response = await fetch(connection, "POST", "/digest", b"v")
                    assert response.status == 200
            async with multi:
                pass
        # serve() returned: every listener was closed.


async def test_listening_on_ipv6_loopback(networking: SocketBackend) -> None:
    try:
        listener = await HTTPOverTCPListener.create(
            HTTP1ServerFactory(), networking, local_address=("::1", 0)
        )
    except NetworkError:
        pytest.fail("IPv6 loopback is not available on this machine")
    host, port = listener.local_addresses[0]
    assert host == "::1"
    assert listener.local_addresses[0] == normalize(
        listener._listener.extra(SocketAttribute.local_address)
    )
    opener = HTTPOverTCPOpener(HTTP1ClientFactory(), networking=networking)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, App())
            async with await opener(("::1", port), tls=False) as connection:
                assert connection.remote_address == ("::1", port)
                response = await fetch(connection, "GET", "/bytes/7", scheme="http")
                assert response.body == pattern(7)
            await listener.aclose()


def normalize(address: object) -> tuple[str, int]:
    assert isinstance(address, tuple)
    return (address[0], address[1])
