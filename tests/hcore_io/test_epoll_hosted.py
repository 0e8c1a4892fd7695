"""The epoll poller asyncio hosts by callback, and reads a drained socket skips.

On asyncio the loop itself reads the epoll ready list (``add_reader``); on
Trio a waiting task polls.  Both are checked to deliver edges; the hosted
one also without the loop's report (its re-arm timer), and without a host
registration per wait.  A stream whose last read drained its socket waits
for an edge before it reads again, instead of meeting ``EAGAIN`` first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import pytest

from hcore_io.networking._epoll_hosted import HostedPoller, current_poller
from hcore_io.networking._epoll_poller import Poller
from hcore_io.networking._epoll_streams import EpollSocketStream

from .epoll_edges import read_one_edge_each

pytestmark = pytest.mark.anyio


@contextmanager
def _socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected Unix stream pair of plain blocking sockets."""
    ours, theirs = socket.socketpair()
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


class _CountingSocket:
    """A socket wrapper that counts the reads made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.reads = 0

    def recv_into(self, buffer: memoryview, size: int) -> int:
        self.reads += 1
        return self._sock.recv_into(buffer, size)

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


async def test_the_loop_hosts_the_poller_on_asyncio_only(
    anyio_backend_name: str,
) -> None:
    poller = current_poller()
    assert isinstance(poller, HostedPoller) == (anyio_backend_name == "asyncio")


async def test_a_drained_socket_is_not_read_before_an_edge() -> None:
    with _socket_pair() as (ours, theirs):
        stream = EpollSocketStream(ours.dup(), current_poller())
        counting = _CountingSocket(stream._socket)
        stream._socket = counting  # type: ignore[assignment]
        try:
            theirs.send(b"first")
            with anyio.fail_after(10):
                assert await stream.receive() == b"first"
            # A short read: the socket is drained.
            assert counting.reads == 1
            received: list[bytes] = []

            async def read() -> None:
                received.append(await stream.receive())

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(read)
                    await anyio.wait_all_tasks_blocked()
                    # It waits for an edge without meeting EAGAIN first.
                    assert counting.reads == 1
                    theirs.send(b"second")
            assert received == [b"second"]
            assert counting.reads == 2
        finally:
            await stream.aclose()


async def test_the_end_after_a_short_read_is_not_waited_for() -> None:
    # The data and the end of input come with one edge, taken before the
    # read: the short read that empties the socket must not make the next
    # receive wait for an edge that will never come.
    with _socket_pair() as (ours, theirs):
        poller = current_poller()
        stream = EpollSocketStream(ours.dup(), poller)
        try:
            theirs.send(b"last words")
            theirs.shutdown(socket.SHUT_WR)
            poller._dispatch()
            assert stream._registration.hung_up
            with anyio.fail_after(5):
                assert await stream.receive() == b"last words"
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
        finally:
            await stream.aclose()


async def test_a_full_read_reads_again_at_once() -> None:
    with _socket_pair() as (ours, theirs):
        stream = EpollSocketStream(ours.dup(), current_poller())
        try:
            theirs.sendall(b"x" * 300)
            with anyio.fail_after(10):
                # The read filled what was asked: more may be queued, and is.
                assert await stream.receive(100) == b"x" * 100
                assert await stream.receive(100) == b"x" * 100
                assert await stream.receive(1000) == b"x" * 100
        finally:
            await stream.aclose()


async def test_a_cancelled_wait_loses_nothing() -> None:
    with _socket_pair() as (ours, theirs):
        stream = EpollSocketStream(ours.dup(), current_poller())
        try:
            with anyio.move_on_after(0.05):
                await stream.receive()
            registration = stream._registration
            assert registration.read_waiter is None
            theirs.send(b"after")
            with anyio.fail_after(10):
                assert await stream.receive() == b"after"
        finally:
            await stream.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_hosted_waits_register_nothing_with_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller = current_poller()
    assert isinstance(poller, HostedPoller)
    loop = asyncio.get_running_loop()
    registrations: list[int] = []
    real_add_reader = loop.add_reader

    def counting_add_reader(fd: int, callback: Callable[[], object]) -> None:
        registrations.append(fd)
        real_add_reader(fd, callback)

    monkeypatch.setattr(loop, "add_reader", counting_add_reader)
    with _socket_pair() as (ours, theirs):
        stream = EpollSocketStream(ours.dup(), poller)
        try:
            received: list[bytes] = []

            async def read() -> None:
                received.append(await stream.receive())

            for index in range(5):
                with anyio.fail_after(10):
                    async with anyio.create_task_group() as group:
                        group.start_soon(read)
                        await anyio.wait_all_tasks_blocked()
                        theirs.send(b"%d" % index)
            assert received == [b"%d" % index for index in range(5)]
        finally:
            await stream.aclose()
    assert registrations == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_hosted_edges_arrive_without_the_loops_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As the polling poller's re-arm (issue 5): the loop never reports the
    # epoll descriptor, and the re-arm timer still delivers every edge.
    caplog.set_level(logging.DEBUG, "hcore_io.networking")
    loop = asyncio.get_running_loop()
    poller = HostedPoller(loop)
    loop.remove_reader(poller._epoll.fileno())
    pairs = [socket.socketpair() for _ in range(4)]
    try:
        received = await read_one_edge_each(poller, pairs)
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
        poller.close()
    assert received == [b"edge %d" % index for index in range(len(pairs))]
    assert any("read on a re-arm" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_closed_hosted_poller_leaves_the_loop() -> None:
    loop = asyncio.get_running_loop()
    poller = HostedPoller(loop)
    fd = poller._epoll.fileno()
    poller.close()
    assert poller._epoll.closed
    # The descriptor is no longer the loop's: registering it again works.
    reader, writer = socket.socketpair()
    try:
        loop.add_reader(reader.fileno(), lambda: None)
        assert loop.remove_reader(reader.fileno())
        assert not loop.remove_reader(fd)
    finally:
        reader.close()
        writer.close()


def test_a_polling_poller_is_still_made_on_trio() -> None:
    async def main() -> Poller:
        return current_poller()

    poller = anyio.run(main, backend="trio")
    assert type(poller) is Poller
