"""Stream semantics both socket backends share: cancellation, resets, closing, reuse.

Every test runs on SystemNetworking and EpollNetworking, on asyncio and Trio.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

from hcore import Address

from .conftest import SocketNetworkingClass

pytestmark = pytest.mark.anyio

Handler = Callable[[ByteStream], Awaitable[None]]


async def _echo(stream: ByteStream) -> None:
    async with stream:
        try:
            # Bounded by what the client sends before it closes.
            while True:
                await stream.send(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass


@asynccontextmanager
async def _serving(
    networking_class: SocketNetworkingClass, handler: Handler = _echo
) -> AsyncIterator[Address]:
    listener = await networking_class().listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            yield address[0], address[1]
        finally:
            await listener.aclose()


def _reset_on_close(stream: ByteStream) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    raw_socket = stream.extra(SocketAttribute.raw_socket)
    raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_cancelled_receive_loses_no_bytes(
    networking_class: SocketNetworkingClass,
) -> None:
    payload = bytes(range(256)) * 400
    sent = anyio.Event()

    async def sender(stream: ByteStream) -> None:
        async with stream:
            # Many small writes, so that data keeps arriving between receives.
            for offset in range(0, len(payload), 1000):
                await stream.send(payload[offset : offset + 1000])
                if offset % 10000 == 0:
                    await anyio.sleep(0.001)
            sent.set()

    received = bytearray()
    cancelled = 0
    with anyio.fail_after(20):
        async with _serving(networking_class, sender) as address:
            net = networking_class()
            async with await net.connect_tcp(address) as client:
                # Bounded: each round either receives or is cancelled, and
                # every other round receives.
                for round_number in range(10 * len(payload)):
                    try:
                        if round_number % 2:
                            with anyio.CancelScope() as scope:
                                scope.cancel()
                                received += await client.receive(777)
                            cancelled += scope.cancelled_caught
                        elif round_number % 4 == 2:
                            with anyio.move_on_after(0.0005) as scope:
                                received += await client.receive(333)
                            cancelled += scope.cancelled_caught
                        else:
                            received += await client.receive(500)
                    except anyio.EndOfStream:
                        break
    assert sent.is_set()
    assert cancelled > 0
    assert bytes(received) == payload


async def test_peer_reset_breaks_receive_and_send(
    networking_class: SocketNetworkingClass,
) -> None:
    reset = anyio.Event()

    async def resetter(stream: ByteStream) -> None:
        await stream.receive()
        _reset_on_close(stream)
        await stream.aclose()
        reset.set()

    with anyio.fail_after(10):
        async with _serving(networking_class, resetter) as address:
            net = networking_class()
            async with await net.connect_tcp(address) as client:
                await client.send(b"hello")
                await reset.wait()
                with pytest.raises(anyio.BrokenResourceError):
                    await client.receive()
                with pytest.raises(anyio.BrokenResourceError):
                    # The first send after a reset may still be accepted.
                    for _ in range(3):
                        await client.send(b"x" * 1000)
                        await anyio.sleep(0.01)


async def test_reset_while_sending_breaks_the_send(
    networking_class: SocketNetworkingClass,
) -> None:
    # The server never reads: the client's send fills the buffers and waits
    # for writability, until the reset ends it.
    async def resetter(stream: ByteStream) -> None:
        await stream.receive(1)
        await anyio.sleep(0.2)
        _reset_on_close(stream)
        await stream.aclose()

    with anyio.fail_after(10):
        async with _serving(networking_class, resetter) as address:
            net = networking_class()
            async with await net.connect_tcp(address) as client:
                with pytest.raises(anyio.BrokenResourceError):
                    await client.send(b"x" * 64 * 1024 * 1024)


async def test_close_wakes_a_blocked_receive(
    networking_class: SocketNetworkingClass,
) -> None:
    with anyio.fail_after(10):
        async with _serving(networking_class) as address:
            net = networking_class()
            client = await net.connect_tcp(address)
            outcome: list[type[BaseException]] = []

            async def receive() -> None:
                try:
                    await client.receive()
                except anyio.ClosedResourceError as exc:
                    outcome.append(type(exc))

            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                await anyio.wait_all_tasks_blocked()
                await client.aclose()
            assert outcome == [anyio.ClosedResourceError]
            with pytest.raises(anyio.ClosedResourceError):
                await client.receive()
            with pytest.raises(anyio.ClosedResourceError):
                await client.send(b"x")


async def test_concurrent_receives_are_refused(
    networking_class: SocketNetworkingClass,
) -> None:
    with anyio.fail_after(10):
        async with _serving(networking_class) as address:
            net = networking_class()
            async with await net.connect_tcp(address) as client:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.receive)
                    await anyio.wait_all_tasks_blocked()
                    with pytest.raises(anyio.BusyResourceError):
                        await client.receive()
                    await client.send(b"wake")
                await client.send_eof()
                with pytest.raises(anyio.EndOfStream):
                    await client.receive()
                with pytest.raises(anyio.EndOfStream):
                    await client.receive()


async def test_large_transfer_both_ways(
    networking_class: SocketNetworkingClass,
) -> None:
    # Writes larger than the socket buffers: the unsent rest waits.
    chunk = bytes(range(256)) * 4096
    total = 16 * len(chunk)
    with anyio.fail_after(20):
        async with _serving(networking_class) as address:
            net = networking_class()
            async with await net.connect_tcp(address) as client:
                received = bytearray()

                async def receive_all() -> None:
                    # Bounded by the bytes sent.
                    while len(received) < total:
                        received.extend(await client.receive(1 << 20))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(receive_all)
                    for _ in range(16):
                        await client.send(chunk)
    assert bytes(received) == chunk * 16


async def test_descriptor_reuse_never_misdelivers(
    networking_class: SocketNetworkingClass,
) -> None:
    """Thousands of short connections while others stream: no crossed bytes.

    Descriptors of closed sockets are reused by the next ones at once; a
    backend that kept a stale registration would hand one connection's
    bytes or wake-ups to another.
    """
    short_connections = 2000
    concurrency = 40
    streamers = 4
    rounds = 200
    with anyio.fail_after(60):
        async with _serving(networking_class) as address:
            net = networking_class()

            async def stream_pattern(marker: int) -> None:
                chunk = bytes([marker]) * 4096
                async with await net.connect_tcp(address) as stream:
                    for _ in range(rounds):
                        await stream.send(chunk)
                        got = 0
                        # Bounded by the chunk echoed back.
                        while got < len(chunk):
                            data = await stream.receive()
                            assert data == bytes([marker]) * len(data)
                            got += len(data)

            async def short_ones(worker: int) -> None:
                for index in range(worker, short_connections, concurrency):
                    token = f"token-{index}".encode()
                    stream = await net.connect_tcp(address)
                    if index % 3 == 0:
                        # Closed without reading the echo.
                        await stream.send(token)
                        await stream.aclose()
                        continue
                    async with stream:
                        await stream.send(token)
                        got = b""
                        # Bounded by the token echoed back.
                        while len(got) < len(token):
                            got += await stream.receive()
                        assert got == token

            async with anyio.create_task_group() as tg:
                for marker in range(1, streamers + 1):
                    tg.start_soon(stream_pattern, marker)
                for worker in range(concurrency):
                    tg.start_soon(short_ones, worker)


async def test_concurrent_sends_are_refused(
    networking_class: SocketNetworkingClass,
) -> None:
    stalled = anyio.Event()

    async def stall(stream: ByteStream) -> None:
        # Reads nothing until told: the client's big send has to wait.
        async with stream:
            await stalled.wait()

    with anyio.fail_after(10):
        async with _serving(networking_class, stall) as address:
            net = networking_class()
            async with await net.connect_tcp(address) as client:
                with pytest.raises(ValueError, match="max_bytes"):
                    await client.receive(0)
                async with anyio.create_task_group() as tg:

                    async def big_send() -> None:
                        with pytest.raises(
                            (anyio.BrokenResourceError, anyio.ClosedResourceError)
                        ):
                            await client.send(b"x" * 64 * 1024 * 1024)

                    tg.start_soon(big_send)
                    await anyio.wait_all_tasks_blocked()
                    with pytest.raises(anyio.BusyResourceError):
                        await client.send(b"y")
                    await client.aclose()
                stalled.set()


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
async def test_listening_on_every_interface(
    networking_class: SocketNetworkingClass, target: str
) -> None:
    net = networking_class()
    listener = await net.listen_tcp(("", 0))
    port = listener.extra(SocketAttribute.local_port)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _echo)
            try:
                async with await net.connect_tcp((target, port)) as client:
                    await client.send(b"anyone")
                    assert await client.receive() == b"anyone"
            finally:
                await listener.aclose()
