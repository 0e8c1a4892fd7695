"""EpollNetworking's own machinery: the poller hand-over, registrations, UDP batches."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import pytest

from hcore import Datagram
from hcore_io import ConnectError
from hcore_io.networking import EpollNetworking
from hcore_io.networking import _epoll as epoll_module
from hcore_io.networking._epoll_hosted import current_poller
from hcore_io.networking._epoll_poller import Poller
from hcore_io.networking._epoll_streams import EpollSocketStream, socket_address
from hcore_io.networking._epoll_udp import EpollUDPSocket, bind_udp_socket

anyio_test = pytest.mark.anyio


@contextmanager
def _socket_pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Connected loopback TCP pairs of plain blocking sockets."""
    server = socket.create_server(("127.0.0.1", 0))
    pairs: list[tuple[socket.socket, socket.socket]] = []
    try:
        for _ in range(count):
            client = socket.create_connection(server.getsockname())
            peer, _ = server.accept()
            pairs.append((client, peer))
        yield pairs
    finally:
        server.close()
        for client, peer in pairs:
            client.close()
            peer.close()


@asynccontextmanager
async def _streams(
    count: int, poller: Poller | None = None
) -> AsyncIterator[list[tuple[EpollSocketStream, socket.socket]]]:
    """Epoll streams, each with the plain socket at the other end.

    :param poller: the poller to register with (the loop's by default).
    """
    if poller is None:
        poller = current_poller()
    with _socket_pairs(count) as pairs:
        streams = [
            (EpollSocketStream(client.dup(), poller), peer) for client, peer in pairs
        ]
        try:
            yield streams
        finally:
            for stream, _ in streams:
                await stream.aclose()


@pytest.fixture
def polling_poller() -> Iterator[Poller]:
    """A poller with a polling task, as on Trio (asyncio's loop hosts its own)."""
    poller = Poller()
    yield poller
    poller.close()


@anyio_test
async def test_pollers_hand_over_to_sleeping_waiters(polling_poller: Poller) -> None:
    poller = polling_poller
    received: dict[int, bytes] = {}
    done = [anyio.Event() for _ in range(4)]
    with anyio.fail_after(10):
        async with _streams(4, poller) as streams:

            async def reader(index: int) -> None:
                received[index] = await streams[index][0].receive()
                done[index].set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader, 0)
                await anyio.wait_all_tasks_blocked()
                for index in range(1, 4):
                    tg.start_soon(reader, index)
                await anyio.wait_all_tasks_blocked()
                # The first reader to wait polls for everybody.
                assert poller._poller_registration is streams[0][0]._registration
                streams[0][1].send(b"first")
                await done[0].wait()
                # It left; a sleeper took over and still serves the others.
                for index in (3, 1, 2):
                    streams[index][1].send(b"next %d" % index)
                    await done[index].wait()
    assert received == {0: b"first", 1: b"next 1", 2: b"next 2", 3: b"next 3"}
    assert not poller._polling
    assert not poller._sleepers


@anyio_test
async def test_a_cancelled_poller_hands_over(polling_poller: Poller) -> None:
    poller = polling_poller
    received: list[bytes] = []
    with anyio.fail_after(10):
        async with _streams(3, poller) as streams:
            first_scope = anyio.CancelScope()

            async def first() -> None:
                with first_scope:
                    await streams[0][0].receive()

            async def other(index: int) -> None:
                received.append(await streams[index][0].receive())

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(other, 1)
                tg.start_soon(other, 2)
                await anyio.wait_all_tasks_blocked()
                assert poller._poller_registration is streams[0][0]._registration
                first_scope.cancel()
                await anyio.wait_all_tasks_blocked()
                streams[1][1].send(b"one")
                streams[2][1].send(b"two")
            # The cancelled receive lost nothing: its bytes are still there.
            streams[0][1].send(b"zero")
            assert await streams[0][0].receive() == b"zero"
    assert sorted(received) == [b"one", b"two"]


@anyio_test
async def test_closing_the_pollers_socket_wakes_it() -> None:
    with anyio.fail_after(5):
        async with _streams(2) as streams:
            outcome: list[str] = []

            async def reader(index: int) -> None:
                try:
                    await streams[index][0].receive()
                except anyio.ClosedResourceError:
                    outcome.append(f"closed {index}")

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader, 0)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(reader, 1)
                await anyio.wait_all_tasks_blocked()
                # 0 polls, 1 sleeps: both are woken by their socket's close.
                await streams[0][0].aclose()
                await streams[1][0].aclose()
    assert sorted(outcome) == ["closed 0", "closed 1"]


@anyio_test
async def test_reused_descriptors_get_fresh_registrations() -> None:
    poller = current_poller()
    with _socket_pairs(2) as pairs:
        first = EpollSocketStream(pairs[0][0].dup(), poller)
        old_registration = first._registration
        fd = old_registration.fd
        await first.aclose()
        assert old_registration.closed
        assert fd not in poller._registrations
        # The kernel hands the lowest free number out again.
        second = EpollSocketStream(pairs[1][0].dup(), poller)
        async with second:
            assert second._registration.fd == fd
            assert poller._registrations[fd] is second._registration
            pairs[1][1].send(b"mine")
            assert await second.receive() == b"mine"


@anyio_test
async def test_one_poller_per_event_loop() -> None:
    assert current_poller() is current_poller()


def test_pollers_are_per_run_and_closed_after_it() -> None:
    pollers: list[weakref.ref[Poller]] = []

    async def main() -> None:
        pollers.append(weakref.ref(current_poller()))

    anyio.run(main)
    anyio.run(main, backend="trio")
    gc.collect()
    assert pollers[0] is not pollers[1]
    assert all(ref() is None for ref in pollers)
    poller = Poller()
    epoll = poller._epoll
    poller.close()
    assert epoll.closed


def test_refused_without_epoll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epoll_module, "epoll_available", lambda: False)
    with pytest.raises(RuntimeError, match="epoll"):
        EpollNetworking()


@anyio_test
async def test_udp_drains_the_socket_in_one_batch() -> None:
    with anyio.fail_after(10):
        udp = await bind_udp_socket(socket.AF_INET, "127.0.0.1", 0, current_poller())
        assert isinstance(udp, EpollUDPSocket)
        async with udp:
            address = udp._socket.getsockname()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.bind(("127.0.0.1", 0))
                source = sender.getsockname()
                for index in range(20):
                    sender.sendto(b"%d" % index, address)
                batch = await udp.receive_batch()
                assert [d.data for d in batch] == [b"%d" % i for i in range(20)]
                assert batch[0].address == source
                # A cancelled receive leaves the datagrams queued.
                sender.sendto(b"a", address)
                sender.sendto(b"b", address)
                await anyio.sleep(0.01)
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await udp.receive()
                assert (await udp.receive()).data == b"a"
                assert (await udp.receive()).data == b"b"
                # Waiting: the next datagram wakes the receiver.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        udp.send, Datagram(b"to self", ("127.0.0.1", address[1]))
                    )
                    assert await udp.receive() == Datagram(
                        b"to self", ("127.0.0.1", address[1])
                    )
        with pytest.raises(anyio.ClosedResourceError):
            await udp.receive_batch()
        with pytest.raises(anyio.ClosedResourceError):
            await udp.send(Datagram(b"x", ("127.0.0.1", address[1])))


def test_interleave_alternates_families() -> None:
    assert epoll_module._interleave([]) == []
    v4, v6 = socket.AF_INET, socket.AF_INET6
    targets = [
        (v6, ("::1", 1)),
        (v6, ("::2", 1)),
        (v6, ("::3", 1)),
        (v4, ("1.1.1.1", 1)),
    ]
    assert epoll_module._interleave(targets) == [
        (v6, ("::1", 1)),
        (v4, ("1.1.1.1", 1)),
        (v6, ("::2", 1)),
        (v6, ("::3", 1)),
    ]


@pytest.fixture
def hanging_address() -> Iterator[tuple[str, int]]:
    """A loopback address whose accept queue is full: connecting hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    filler = socket.socket()
    filler.connect(address)
    try:
        yield address[0], address[1]
    finally:
        filler.close()
        server.close()


@anyio_test
async def test_happy_eyeballs_races_the_next_address(
    monkeypatch: pytest.MonkeyPatch, hanging_address: tuple[str, int]
) -> None:
    net = EpollNetworking()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        results: dict[str, list[tuple[Any, ...]]] = {
            "refused-then-ok": [("127.0.0.1", closed_port), ("127.0.0.1", port)],
            "hanging-then-ok": [hanging_address, ("127.0.0.1", port)],
            "all-refused": [("127.0.0.1", closed_port), ("127.0.0.1", closed_port)],
            "nothing": [],
        }
        for name, sockaddrs in results.items():

            async def resolve(
                *args: Any, sockaddrs: Any = sockaddrs, **kwargs: Any
            ) -> Any:
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", a) for a in sockaddrs
                ]

            monkeypatch.setattr(anyio, "getaddrinfo", resolve)
            with anyio.fail_after(5):
                if name in ("all-refused", "nothing"):
                    with pytest.raises(ConnectError):
                        await net.connect_tcp(("example.test", 1))
                else:
                    stream = await net.connect_tcp(("example.test", 1))
                    async with stream:
                        remote = stream.extra(anyio.abc.SocketAttribute.remote_port)
                        assert remote == port


def test_socket_addresses_keep_ipv6_scopes() -> None:
    assert socket_address(("127.0.0.1", 80)) == ("127.0.0.1", 80)
    assert socket_address(("::1", 443, 0, 0)) == ("::1", 443)
    assert socket_address(("fe80::1%eth0", 443, 0, 3)) == ("fe80::1%3", 443)


@anyio_test
async def test_closed_stream_refuses_everything() -> None:
    with _socket_pairs(1) as pairs:
        stream = EpollSocketStream(pairs[0][0].dup(), current_poller())
        attributes = stream.extra_attributes
        assert attributes[anyio.abc.SocketAttribute.remote_address]() == (
            pairs[0][1].getsockname()
        )
        await stream.aclose()
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send_eof()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
        # Addresses read after the close are not there to be read.
        fresh = EpollSocketStream(pairs[0][1].dup(), current_poller())
        await fresh.aclose()
        assert anyio.abc.SocketAttribute.remote_address not in fresh.extra_attributes


@anyio_test
async def test_broken_stream_stays_broken() -> None:
    with _socket_pairs(1) as pairs:
        async with EpollSocketStream(pairs[0][0].dup(), current_poller()) as stream:
            peer = pairs[0][1]
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            peer.send(b"unread")
            await anyio.sleep(0.01)
            pairs[0][0].close()
            peer.close()
            with anyio.fail_after(5):
                # The buffered bytes come first, then the reset, for good.
                assert await stream.receive() == b"unread"
                for _ in range(2):
                    with pytest.raises(anyio.BrokenResourceError):
                        await stream.receive()
                with pytest.raises(anyio.BrokenResourceError):
                    await stream.send(b"x")


@anyio_test
async def test_concurrent_udp_receives_are_refused() -> None:
    udp = await bind_udp_socket(socket.AF_INET, "127.0.0.1", 0, current_poller())

    async def receive() -> None:
        with pytest.raises(anyio.ClosedResourceError):
            await udp.receive()

    async with udp, anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await udp.receive()
        await udp.aclose()


@anyio_test
async def test_streams_outliving_their_poller_close_quietly() -> None:
    poller = Poller()
    with _socket_pairs(1) as pairs:
        stream = EpollSocketStream(pairs[0][0].dup(), poller)
        poller.close()
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
