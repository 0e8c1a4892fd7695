"""The networking backends' building blocks, tested on their own."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import pytest
from anyio.abc import (
    ByteStream,
    SocketAttribute,
    SocketListener,
    UnreliableObjectStream,
)

from hcore import ClientTLSConfig, Datagram
from hcore_io import ConnectError
from hcore_io.networking import MemoryNetworking, QUICStream
from hcore_io.networking._datagrams import normalize_address
from hcore_io.networking._memory_streams import make_pipe_pair
from hcore_io.networking._queue import Queue
from hcore_io.networking._quic_listener import QUICListener
from hcore_io.networking._tcp_listener import TCPListener, set_nodelay
from hcore_io.networking._tls import SSLContextCache

from .quic_packets import QUIC_V1, initial_datagram, long_header_datagram
from .tls_pipes import tls_over_pipe

anyio_test = pytest.mark.anyio


def test_normalize_address() -> None:
    assert normalize_address(("127.0.0.1", 80)) == ("127.0.0.1", 80)
    assert normalize_address(("::1", 443, 0, 0)) == ("::1", 443)
    assert normalize_address(("fe80::1", 443, 0, 3)) == ("fe80::1%3", 443)
    assert normalize_address(("fe80::1%eth0", 443, 0, 3)) == ("fe80::1%eth0", 443)


def test_ssl_context_cache() -> None:
    cache = SSLContextCache(size=1)
    first, second = ClientTLSConfig(insecure=True), ClientTLSConfig(cadata=None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert cache.get(first, ["h2"]) is None
    cache.put(first, ["h2"], context)
    assert cache.get(first, ("h2",)) is context
    assert cache.get(first, ()) is None
    cache.put(second, (), ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert cache.get(first, ["h2"]) is None


@anyio_test
async def test_queue() -> None:
    queue: Queue[int] = Queue(2)
    assert queue.get_nowait() is None
    assert queue.put_nowait(1)
    assert queue.put_nowait(2)
    assert not queue.put_nowait(3)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.put, 3)
            await anyio.wait_all_tasks_blocked()
            assert await queue.get() == 1
        assert [await queue.get(), await queue.get()] == [2, 3]
        queue.put_nowait(4)
        queue.end()
        with pytest.raises(anyio.ClosedResourceError):
            queue.put_nowait(5)
        assert await queue.get() == 4
        with pytest.raises(anyio.EndOfStream):
            await queue.get()
        assert queue.close() == []
        with pytest.raises(anyio.ClosedResourceError):
            await queue.get()
        with pytest.raises(anyio.BrokenResourceError):
            await queue.put(6)


@anyio_test
async def test_set_nodelay_survives_a_dead_socket() -> None:
    dead = socket.socket()
    dead.close()
    client, _ = make_pipe_pair(
        ("127.0.0.1", 1),
        ("127.0.0.1", 2),
        capacity=10,
        client_extra={SocketAttribute.raw_socket: lambda: dead},
    )
    set_nodelay(client)


@anyio_test
async def test_tls_stream_failures_read_as_broken(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with tls_over_pipe(tls_contexts, capacity=65536) as (client, _, server_pipe):
        assert client.extra(SocketAttribute.remote_port) == 2
        with pytest.raises(NotImplementedError):
            await client.send_eof()
        # An application data record that does not decrypt.
        await server_pipe.send(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        with pytest.raises(anyio.BrokenResourceError) as info:
            await client.receive()
        assert isinstance(info.value.__cause__, ssl.SSLError)
        with pytest.raises(anyio.BrokenResourceError):
            await client.send(b"after the failure")
        await client.aclose()


class _ScriptedListener(SocketListener):
    """A listening socket whose accept fails as told, then reports closure."""

    def __init__(self, errors: list[OSError]) -> None:
        self._errors = errors

    async def accept(self) -> Any:
        await anyio.lowlevel.checkpoint()
        if self._errors:
            raise self._errors.pop(0)
        raise anyio.ClosedResourceError

    async def aclose(self) -> None:
        self._errors.clear()

    @property
    def _raw_socket(self) -> socket.socket:
        raise NotImplementedError


@anyio_test
async def test_accept_errors_do_not_stop_the_listener() -> None:
    errors = [OSError(errno.ECONNABORTED, "aborted"), OSError(errno.EMFILE, "full")]
    listener = TCPListener([_ScriptedListener(errors)])
    handled: list[ByteStream] = []

    async def handler(stream: ByteStream) -> None:
        handled.append(stream)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await listener.serve(handler, tg)
    assert errors == []
    assert handled == []
    await listener.aclose()


class _ScriptedSocket(UnreliableObjectStream[Datagram]):
    """A datagram socket that receives a script and refuses to send."""

    def __init__(self, script: list[Datagram | OSError]) -> None:
        self._script = script
        self.sent: list[Datagram] = []

    async def receive(self) -> Datagram:
        await anyio.lowlevel.checkpoint()
        if not self._script:
            raise anyio.ClosedResourceError
        item = self._script.pop(0)
        if isinstance(item, OSError):
            raise item
        return item

    async def send(self, item: Datagram) -> None:
        await anyio.lowlevel.checkpoint()
        raise anyio.ClosedResourceError

    async def aclose(self) -> None:
        self._script.clear()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {SocketAttribute.local_address: lambda: ("127.0.0.1", 443)}


@anyio_test
async def test_quic_listener_rides_out_socket_errors() -> None:
    peer = ("127.0.0.1", 5000)
    udp_socket = _ScriptedSocket(
        [
            OSError(errno.ECONNREFUSED, "ICMP port unreachable"),
            Datagram(initial_datagram(b"A" * 8), peer),
            # Answering this fails: the socket is gone, so serve() ends.
            Datagram(long_header_datagram(b"B" * 8, version=0x0A0A0A0A), peer),
            Datagram(initial_datagram(b"C" * 8), peer),
        ]
    )
    listener = QUICListener(
        udp_socket, connection_id_length=8, supported_versions=[QUIC_V1]
    )
    streams: list[QUICStream] = []

    async def handler(stream: QUICStream) -> None:
        streams.append(stream)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await listener.serve(handler, tg)
    assert len(streams) == 1
    assert (await streams[0].receive()).data == initial_datagram(b"A" * 8)
    with pytest.raises(anyio.EndOfStream):
        await streams[0].receive()
    with pytest.raises(anyio.BrokenResourceError):
        await streams[0].send(Datagram(b"x", peer))
    assert listener.extra(SocketAttribute.local_address) == ("127.0.0.1", 443)
    await listener.aclose()
    await listener.aclose()


@anyio_test
async def test_memory_host_names_and_closed_backlog() -> None:
    net = MemoryNetworking(backlog=1)
    listener = await net.listen_tcp(("server.test", 80))
    await net.connect_tcp(("server.test", 80))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def refused() -> None:
                with pytest.raises(ConnectError):
                    await net.connect_tcp(("server.test", 80))

            tg.start_soon(refused)
            await anyio.wait_all_tasks_blocked()
            await listener.aclose()
