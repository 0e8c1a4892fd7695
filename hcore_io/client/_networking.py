"""Networking wrappers the client stacks on any backend.

- :class:`HappyEyeballsNetworking` resolves a host name itself and races
  its addresses, families interleaved, each attempt started 250 ms after the
  previous one unless that one failed sooner; the first to connect wins
  (RFC 8305 §4, §5).
- :class:`CountingNetworking` counts the bytes each stream carries, for the
  pool's per-connection metrics.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import anyio
from anyio.abc import ByteStream, UnreliableObjectStream

from hcore import Address, ClientTLSConfig, Datagram
from hcore_io._exceptions import ConnectError, ConnectTimeout, NetworkError
from hcore_io.client._metrics import ConnectionMetrics
from hcore_io.networking import ClientNetworking, DatagramStream

__all__ = (
    "CountingNetworking",
    "HappyEyeballsNetworking",
    "NetworkingWrapper",
    "Resolver",
    "system_resolver",
)


class Resolver(Protocol):
    """Resolves a host name to IP addresses, for :class:`HappyEyeballsNetworking`."""

    def __call__(self, host: str, port: int, /) -> Awaitable[Sequence[str]]:
        """Return the addresses of ``host`` (IPv4 and IPv6, in preference order).

        :raises hcore_io.ConnectError: if the name cannot be resolved.
        """
        ...


# RFC 8305 §5: "Connection Attempt Delay" recommended default.
_ATTEMPT_DELAY = 0.25


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve with the system's resolver (``getaddrinfo``), without duplicates.

    :raises hcore_io.ConnectError: if the name cannot be resolved.
    """
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def interleave_families(addresses: Sequence[str]) -> list[str]:
    """Order addresses alternating families, each in its order (RFC 8305 §4)."""
    v6 = [a for a in addresses if ":" in a]
    v4 = [a for a in addresses if ":" not in a]
    first, second = (v6, v4) if (v6 and addresses[0] in v6) else (v4, v6)
    ordered: list[str] = []
    for index in range(max(len(first), len(second))):
        ordered.extend(group[index] for group in (first, second) if index < len(group))
    return ordered


class NetworkingWrapper(ClientNetworking):
    """Delegates everything to another backend."""

    def __init__(self, networking: ClientNetworking) -> None:
        self._networking = networking

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        return await self._networking.connect_tcp(address, timeout=timeout)

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        return await self._networking.connect_tcp_tls(
            address,
            server_name=server_name,
            tls_config=tls_config,
            alpn_protocols=alpn_protocols,
            timeout=timeout,
        )

    async def connect_udp(self, address: Address) -> DatagramStream:
        return await self._networking.connect_udp(address)


class HappyEyeballsNetworking(NetworkingWrapper):
    """Connects to every address of a name in a staggered race (RFC 8305).

    IP literals go straight to the wrapped backend.  A name is resolved with
    ``resolver``; its addresses are tried families interleaved, a new
    attempt starting when the previous one failed or after ``delay``
    seconds; the first connection made (TLS handshake included) wins and the
    others are cancelled.  UDP is passed through.

    :param networking: the backend that connects to each address.
    :param resolver: resolves names; the system's resolver if omitted.
    :param delay: seconds between attempts (RFC 8305 §5 recommends 0.25).
    """

    def __init__(
        self,
        networking: ClientNetworking,
        *,
        resolver: Resolver | None = None,
        delay: float = _ATTEMPT_DELAY,
    ) -> None:
        super().__init__(networking)
        self._resolver = resolver or system_resolver
        self._delay = delay
        #: The address each name last connected to (for tests and logs).
        self.last_connected: dict[str, str] = {}

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Race the addresses of ``address``'s host; see the class."""

        async def connect(target: Address) -> ByteStream:
            return await self._networking.connect_tcp(target)

        return await self._race(address, connect, timeout)

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Race the addresses, each attempt with its TLS handshake; see the class."""
        name = server_name or address[0].strip("[]")

        async def connect(target: Address) -> ByteStream:
            return await self._networking.connect_tcp_tls(
                target,
                server_name=name,
                tls_config=tls_config,
                alpn_protocols=alpn_protocols,
            )

        return await self._race(address, connect, timeout)

    async def _race(
        self,
        address: Address,
        connect: Callable[[Address], Awaitable[ByteStream]],
        timeout: float | None,  # noqa: ASYNC109
    ) -> ByteStream:
        host, port = address
        try:
            with anyio.fail_after(timeout):
                if _is_ip(host):
                    return await connect(address)
                candidates = interleave_families(await self._resolver(host, port))
                if not candidates:
                    raise ConnectError(f"{host!r} has no address")
                stream = await self._staggered(host, candidates, port, connect)
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {address!r} timed out") from exc
        return stream

    async def _staggered(
        self,
        name: str,
        candidates: Sequence[str],
        port: int,
        connect: Callable[[Address], Awaitable[ByteStream]],
    ) -> ByteStream:
        winner: list[tuple[str, ByteStream]] = []
        errors: list[Exception] = []

        async def attempt(host: str, failed: anyio.Event) -> None:
            try:
                stream = await connect((host, port))
            except Exception as exc:
                # Kept, not raised: a task group would wrap it in a group.
                errors.append(exc)
                failed.set()
                return
            if winner:
                await anyio.aclose_forcefully(stream)
                return
            winner.append((host, stream))
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            # RFC 8305 §5: start the next attempt when the previous one
            # failed or the delay passed, whichever comes first.
            for host in candidates:
                failed = anyio.Event()
                group.start_soon(attempt, host, failed)
                with anyio.move_on_after(self._delay):
                    await failed.wait()
        if not winner:
            for error in errors:
                if not isinstance(error, NetworkError):
                    raise error
            summary = "; ".join(str(error) for error in errors)
            raise ConnectError(f"every address failed: {summary}") from (
                errors[-1] if errors else None
            )
        host, stream = winner[0]
        self.last_connected[name] = host
        return stream


class _CountingByteStream(ByteStream):
    def __init__(
        self, stream: ByteStream, metrics: ConnectionMetrics, received: anyio.Event
    ) -> None:
        self._stream = stream
        self._metrics = metrics
        self._received = received
        # Whether ``received`` was set (setting it again costs on every read).
        self._heard = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._stream.receive(max_bytes)
        self._metrics.bytes_received += len(data)
        if not self._heard:
            self._heard = True
            self._received.set()
        return data

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)
        self._metrics.bytes_sent += len(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes


class _CountingUnsentByteStream(_CountingByteStream):
    """A counting stream over one whose interrupted send tells what it left.

    The connection layer finishes a cancelled write with that rest instead
    of shielding every write (a cancel scope each); hiding the attribute
    behind the wrapper would cost the pool's connections that.
    """

    async def send(self, item: bytes) -> None:
        try:
            await self._stream.send(item)
        except BaseException:
            # What left before the interruption counts too (the connection
            # layer sends the rest, counted then).
            unsent: bytes | memoryview = self._stream.unsent  # type: ignore[attr-defined]
            self._metrics.bytes_sent += len(item) - len(unsent)
            raise
        self._metrics.bytes_sent += len(item)

    def send_nowait(self, item: bytes) -> int:
        """The wrapped stream's ``send_nowait``: what the socket took at once.

        ``0`` (take the waiting ``send``) if the wrapped stream has none.
        """
        send = getattr(self._stream, "send_nowait", None)
        if send is None:
            return 0
        sent: int = send(item)
        self._metrics.bytes_sent += sent
        return sent

    @property
    def unsent(self) -> bytes | memoryview:
        """The wrapped stream's ``unsent``: what its interrupted send left."""
        unsent: bytes | memoryview = self._stream.unsent  # type: ignore[attr-defined]
        return unsent

    @unsent.setter
    def unsent(self, value: bytes | memoryview) -> None:
        self._stream.unsent = value  # type: ignore[attr-defined]


def _counting(
    stream: ByteStream, metrics: ConnectionMetrics, received: anyio.Event
) -> ByteStream:
    if hasattr(stream, "unsent"):
        return _CountingUnsentByteStream(stream, metrics, received)
    return _CountingByteStream(stream, metrics, received)


class _CountingDatagramStream(UnreliableObjectStream[Datagram]):
    def __init__(
        self, stream: DatagramStream, metrics: ConnectionMetrics, received: anyio.Event
    ) -> None:
        self._stream = stream
        self._metrics = metrics
        self._received = received

    async def receive(self) -> Datagram:
        datagram = await self._stream.receive()
        self._metrics.bytes_received += len(datagram.data)
        self._received.set()
        return datagram

    async def send(self, item: Datagram) -> None:
        await self._stream.send(item)
        self._metrics.bytes_sent += len(item.data)

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes


class CountingNetworking(NetworkingWrapper):
    """Counts the bytes of every stream it opens into one metrics record.

    The pool makes one per connection it opens.

    :param networking: the backend.
    :param metrics: where the counts go.
    :param received: set when the first bytes (or datagram) arrive: for a
        QUIC connection, the sign that the server answers at all.
    """

    def __init__(
        self,
        networking: ClientNetworking,
        metrics: ConnectionMetrics,
        received: anyio.Event | None = None,
    ) -> None:
        super().__init__(networking)
        self._metrics = metrics
        self.received = received or anyio.Event()
        #: Whether the last TCP stream opened tells what a cancelled send
        #: left unsent (its ``unsent``, passed on by the counting wrapper).
        self.reports_unsent = False

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        stream = await super().connect_tcp(address, timeout=timeout)
        return self._counting(stream)

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        stream = await super().connect_tcp_tls(
            address,
            server_name=server_name,
            tls_config=tls_config,
            alpn_protocols=alpn_protocols,
            timeout=timeout,
        )
        return self._counting(stream)

    def _counting(self, stream: ByteStream) -> ByteStream:
        counted = _counting(stream, self._metrics, self.received)
        self.reports_unsent = isinstance(counted, _CountingUnsentByteStream)
        return counted

    async def connect_udp(self, address: Address) -> DatagramStream:
        stream = await super().connect_udp(address)
        return _CountingDatagramStream(stream, self._metrics, self.received)
