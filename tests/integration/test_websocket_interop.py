"""WebSockets against third-party peers.

- The ``websockets`` library's client against our server over HTTP/1.1
  (plain and TLS, with permessage-deflate and a subprotocol), and its view
  of our closes (a code and reason from the application, 1009 for a
  message too big);
- our client against hypercorn's server: HTTP/1.1 on plain TCP, and
  HTTP/2 (extended CONNECT, RFC 8441) over TLS.

The ``websockets`` client runs in a worker thread (its sync API), so the
tests run on asyncio and Trio alike, and on both socket backends.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import Client, WebSocketClosed
from hcore_io.networking import EpollNetworking, SystemNetworking
from tests.hcore_io.server_helpers import running
from tests.hcore_io.websocket_helpers import WebSocketApp

from .client_peers import free_port

pytestmark = pytest.mark.anyio

Networking = SystemNetworking | EpollNetworking


def _ssl_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


@pytest.mark.parametrize("scheme", ("ws", "wss"))
async def test_websockets_client_against_our_server(
    scheme: str,
    networking: Networking,
    tls_ca: trustme.CA,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    app = WebSocketApp()
    async with running(
        app,
        server_tls_config,
        client_tls_config,
        networking=networking,
        http3=False,
    ) as server:
        port = server.http_port if scheme == "ws" else server.https_port
        url = f"{scheme}://localhost:{port}/echo"
        context = _ssl_context(tls_ca) if scheme == "wss" else None

        def talk() -> tuple[object, ...]:
            with connect(
                url, ssl=context, subprotocols=[Subprotocol("chat")], open_timeout=10
            ) as ws:
                ws.send("hello")
                text = ws.recv(timeout=10)
                ws.send(b"\x00\xff" * 300_000)
                data = ws.recv(timeout=10)
                ws.ping(b"p").wait(10)
                extensions = [type(e).__name__ for e in ws.protocol.extensions]
                subprotocol = ws.subprotocol
                ws.close(4002, "from websockets")
            return text, data, extensions, subprotocol

        with anyio.fail_after(30):
            text, data, extensions, subprotocol = await anyio.to_thread.run_sync(talk)
        assert text == "hello"
        assert data == b"\x00\xff" * 300_000
        assert extensions == ["PerMessageDeflate"]
        assert subprotocol == "chat"
        await app.wait_disconnects(1)
        assert app.disconnects == [("/echo", 4002, "from websockets")]


async def test_websockets_client_sees_our_closes(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    app = WebSocketApp()
    async with running(
        app,
        server_tls_config,
        client_tls_config,
        networking=networking,
        http3=False,
        websocket_max_message_size=1000,
    ) as server:
        base = f"ws://127.0.0.1:{server.http_port}"

        def closes() -> list[tuple[int | None, str | None]]:
            seen: list[tuple[int | None, str | None]] = []
            with connect(f"{base}/say-bye", open_timeout=10) as ws:
                assert ws.recv(timeout=10) == "bye"
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
                received = closed.value.rcvd
                seen.append(
                    (received.code, received.reason) if received else (None, None)
                )
            with connect(f"{base}/echo", open_timeout=10, compression=None) as ws:
                ws.send(b"x" * 2000)
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
                received = closed.value.rcvd
                seen.append(
                    (received.code, received.reason) if received else (None, None)
                )
            return seen

        with anyio.fail_after(30):
            seen = await anyio.to_thread.run_sync(closes)
        assert seen[0] == (4000, "done")
        assert seen[1][0] == 1009


_HYPERCORN_APP = """
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept",
                "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            _, code, reason = text.split(" ", 2)
            await send({"type": "websocket.close", "code": int(code),
                        "reason": reason})
            return
        reply = {"type": "websocket.send"}
        if text is not None:
            reply["text"] = "hypercorn: " + text
        else:
            reply["bytes"] = message["bytes"]
        await send(reply)
"""


@contextmanager
def _hypercorn(directory: Path, tls_ca: trustme.CA) -> Iterator[tuple[int, int]]:
    """Run hypercorn with a WebSocket echo: (plain port, TLS port)."""
    binary = Path(sys.executable).parent / "hypercorn"
    assert binary.exists(), "hypercorn is needed by this test and is missing"
    (directory / "wsapp.py").write_text(_HYPERCORN_APP)
    cert = tls_ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    plain, tls = free_port(), free_port()
    log = directory / "hypercorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                str(binary),
                "--certfile",
                "cert.pem",
                "--keyfile",
                "key.pem",
                "--bind",
                f"127.0.0.1:{tls}",
                "--insecure-bind",
                f"127.0.0.1:{plain}",
                "wsapp:app",
            ],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield plain, tls
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_listening(port: int) -> None:
    with anyio.fail_after(15):
        # Bounded by the timeout.
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            await stream.aclose()
            return


@pytest.mark.parametrize("version", ("1.1", "2"))
async def test_our_client_against_hypercorn(
    version: str,
    networking: Networking,
    tls_ca: trustme.CA,
    client_tls_config: ClientTLSConfig,
    tmp_path: Path,
) -> None:
    with _hypercorn(tmp_path, tls_ca) as (plain, tls):
        await _wait_listening(plain)
        await _wait_listening(tls)
        if version == "1.1":
            url = f"ws://127.0.0.1:{plain}/chat"
        else:
            url = f"wss://localhost:{tls}/chat"
        async with Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("1.1", "2"),
        ) as client:
            with anyio.fail_after(30):
                async with client.websocket(url, subprotocols=["echo"]) as ws:
                    assert ws.http_version == version
                    assert ws.subprotocol == "echo"
                    await ws.send_text("hi")
                    assert await ws.receive() == "hypercorn: hi"
                    big = bytes(range(256)) * 2048
                    await ws.send_bytes(big)
                    assert await ws.receive() == big
                    assert await ws.ping() >= 0
                async with client.websocket(url) as ws:
                    await ws.send_text("close 4003 from hypercorn")
                    with pytest.raises(WebSocketClosed) as closed:
                        await ws.receive()
                    assert closed.value.code == 4003
                    assert closed.value.reason == "from hypercorn"
