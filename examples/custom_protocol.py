"""Your own protocol implementation, registered and used by a listener.

:class:`LoggingProtocol` is an :class:`~hcore.protocols.HTTPOverTCPProtocol`
that wraps another one (ours, here) and logs every event it emits and every
call the application makes.  It is registered in the protocol registry
under the name ``"logging"`` for HTTP/1.1 and HTTP/2, and a server picks it
by that name, exactly as it would pick ``"h11"`` or ``"h2"``: the I/O layer
only ever talks to the protocol interfaces::

    python examples/custom_protocol.py --self-test

The self-test serves HTTP/1.1 and HTTP/2 (h2c) on one port with the logging
implementation and sends one request over each.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import anyio

from hcore import Headers, HTTPErrorCodes
from hcore.events import DataReceived, Event
from hcore.protocols import (
    HTTPOverTCPFactory,
    HTTPOverTCPProtocol,
    ProtocolRegistry,
    default_registry,
)
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import MemoryNetworking

Log = Callable[[str], None]


class LoggingProtocol(HTTPOverTCPProtocol):
    """Delegates everything to another protocol, logging events and submissions.

    :param inner: the protocol that does the work.
    :param log: where the lines go.
    """

    def __init__(self, inner: HTTPOverTCPProtocol, log: Log) -> None:
        self._inner = inner
        self._log = log

    # What the application sees: logged.

    def next_event(self) -> Event | None:
        event = self._inner.next_event()
        if event is not None:
            self._log(f"HTTP/{self.http_version} event  {event!r}")
        return event

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        self._log(f"HTTP/{self.http_version} submit headers {stream_id} {headers!r}")
        self._inner.submit_headers(stream_id, headers, end_stream)

    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        self._log(f"HTTP/{self.http_version} submit {len(data)} bytes on {stream_id}")
        self._inner.submit_data(stream_id, data, end_stream)

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        self._log(f"HTTP/{self.http_version} submit reset {stream_id} ({error_code})")
        self._inner.submit_stream_reset(stream_id, error_code)

    def submit_close(self, error_code: int = 0) -> None:
        self._log(f"HTTP/{self.http_version} submit close ({error_code})")
        self._inner.submit_close(error_code)

    # Everything else: passed through.

    @property
    def http_version(self) -> str:
        return self._inner.http_version

    @property
    def multiplexed(self) -> bool:
        return self._inner.multiplexed

    @property
    def error_codes(self) -> HTTPErrorCodes:
        return self._inner.error_codes

    def is_available(self) -> bool:
        return self._inner.is_available()

    def has_expired(self) -> bool:
        return self._inner.has_expired()

    def get_available_stream_id(self) -> int:
        return self._inner.get_available_stream_id()

    def pending_data_size(self, stream_id: int) -> int:
        return self._inner.pending_data_size(stream_id)

    def bytes_received(self, data: bytes) -> None:
        self._inner.bytes_received(data)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def connection_lost(self) -> None:
        self._inner.connection_lost()

    def bytes_to_send(self) -> bytes:
        return self._inner.bytes_to_send()


class LoggingFactory(HTTPOverTCPFactory):
    """Makes :class:`LoggingProtocol` around the protocols of another factory."""

    def __init__(self, inner: HTTPOverTCPFactory, log: Log = print) -> None:
        self._inner = inner
        self._log = log

    @property
    def alpn_protocols(self) -> Sequence[str]:
        return self._inner.alpn_protocols

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        inner = self._inner(tls_version=tls_version, alpn_protocol=alpn_protocol)
        return LoggingProtocol(inner, self._log)


def register(log: Log = print, registry: ProtocolRegistry = default_registry) -> None:
    """Register the logging implementation of HTTP/1.1 and HTTP/2 as ``"logging"``.

    It wraps the implementations registered as ``"h11"`` and ``"h2"``; the
    defaults of each version stay as they were.
    """
    for version, wrapped in (("1.1", "h11"), ("2", "h2")):

        def client(version: str = version, wrapped: str = wrapped) -> LoggingFactory:
            return LoggingFactory(registry.tcp_client_factory(version, wrapped), log)

        def server(version: str = version, wrapped: str = wrapped) -> LoggingFactory:
            return LoggingFactory(registry.tcp_server_factory(version, wrapped), log)

        registry.register(
            version, "logging", client=client, server=server, replace=True
        )


async def self_test() -> str:
    """Serve with the registered logging implementation; one request per version.

    :return: the log.
    """
    lines: list[str] = []
    register(lines.append)
    # Picked by name from the registry, like any implementation.
    factory = PriorKnowledgeHTTPFactory(
        default_registry.tcp_server_factory("1.1", "logging"),
        default_registry.tcp_server_factory("2", "logging"),
    )
    net = MemoryNetworking()
    listener = await HTTPOverTCPListener.create(
        factory, net, local_address=("127.0.0.1", 8080)
    )

    async def hello(connection: HTTPConnection) -> None:
        while (stream := await connection.accept_stream()) is not None:
            async with stream:
                async for _ in stream:  # the request
                    pass
                await stream.send_headers([(b":status", b"200")])
                await stream.send_data(b"hello", end_stream=True)

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, hello)
        for client_factory in (HTTP1ClientFactory(), HTTP2ClientFactory()):
            opener = HTTPOverTCPOpener(client_factory, networking=net)
            async with await opener(("127.0.0.1", 8080), tls=False) as connection:
                stream = await connection.open_stream(
                    [
                        (b":method", b"GET"),
                        (b":scheme", b"http"),
                        (b":authority", b"127.0.0.1:8080"),
                        (b":path", b"/"),
                    ],
                    end_stream=True,
                )
                body = b"".join(
                    [e.data async for e in stream if isinstance(e, DataReceived)]
                )
                assert body == b"hello"
        await listener.aclose()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--self-test", action="store_true", required=True)
    args = parser.parse_args(argv)
    print(anyio.run(self_test, backend=args.backend), end="")


if __name__ == "__main__":
    main()
