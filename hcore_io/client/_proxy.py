"""ProxyNetworking: every TCP connection as a CONNECT tunnel through a proxy.

The tunnel is asked for with an HTTP/1.1 ``CONNECT`` on a connection to the
proxy (RFC 9110 §9.3.6); after its 2xx the stream's data is the raw byte
stream to the origin, wrapped as an AnyIO byte stream, so that a TLS
connection to the origin runs its handshake inside the tunnel (AnyIO's
``TLSStream`` wraps any byte stream).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import ByteStream

from hcore import Address, ClientTLSConfig, HCoreError, Headers
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore_io._exceptions import ConnectError, ConnectTimeout, NetworkError
from hcore_io.client._models import URL
from hcore_io.client._networking import NetworkingWrapper
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.networking import ClientNetworking, DatagramStream, start_tls

__all__ = ("ProxyNetworking",)


class _TunnelStream(ByteStream):
    """The bytes of a ``CONNECT`` tunnel, as a byte stream."""

    def __init__(self, connection: HTTPConnection, stream: HTTPStream) -> None:
        self._connection = connection
        self._stream = stream
        self._eof = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        # Bounded: each event is either data (returned) or the end.
        while not self._eof:
            try:
                event = await self._stream.receive_event()
            except NetworkError as exc:
                raise anyio.EndOfStream from exc
            except HCoreError as exc:
                raise anyio.BrokenResourceError(str(exc)) from exc
            if not isinstance(event, DataReceived):
                raise anyio.BrokenResourceError(f"tunnel ended with {event!r}")
            self._eof = event.end_stream
            if event.data:
                return event.data
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        try:
            await self._stream.send_data(item)
        except HCoreError as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc

    async def send_eof(self) -> None:
        try:
            await self._stream.send_data(b"", end_stream=True)
        except HCoreError as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()
        await self._connection.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._connection.extra_attributes


class ProxyNetworking(NetworkingWrapper):
    """Opens TCP connections as ``CONNECT`` tunnels through an HTTP proxy.

    :param networking: the backend that reaches the proxy.
    :param proxy: the proxy's URL (``http://`` or ``https://``).
    :param proxy_tls_config: how to verify an ``https`` proxy.
    :param proxy_headers: extra fields for the ``CONNECT`` request
        (``proxy-authorization``).
    """

    def __init__(
        self,
        networking: ClientNetworking,
        proxy: URL,
        *,
        proxy_tls_config: ClientTLSConfig | None = None,
        proxy_headers: Headers = (),
    ) -> None:
        super().__init__(networking)
        self._proxy = proxy
        self._proxy_tls = proxy_tls_config or ClientTLSConfig()
        self._proxy_headers = tuple(proxy_headers)

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Open a tunnel to ``address`` through the proxy.

        :raises hcore_io.ConnectError: if the proxy cannot be reached or
            refuses the tunnel.
        :raises hcore_io.ConnectTimeout: if ``timeout`` passed first.
        """
        try:
            with anyio.fail_after(timeout):
                return await self._tunnel(address)
        except TimeoutError as exc:
            raise ConnectTimeout(f"tunnelling to {address!r} timed out") from exc

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Open a tunnel, then a TLS session with the origin inside it."""
        try:
            with anyio.fail_after(timeout):
                tunnel = await self._tunnel(address)
                return await start_tls(
                    tunnel,
                    server_name=server_name or address[0].strip("[]"),
                    tls_config=tls_config,
                    alpn_protocols=alpn_protocols,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(f"tunnelling to {address!r} timed out") from exc

    async def connect_udp(self, address: Address) -> DatagramStream:
        """Refused: a ``CONNECT`` tunnel carries TCP only.

        :raises hcore_io.ConnectError: always.
        """
        raise ConnectError("UDP (HTTP/3) cannot go through an HTTP CONNECT proxy")

    async def _tunnel(self, address: Address) -> ByteStream:
        proxy = self._proxy.origin
        if proxy.scheme == "https":
            stream = await self._networking.connect_tcp_tls(
                (proxy.host, proxy.port),
                tls_config=self._proxy_tls,
                alpn_protocols=("http/1.1",),
            )
        else:
            stream = await self._networking.connect_tcp((proxy.host, proxy.port))
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        connection = HTTPConnection(HTTP1ClientFactory()(), stream)
        try:
            await connection.open()
            tunnel = await connection.open_stream(
                (
                    (b":method", b"CONNECT"),
                    (b":authority", f"{host}:{address[1]}".encode()),
                    *self._proxy_headers,
                )
            )
            event = await tunnel.receive_event()
            status = (
                dict(event.headers).get(b":status", b"")
                if isinstance(event, HeadersReceived)
                else b""
            )
            if not status.startswith(b"2"):
                raise ConnectError(
                    f"proxy {self._proxy} refused the tunnel to {address!r}: "
                    f"{status.decode(errors='replace') or event!r}"
                )
        except BaseException as exc:
            await connection.aclose()
            if isinstance(exc, HCoreError) and not isinstance(exc, ConnectError):
                raise ConnectError(f"proxy {self._proxy} failed: {exc}") from exc
            raise
        return _TunnelStream(connection, tunnel)
