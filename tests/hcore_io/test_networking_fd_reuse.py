"""Descriptor reuse: thousands of short connections while others keep streaming.

The kernel hands a closed socket's descriptor number to the next socket at
once.  A backend that kept anything keyed by the old number (an epoll
registration, a waiter, buffered bytes) would deliver one connection's
bytes or wake-ups to another, or leave a task waiting for ever.  Here a
few long connections stream continuously, each with its own byte pattern
(a stream number and an offset in every 8-byte block, so a misdelivered,
lost or reordered block is caught where it lands), while thousands of short
connections open and close around them in every way a connection can end.

Every test runs on SystemNetworking and EpollNetworking, on asyncio and Trio.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

from hcore import Address, Datagram

from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

#: Short connections per test; each opens and closes one descriptor.
SHORT_CONNECTIONS = 2000
#: Tasks opening them, so that many descriptors are freed and reused at once.
CONCURRENCY = 32
#: Long connections streaming meanwhile.
STREAMERS = 4
#: Bytes a streamer sends per round (and receives back).
ROUND = 16384
#: Rounds a streamer runs at most; it stops once the short ones are done.
MAX_ROUNDS = 100_000

_BLOCK = struct.Struct("!II")


def pattern(stream_number: int, offset: int, size: int) -> bytes:
    """The bytes ``[offset, offset + size)`` of a stream's pattern.

    Every 8-byte block holds the stream's number and the block's index:
    no two streams, and no two places of one stream, share a block.
    """
    assert offset % _BLOCK.size == 0 and size % _BLOCK.size == 0
    first = offset // _BLOCK.size
    return b"".join(
        _BLOCK.pack(stream_number, index)
        for index in range(first, first + size // _BLOCK.size)
    )


class PatternChecker:
    """Checks bytes as they arrive against one stream's pattern."""

    def __init__(self, stream_number: int) -> None:
        self.stream_number = stream_number
        self.offset = 0
        self._partial = b""

    def feed(self, data: bytes) -> None:
        """Check the next bytes; a partial block waits for the rest."""
        data = self._partial + data
        whole = len(data) - len(data) % _BLOCK.size
        self._partial = data[whole:]
        expected = pattern(self.stream_number, self.offset, whole)
        if data[:whole] != expected:
            # Name the first wrong block: whose bytes arrived, and from where.
            for start in range(0, whole, _BLOCK.size):
                if data[start : start + 8] != expected[start : start + 8]:
                    got = _BLOCK.unpack(data[start : start + 8])
                    want = _BLOCK.unpack(expected[start : start + 8])
                    raise AssertionError(f"got block {got}, expected {want}")
        self.offset += whole


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _reset_on_close(stream: ByteStream) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    raw_socket = stream.extra(SocketAttribute.raw_socket)
    raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _receive_exactly(stream: ByteStream, size: int) -> bytes:
    data = b""
    # Bounded by size: each round receives at least one byte or raises.
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return data


async def _serve_one(stream: ByteStream) -> None:
    """The server's side of every connection, chosen by its first byte.

    ``S`` + stream number: a streamer; its bytes are checked and echoed.
    ``E`` + 4-byte token: echo the token, then wait for the client to close.
    ``C`` + token: echo the token and close first.
    ``R`` + token: echo the token and reset the connection.
    Anything else, or nothing: read until the client is gone.
    """
    async with stream:
        try:
            kind = await stream.receive(1)
            if kind == b"S":
                (number,) = struct.unpack("!I", await _receive_exactly(stream, 4))
                checker = PatternChecker(number)
                # Bounded by what the client sends before it closes.
                while True:
                    data = await stream.receive()
                    checker.feed(data)
                    await stream.send(data)
            token = await _receive_exactly(stream, 4)
            if kind == b"R":
                await stream.send(token)
                _reset_on_close(stream)
                return
            await stream.send(token)
            if kind == b"C":
                return
            # Bounded: the client closes (or resets) after its token.
            while True:
                await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass


@asynccontextmanager
async def _echo_server(networking: SocketBackend) -> AsyncIterator[Address]:
    listener = await networking.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, _serve_one)
        try:
            yield address[0], address[1]
        finally:
            await listener.aclose()
            group.cancel_scope.cancel()


async def _short_connection(
    networking: SocketBackend, address: Address, index: int
) -> None:
    """One short connection, ending in one of six ways chosen by ``index``."""
    token = struct.pack("!I", index)
    way = index % 6
    stream = await networking.connect_tcp(address)
    try:
        if way == 0:
            # Opened and closed at once; the server sees a bare EOF.
            return
        if way == 1:
            # The token is sent and the connection closed without reading.
            await stream.send(b"E" + token)
            return
        if way == 2:
            # The token is sent and the connection reset without reading.
            await stream.send(b"E" + token)
            _reset_on_close(stream)
            return
        kind = {3: b"E", 4: b"C", 5: b"R"}[way]
        await stream.send(kind + token)
        if kind == b"E":
            assert await _receive_exactly(stream, 4) == token
            await stream.send_eof()
            return
        # The server closes (C) or resets (R) after its echo.
        received = b""
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            # Bounded: the server ends the connection after four bytes.
            while True:
                received += await stream.receive()
        # A reset may overtake the echo, but never brings other bytes.
        assert received == token if kind == b"C" else token.startswith(received)
    finally:
        await stream.aclose()


async def _streamer(
    networking: SocketBackend, address: Address, number: int, done: anyio.Event
) -> int:
    """Stream this number's pattern until ``done``; return the bytes checked."""
    checker = PatternChecker(number)
    sent = 0
    async with await networking.connect_tcp(address) as stream:
        await stream.send(b"S" + struct.pack("!I", number))

        async def receive_echo() -> None:
            # Bounded by the bytes sent: the echo ends when they are back.
            while checker.offset < sent:
                checker.feed(await stream.receive())

        for _ in range(MAX_ROUNDS):
            if done.is_set():
                break
            # Sending and receiving overlap, so both directions stay busy.
            async with anyio.create_task_group() as group:
                chunk = pattern(number, sent, ROUND)
                sent += ROUND
                group.start_soon(receive_echo)
                await stream.send(chunk)
            # A pause per round leaves most of the event loop to the short
            # connections; the streams still move data all the while.
            await anyio.sleep(0.002)
    assert checker.offset == sent
    return sent


async def test_short_tcp_connections_never_cross_long_ones(
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(60):
        async with _echo_server(networking) as address:
            descriptors = _open_descriptors()
            done = anyio.Event()
            streamed: list[int] = []

            async def stream(number: int) -> None:
                streamed.append(await _streamer(networking, address, number, done))

            async def short_ones(worker: int) -> None:
                for index in range(worker, SHORT_CONNECTIONS, CONCURRENCY):
                    await _short_connection(networking, address, index)

            async with anyio.create_task_group() as group:
                for number in range(1, STREAMERS + 1):
                    group.start_soon(stream, number)
                async with anyio.create_task_group() as short_group:
                    for worker in range(CONCURRENCY):
                        short_group.start_soon(short_ones, worker)
                done.set()
            # Every streamer moved data the whole time, not just at the end.
            assert len(streamed) == STREAMERS
            assert all(total >= ROUND for total in streamed)
            # Polled: the server's tasks close their sides as they notice.
            for _ in range(200):
                if _open_descriptors() <= descriptors:
                    break
                await anyio.sleep(0.01)
            assert _open_descriptors() <= descriptors


async def test_short_udp_sockets_never_cross_long_ones(
    networking: SocketBackend,
) -> None:
    """The same over UDP, with short TCP connections mixed in.

    UDP and TCP sockets share the descriptor numbers, so a UDP socket often
    gets a number a TCP connection just had, and the other way round.
    """
    echo = await anyio.create_udp_socket(local_host="127.0.0.1")
    echo_address = echo.extra(SocketAttribute.local_address)
    assert isinstance(echo_address, tuple)
    peer: Address = (str(echo_address[0]), int(echo_address[1]))

    async def echo_all() -> None:
        # Bounded by the datagrams the test sends; cancelled at the end.
        async for data, source in echo:
            await echo.send((data, source))

    # Short sockets being closed or closed.  A closed socket's port can go
    # to the next socket at once, and a late echo of the old one's datagram
    # then arrives there: the network's doing, and the same on any backend.
    # Any other datagram on the wrong socket would be the backend's fault.
    gone: set[int] = set()

    def stale(data: bytes) -> bool:
        """Whether ``data`` is the late echo of a short socket now closed."""
        if not data.startswith(b"short "):
            return False
        assert int(data.removeprefix(b"short ")) in gone, data
        return True

    async def udp_streamer(number: int, rounds: int) -> None:
        async with await networking.connect_udp(peer) as udp:
            for index in range(rounds):
                payload = pattern(number, index * 1024, 1024)
                echoed = False
                # Lockstep with resends: loopback may still drop a datagram.
                for _ in range(50):
                    await udp.send(Datagram(payload, peer))
                    with anyio.move_on_after(0.5):
                        # Bounded by the datagrams sent to this socket.
                        while not echoed:
                            data = (await udp.receive()).data
                            if stale(data):
                                continue
                            # Echoes of an earlier, resent datagram come
                            # late: they must still be this stream's.
                            checker = PatternChecker(number)
                            checker.offset = _BLOCK.unpack(data[:8])[1] * 8
                            checker.feed(data)
                            echoed = data == payload
                    if echoed:
                        break
                else:
                    raise AssertionError(f"no echo for datagram {index}")

    async def short_udp(worker: int, count: int) -> None:
        for index in range(worker, count, CONCURRENCY):
            own = b"short %d" % index
            udp = await networking.connect_udp(peer)
            try:
                await udp.send(Datagram(own, peer))
                if index % 2:
                    # Half of them wait for their echo (or give up on a loss).
                    with anyio.move_on_after(0.2):
                        # Bounded by the datagrams sent to this socket.
                        while (data := (await udp.receive()).data) != own:
                            assert stale(data)
            finally:
                gone.add(index)
                await udp.aclose()

    with anyio.fail_after(60):
        async with echo, anyio.create_task_group() as echo_group:
            echo_group.start_soon(echo_all)
            async with _echo_server(networking) as address:

                async def short_tcp(worker: int, count: int) -> None:
                    for index in range(worker, count, CONCURRENCY):
                        await _short_connection(networking, address, index)

                async with anyio.create_task_group() as group:
                    for number in range(1, STREAMERS + 1):
                        group.start_soon(udp_streamer, number, 300)
                    for worker in range(CONCURRENCY):
                        group.start_soon(short_udp, worker, 1000)
                        group.start_soon(short_tcp, worker, 500)
            echo_group.cancel_scope.cancel()
