"""Readers parked on epoll streams, each woken by one edge (the re-arm tests)."""

from __future__ import annotations

import socket

import anyio

from hcore_io.networking._epoll_poller import Poller
from hcore_io.networking._epoll_streams import EpollSocketStream

__all__ = ("read_one_edge_each",)


async def read_one_edge_each(
    poller: Poller, pairs: list[tuple[socket.socket, socket.socket]]
) -> list[bytes]:
    """Park a reader on each pair's first socket, then send each one edge.

    :param poller: the poller the streams wait on.
    :param pairs: connected sockets; ours first (duplicated, so the caller
        still closes both), theirs second.
    :return: what each reader received, in the order of ``pairs``.
    """
    streams = [EpollSocketStream(ours.dup(), poller) for ours, _ in pairs]
    received: list[bytes] = [b""] * len(streams)

    async def read(index: int) -> None:
        received[index] = await streams[index].receive()

    try:
        # Bounded: the readers wait at most a few re-arm intervals.
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for index in range(len(streams)):
                    group.start_soon(read, index)
                # Every reader is parked before any edge comes.
                await anyio.sleep(0.05)
                for index, (_, theirs) in enumerate(pairs):
                    theirs.send(b"edge %d" % index)
    finally:
        for stream in streams:
            await stream.aclose()
    return received
