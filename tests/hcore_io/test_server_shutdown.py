"""ASGIServer: graceful shutdown with requests in flight, and the lifespan scope.

Every test runs on asyncio and Trio, against a server on 127.0.0.1.
"""

from __future__ import annotations

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import GoawayReceived
from hcore_io import NetworkError
from hcore_io.connections import StreamReset
from hcore_io.server import ASGIServer, LifespanFailure

from .conftest import SocketBackend
from .server_apps import EVENTS, app, failing_lifespan_app, lifespan_app
from .server_helpers import VERSIONS, Response, fetch, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_requests_in_flight_finish_at_shutdown(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    results: list[Response] = []
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        connection = await served.connect(version)
        async with connection:
            # An idle connection too: it is closed at once.
            idle = await served.connect(version)

            async def slow() -> None:
                results.append(await fetch(connection, "GET", "/slow/0.5"))

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(slow)
                    await anyio.sleep(0.2)
                    start = anyio.current_time()
                    await served.server.shutdown(timeout=5)
                    elapsed = anyio.current_time() - start
            await idle.aclose()
        # New connections are refused once the listeners are closed.
        with pytest.raises(NetworkError):
            await served.connect(version if version != "3" else "1.1")
    assert results[0].status == 200
    assert results[0].body == b"slow done"
    assert 0.1 < elapsed < 3


@pytest.mark.parametrize("version", ["2", "h2c"])
async def test_shutdown_sends_goaway(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            assert (await fetch(connection, "GET", "/")).status == 200
            with anyio.fail_after(10):
                await served.server.shutdown(timeout=5)
                events = []
                try:
                    # Bounded: the connection ends.
                    while True:
                        events.append(await connection.receive_event())
                except NetworkError:
                    pass
    assert any(isinstance(event, GoawayReceived) for event in events)


@pytest.mark.parametrize("version", VERSIONS)
async def test_shutdown_timeout_cancels_what_is_left(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    failures: list[BaseException] = []
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:

            async def stuck() -> None:
                try:
                    response = await fetch(connection, "GET", "/slow/20")
                except (NetworkError, StreamReset) as exc:
                    failures.append(exc)
                else:
                    # Reset by the server: the stream ends without a response.
                    failures.append(AssertionError(f"answered: {response.status}"))
                    if response.status == 0:
                        failures[-1] = StreamReset(0, 0, by_peer=True)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(stuck)
                    await anyio.sleep(0.2)
                    start = anyio.current_time()
                    await served.server.shutdown(timeout=0.3)
                    elapsed = anyio.current_time() - start
                    if version == "3":
                        # QUIC sees the end only when it next hears from the
                        # server; the test does not wait for its idle timeout.
                        group.cancel_scope.cancel()
    assert elapsed < 3
    if version != "3":
        assert len(failures) == 1
        assert not isinstance(failures[0], AssertionError)


async def test_lifespan_startup_state_and_shutdown(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    EVENTS.clear()
    async with running(
        lifespan_app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        assert EVENTS == ["startup"]
        async with await served.connect("2") as connection:
            assert (await fetch(connection, "GET", "/state")).body == b"yes"
        await served.server.shutdown()
        assert EVENTS == ["startup", "shutdown"]


async def test_lifespan_startup_failure_stops_the_server(
    server_tls_config: ServerTLSConfig,
    networking: SocketBackend,
) -> None:
    server = ASGIServer(
        failing_lifespan_app, tls_config=server_tls_config, networking=networking
    )
    with anyio.fail_after(5), pytest.raises(LifespanFailure, match="no database"):
        await server.serve(["http://127.0.0.1:0"])


async def test_lifespan_on_requires_support(
    server_tls_config: ServerTLSConfig,
    networking: SocketBackend,
) -> None:
    server = ASGIServer(app, lifespan="on", networking=networking)
    with anyio.fail_after(5), pytest.raises(LifespanFailure):
        await server.serve(["http://127.0.0.1:0"])


async def test_lifespan_off_never_calls_it(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    EVENTS.clear()
    async with running(
        lifespan_app,
        server_tls_config,
        client_tls_config,
        lifespan="off",
        networking=networking,
    ) as served:
        async with await served.connect("1.1") as connection:
            assert (await fetch(connection, "GET", "/")).status == 200
    assert EVENTS == []


async def test_bad_arguments_are_refused(
    server_tls_config: ServerTLSConfig, networking: SocketBackend
) -> None:
    with pytest.raises(ValueError, match="at least one HTTP version"):
        ASGIServer(app, http1=False, http2=False, http3=False, networking=networking)
    with pytest.raises(ValueError, match="max_body_size"):
        ASGIServer(app, max_body_size=0, networking=networking)
    with pytest.raises(ValueError, match="tls_config"):
        await ASGIServer(app, networking=networking).serve(["https://127.0.0.1:0"])
    with pytest.raises(ValueError, match="scheme"):
        await ASGIServer(app, networking=networking).serve(["ftp://127.0.0.1:0"])
