"""An ASGI server's limits, answers and graceful shutdown, seen by a client.

The server runs in process on ``http://127.0.0.1`` with small limits; a
client runs into each of them (413, 431, 503), then a request is in flight
when the server shuts down gracefully: it finishes, and the server stops.
The access log (logger ``hcore.access``) goes to stdout.

Run it: ``python docs/examples/server_limits.py``.
"""

from __future__ import annotations

import logging
import sys

import anyio

from hcore import HCoreError
from hcore_io.client import Client
from hcore_io.server import ASGIServer, Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Says hello (``/slow``: after half a second); speaks lifespan."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                print("app: started")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print("app: stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await anyio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def make_server() -> ASGIServer:
    return ASGIServer(
        app,
        max_body_size=1024,  # larger request bodies get 413
        max_header_size=4096,  # larger request heads get 431
        max_connections=1,  # connections beyond get 503
        keep_alive_timeout=5.0,  # idle connections closed after 5 s
        shutdown_timeout=10.0,  # requests in flight get 10 s at shutdown
    )


async def limits(server: ASGIServer, base: str) -> None:
    async with Client(http_versions=("1.1",)) as client:
        response = await client.post(f"{base}/", content=b"x" * 2048)
        print("body of 2048 bytes:", response.status, response.content)
        response = await client.get(f"{base}/", headers=[(b"x-big", b"y" * 8192)])
        print("head of 8 KiB:", response.status, response.content)
    for _ in range(500):  # until the server has seen that connection close
        if not server.connection_count:
            break
        await anyio.sleep(0.01)
    async with Client() as first, Client() as second:
        response = await first.get(f"{base}/")
        print("first connection:", response.status)
        # The first client keeps its connection open (idle): the only one
        # the server takes, so the second client's connection is refused.
        response = await second.get(f"{base}/")
        print("second connection:", response.status, response.headers)


async def graceful_shutdown(server: ASGIServer, base: str) -> None:
    async def slow_request() -> None:
        async with Client() as client:
            response = await client.get(f"{base}/slow")
            print("request in flight at shutdown:", response.status)

    async with anyio.create_task_group() as group:
        group.start_soon(slow_request)
        await anyio.sleep(0.1)  # the request has arrived
        await server.shutdown()  # returns once the server has stopped
    try:
        async with Client(retries=0) as client:
            await client.get(f"{base}/")
    except HCoreError as exc:
        print("after shutdown:", type(exc).__name__)


async def main() -> None:
    server = make_server()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            (endpoint,) = await group.start(server.serve, ["http://127.0.0.1:0"])
            await limits(server, str(endpoint))
            await graceful_shutdown(server, str(endpoint))


if __name__ == "__main__":
    logging.basicConfig(format="%(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("hcore.access").setLevel(logging.INFO)
    anyio.run(main)
