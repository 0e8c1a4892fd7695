"""ProxyServer: HTTP CONNECT tunnels over HTTP/1.1, HTTP/2 and HTTP/3.

A client asks for a tunnel with ``CONNECT host:port`` (RFC 9110 §9.3.6; over
HTTP/2 RFC 9113 §8.5, over HTTP/3 RFC 9114 §4.4).  The proxy opens a TCP
connection there, answers 200, and from then on copies bytes both ways: the
stream's data to the target, the target's bytes back as data.  The
client's end of the stream half-closes the target connection; the target's
end ends the stream.  A reset of the stream, or a failed target
connection, ends the tunnel at once (the stream is reset with
``CONNECT_ERROR`` when the target failed).

Anything but CONNECT gets 405; an authority that is not ``host:port`` 400;
a port not allowed 403; a target that cannot be reached 502 (504 when
connecting timed out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

import anyio
from anyio.abc import ByteStream

from hcore import Address, HCoreError, Headers, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived, TrailersReceived
from hcore_io._exceptions import NetworkError
from hcore_io._limits import Limits, resolve_limits
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.networking import ServerNetworking, TCPClientNetworking
from hcore_io.server._base import HTTPServer

__all__ = ("ProxyServer", "parse_authority")

logger = logging.getLogger("hcore.server")
access_logger = logging.getLogger("hcore.access")

_READ_SIZE = 65536
_REMOTE_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


def parse_authority(authority: bytes) -> Address | None:
    """Split a CONNECT target (``host:port``, ``[v6]:port``) into host and port.

    :return: the address, or ``None`` if the authority is malformed.
    """
    try:
        text = authority.decode("ascii")
    except UnicodeDecodeError:
        return None
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not host:
        return None
    if host.startswith("["):
        if not host.endswith("]"):
            return None
        host = host[1:-1]
    elif ":" in host:
        return None
    number = int(port)
    if not 0 < number < 65536:
        return None
    return (host, number)


class _Context:
    __slots__ = ("client", "http_version")

    def __init__(self, http_version: str, client: Address | None) -> None:
        self.http_version = http_version
        self.client = client


class ProxyServer(HTTPServer[_Context]):
    """A tunnelling proxy: CONNECT over HTTP/1.1, HTTP/2 and HTTP/3.

    Run it like :class:`~hcore_io.server.ASGIServer`: ``await
    proxy.serve(endpoints)`` until :meth:`shutdown`.

    :param client_networking: opens the connections to the targets;
        :class:`~hcore_io.networking.SystemNetworking` if omitted.
    :param limits: every bound (:class:`~hcore_io.Limits`); its defaults
        if omitted.  The limit keyword arguments override its fields when
        given (not ``None``).
    :param connect_timeout: overrides ``limits.connect_timeout``: seconds to
        reach a target.
    :param allowed_ports: target ports clients may ask for; any if ``None``.

    The other parameters are :class:`~hcore_io.server.HTTPServer`'s.
    """

    def __init__(
        self,
        *,
        tls_config: ServerTLSConfig | None = None,
        networking: ServerNetworking | None = None,
        client_networking: TCPClientNetworking | None = None,
        http1: bool = True,
        http2: bool = True,
        http3: bool = True,
        limits: Limits | None = None,
        max_connections: int | None = None,
        max_concurrent_streams: int | None = None,
        max_header_size: int | None = None,
        keep_alive_timeout: float | None = None,
        request_header_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        connect_timeout: float | None = None,
        allowed_ports: Collection[int] | None = None,
        max_buffered_data: int | None = None,
    ) -> None:
        super().__init__(
            tls_config=tls_config,
            networking=networking,
            http1=http1,
            http2=http2,
            http3=http3,
            limits=resolve_limits(
                limits,
                max_connections=max_connections,
                max_concurrent_streams=max_concurrent_streams,
                max_header_size=max_header_size,
                keep_alive_timeout=keep_alive_timeout,
                request_header_timeout=request_header_timeout,
                shutdown_timeout=shutdown_timeout,
                connect_timeout=connect_timeout,
                max_buffered_data=max_buffered_data,
            ),
        )
        self._client_networking = client_networking
        self._connect_timeout = self.limits.connect_timeout
        self._allowed_ports = (
            None if allowed_ports is None else frozenset(allowed_ports)
        )

    def _context(
        self, connection: HTTPConnection, extra_headers: tuple[tuple[bytes, bytes], ...]
    ) -> _Context:
        return _Context(connection.http_version, connection.remote_address)

    async def _serve_stream(
        self, stream: HTTPStream, request: HeadersReceived, context: _Context
    ) -> None:
        async with stream:
            await self._tunnel(stream, request.headers, context)

    async def _tunnel(
        self, stream: HTTPStream, headers: Headers, context: _Context
    ) -> None:
        fields = dict(headers)
        authority = fields.get(b":authority", b"")
        started = time.time()
        sent = [0]

        def log(status: int) -> None:
            if access_logger.isEnabledFor(logging.INFO):
                client = context.client[0] if context.client else "-"
                when = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(started))
                access_logger.info(
                    '%s - - [%s] "%s %s HTTP/%s" %d %s',
                    client,
                    when,
                    fields.get(b":method", b"-").decode("latin-1"),
                    authority.decode("latin-1"),
                    context.http_version,
                    status,
                    sent[0] or "-",
                )

        if fields.get(b":method") != b"CONNECT" or b":protocol" in fields:
            await _answer(stream, 405, ((b"allow", b"CONNECT"),))
            log(405)
            return
        target = parse_authority(authority)
        if target is None:
            await _answer(stream, 400)
            log(400)
            return
        if self._allowed_ports is not None and target[1] not in self._allowed_ports:
            await _answer(stream, 403)
            log(403)
            return
        networking = self._client_networking
        if networking is None:
            from hcore_io.networking import SystemNetworking

            networking = self._client_networking = SystemNetworking()
        try:
            remote = await networking.connect_tcp(target, timeout=self._connect_timeout)
        except TimeoutError:
            await _answer(stream, 504)
            log(504)
            return
        except NetworkError as exc:
            logger.info("cannot reach %s:%d: %s", target[0], target[1], exc)
            await _answer(stream, 502)
            log(502)
            return
        async with remote:
            try:
                await stream.send_headers(((b":status", b"200"),))
            except (HCoreError, NetworkError):
                log(499)
                return
            await _relay(stream, remote, sent)
        log(200)


async def _answer(stream: HTTPStream, status: int, extra: Headers = ()) -> None:
    try:
        await stream.send_headers(
            ((b":status", b"%d" % status), (b"content-length", b"0"), *extra),
            end_stream=True,
        )
    except (HCoreError, NetworkError):
        pass


async def _relay(stream: HTTPStream, remote: ByteStream, sent: list[int]) -> None:
    """Copy bytes both ways until both sides ended, or either failed."""
    async with anyio.create_task_group() as group:

        async def to_remote() -> None:
            try:
                # Bounded by what the client sends.
                async for event in stream:
                    if isinstance(event, DataReceived):
                        if event.data:
                            await remote.send(event.data)
                        if event.end_stream:
                            break
                    elif not isinstance(event, TrailersReceived):
                        # A reset, or a GOAWAY that refused the stream.
                        group.cancel_scope.cancel()
                        return
                await remote.send_eof()
            except (HCoreError, NetworkError, *_REMOTE_ERRORS):
                group.cancel_scope.cancel()

        async def to_client() -> None:
            try:
                # Bounded by what the target sends.
                while True:
                    try:
                        data = await remote.receive(_READ_SIZE)
                    except anyio.EndOfStream:
                        await stream.send_data(b"", end_stream=True)
                        if not stream.connection.multiplexed:
                            # HTTP/1.1 ends a tunnel only by closing the
                            # connection (RFC 9110 §9.3.6), which closing
                            # the unfinished stream does.
                            group.cancel_scope.cancel()
                        return
                    await stream.send_data(data)
                    sent[0] += len(data)
            except _REMOTE_ERRORS:
                try:
                    await stream.send_stream_reset(
                        stream.connection.error_codes.connect_error
                    )
                except (HCoreError, NetworkError):
                    pass
                group.cancel_scope.cancel()
            except (HCoreError, NetworkError):
                group.cancel_scope.cancel()

        group.start_soon(to_remote)
        group.start_soon(to_client)
