"""An HTTP/3 connection hcore ends is ended on the wire: GOAWAY, CONNECTION_CLOSE.

Closing a QUIC stream tells the peer nothing, so a close that left only the
protocol's state behind would be silent: the peer would learn of it only
from its own idle timeout (RFC 9000 §10.1), and meanwhile send requests
into the void.  RFC 9114 §5.2 wants a GOAWAY first, and RFC 9000 §10.2 an
immediate close (CONNECTION_CLOSE, H3_NO_ERROR) to end it.  A raw
aioquic peer, driven over a UDP socket by the test, checks that both
arrive, and promptly: its own idle timeout is far longer than the test's
deadline, and a connection that ends by idle timeout is reported with
another error code, so neither can pass for the close.

The cases: the server's keep-alive timeout, a request head never finished
(which used to hold the close, and so the CONNECTION_CLOSE, back for good),
the server's shutdown, :meth:`HTTPConnection.aclose` of a server connection
(on a bare listener), a peer that stalls through the close, and, the other
way round, the client pool closing its HTTP/3 connection to a raw aioquic
server.  Every test runs on asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest

# aioquic.buffer re-exports its C Buffer without marking it public.
from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import pull_quic_header
from anyio.abc import UDPSocket, UnreliableObjectStream

from hcore import ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.protocols.http3 import HTTP3ServerFactory
from hcore_io import Limits
from hcore_io.client import URL, ConnectionPool, Request
from hcore_io.connections import HTTPConnection, HTTPOverQUICListener

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import Running, request_headers, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

#: The raw peer's idle timeout: a close it learns of only this way is silent.
PEER_IDLE_TIMEOUT = 120.0
#: How long the close may take to reach the peer: far below its idle timeout
#: (the close itself takes a round trip or two; the rest is for slow machines).
CLOSE_DEADLINE = 20.0
#: The server's keep-alive timeout in the keep-alive case.
KEEP_ALIVE = 0.5
#: How long a stalled peer reads nothing: more than ``aclose()`` waits for
#: a graceful close to complete.
STALL = 3.0

# RFC 9114 §6.2.1 and §7.2.6: the control stream's type and GOAWAY's.
_CONTROL_STREAM = 0x00
_GOAWAY_FRAME = 0x07


class _ControlReader:
    """Finds GOAWAY frames on the peer's HTTP/3 control stream.

    Parsed here, independently of hcore's reader: aioquic's ``H3Connection``
    reads GOAWAY but reports nothing of it.
    """

    def __init__(self) -> None:
        self._buffers: dict[int, bytes] = {}
        self._control: int | None = None
        self.goaways: list[int] = []

    def feed(self, stream_id: int, data: bytes) -> None:
        buffered = self._buffers.get(stream_id, b"") + data
        if self._control is None:
            buffer = Buffer(data=buffered)
            try:
                kind = buffer.pull_uint_var()
            except BufferReadError:
                self._buffers[stream_id] = buffered
                return
            if kind != _CONTROL_STREAM:
                # QPACK streams and the like: ignored from now on.
                self._buffers[stream_id] = b""
                return
            self._control = stream_id
            buffered = buffered[buffer.tell() :]
        if stream_id != self._control:
            return
        # Bounded by the frames buffered.
        while True:
            buffer = Buffer(data=buffered)
            try:
                frame_type = buffer.pull_uint_var()
                length = buffer.pull_uint_var()
                payload = buffer.pull_bytes(length)
            except BufferReadError:
                break
            if frame_type == _GOAWAY_FRAME:
                self.goaways.append(Buffer(data=payload).pull_uint_var())
            buffered = buffered[buffer.tell() :]
        self._buffers[stream_id] = buffered


@dataclass
class _Seen:
    """What the raw peer saw, in order, with the time it saw it."""

    handshake_done: bool = False
    #: (identifier, time) of each GOAWAY.
    goaways: list[tuple[int, float]] = field(default_factory=list)
    terminated: ConnectionTerminated | None = None
    terminated_at: float = 0.0
    #: HTTP/3 events of the request streams.
    h3: list[h3_events.H3Event] = field(default_factory=list)
    #: The error code of each stream the other side reset, by stream id.
    resets: dict[int, int] = field(default_factory=dict)


class _RawPeer:
    """An aioquic connection (client or server) driven over a UDP socket.

    :param quic: the connection.
    :param send: sends one datagram's bytes to the peer.
    :param receive: waits for the next datagram's bytes from the peer.
    :param address: the peer's address, as aioquic wants it.
    """

    def __init__(
        self,
        quic: QuicConnection,
        send: Callable[[bytes], Awaitable[None]],
        receive: Callable[[], Awaitable[bytes]],
        address: tuple[str, int],
    ) -> None:
        self.quic = quic
        self.h3: H3Connection | None = None
        self.seen = _Seen()
        self._send = send
        self._receive = receive
        self._address = address
        self._control = _ControlReader()
        # RFC 9000 §2.1: the peer's unidirectional streams (its control stream).
        self._peer_unidirectional = 3 if quic.configuration.is_client else 2
        self._changed = anyio.Event()
        # Trio lets one task at a time send on a socket.
        self._sending = anyio.Lock()
        #: Until when the peer neither reads nor sends (a stalled peer).
        self.paused_until = 0.0

    async def flush(self) -> None:
        async with self._sending:
            for data, _ in self.quic.datagrams_to_send(now=time.monotonic()):
                await self._send(data)

    async def run(self) -> None:
        """Receive, run the timers and send until the connection is over."""
        await self.flush()
        held: list[bytes] = []
        # Bounded: the connection ends (by the close, or the idle timeout).
        while self.seen.terminated is None:
            stalled = self.paused_until - time.monotonic()
            if stalled > 0:
                # What comes meanwhile is kept, unread, as a socket would.
                with anyio.move_on_after(stalled):
                    # Bounded by the stall.
                    while True:
                        held.append(await self._receive())
                continue
            if held:
                for data in held:
                    now = time.monotonic()
                    self.quic.receive_datagram(data, self._address, now=now)
                held.clear()
            else:
                timer = self.quic.get_timer()
                wait = 1.0 if timer is None else max(0.0, timer - time.monotonic())
                with anyio.move_on_after(wait):
                    data = await self._receive()
                    if time.monotonic() < self.paused_until:
                        held.append(data)
                        continue
                    now = time.monotonic()
                    self.quic.receive_datagram(data, self._address, now=now)
                if timer is not None and time.monotonic() >= timer:
                    self.quic.handle_timer(now=time.monotonic())
            # Bounded by the events aioquic queued.
            while (event := self.quic.next_event()) is not None:
                self._on_event(event)
            closing = getattr(self.quic, "_close_event", None)
            if self.seen.terminated is None and closing is not None:
                # aioquic reports the end only after its draining period
                # (RFC 9000 §10.2.2, three PTOs, seconds for a peer that
                # stalled), but knows it (privately) from the CONNECTION_CLOSE.
                self._on_event(closing)
            await self.flush()
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, checked whenever the peer ran."""
        # Bounded by the test's deadline.
        while not condition():
            await self._changed.wait()

    def _on_event(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.seen.handshake_done = True
            if self.h3 is None:
                self.h3 = H3Connection(self.quic)
        elif isinstance(event, ConnectionTerminated):
            self.seen.terminated = event
            self.seen.terminated_at = time.monotonic()
        elif isinstance(event, StreamReset):
            self.seen.resets[event.stream_id] = event.error_code
        if (
            isinstance(event, StreamDataReceived)
            and event.stream_id % 4 == self._peer_unidirectional
        ):
            self._control.feed(event.stream_id, event.data)
            self.seen.goaways.extend(
                (identifier, time.monotonic())
                for identifier in self._control.goaways[len(self.seen.goaways) :]
            )
        if self.h3 is not None:
            self.seen.h3.extend(self.h3.handle_event(event))


def _configuration(*, is_client: bool) -> QuicConfiguration:
    configuration = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=["h3"],
        idle_timeout=PEER_IDLE_TIMEOUT,
        server_name="localhost" if is_client else None,
    )
    configuration.verify_mode = ssl.CERT_NONE
    return configuration


@asynccontextmanager
async def _raw_client(networking: SocketBackend, port: int) -> AsyncIterator[_RawPeer]:
    """A raw aioquic HTTP/3 client connected to ``127.0.0.1:port``, handshake done."""
    address = ("127.0.0.1", port)
    udp: UnreliableObjectStream[Datagram] = await networking.connect_udp(address)
    quic = QuicConnection(configuration=_configuration(is_client=True))
    quic.connect(address, now=time.monotonic())

    async def send(data: bytes) -> None:
        await udp.send(Datagram(data, address))

    async def receive() -> bytes:
        return (await udp.receive()).data

    peer = _RawPeer(quic, send, receive, address)
    async with udp, anyio.create_task_group() as group:
        group.start_soon(peer.run)
        with anyio.fail_after(CLOSE_DEADLINE):
            await peer.wait_for(lambda: peer.seen.handshake_done)
        yield peer
        group.cancel_scope.cancel()


async def _get(peer: _RawPeer, path: str = "/") -> bytes:
    """Send a GET on a new stream and wait for the whole response.

    :return: the response's ``:status``.
    """
    assert peer.h3 is not None
    stream_id = peer.quic.get_next_available_stream_id()
    peer.h3.send_headers(stream_id, list(request_headers("GET", path)), end_stream=True)
    await peer.flush()

    def events() -> list[h3_events.HeadersReceived | h3_events.DataReceived]:
        return [
            event
            for event in peer.seen.h3
            if isinstance(event, h3_events.HeadersReceived | h3_events.DataReceived)
            and event.stream_id == stream_id
        ]

    with anyio.fail_after(CLOSE_DEADLINE):
        await peer.wait_for(lambda: any(event.stream_ended for event in events()))
    head = events()[0]
    assert isinstance(head, h3_events.HeadersReceived)
    return dict(head.headers)[b":status"]


async def _closed_on_wire(
    peer: _RawPeer, error_code: int = ErrorCode.H3_NO_ERROR
) -> None:
    """Wait for the close and check it: GOAWAY, then CONNECTION_CLOSE.

    :param error_code: the code the CONNECTION_CLOSE must carry.
    """
    with anyio.fail_after(CLOSE_DEADLINE):
        await peer.wait_for(lambda: peer.seen.terminated is not None)
    terminated = peer.seen.terminated
    assert terminated is not None
    # An idle timeout is reported as INTERNAL_ERROR ("Idle timeout"): only
    # a CONNECTION_CLOSE from the other side carries H3_NO_ERROR.
    assert (terminated.error_code, terminated.reason_phrase) == (
        error_code,
        "",
    ), terminated
    # An application close (RFC 9000 §19.19, type 0x1d) names no frame.
    assert terminated.frame_type is None
    assert peer.seen.goaways, "no GOAWAY before the CONNECTION_CLOSE"
    assert peer.seen.goaways[0][1] <= peer.seen.terminated_at


# -- the server ends the connection ------------------------------------------------


async def test_keep_alive_timeout_closes_on_the_wire(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    limits = Limits(keep_alive_timeout=KEEP_ALIVE)
    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            limits=limits,
            networking=networking,
        ) as served,
        _raw_client(networking, served.https_port) as peer,
    ):
        assert await _get(peer) == b"200"
        await _closed_on_wire(peer)
        # GOAWAY's identifier is the first request stream not processed
        # (RFC 9114 §5.2): the one after the request served.
        assert peer.seen.goaways[0][0] == 4
        await _no_connection_left(served)


async def test_unfinished_request_head_closes_on_the_wire(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    # A request head begun and never finished: the server never accepted
    # the stream, so the connection counts as idle and is dropped when the
    # first request's time (request_header_timeout) is over.
    limits = Limits(request_header_timeout=KEEP_ALIVE)
    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            limits=limits,
            networking=networking,
        ) as served,
        _raw_client(networking, served.https_port) as peer,
    ):
        stream_id = peer.quic.get_next_available_stream_id()
        # A HEADERS frame (type 1) announcing 100 bytes, of which 3 come.
        peer.quic.send_stream_data(stream_id, b"\x01\x40\x64" + b"\x00" * 3)
        await peer.flush()
        await _closed_on_wire(peer)
        # RFC 9114 §5.2: no request was processed, the one begun included,
        # and the server said so on its stream (§4.1.1) rather than wait
        # for the rest of its head.
        assert peer.seen.goaways[0][0] == 0
        assert peer.seen.resets == {stream_id: ErrorCode.H3_REQUEST_REJECTED}
        await _no_connection_left(served)


async def test_server_shutdown_closes_on_the_wire(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with (
        running(
            app, server_tls_config, client_tls_config, networking=networking
        ) as served,
        _raw_client(networking, served.https_port) as peer,
    ):
        assert await _get(peer) == b"200"
        async with anyio.create_task_group() as group:
            group.start_soon(served.server.shutdown)
            await _closed_on_wire(peer)
        await _no_connection_left(served)


async def test_server_connection_aclose_closes_on_the_wire(
    server_tls_config: ServerTLSConfig,
    networking: SocketBackend,
) -> None:
    peer = await _served_then_aclosed(server_tls_config, networking, stall=0.0)
    await _closed_on_wire(peer)


async def test_aclose_tells_a_stalled_peer(
    server_tls_config: ServerTLSConfig,
    networking: SocketBackend,
) -> None:
    # The peer reads nothing for longer than aclose() waits for the graceful
    # close to complete (its GOAWAY acknowledged): aclose() then closes at
    # once, and the CONNECTION_CLOSE waits in the peer's socket behind the
    # GOAWAY instead of never being sent.  Its code (the version's
    # ``cancel``) says the graceful close was cut short.
    peer = await _served_then_aclosed(server_tls_config, networking, stall=STALL)
    await _closed_on_wire(peer, ErrorCode.H3_REQUEST_CANCELLED)


async def _served_then_aclosed(
    server_tls_config: ServerTLSConfig, networking: SocketBackend, *, stall: float
) -> _RawPeer:
    """Serve one request on a bare listener, then ``aclose()`` the connection.

    :param stall: seconds the raw client stops reading just before the close.
    :return: the raw client, its connection over.
    """
    close_now = anyio.Event()
    closed = anyio.Event()
    served = []

    async def handler(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        assert stream is not None
        async with stream:
            # Bounded: the request has no body.
            async for _ in stream:
                pass
            await stream.send_headers(((b":status", b"204"),), end_stream=True)
        served.append(connection)
        await close_now.wait()
        await connection.aclose()
        closed.set()

    listener = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        networking,
        local_address=("127.0.0.1", 0),
        tls_config=server_tls_config,
    )
    port = listener.local_addresses[0][1]
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handler)
        async with _raw_client(networking, port) as peer:
            assert await _get(peer) == b"204"
            peer.paused_until = time.monotonic() + stall
            close_now.set()
            with anyio.fail_after(CLOSE_DEADLINE):
                await closed.wait()
                await peer.wait_for(lambda: peer.seen.terminated is not None)
            assert served[0].has_expired()
        await listener.aclose()
    return peer


async def _no_connection_left(served: Running) -> None:
    # Polling: the server's count signals nothing.
    with anyio.fail_after(CLOSE_DEADLINE):
        for _ in range(int(CLOSE_DEADLINE / 0.02) + 1):
            if not served.server.connection_count:
                return
            await anyio.sleep(0.02)


# -- the client ends the connection ----------------------------------------------


@asynccontextmanager
async def _raw_server(
    server_tls_config: ServerTLSConfig, seen: list[_RawPeer]
) -> AsyncIterator[int]:
    """A raw aioquic HTTP/3 server for one connection, answering 200 ``hi``.

    The socket is AnyIO's: what is under test is the client's backend.

    :param seen: gets the server's peer once the client's first datagram came.
    :return: (as context value) the port.
    """
    configuration = _configuration(is_client=False)
    assert server_tls_config.certfile is not None
    configuration.load_cert_chain(
        server_tls_config.certfile,
        server_tls_config.keyfile or server_tls_config.certfile,
    )
    udp: UDPSocket = await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0)
    port: int = udp.extra(anyio.abc.SocketAttribute.local_port)

    async def serve() -> None:
        data, address = await udp.receive()
        quic = QuicConnection(
            configuration=configuration,
            original_destination_connection_id=pull_quic_header(
                Buffer(data=data), host_cid_length=8
            ).destination_cid,
        )

        async def send(payload: bytes) -> None:
            await udp.sendto(payload, address[0], address[1])

        async def receive() -> bytes:
            payload, _ = await udp.receive()
            return payload

        quic.receive_datagram(data, address, now=time.monotonic())
        peer = _RawPeer(quic, send, receive, address)
        seen.append(peer)
        async with anyio.create_task_group() as inner:
            inner.start_soon(peer.run)
            # Answers each request as it comes, until the connection ends.
            answered: set[int] = set()
            while peer.seen.terminated is None:
                await peer.wait_for(
                    lambda: (
                        peer.seen.terminated is not None
                        or any(
                            isinstance(event, h3_events.HeadersReceived)
                            and event.stream_id not in answered
                            for event in peer.seen.h3
                        )
                    )
                )
                for event in list(peer.seen.h3):
                    if (
                        isinstance(event, h3_events.HeadersReceived)
                        and event.stream_id not in answered
                        and peer.h3 is not None
                    ):
                        answered.add(event.stream_id)
                        peer.h3.send_headers(
                            event.stream_id,
                            [(b":status", b"200"), (b"content-length", b"2")],
                        )
                        peer.h3.send_data(event.stream_id, b"hi", end_stream=True)
                await peer.flush()

    async with udp, anyio.create_task_group() as group:
        group.start_soon(serve)
        yield port
        group.cancel_scope.cancel()


async def test_client_pool_close_closes_on_the_wire(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    peers: list[_RawPeer] = []
    async with _raw_server(server_tls_config, peers) as port:
        pool = ConnectionPool(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("3",),
        )
        async with pool:
            response = await pool.handle_request(
                Request("GET", URL(f"https://localhost:{port}/"))
            )
            async with response:
                assert response.status == 200
                assert await response.aread() == b"hi"
        peer = peers[0]
        await _closed_on_wire(peer)
        # A client's GOAWAY names a push id (RFC 9114 §5.2); it allowed none.
        assert peer.seen.goaways[0][0] == 0
