"""HEAD, 204 and 304 with content-length over HTTP/3, client to ASGI server.

RFC 9110 §9.3.2 and RFC 9114 §4.1.2: the ``content-length`` of a response
to HEAD (or of a 204 or 304) describes no content, so the hcore client must
take such a response and keep using the connection.  Every test runs on
asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import Client
from hcore_io.server import Receive, Scope, Send

from .conftest import SocketBackend
from .server_helpers import running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

_BODY = bytes(range(250)) * 4  # 1000 bytes


async def resource_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/resource``: 1000 bytes with their length; ``/status/N``: N, no body.

    The status answers state ``content-length: 1000`` as a HEAD would.
    """
    if scope["type"] != "http":
        return
    path = scope["path"]
    assert isinstance(path, str)
    if path.startswith("/status/"):
        status, body = int(path.removeprefix("/status/")), b""
    else:
        status, body = 200, _BODY
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"1000"), (b"etag", b'"v1"')],
        }
    )
    # The server drops the body of a HEAD answer itself.
    await send({"type": "http.response.body", "body": body})


async def test_head_with_content_length_over_http3(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with (
        running(
            resource_app, server_tls_config, client_tls_config, networking=networking
        ) as served,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("3",),
        ) as client,
    ):
        base = f"https://127.0.0.1:{served.https_port}"
        for _ in range(3):
            head = await client.head(f"{base}/resource")
            assert head.http_version == "3"
            assert head.status == 200
            assert head.get_header(b"content-length") == b"1000"
            assert head.content == b""
        for status in (204, 304):
            answer = await client.get(f"{base}/status/{status}")
            assert answer.status == status
            assert answer.get_header(b"content-length") == b"1000"
            assert answer.content == b""
        get = await client.get(f"{base}/resource")
        assert get.http_version == "3"
        assert get.content == _BODY
        # One connection carried everything: none of the answers ended it.
        metrics = client.pool.metrics
        assert metrics.created == 1
        [connection] = metrics.connections
        assert connection.http_version == "3"
        assert connection.requests == 6
        assert connection.errors == 0
