"""A 30-line server: an ASGI application served over HTTP/1.1 and HTTP/2.

Run it, then fetch from the address it prints::

    python docs/examples/quickstart_server.py
    curl --http2-prior-knowledge http://127.0.0.1:8000/hello
"""

from __future__ import annotations

import sys

import anyio

from hcore_io.server import ASGIServer, Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Greet whoever asks, naming the HTTP version they asked with."""
    if scope["type"] != "http":
        return  # this app does not use the lifespan events
    body = f"hello over HTTP/{scope['http_version']}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def main(port: int) -> None:
    server = ASGIServer(app)
    async with anyio.create_task_group() as group:
        endpoints = await group.start(server.serve, [f"http://127.0.0.1:{port}"])
        print(f"serving on {endpoints[0]}", flush=True)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
