"""A writer cancelled while its write is blocked costs only its own stream.

The peer here is written by hand (h2 or a raw socket reader) so that it can
stop reading its socket altogether: the client's write then blocks in the
kernel, the writing task is cancelled, and the peer reads again.  The bytes
already handed to the transport must arrive whole, the cancelled stream be
reset (HTTP/2) or its connection closed (HTTP/1.1), and every other stream
go on; only a peer that stays silent past the grace breaks the connection.

Every test runs on asyncio and Trio, over both socket backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import h11
import pytest
from anyio.abc import ByteStream, Listener, SocketAttribute

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore_io import ConnectionClosed, WriteError
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverTCPOpener,
    HTTPStream,
    _tcp_transport,
)

from .conftest import SocketBackend
from .connection_helpers import pattern, request_headers
from .server_apps import app
from .server_helpers import running

pytestmark = pytest.mark.anyio

# More than the kernel's socket buffers hold while the peer reads nothing
# (a receive buffer grows only as its reader reads).
_BODY = 16 << 20
# How long the writer waits on the blocked write before it is cancelled.
_CANCEL_AFTER = 0.3
# The grace while the peer reads again in time: long enough for a loaded
# machine (the peer reads 16 MiB through h2), never waited for in full.
_LONG_GRACE = 30.0
_MAX_WINDOW = 2**31 - 1


async def _drain_quietly(stream: ByteStream) -> bytes:
    """Read until the end of the stream (or its failure); return everything."""
    received = bytearray()
    # Bounded: the client closes its side at the end of each test.
    while True:
        try:
            received += await stream.receive(1 << 20)
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ):
            return bytes(received)


@dataclass
class H2Peer:
    """An HTTP/2 server run by hand: it stops reading the first connection.

    On the first connection, once the ``/upload`` request's headers arrived,
    it reads nothing until :attr:`resume` is set.  ``/other`` is answered
    ``200 ok``.  Flow-control windows are the largest there are, so that the
    client's writes are held by the socket alone.
    """

    resume: anyio.Event = field(default_factory=anyio.Event)
    stalled: anyio.Event = field(default_factory=anyio.Event)
    #: h2's events, per connection (in the order accepted).
    events: list[list[h2.events.Event]] = field(default_factory=list)
    #: Set when a connection's stream ended (the client closed it).
    closed: list[anyio.Event] = field(default_factory=list)
    #: Instead of reading again, reset the stalled connection (a close with
    #: input unread).
    abort: bool = False

    async def handle(self, stream: ByteStream) -> None:
        """Serve one connection until the client closes it."""
        index = len(self.events)
        events: list[h2.events.Event] = []
        self.events.append(events)
        closed = anyio.Event()
        self.closed.append(closed)
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _MAX_WINDOW},
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_MAX_WINDOW - 65535)
        stall = index == 0
        try:
            await stream.send(conn.data_to_send())
            # Bounded by what the client sends before it closes.
            while True:
                try:
                    data = await stream.receive(1 << 20)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                batch = conn.receive_data(data)
                # A stream reset in the same read gets no answer.
                reset = {
                    event.stream_id
                    for event in batch
                    if isinstance(event, h2.events.StreamReset)
                }
                for event in batch:
                    events.append(event)
                    if isinstance(event, h2.events.RequestReceived):
                        path = dict(event.headers)[b":path"]
                        if path == b"/upload" and stall:
                            stall = False
                            self.stalled.set()
                            await self.resume.wait()
                            if self.abort:
                                await anyio.aclose_forcefully(stream)
                                return
                        elif path == b"/other" and event.stream_id not in reset:
                            conn.send_headers(event.stream_id, [(b":status", b"200")])
                            conn.send_data(event.stream_id, b"ok", end_stream=True)
                out = conn.data_to_send()
                if out:
                    await stream.send(out)
        finally:
            closed.set()
            await stream.aclose()

    def resets(self, index: int) -> dict[int, int]:
        """The streams the client reset on connection ``index``, with their codes."""
        return {
            event.stream_id: event.error_code
            for event in self.events[index]
            if isinstance(event, h2.events.StreamReset)
        }

    def body_size(self, index: int, stream_id: int) -> int:
        """How many body bytes of a stream arrived on connection ``index``."""
        return sum(
            len(event.data)
            for event in self.events[index]
            if isinstance(event, h2.events.DataReceived)
            and event.stream_id == stream_id
        )


@asynccontextmanager
async def _listening(
    networking: SocketBackend,
    handler: H2Peer | H1Peer,
    server_tls: ServerTLSConfig | None,
    alpn: str,
) -> AsyncIterator[tuple[str, int]]:
    listener: Listener[ByteStream]
    if server_tls is None:
        listener = await networking.listen_tcp(("127.0.0.1", 0))
    else:
        listener = await networking.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls, alpn_protocols=[alpn]
        )
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handler.handle)
        try:
            yield ("localhost", address[1])
        finally:
            handler.resume.set()
            await listener.aclose()
            group.cancel_scope.cancel()


async def _upload_cancelled(stream: HTTPStream, done: anyio.Event) -> None:
    """Send a big body; give up after a while (the write blocked)."""
    with anyio.move_on_after(_CANCEL_AFTER) as scope:
        await stream.send_data(pattern(_BODY))
    # The write did block, and the cancellation reached the task.
    assert scope.cancelled_caught
    done.set()


async def _resume_after_the_cancellation(peer: H2Peer | H1Peer) -> None:
    """Let the peer read again once the writer's deadline has passed.

    Not once the writer has returned: it returns only after its write is
    finished, which needs the peer to read.
    """
    await peer.stalled.wait()
    await anyio.sleep(_CANCEL_AFTER + 0.2)
    peer.resume.set()


async def _warm_up(connection: HTTPConnection) -> None:
    """Run one request, so that the peer's SETTINGS and windows were read.

    Then the upload's data leaves at once, written by its own task (else
    the data waits for credit and whichever task reads it in may write it).
    """
    stream = await connection.open_stream(
        request_headers("GET", "/other"), end_stream=True
    )
    async with stream:
        assert await _read_ok(stream) == b"ok"


async def _fetch_other(
    connection: HTTPConnection, bodies: list[bytes], done: anyio.Event
) -> None:
    stream = await connection.open_stream(
        request_headers("GET", "/other"), end_stream=True
    )
    async with stream:
        bodies.append(await _read_ok(stream))
    done.set()


async def _read_ok(stream: HTTPStream) -> bytes:
    body = b""
    status = b""
    # Bounded: the response ends.
    async for event in stream:
        if isinstance(event, HeadersReceived):
            status = dict(event.headers)[b":status"]
        elif isinstance(event, DataReceived):
            body += event.data
    assert status == b"200"
    return body


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
async def test_http2_cancelled_writer_resets_only_its_stream(
    tls: bool,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tcp_transport, "_WRITE_GRACE", _LONG_GRACE)
    peer = H2Peer()
    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    with anyio.fail_after(60):
        async with _listening(
            networking, peer, server_tls_config if tls else None, "h2"
        ) as address:
            connection = await opener(address, tls=tls)
            async with connection, anyio.create_task_group() as group:
                await _warm_up(connection)
                upload = await connection.open_stream(
                    request_headers("POST", "/upload")
                )
                cancelled = anyio.Event()
                group.start_soon(_upload_cancelled, upload, cancelled)
                await peer.stalled.wait()
                # Opened while the upload's write is blocked: its headers
                # wait behind it.
                bodies: list[bytes] = []
                fetched = anyio.Event()
                group.start_soon(_fetch_other, connection, bodies, fetched)
                await _resume_after_the_cancellation(peer)
                await cancelled.wait()
                await fetched.wait()
                assert bodies == [b"ok"]
                assert not connection.has_expired()
                # The same connection takes more streams.
                again = await connection.open_stream(
                    request_headers("GET", "/other"), end_stream=True
                )
                assert await _read_ok(again) == b"ok"
                await upload.aclose()
    assert len(peer.events) == 1
    # The whole write arrived (nothing cut: h2 parsed every frame), then the
    # upload's stream was reset, not the connection.
    assert peer.body_size(0, upload.stream_id) == _BODY
    assert peer.resets(0) == {upload.stream_id: h2.errors.ErrorCodes.CANCEL}
    # The only GOAWAY is the graceful one of the client's close.
    assert [
        event.error_code
        for event in peer.events[0]
        if isinstance(event, h2.events.ConnectionTerminated)
    ] in ([], [h2.errors.ErrorCodes.NO_ERROR])


async def test_http2_grace_expiring_breaks_only_that_connection(
    networking: SocketBackend,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tcp_transport, "_WRITE_GRACE", 0.3)
    peer = H2Peer()
    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    with anyio.fail_after(60):
        async with _listening(networking, peer, None, "h2") as address:
            first = await opener(address, tls=False)
            second = await opener(address, tls=False)
            async with first, second, anyio.create_task_group() as group:
                await _warm_up(first)
                upload = await first.open_stream(request_headers("POST", "/upload"))
                cancelled = anyio.Event()
                group.start_soon(_upload_cancelled, upload, cancelled)
                await peer.stalled.wait()
                # Never read in time: the rest could not be sent.
                await cancelled.wait()
                assert first.has_expired()
                with pytest.raises(ConnectionClosed, match="interrupted and its rest"):
                    await first.open_stream(
                        request_headers("GET", "/other"), end_stream=True
                    )
                # The other connection to the same peer goes on.
                other = await second.open_stream(
                    request_headers("GET", "/other"), end_stream=True
                )
                assert await _read_ok(other) == b"ok"
                peer.resume.set()
                await upload.aclose()
            # The broken connection was closed: the peer saw its end.
            await peer.closed[0].wait()
    assert len(peer.events) == 2
    assert not peer.resets(1)


@dataclass
class H1Peer:
    """An HTTP/1.1 server that reads a request's head, then stops reading.

    Once :attr:`resume` is set it reads everything until the client closes,
    and keeps the bytes (:attr:`received`).  A second connection's request
    gets ``200 ok``.
    """

    resume: anyio.Event = field(default_factory=anyio.Event)
    stalled: anyio.Event = field(default_factory=anyio.Event)
    received: list[bytes] = field(default_factory=list)
    closed: anyio.Event = field(default_factory=anyio.Event)
    #: Set once the first connection brought :data:`_BODY` bytes of body.
    got_body: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, stream: ByteStream) -> None:
        """Serve one connection."""
        index = len(self.received)
        self.received.append(b"")
        try:
            if index:
                await self._answer(stream)
                return
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(await stream.receive(16384))
            self.stalled.set()
            await self.resume.wait()
            size = 0
            # Bounded by what the client sends before it closes.
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.receive(1 << 20)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
                    conn.receive_data(data)
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size >= _BODY:
                        self.got_body.set()
            self.received[index] = b"%d" % size
            self.closed.set()
        finally:
            await stream.aclose()

    async def _answer(self, stream: ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        # Bounded: one request.
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive(65536))
            elif isinstance(event, h11.EndOfMessage):
                break
        await stream.send(
            conn.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
            + conn.send(h11.Data(data=b"ok"))
            + conn.send(h11.EndOfMessage())
        )
        await _drain_quietly(stream)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_http1_cancelled_writer_closes_its_connection_cleanly(
    tls: bool,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tcp_transport, "_WRITE_GRACE", _LONG_GRACE)
    peer = H1Peer()
    opener = HTTPOverTCPOpener(
        HTTP1ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    with anyio.fail_after(60):
        async with _listening(
            networking, peer, server_tls_config if tls else None, "http/1.1"
        ) as address:
            connection = await opener(address, tls=tls)
            async with connection, anyio.create_task_group() as group:
                # No length: the body goes chunked, so a cut chunk would show.
                upload = await connection.open_stream(
                    request_headers("POST", "/upload")
                )
                cancelled = anyio.Event()
                group.start_soon(_upload_cancelled, upload, cancelled)
                await _resume_after_the_cancellation(peer)
                await cancelled.wait()
                # Not reused: the exchange was cut, so the connection is over.
                assert connection.has_expired()
                # (Closing a TLS connection with input unread, the session
                # tickets, resets it: let the peer read first.)
                await peer.got_body.wait()
                with pytest.raises(ConnectionClosed):
                    await connection.open_stream(request_headers("GET", "/"))
            await peer.closed.wait()
            # A new connection serves the next request.
            fresh = await opener(address, tls=tls)
            async with fresh:
                response = await fresh.open_stream(
                    request_headers("GET", "/other"), end_stream=True
                )
                assert await _read_ok(response) == b"ok"
    # The peer got the whole body written (no write was cut: h11 parsed its
    # chunk whole), then the end of the stream, mid-request.
    assert peer.received[0] == b"%d" % _BODY


async def test_http2_rest_failing_breaks_the_connection(
    networking: SocketBackend,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tcp_transport, "_WRITE_GRACE", _LONG_GRACE)
    peer = H2Peer(abort=True)
    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    outcome: list[BaseException | None] = []

    async def upload_cancelled(stream: HTTPStream) -> None:
        with anyio.move_on_after(_CANCEL_AFTER):
            try:
                await stream.send_data(pattern(_BODY))
            except WriteError as exc:
                # Where the send is shielded from the start, its failure is
                # the stream's, and raised as such.
                outcome.append(exc)
                return
        outcome.append(None)

    with anyio.fail_after(60):
        async with _listening(networking, peer, None, "h2") as address:
            connection = await opener(address, tls=False)
            async with connection:
                async with anyio.create_task_group() as group:
                    await _warm_up(connection)
                    upload = await connection.open_stream(
                        request_headers("POST", "/upload")
                    )
                    group.start_soon(upload_cancelled, upload)
                    # The peer goes away while the rest is being written.
                    await _resume_after_the_cancellation(peer)
                assert len(outcome) == 1
                with pytest.raises(ConnectionClosed) as caught:
                    await connection.open_stream(
                        request_headers("GET", "/other"), end_stream=True
                    )
    if outcome[0] is None:
        # The rest failed after the cancellation: the connection broke.
        assert "a write was interrupted and its rest failed" in str(caught.value)
    else:
        assert "writing failed" in str(outcome[0])


async def test_an_already_cancelled_writer_leaves_its_bytes_queued(
    networking: SocketBackend,
    client_tls_config: ClientTLSConfig,
) -> None:
    peer = H2Peer()
    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    with anyio.fail_after(60):
        async with _listening(networking, peer, None, "h2") as address:
            connection = await opener(address, tls=False)
            async with connection:
                await _warm_up(connection)
                stream = await connection.open_stream(request_headers("POST", "/other"))
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await stream.send_data(b"late")
                assert scope.cancelled_caught
                # Nothing was cut: the connection goes on.
                assert not connection.has_expired()
                await _warm_up(connection)
    # The bytes were not lost either: they left with the next write, then
    # the stream's reset.
    assert peer.body_size(0, stream.stream_id) == len(b"late")
    assert peer.resets(0) == {stream.stream_id: h2.errors.ErrorCodes.CANCEL}


async def test_shutdown_is_not_held_up_by_a_writer_nobody_reads(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    # The server's handler, under no deadline, is cancelled by the shutdown
    # while its write is blocked on a client that never reads: the write
    # is abandoned (or its rest given up after the grace), never awaited.
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        client = await networking.connect_tcp(("127.0.0.1", served.http_port))
        async with client:
            await client.send(b"GET /bytes/268435456 HTTP/1.1\r\nhost: x\r\n\r\n")
            await anyio.sleep(0.5)
            with anyio.fail_after(20):
                await served.server.shutdown(timeout=0.3)
