"""Per-stream use of HTTPConnection: concurrency, cancellation, closing.

Every test runs on asyncio and Trio, over both socket backends
(SystemNetworking and EpollNetworking).
"""

from __future__ import annotations

import anyio
import pytest

from hcore import ClientTLSConfig, LocalProtocolError, ServerTLSConfig
from hcore.events import (
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    StreamResetReceived,
)
from hcore_io import ConnectionClosed
from hcore_io.connections import HTTPConnection, HTTPStream, StreamReset

from .conftest import SocketBackend
from .connection_helpers import (
    VERSIONS,
    App,
    digest,
    fetch,
    pattern,
    read_response,
    request_headers,
    serving,
)

pytestmark = pytest.mark.anyio


async def _concurrent_digests(connection: HTTPConnection, count: int) -> set[int]:
    stream_ids: set[int] = set()

    async def one(index: int) -> None:
        body = pattern(index * 997 + 1)
        stream = await connection.open_stream(request_headers("POST", "/digest"))
        async with stream:
            stream_ids.add(stream.stream_id)
            await stream.send_data(body, end_stream=True)
            response = await read_response(stream)
        assert response.status == 200
        assert response.body.decode() == digest(body)

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(one, index)
    return stream_ids


@pytest.mark.parametrize(("version", "count"), [("2", 100), ("3", 30)])
async def test_many_requests_share_one_connection(
    version: str,
    count: int,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    app = App()
    with anyio.fail_after(30):
        async with serving(
            version,
            app,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            assert served.connection.multiplexed
            stream_ids = await _concurrent_digests(served.connection, count)
            # read_response checked that each task only saw its own stream.
            assert len(stream_ids) == count
            assert served.connection.is_available()
    assert sorted(app.paths) == ["/digest"] * count


async def test_http1_streams_take_turns(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    app = App()
    with anyio.fail_after(10):
        async with serving(
            "1.1",
            app,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            assert not served.connection.multiplexed
            stream_ids = await _concurrent_digests(served.connection, 5)
    assert stream_ids == {1, 3, 5, 7, 9}


@pytest.mark.parametrize("version", ["2", "3"])
async def test_cancelling_a_waiting_task_resets_only_its_stream(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    app = App()
    with anyio.fail_after(10):
        async with serving(
            version,
            app,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection
            waiting: list[HTTPStream] = []

            async def wait_forever() -> None:
                stream = await connection.open_stream(
                    request_headers("GET", "/wait"), end_stream=True
                )
                waiting.append(stream)
                await stream.receive_event()

            async with anyio.create_task_group() as group:
                group.start_soon(wait_forever)
                other = await fetch(connection, "GET", "/bytes/100000")
                # The server has seen the request once it answers a later one.
                await fetch(connection, "GET", "/bytes/1")
                assert "/wait" in app.paths
                group.cancel_scope.cancel()

            assert other.body == pattern(100000)
            (cancelled,) = waiting
            # The connection serves on, and the server was told (before the
            # answer to a later request, since the reset was sent first).
            after = await fetch(connection, "POST", "/digest", b"still here")
            assert after.body.decode() == digest(b"still here")
            ending = app.endings[cancelled.stream_id]
            assert isinstance(ending, StreamResetReceived)
            assert ending.error_code == connection.error_codes.cancel
            with pytest.raises(LocalProtocolError):
                await cancelled.receive_event()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_cancelling_a_sender_waiting_for_credit_resets_its_stream(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    go_on = anyio.Event()
    seen: list[Event] = []

    async def slow_reader(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        assert stream is not None
        async with anyio.create_task_group() as group:
            # The app's accept loop keeps the connection read meanwhile, so
            # the client waits for flow-control credit, not for the network.
            group.start_soon(App(), connection)
            await go_on.wait()
            seen.extend([event async for event in stream])

    with anyio.fail_after(10):
        async with serving(
            version,
            slow_reader,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            max_buffered_data=65536,
            networking=networking,
        ) as served:
            connection = served.connection
            stream = await connection.open_stream(request_headers("POST", "/"))
            with anyio.move_on_after(0.5) as scope:
                # Flow control stops this: the server does not read.
                await stream.send_data(pattern(4 << 20), end_stream=True)
            assert scope.cancelled_caught
            with pytest.raises(StreamReset) as caught:
                await stream.send_data(b"more")
            assert not caught.value.by_peer
            go_on.set()
            response = await fetch(connection, "GET", "/bytes/70000")
            assert response.body == pattern(70000)
    assert isinstance(seen[-1], StreamResetReceived)
    assert seen[-1].error_code == connection.error_codes.cancel
    received = sum(len(e.data) for e in seen if isinstance(e, DataReceived))
    assert 0 < received < 1 << 20


@pytest.mark.parametrize("version", VERSIONS)
async def test_aclose_wakes_every_waiting_task(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    outcomes: list[BaseException] = []
    with anyio.fail_after(10):
        async with serving(
            version,
            App(),
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection

            async def wait() -> None:
                try:
                    stream = await connection.open_stream(
                        request_headers("GET", "/silent"), end_stream=True
                    )
                    await stream.receive_event()
                except ConnectionClosed as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(wait)
                await anyio.sleep(0.2)
                await connection.aclose()
    assert len(outcomes) == 10
    assert all("closed" in str(exc) for exc in outcomes), outcomes


@pytest.mark.parametrize("version", VERSIONS)
async def test_peer_closing_wakes_every_waiting_task(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    accepted = anyio.Event()

    async def close_soon(connection: HTTPConnection) -> None:
        assert await connection.accept_stream() is not None
        accepted.set()
        await anyio.sleep(0.2)
        await connection.aclose()

    outcomes: list[BaseException | Event] = []
    with anyio.fail_after(10):
        async with serving(
            version,
            close_soon,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection

            async def wait() -> None:
                try:
                    stream = await connection.open_stream(
                        request_headers("GET", "/"), end_stream=True
                    )
                    events = [event async for event in stream]
                except ConnectionClosed as exc:
                    outcomes.append(exc)
                else:
                    # Refused by the server's GOAWAY, or reset by its close.
                    last = events[-1]
                    assert isinstance(last, GoawayReceived | StreamResetReceived)
                    if isinstance(last, GoawayReceived):
                        assert stream.stream_id in last.unprocessed_stream_ids
                    outcomes.append(last)

            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(wait)
    assert accepted.is_set()
    assert len(outcomes) == 3
    assert served.connection.has_expired()
    assert not served.connection.is_available()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_peer_reset_is_an_event_and_stops_sending(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with serving(
            version,
            App(),
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            stream = await served.connection.open_stream(
                request_headers("GET", "/reset")
            )
            events = [event async for event in stream]
            assert isinstance(events[0], HeadersReceived)
            assert isinstance(events[-1], StreamResetReceived)
            received = sum(len(e.data) for e in events if isinstance(e, DataReceived))
            assert received <= 65536
            with pytest.raises(StreamReset) as caught:
                await stream.send_data(b"body", end_stream=True)
            assert caught.value.by_peer
            assert "reset by the peer" in str(caught.value)
            await stream.aclose()
            with pytest.raises(StreamReset):
                await stream.send_data(b"again")
            response = await fetch(served.connection, "GET", "/bytes/10")
            assert response.body == pattern(10)


@pytest.mark.parametrize("version", VERSIONS)
async def test_stream_iteration_ends_with_the_response(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with serving(
            version,
            App(),
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            response = await fetch(served.connection, "POST", "/echo", b"x" * 100)
            assert response.status == 200
            assert response.body == b"x" * 100
            stream = await served.connection.open_stream(
                request_headers("GET", "/bytes/0"), end_stream=True
            )
            events = [event async for event in stream]
            assert len(events) == 1
            assert stream.ended
            with pytest.raises(LocalProtocolError):
                await stream.receive_event()
            assert repr(stream).startswith(f"<HTTPStream {stream.stream_id} ")
            assert stream.connection is served.connection


@pytest.mark.parametrize("version", VERSIONS)
async def test_graceful_close_lets_streams_in_flight_finish(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    answered = anyio.Event()
    server_done = anyio.Event()

    async def close_after_first_request(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        assert stream is not None
        async with stream:
            await stream.receive_event()
            await connection.close_gracefully()
            await connection.close_gracefully()
            await stream.send_headers(((b":status", b"200"),))
            answered.set()
            await stream.send_data(pattern(200_000), end_stream=True)
        # The transport closes once the stream is over: no more requests.
        assert await connection.accept_stream() is None
        assert connection.has_expired()
        server_done.set()

    with anyio.fail_after(10):
        async with serving(
            version,
            close_after_first_request,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection
            response = await fetch(connection, "GET", "/")
            assert response.status == 200
            assert response.body == pattern(200_000)
            # The server's GOAWAY (or "Connection: close") arrived with it.
            assert connection.has_expired()
            with pytest.raises(ConnectionClosed):
                await fetch(connection, "GET", "/again")
            # An idle connection reads nothing: its owner closes it, and the
            # server's wait for the end is over.
            await connection.aclose()
            await server_done.wait()
    assert answered.is_set()


async def test_connection_close_header_ends_the_transport_after_the_exchange(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    ended = anyio.Event()

    async def serve_then_note(connection: HTTPConnection) -> None:
        await App()(connection)
        ended.set()

    with anyio.fail_after(10):
        async with serving(
            "1.1",
            serve_then_note,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection
            stream = await connection.open_stream(
                request_headers("GET", "/bytes/5", extra=[(b"connection", b"close")]),
                end_stream=True,
            )
            response = await read_response(stream)
            assert response.body == pattern(5)
            # Both ends close the transport once the exchange is over.
            await ended.wait()
            assert connection.has_expired()
            assert not connection.is_available()
