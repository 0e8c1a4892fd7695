"""In-memory HTTP/2 protocol benchmark: the server and the client, each alone.

No sockets and no event loop.  A registered HTTP/2 client and server
protocol (``h2`` by default) first run against each other in memory for
``--requests`` GETs of the shape ``h2load`` sends, ``--streams`` at a time
on one connection, the server answering each with a 13-byte body; every
chunk of bytes each side sends is recorded.  Then each side is timed alone,
replaying the other side's recorded bytes into a fresh protocol and making
the same calls, so the figure is that side's CPU per request (protocols are
deterministic, so a replay produces the same bytes and events).  Prints the
best of ``--runs`` in requests/s and CPU µs per request (``process_time``,
which a busy machine disturbs less than the wall clock), and writes the
table as JSON to ``bench/results/http2_protocol.json``.

Identical header blocks are what h2load sends, and HPACK codes them from
its dynamic table alone; ``--vary`` gives every response a distinct
``x-request-id`` so that each one also carries a new literal field.

Usage (from the repository root)::

    python bench/http2_protocol.py [--requests 20000] [--streams 1 16] [--runs 3]
                                   [--vary]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hcore.events import HeadersReceived
from hcore.protocols import HTTPOverTCPFactory, HTTPOverTCPProtocol, default_registry

RESULTS = Path(__file__).resolve().parent / "results" / "http2_protocol.json"
GET = (
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"localhost:8000"),
    (b":path", b"/hello"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
    (b"accept", b"*/*"),
)
RESPONSE = (
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
)
BODY = b"Hello, world!"


@dataclass
class Recording:
    """What each side sent, round by round, in one exchange of requests."""

    #: Per round: the client's bytes (requests), then the server's (answers).
    client: list[bytes] = field(default_factory=list)
    server: list[bytes] = field(default_factory=list)
    #: Per round: how many requests the client submitted.
    batches: list[int] = field(default_factory=list)


def _drain(protocol: HTTPOverTCPProtocol) -> list[HeadersReceived]:
    """Take every pending event; return the header blocks among them."""
    heads = []
    while (event := protocol.next_event()) is not None:
        if isinstance(event, HeadersReceived):
            heads.append(event)
    return heads


def _client_round(client: HTTPOverTCPProtocol, count: int) -> None:
    for _ in range(count):
        stream_id = client.get_available_stream_id()
        client.submit_headers(stream_id, GET, end_stream=True)


def _server_round(server: HTTPOverTCPProtocol, vary: bool = False) -> int:
    answered = 0
    for event in _drain(server):
        if vary:
            # Stream ids never repeat on a connection, so neither does this.
            request_id = (b"x-request-id", b"%08d" % event.stream_id)
            server.submit_headers(event.stream_id, (*RESPONSE, request_id))
        else:
            server.submit_headers(event.stream_id, RESPONSE)
        server.submit_data(event.stream_id, BODY, end_stream=True)
        answered += 1
    return answered


def record(
    client_factory: HTTPOverTCPFactory,
    server_factory: HTTPOverTCPFactory,
    requests: int,
    streams: int,
    vary: bool = False,
) -> Recording:
    """Run client and server against each other, recording their bytes."""
    client, server = client_factory(), server_factory()
    recording = Recording()
    # The connection preface and SETTINGS both ways, then their ACKs.
    for _ in range(2):
        recording.client.append(client.bytes_to_send())
        recording.batches.append(0)
        server.bytes_received(recording.client[-1])
        _drain(server)
        recording.server.append(server.bytes_to_send())
        client.bytes_received(recording.server[-1])
        _drain(client)
    left = requests
    while left:
        count = min(streams, left)
        _client_round(client, count)
        recording.client.append(client.bytes_to_send())
        recording.batches.append(count)
        server.bytes_received(recording.client[-1])
        assert _server_round(server, vary) == count
        recording.server.append(server.bytes_to_send())
        client.bytes_received(recording.server[-1])
        _drain(client)
        left -= count
    return recording


def time_server(
    factory: HTTPOverTCPFactory, recording: Recording, vary: bool = False
) -> float:
    """Replay the client's bytes into a fresh server; return CPU seconds."""
    server = factory()
    started = time.process_time()
    for data in recording.client:
        server.bytes_received(data)
        _server_round(server, vary)
        server.bytes_to_send()
    return time.process_time() - started


def time_client(
    factory: HTTPOverTCPFactory, recording: Recording, vary: bool = False
) -> float:
    """Replay the server's bytes into a fresh client; return CPU seconds.

    ``vary`` is taken for symmetry: the recorded bytes already carry it.
    """
    client = factory()
    started = time.process_time()
    for count, data in zip(recording.batches, recording.server, strict=True):
        _client_round(client, count)
        client.bytes_to_send()
        client.bytes_received(data)
        _drain(client)
    return time.process_time() - started


def main() -> int:
    """Measure, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--implementation", default="h2")
    parser.add_argument(
        "--vary", action="store_true", help="a distinct header in every response"
    )
    args = parser.parse_args()
    entry = default_registry.get("2", args.implementation)
    client_factory = cast(HTTPOverTCPFactory, entry.client())
    server_factory = cast(HTTPOverTCPFactory, entry.server())
    rows = []
    print(f"{'side':<8}{'streams':>8}{'req/s':>12}{'CPU us/req':>12}")
    for streams in args.streams:
        recording = record(
            client_factory, server_factory, args.requests, streams, args.vary
        )
        for side, timer, factory in (
            ("server", time_server, server_factory),
            ("client", time_client, client_factory),
        ):
            best = min(timer(factory, recording, args.vary) for _ in range(args.runs))
            per_request = best / args.requests * 1e6
            rows.append(
                {
                    "implementation": args.implementation,
                    "side": side,
                    "streams": streams,
                    "vary": args.vary,
                    "requests_per_s": round(args.requests / best),
                    "cpu_us_per_request": round(per_request, 2),
                }
            )
            print(
                f"{side:<8}{streams:>8}{args.requests / best:>12.0f}"
                f"{per_request:>12.2f}"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"requests": args.requests, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
