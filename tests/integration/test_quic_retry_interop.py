"""ngtcp2's ``gtlsclient`` against a QUIC listener that validates with Retry.

The listener (``HTTP3ServerFactory(retry_key=...)``, see
``tests/hcore_io/test_quic_retry_io.py``) answers gtlsclient's first
Initial with a Retry (RFC 9000 §8.1.2); gtlsclient echoes the token,
completes the handshake and its HTTP/3 requests.  Its qlog shows the Retry
it received.  On asyncio and Trio, on both socket backends; a missing
gtlsclient fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from hcore import ServerTLSConfig
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.test_quic_retry_io import retrying_listener

from .interop_peers import require

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def _packet_types_received(qlog: Path) -> list[str]:
    """The ``packet_type`` of every packet the qlog says was received."""
    types = []
    # JSON text sequences (RFC 7464): records separated by RS.
    for record in qlog.read_text().split("\x1e"):
        if not record.strip():
            continue
        event = json.loads(record)
        if event.get("name") == "transport:packet_received":
            types.append(event["data"]["header"]["packet_type"])
    return types


async def test_gtlsclient_through_retry(
    tmp_path: Path, server_tls_config: ServerTLSConfig, networking: SocketBackend
) -> None:
    gtlsclient = require("gtlsclient")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    qlog = tmp_path / "client.qlog"
    async with retrying_listener(server_tls_config, networking, lifetime=10.0) as (
        address,
        handler,
    ):
        port = str(address[1])
        with anyio.fail_after(60):
            result = await anyio.run_process(
                [
                    gtlsclient,
                    "--quiet",
                    "--exit-on-all-streams-close",
                    "--timeout=10s",
                    f"--download={downloads}",
                    f"--qlog-file={qlog}",
                    "127.0.0.1",
                    port,
                    f"https://localhost:{port}/one",
                    f"https://localhost:{port}/two",
                ],
                check=False,
            )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert sorted(handler.paths) == ["/one", "/two"]
    assert (downloads / "one").read_bytes() == b"ok /one"
    assert (downloads / "two").read_bytes() == b"ok /two"
    types = _packet_types_received(qlog)
    # The Retry came first, before any packet of the handshake.
    assert types[0] == "retry", types
    assert types.count("retry") == 1
    assert "handshake" in types
