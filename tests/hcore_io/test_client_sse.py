"""``client.sse(url)``: Server-Sent Events from our ASGI server, reconnecting.

An :class:`SSEApp` serves the routes below on HTTP/1.1, HTTP/2 and HTTP/3
and records each request's ``Last-Event-ID``.  Every test runs on asyncio
and Trio, on both socket backends.

- ``/events``: three events cut at awkward places (inside a field name, a
  CRLF, a UTF-8 character), then the stream ends; the reconnection after
  ID 3 gets ``204``;
- ``/counter``: sets ``retry: 20`` and sends the event after the
  ``Last-Event-ID`` it got, then ends;
- ``/broken``: an event, half of another, then the application crashes
  (the server resets the stream or closes the connection); the
  reconnection finishes the story, the next one gets ``204``;
- ``/stall``: an event, then nothing until the client goes away; the
  reconnection gets ``204``;
- ``/loop``: redirects to itself;
- ``/huge``: an event of 2,000 characters;
- ``/text``: ``200`` as ``text/plain``; ``/missing``: ``404``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.sse import EventStreamError, ServerSentEvent
from hcore_io import ConnectError
from hcore_io.client import Client, EventSourceError, Timeouts, TooManyRedirects
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import ASGIServer, Message, Receive, Scope, Send

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

Networking = SystemNetworking | EpollNetworking
VERSIONS = ("1.1", "2", "3")

# The /events body, cut where a parser that does not carry state over
# chunks would go wrong.
EVENTS_PIECES = (
    b"retry: 10\n: a comment\nid: 1\nda",
    b"ta: first\n\n",
    b"id: 2\nevent: up",
    b"date\ndata: sec",
    b"ond\ndata: line\r",
    b"\n\r\nid: 3\ndata: \xc3",
    b"\xa9t\xc3\xa9\n\n",
)


class Crash(Exception):
    """What ``/broken`` raises mid-stream."""


@dataclass
class SSEApp:
    """The routes above; records ``(path, headers)`` of each request."""

    requests: list[tuple[str, dict[bytes, bytes]]] = field(default_factory=list)

    def last_event_ids(self, path: str) -> list[str | None]:
        """The ``Last-Event-ID`` of each request to ``path``, in order."""
        return [
            None
            if b"last-event-id" not in fields
            else fields[b"last-event-id"].decode()
            for seen, fields in self.requests
            if seen == path
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        message: Message = await receive()
        assert not message.get("more_body")
        path = scope["path"]
        assert isinstance(path, str)
        raw = scope["headers"]
        assert isinstance(raw, list)
        fields = {bytes(name): bytes(value) for name, value in raw}
        self.requests.append((path, fields))
        last = fields.get(b"last-event-id", b"").decode()
        if path == "/events":
            if last == "3":
                await self._answer(send, 204)
                return
            await self._stream(send, EVENTS_PIECES)
        elif path == "/counter":
            after = int(last or "0") + 1
            await self._stream(
                send, [b"retry: 20\n", b"id: %d\ndata: %d\n\n" % (after, after)]
            )
        elif path == "/broken":
            if last == "2":
                await self._answer(send, 204)
            elif last == "1":
                await self._stream(send, [b"id: 2\ndata: two\n\n"])
            else:
                await self._start(send, 200, b"text/event-stream")
                for piece in (b"retry: 10\nid: 1\ndata: one\n\n", b"data: lost\n"):
                    await send(
                        {"type": "http.response.body", "body": piece, "more_body": True}
                    )
                    await anyio.sleep(0.01)
                raise Crash("the application failed mid-stream")
        elif path == "/stall":
            if last:
                await self._answer(send, 204)
                return
            await self._start(send, 200, b"text/event-stream")
            body = b"retry: 0\nid: 1\ndata: one\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
            # Bounded: the client gives up and goes away.
            while (await receive())["type"] != "http.disconnect":
                pass
        elif path == "/loop":
            await self._answer(send, 302, [(b"location", b"/loop")])
        elif path == "/text":
            text = [(b"content-type", b"text/plain; charset=utf-8")]
            await self._answer(send, 200, text, b"data: no\n\n")
        elif path == "/huge":
            await self._stream(send, [b"data: " + b"x" * 2000 + b"\n\n"])
        else:
            await self._answer(send, 404, [(b"content-type", b"text/plain")], b"no")

    @staticmethod
    async def _start(send: Send, status: int, content_type: bytes) -> None:
        headers = [(b"content-type", content_type)]
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )

    @staticmethod
    async def _answer(
        send: Send,
        status: int,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
    ) -> None:
        start = {"type": "http.response.start", "status": status}
        await send({**start, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, send: Send, pieces: Sequence[bytes]) -> None:
        await self._start(send, 200, b"text/event-stream; charset=utf-8")
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            # Let each piece leave on its own.
            await anyio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Served:
    """The server under test and a client for one HTTP version."""

    app: SSEApp
    client: Client
    base: str


@pytest.fixture
def version() -> str:
    """The HTTP version of the client (tests parametrize it)."""
    return "1.1"


@pytest.fixture
async def served(
    version: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> AsyncIterator[Served]:
    """Serve an :class:`SSEApp` on ``https://127.0.0.1:0`` (TCP and UDP).

    The client speaks only ``version`` and does not retry by itself.
    """
    app = SSEApp()
    server = ASGIServer(app, tls_config=server_tls_config, networking=networking)
    async with anyio.create_task_group() as group:
        (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
        try:
            async with Client(
                networking=networking,
                tls_config=client_tls_config,
                http_versions=(version,),
                retries=0,
            ) as client:
                yield Served(app, client, f"https://localhost:{endpoint.port}")
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await server.shutdown(timeout=1)
            group.cancel_scope.cancel()


@pytest.mark.parametrize("version", VERSIONS)
async def test_events_across_chunks_then_204_stops(served: Served) -> None:
    with anyio.fail_after(20):
        async with served.client.sse(served.base + "/events") as source:
            events = [event async for event in source]
    assert events == [
        ServerSentEvent("first", id="1", retry=10),
        ServerSentEvent("second\nline", event="update", id="2"),
        ServerSentEvent("\xe9t\xe9", id="3"),
    ]
    # The stream ended, the client came back with ID 3 and got 204.
    assert source.connections == 2 and source.closed
    assert served.app.last_event_ids("/events") == [None, "3"]
    first = served.app.requests[0][1]
    assert first[b"accept"] == b"text/event-stream"
    assert first[b"cache-control"] == b"no-store"
    assert source.last_event_id == "3" and source.retry_delay == 0.01


@pytest.mark.parametrize("version", VERSIONS)
async def test_reconnects_with_last_event_id_and_retry(
    version: str, served: Served
) -> None:
    received: list[ServerSentEvent] = []
    http_versions: set[str] = set()
    with anyio.fail_after(20):
        async with served.client.sse(
            served.base + "/counter",
            last_event_id="40",
            headers=[(b"X-Token", b"t")],
            retry_delay=30.0,
            max_reconnects=2,
        ) as source:
            # Bounded: max_reconnects ends the iteration.
            async for event in source:
                received.append(event)
                assert source.response is not None
                http_versions.add(source.response.http_version)
    # retry: 20 replaced the 30 s delay (or this would have timed out).
    assert source.retry_delay == 0.02
    assert [(e.data, e.id, e.retry) for e in received] == [
        ("41", "41", 20),
        ("42", "42", 20),
        ("43", "43", 20),
    ]
    assert served.app.last_event_ids("/counter") == ["40", "41", "42"]
    assert all(fields[b"x-token"] == b"t" for _, fields in served.app.requests)
    assert source.connections == 3 and source.closed
    assert http_versions == {version}


@pytest.mark.parametrize("version", VERSIONS)
async def test_reconnects_after_the_stream_fails(served: Served) -> None:
    with anyio.fail_after(20):
        async with served.client.sse(served.base + "/broken") as source:
            events = [event.data async for event in source]
    # The half event before the failure is dropped.
    assert events == ["one", "two"]
    assert served.app.last_event_ids("/broken") == [None, "1", "2"]


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [("/text", 200, "text/plain; charset=utf-8"), ("/missing", 404, "text/plain")],
)
@pytest.mark.parametrize("version", ["2"])
async def test_not_an_event_stream_fails_without_reconnecting(
    path: str, status: int, content_type: str, served: Served
) -> None:
    with anyio.fail_after(20):
        async with served.client.sse(served.base + path, retry_delay=0) as source:
            with pytest.raises(EventSourceError, match="not an event stream") as info:
                await source.__anext__()
            # The source is closed for good.
            assert [event async for event in source] == []
    assert (info.value.status, info.value.content_type) == (status, content_type)
    assert len(served.app.requests) == 1 and source.connections == 1


async def test_size_limit_fails_without_reconnecting(served: Served) -> None:
    with anyio.fail_after(20):
        url = served.base + "/huge"
        async with served.client.sse(url, max_event_size=1000) as source:
            with pytest.raises(EventStreamError):
                await source.__anext__()
            assert source.closed and source.response is None
    assert len(served.app.requests) == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_read_timeout_reconnects(served: Served) -> None:
    with anyio.fail_after(20):
        url = served.base + "/stall"
        timeouts = Timeouts(connect=10, read=0.3, write=10)
        async with served.client.sse(url, timeouts=timeouts) as source:
            events = [event.data async for event in source]
    assert events == ["one"]
    assert served.app.last_event_ids("/stall") == [None, "1"]


async def test_too_many_redirects_fails_without_reconnecting(served: Served) -> None:
    with anyio.fail_after(20):
        async with served.client.sse(served.base + "/loop") as source:
            with pytest.raises(TooManyRedirects):
                await source.__anext__()
    assert source.connections == 1 and source.closed


async def test_connection_failures_reconnect_up_to_the_bound(
    networking: Networking, client_tls_config: ClientTLSConfig
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Client(
        networking=networking, tls_config=client_tls_config, retries=0
    ) as client:
        with anyio.fail_after(20):
            source = client.sse(
                f"http://127.0.0.1:{port}/", retry_delay=0.01, max_reconnects=2
            )
            async with source:
                with pytest.raises(ConnectError):
                    await source.__anext__()
    assert source.connections == 3 and source.closed


async def test_leaving_early_and_bad_options(served: Served) -> None:
    with anyio.fail_after(20):
        async with served.client.sse(served.base + "/events") as source:
            before = source.response
            # Bounded: we leave after the first event.
            async for event in source:
                assert event.data == "first"
                break
            during = source.response
    assert source.url.target == "/events"
    assert before is None and during is not None and during.status == 200
    assert source.response is None and source.closed
    assert len(served.app.requests) == 1
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="max_reconnects"):
            served.client.sse(served.base, max_reconnects=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_delay"):
        served.client.sse(served.base, retry_delay=-1)
