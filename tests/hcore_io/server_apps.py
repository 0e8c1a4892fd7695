"""ASGI applications for the server tests, shaped like the common frameworks' apps.

:func:`app` routes by path:

- ``GET /``: ``hello``;
- ``GET /json``: the request's scope details as JSON;
- ``GET /stream/N``: ``N`` chunks of 1 KiB, streamed (``more_body``);
- ``GET /bytes/N``: ``N`` bytes in 64 KiB pieces;
- ``POST /echo``: the request body back, piece by piece;
- ``POST /digest``: the SHA-256 of the request body;
- ``POST /slow-reader``: the same, but it waits half a second after the
  first piece of the body before it reads on;
- ``GET /trailers``: a body then trailers (``x-checksum``);
- ``GET /crash``: raises before responding; ``GET /crash-late`` after the
  response began;
- ``GET /nothing``: returns without responding;
- ``GET /slow/S``: answers after ``S`` seconds;
- ``GET /forever``: streams chunks until the client goes away, and records
  how the send failed in :data:`EVENTS`;
- ``GET /wait-disconnect``: reads until ``http.disconnect``, recorded in
  :data:`EVENTS`;
- ``GET /state``: the lifespan state's ``started`` value;
- ``GET /starlette``: what Starlette does: ``is_disconnected()`` (a
  ``receive()`` in a cancelled scope), then a streaming response sent while
  another task listens for the disconnect, cancelled at the end.

Anything else: 404 JSON.  :func:`lifespan_app` wraps :func:`app` with a
lifespan that records startup and shutdown in :data:`EVENTS`.
"""

from __future__ import annotations

import hashlib
import json

import anyio

from hcore_io.server import ClientDisconnected, Message, Receive, Scope, Send

#: What the apps saw that tests check afterwards (appended, never cleared
#: by the apps).
EVENTS: list[str] = []


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    # Bounded by the request body.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("gone")
        body = message.get("body", b"")
        assert isinstance(body, bytes)
        chunks.append(body)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _scope_json(scope: Scope) -> bytes:
    headers = scope["headers"]
    assert isinstance(headers, list)
    shown = {
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": bytes(scope["raw_path"]).decode(),  # type: ignore[call-overload]
        "query_string": bytes(scope["query_string"]).decode(),  # type: ignore[call-overload]
        "root_path": scope["root_path"],
        "headers": [[n.decode(), v.decode()] for n, v in headers],
        "client": scope["client"],
        "server": scope["server"],
        "extensions": sorted(scope["extensions"]),  # type: ignore[call-overload]
    }
    return json.dumps(shown).encode()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The routing test application (see the module doc)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    assert isinstance(path, str)
    if path == "/":
        await _respond(send, 200, b"hello")
    elif path == "/json":
        await _respond(send, 200, _scope_json(scope), b"application/json")
    elif path.startswith("/stream/"):
        count = int(path.removeprefix("/stream/"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(count):
            chunk = bytes([65 + index % 26]) * 1024
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path.startswith("/bytes/"):
        size = int(path.removeprefix("/bytes/"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sent = 0
        # Bounded by size.
        while sent < size:
            piece = min(65536, size - sent)
            sent += piece
            await send(
                {"type": "http.response.body", "body": b"x" * piece, "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        # Bounded by the request body.
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            more = bool(message.get("more_body"))
            await send(
                {
                    "type": "http.response.body",
                    "body": message.get("body", b""),
                    "more_body": more,
                }
            )
            if not more:
                return
    elif path == "/slow-reader":
        opening = await receive()
        await anyio.sleep(0.5)
        head = opening.get("body", b"")
        assert isinstance(head, bytes)
        rest = await _read_body(receive) if opening.get("more_body") else b""
        await _respond(send, 200, hashlib.sha256(head + rest).hexdigest().encode())
    elif path == "/digest":
        body = await _read_body(receive)
        await _respond(send, 200, hashlib.sha256(body).hexdigest().encode())
    elif path == "/trailers":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"part1 ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2"})
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]}
        )
    elif path == "/crash":
        raise RuntimeError("the app crashed on purpose")
    elif path == "/crash-late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.body", "body": b"partial", "more_body": True}
        )
        raise RuntimeError("the app crashed mid-response on purpose")
    elif path == "/nothing":
        return
    elif path.startswith("/slow/"):
        await anyio.sleep(float(path.removeprefix("/slow/")))
        await _respond(send, 200, b"slow done")
    elif path == "/forever":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            # Bounded by the client, which goes away; the test's timeout else.
            while True:
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"z" * 16384,
                        "more_body": True,
                    }
                )
                await anyio.sleep(0.001)
        except ClientDisconnected:
            EVENTS.append("forever: ClientDisconnected")
    elif path == "/wait-disconnect":
        message = await receive()
        # Bounded: after the (empty) body only the disconnect comes.
        while message["type"] != "http.disconnect":
            message = await receive()
        EVENTS.append("wait-disconnect: http.disconnect")
    elif path == "/starlette":
        await _read_body(receive)
        checked: Message = {}
        with anyio.CancelScope() as cancelled:
            cancelled.cancel()
            checked = await receive()
        assert not checked, "a cancelled receive() returned"

        async def listen() -> None:
            # Bounded: ends at the disconnect (or is cancelled).
            while (await receive())["type"] != "http.disconnect":
                pass

        async with anyio.create_task_group() as group:
            group.start_soon(listen)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for word in (b"one ", b"two ", b"three"):
                await send(
                    {"type": "http.response.body", "body": word, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            group.cancel_scope.cancel()
    elif path == "/state":
        state = scope.get("state", {})
        assert isinstance(state, dict)
        await _respond(send, 200, str(state.get("started")).encode())
    else:
        await _respond(send, 404, b'{"error": "not found"}', b"application/json")


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """:func:`app` with a lifespan that records its steps in :data:`EVENTS`."""
    if scope["type"] != "lifespan":
        await app(scope, receive, send)
        return
    message: Message = await receive()
    assert message["type"] == "lifespan.startup"
    state = scope["state"]
    assert isinstance(state, dict)
    state["started"] = "yes"
    EVENTS.append("startup")
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    assert message["type"] == "lifespan.shutdown"
    EVENTS.append("shutdown")
    await send({"type": "lifespan.shutdown.complete"})


async def failing_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An app whose startup fails."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return
    await app(scope, receive, send)
