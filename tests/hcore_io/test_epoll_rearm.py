"""The polling epoll poller does not rely on the host loop's report alone (issue 5).

Under load on Trio the host loop was seen not to report, for many seconds,
that the nested epoll descriptor had events.  These tests take the report
away entirely (the host loop's wait never returns) and check that the
poller still delivers every edge, within its re-arm interval.  They use a
polling :class:`Poller` on both loops (asyncio's own is hosted by the loop:
tests/hcore_io/test_epoll_hosted.py).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest

from hcore_io.networking._epoll_poller import Poller, Registration

from .epoll_edges import read_one_edge_each

pytestmark = pytest.mark.anyio


@contextmanager
def _socket_pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Connected Unix stream pairs of plain blocking sockets."""
    pairs = [socket.socketpair() for _ in range(count)]
    try:
        yield pairs
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


async def _wait_readable(poller: Poller, registration: Registration) -> None:
    """Wait for a reading edge as a task (the poller hands back a bare awaitable)."""
    await poller.wait_readable(registration)


@pytest.fixture
def poller() -> Iterator[Poller]:
    """A polling poller (the one Trio gets), closed after the test."""
    polling = Poller()
    yield polling
    polling.close()


@pytest.fixture
def deaf_host_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host loop that never reports the epoll descriptor readable."""

    async def never(fd: int) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(anyio, "wait_readable", never)


@pytest.mark.usefixtures("deaf_host_loop")
async def test_edges_arrive_without_the_host_loops_report(
    caplog: pytest.LogCaptureFixture, poller: Poller
) -> None:
    caplog.set_level(logging.DEBUG, "hcore_io.networking")
    with _socket_pairs(8) as pairs:
        received = await read_one_edge_each(poller, pairs)
    assert received == [b"edge %d" % index for index in range(len(pairs))]
    assert any("read on a re-arm" in r.getMessage() for r in caplog.records)


async def test_queued_events_are_read_before_waiting(
    monkeypatch: pytest.MonkeyPatch, poller: Poller
) -> None:
    # An edge already queued when a task starts polling is dispatched by the
    # poller's own first read, with no round trip through the host loop.
    waits = 0
    real_wait = anyio.wait_readable

    async def counting(fd: int) -> None:
        nonlocal waits
        waits += 1
        await real_wait(fd)

    monkeypatch.setattr(anyio, "wait_readable", counting)
    with _socket_pairs(1) as pairs:
        ours, theirs = pairs[0]
        ours.setblocking(False)
        registration = poller.register(ours)
        try:
            theirs.send(b"queued")
            with anyio.fail_after(10):
                await poller.wait_readable(registration)
            assert waits == 0
            assert ours.recv(100) == b"queued"
            # Nothing queued now: this wait needs the host loop's report.
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(_wait_readable, poller, registration)
                    await anyio.sleep(0.05)
                    theirs.send(b"later")
            assert waits == 1
        finally:
            poller.unregister(registration)
