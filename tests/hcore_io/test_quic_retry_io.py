"""QUIC Retry (address validation, RFC 9000 §8.1.2) through the I/O layer.

A QUIC listener serves an :class:`~hcore.protocols.http3.HTTP3ServerFactory`
made with ``retry_key``: every Initial without a token is answered with a
Retry, and only an Initial echoing a valid token starts a handshake.

- The hcore client (``HTTPOverQUICOpener``) completes HTTP/3 requests on
  such a listener, two connections in a row.  The second resumes the
  session, so its first request leaves as 0-RTT data that the Retry throws
  away and the client must send again (RFC 9000 §17.2.5.3): before hcore's
  QUIC connection declared those packets lost, that request hung.
- An aioquic client driven by hand over the backend's UDP socket shows the
  exchange on the wire: its qlog records the Retry received, then the
  handshake completes.
- A client whose Initial carries a forged token, or that echoes a real
  token after its lifetime, gets no answer at all (RFC 9000 §8.1.3 lets the
  server discard it): no handshake, and the listener's handler is never
  given a request.

Every test runs on asyncio and Trio, on both socket backends.  The same
against ngtcp2's ``gtlsclient`` is in
``tests/integration/test_quic_retry_interop.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.logger import QuicLogger
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.events import HeadersReceived
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
)

from .conftest import SocketBackend
from .server_helpers import read_response, request_headers

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

_KEY = b"retry-key-for-the-tests-32-bytes"
# Long enough for a loaded machine to echo the token in time.
_LIFETIME = 5.0
# Time given to a refused client to hear anything back.
_SILENCE = 1.0


@dataclass
class RetryHandler:
    """Answers every request ``200 ok <path>``; counts what it saw."""

    #: Connections the listener handed over (a Retry's included).
    connections: int = 0
    #: Paths of the requests answered.
    paths: list[str] = field(default_factory=list)

    async def __call__(self, connection: HTTPConnection) -> None:
        self.connections += 1
        # Bounded by the requests the client sends before it closes.
        while (stream := await connection.accept_stream()) is not None:
            async with stream:
                head = await stream.receive_event()
                assert isinstance(head, HeadersReceived), head
                path = dict(head.headers)[b":path"]
                self.paths.append(path.decode())
                await stream.send_headers(((b":status", b"200"),))
                await stream.send_data(b"ok " + path, end_stream=True)


@asynccontextmanager
async def retrying_listener(
    server_tls: ServerTLSConfig, networking: SocketBackend, *, lifetime: float
) -> AsyncIterator[tuple[Address, RetryHandler]]:
    """A QUIC listener that validates addresses with Retry; yield its address."""
    factory = HTTP3ServerFactory(retry_key=_KEY, retry_token_lifetime=lifetime)
    listener = await HTTPOverQUICListener.create(
        factory, networking, local_address=("127.0.0.1", 0), tls_config=server_tls
    )
    [address] = listener.local_addresses
    handler = RetryHandler()
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handler)
        try:
            yield address, handler
        finally:
            await listener.aclose()
            group.cancel_scope.cancel()


class _HandDrivenClient:
    """An aioquic client connection over the backend's UDP socket.

    :param token: put in its first Initial (as a NEW_TOKEN token would be).
    """

    def __init__(self, client_tls: ClientTLSConfig, *, token: bytes = b"") -> None:
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=["h3"], server_name="localhost"
        )
        configuration.load_verify_locations(cafile=client_tls.cafile)
        configuration.token = token
        self.logger = QuicLogger()
        configuration.quic_logger = self.logger
        self.quic = QuicConnection(configuration=configuration)
        self.received: list[bytes] = []
        self.handshake_completed = False

    def packet_types_received(self) -> list[str]:
        """The qlog's ``packet_type`` of every packet received."""
        [trace] = self.logger.to_dict()["traces"]
        return [
            event["data"]["header"]["packet_type"]
            for event in trace["events"]
            if event["name"] == "transport:packet_received"
        ]

    async def run(
        self,
        networking: SocketBackend,
        address: Address,
        *,
        until: float,
        hold_retry: float = 0.0,
    ) -> None:
        """Exchange datagrams until the handshake completes or ``until`` passes.

        :param hold_retry: seconds a Retry is held before the client sees it
            (so that its token is old when echoed).
        """
        quic = self.quic
        udp = await networking.connect_udp(address)
        async with udp:
            quic.connect(address, now=anyio.current_time())
            # Bounded by ``until``.
            while anyio.current_time() < until and not self.handshake_completed:
                for data, _ in quic.datagrams_to_send(now=anyio.current_time()):
                    await udp.send(Datagram(data, address))
                timer = quic.get_timer()
                wait = until if timer is None else min(timer, until)
                datagram: Datagram | None = None
                with anyio.move_on_after(max(0.0, wait - anyio.current_time())):
                    datagram = await udp.receive()
                if datagram is not None:
                    self.received.append(datagram.data)
                    if hold_retry and _is_retry(datagram.data):
                        await anyio.sleep(hold_retry)
                    quic.receive_datagram(
                        datagram.data, address, now=anyio.current_time()
                    )
                now = anyio.current_time()
                timer = quic.get_timer()
                if timer is not None and timer <= now:
                    quic.handle_timer(now=now)
                # Bounded: the events of what was just received.
                while (event := quic.next_event()) is not None:
                    if isinstance(event, quic_events.HandshakeCompleted):
                        self.handshake_completed = True


def _is_retry(data: bytes) -> bool:
    header = pull_quic_header(Buffer(data=data), host_cid_length=8)
    return header.packet_type is QuicPacketType.RETRY


async def _get(connection: HTTPConnection, path: str) -> tuple[int, bytes]:
    stream = await connection.open_stream(request_headers("GET", path), end_stream=True)
    async with stream:
        response = await read_response(stream)
    return response.status, response.body


async def test_hcore_client_completes_requests(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    opener = HTTPOverQUICOpener(
        HTTP3ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    async with retrying_listener(server_tls_config, networking, lifetime=_LIFETIME) as (
        address,
        handler,
    ):
        with anyio.fail_after(20):
            for round_ in range(2):
                async with await opener(address, server_name="localhost") as connection:
                    answers = [
                        await _get(connection, f"/{round_}/{n}") for n in range(3)
                    ]
                assert answers == [
                    (200, f"ok /{round_}/{n}".encode()) for n in range(3)
                ]
    assert handler.paths == ["/0/0", "/0/1", "/0/2", "/1/0", "/1/1", "/1/2"]
    # Each connection took two: one answered with a Retry, one served.
    assert handler.connections >= 4


async def test_the_wire_shows_a_retry_then_the_handshake(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    client = _HandDrivenClient(client_tls_config)
    async with retrying_listener(server_tls_config, networking, lifetime=_LIFETIME) as (
        address,
        _,
    ):
        with anyio.fail_after(20):
            await client.run(networking, address, until=anyio.current_time() + 10)
    assert client.handshake_completed
    types = client.packet_types_received()
    assert types[0] == "retry", types
    assert "handshake" in types


@pytest.mark.parametrize("how", ["forged", "expired"])
async def test_bad_token_is_refused_silently(
    how: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    if how == "forged":
        # Shaped like ours (format 1, a time, an 8-byte id), signed by nobody.
        token = b"\x01" + b"\x00" * 7 + b"\x01" + b"\x08" + b"x" * 8 + b"m" * 16
        client = _HandDrivenClient(client_tls_config, token=token)
        lifetime, hold = _LIFETIME, 0.0
    else:
        client = _HandDrivenClient(client_tls_config)
        lifetime, hold = 0.2, 0.6
    async with retrying_listener(server_tls_config, networking, lifetime=lifetime) as (
        address,
        handler,
    ):
        with anyio.fail_after(20):
            await client.run(
                networking,
                address,
                until=anyio.current_time() + hold + _SILENCE,
                hold_retry=hold,
            )
    assert not client.handshake_completed
    if how == "forged":
        # Not even a Retry: the Initial had a token, a bad one.
        assert client.received == []
    else:
        # The Retry (again, if the client's first Initial was sent twice),
        # then nothing for the stale echo of its token.
        assert client.received
        assert all(_is_retry(data) for data in client.received)
        # The client took the Retry, so its next Initial carried the token.
        assert "retry" in client.packet_types_received()
    assert handler.paths == []
