"""204 and 304 responses end at the head, whatever body the application sends.

RFC 9110 §15.3.5 and §15.4.5: neither has content.  A body sent with one
would be a framing error on HTTP/1.1 and a protocol error on HTTP/2 and
HTTP/3 (where hcore's own client ends the connection with H3_MESSAGE_ERROR),
so the server drops it, as it does for HEAD.
"""

from __future__ import annotations

import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.server import Receive, Scope, Send

from .conftest import SocketBackend
from .server_helpers import VERSIONS, fetch, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/ok":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"after"})
        return
    status = int(str(scope["path"]).strip("/"))
    headers = [(b"etag", b'"v1"')] if status == 304 else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    # A body (in two pieces) the status does not allow.
    await send({"type": "http.response.body", "body": b"not ", "more_body": True})
    await send({"type": "http.response.body", "body": b"allowed"})


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("version", VERSIONS)
async def test_the_body_of_a_no_content_status_is_dropped(
    version: str,
    status: int,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        _app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            response = await fetch(connection, "GET", f"/{status}")
            # The connection is still good for the next request.
            after = await fetch(connection, "GET", "/ok")
    assert response.status == status
    assert response.body == b""
    assert response.header(b"content-length") is None
    if status == 304:
        assert response.header(b"etag") == b'"v1"'
    assert after.body == b"after"
