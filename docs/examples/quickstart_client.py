"""A 30-line client: fetch URLs concurrently with the pooled client.

    python docs/examples/quickstart_client.py http://127.0.0.1:8000/hello

HTTP/2 is negotiated by ALPN on ``https`` URLs, and requests to one origin
share its connections.
"""

from __future__ import annotations

import sys

import anyio

from hcore_io.client import Client


async def fetch(client: Client, url: str) -> None:
    response = await client.get(url)
    text = (await response.aread()).decode().strip()
    print(response.status, f"HTTP/{response.http_version}", text)


async def main(urls: list[str]) -> None:
    async with Client() as client, anyio.create_task_group() as group:
        for url in urls:
            group.start_soon(fetch, client, url)
    print(client.pool.metrics.created, "connection(s) opened")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
