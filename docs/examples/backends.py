"""The same server and client on each networking backend and event loop.

For every pair of event loop (asyncio, Trio) and backend
(:class:`~hcore_io.networking.SystemNetworking`,
:class:`~hcore_io.networking.EpollNetworking`), an
:class:`~hcore_io.server.ASGIServer` and a
:class:`~hcore_io.client.Client` are made with ``networking=`` and one
request goes from one to the other.

Run it: ``python docs/examples/backends.py`` (Linux: epoll).
"""

from __future__ import annotations

import anyio

from hcore_io.client import Client
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import ASGIServer, Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})


def make_networking(name: str) -> SystemNetworking | EpollNetworking:
    if name == "epoll":
        return EpollNetworking()  # raises RuntimeError without epoll
    return SystemNetworking()


async def round_trip(loop: str, name: str) -> None:
    server = ASGIServer(app, networking=make_networking(name))
    async with anyio.create_task_group() as group:
        (endpoint,) = await group.start(server.serve, ["http://127.0.0.1:0"])
        async with Client(networking=make_networking(name)) as client:
            response = await client.get(f"{endpoint}/")
        print(f"{loop:8} {name:7} {response.content!r}")
        await server.shutdown()


if __name__ == "__main__":
    for loop in ("asyncio", "trio"):
        for name in ("system", "epoll"):
            anyio.run(round_trip, loop, name, backend=loop)
