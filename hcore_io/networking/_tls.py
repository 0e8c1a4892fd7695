"""TLS for the socket backends: ``ssl.SSLContext`` objects and TLS streams.

:class:`hcore.ClientTLSConfig` and :class:`hcore.ServerTLSConfig` are frozen
data; the client contexts made from them are cached (per configuration and
ALPN list, in one cache for the process), since loading a trust store takes
milliseconds and a client opens many connections with the same settings.
:func:`start_tls` is the public way to run a client handshake over any byte
stream (a proxy's tunnel, say), with those cached contexts.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import ByteStream
from anyio.streams.tls import TLSStream

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io._exceptions import ConnectError

__all__ = (
    "SSLContextCache",
    "TLSByteStream",
    "client_ssl_context",
    "server_ssl_context",
    "start_tls",
)

_TLS_VERSIONS = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _tls_version(name: str) -> ssl.TLSVersion:
    try:
        return _TLS_VERSIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown TLS version {name!r}; use one of {sorted(_TLS_VERSIONS)}"
        ) from None


def _apply_common(
    context: ssl.SSLContext,
    ciphers: str | None,
    minimum_version: str | None,
    alpn_protocols: Sequence[str],
) -> None:
    if minimum_version is not None:
        context.minimum_version = _tls_version(minimum_version)
    if ciphers is not None:
        context.set_ciphers(ciphers)
    if alpn_protocols:
        # RFC 7301 §3.1: ids in preference order.
        context.set_alpn_protocols(list(alpn_protocols))


def client_ssl_context(
    config: ClientTLSConfig, alpn_protocols: Sequence[str] = ()
) -> ssl.SSLContext:
    """Build a client context: verification, client certificate, ALPN.

    With no ``cafile``, ``capath`` or ``cadata`` the system's trust store is
    loaded; ``insecure`` turns certificate and host name checks off.

    :param config: the client's TLS settings.
    :param alpn_protocols: ALPN ids to offer, most preferred first.
    :return: a new context.
    :raises ValueError: ``minimum_version`` names no TLS version we know.
    :raises OSError: a certificate or key file cannot be read.
    :raises ssl.SSLError: a certificate, key or cipher string is invalid.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.cafile or config.capath or config.cadata:
        context.load_verify_locations(
            cafile=config.cafile, capath=config.capath, cadata=config.cadata
        )
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if config.certfile is not None:
        context.load_cert_chain(
            config.certfile, keyfile=config.keyfile, password=config.keypassword
        )
    _apply_common(context, config.ciphers, config.minimum_version, alpn_protocols)
    return context


def server_ssl_context(
    config: ServerTLSConfig, alpn_protocols: Sequence[str] = ()
) -> ssl.SSLContext:
    """Build a server context: certificate, client verification, ALPN.

    Client certificates are asked for when CA certificates are given, and
    required when ``require_client_certificate`` is set.

    :param config: the server's TLS settings.
    :param alpn_protocols: ALPN ids to accept, most preferred first (the
        server's order decides).
    :return: a new context.
    :raises ValueError: no certificate, or an unknown ``minimum_version``.
    :raises OSError: a certificate or key file cannot be read.
    :raises ssl.SSLError: a certificate, key or cipher string is invalid.
    """
    if config.certfile is None:
        raise ValueError("a TLS server needs ServerTLSConfig.certfile")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        config.certfile, keyfile=config.keyfile, password=config.keypassword
    )
    if config.cafile or config.cadata:
        context.load_verify_locations(cafile=config.cafile, cadata=config.cadata)
        context.verify_mode = ssl.CERT_OPTIONAL
    if config.require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
    _apply_common(context, config.ciphers, config.minimum_version, alpn_protocols)
    return context


class SSLContextCache:
    """A small LRU cache of client contexts, keyed by settings and ALPN ids.

    :param size: contexts kept.
    """

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._contexts: OrderedDict[
            tuple[ClientTLSConfig, tuple[str, ...]], ssl.SSLContext
        ] = OrderedDict()

    def get(
        self, config: ClientTLSConfig, alpn_protocols: Sequence[str]
    ) -> ssl.SSLContext | None:
        """Return the cached context for these settings, if there is one."""
        key = (config, tuple(alpn_protocols))
        context = self._contexts.get(key)
        if context is not None:
            self._contexts.move_to_end(key)
        return context

    def put(
        self,
        config: ClientTLSConfig,
        alpn_protocols: Sequence[str],
        context: ssl.SSLContext,
    ) -> None:
        """Remember a context, forgetting the least recently used beyond the size."""
        self._contexts[(config, tuple(alpn_protocols))] = context
        if len(self._contexts) > self._size:
            self._contexts.popitem(last=False)


class TLSByteStream(ByteStream):
    """An AnyIO ``TLSStream`` whose TLS failures read as a broken stream.

    AnyIO lets ``ssl.SSLError`` (a bad record, an alert arriving after the
    handshake) escape ``receive`` and ``send``, and raises
    :exc:`anyio.EndOfStream` from ``send`` once the peer has closed; here
    both become :exc:`anyio.BrokenResourceError`, so callers handle every
    stream the same way.  Everything else is the wrapped
    stream's: its attributes (``TLSAttribute.*``, ``SocketAttribute.*``),
    :exc:`anyio.EndOfStream`, and ``send_eof`` raising
    ``NotImplementedError`` (TLS streams cannot half-close in AnyIO).

    AnyIO's ``receive`` decrypts one TLS record (at most 16 KiB) per call,
    even when the bytes it read from the socket hold several; so a bulk
    transfer would cost a read cycle of the connection per record.  Here a
    receive goes on decrypting the records already read, up to
    ``max_bytes``, with no further I/O.  That needs the SSL object and its
    incoming buffer, which AnyIO keeps private; without them (another AnyIO
    version) a receive returns one record, as AnyIO's does.

    :param stream: the stream after its handshake.
    """

    def __init__(self, stream: TLSStream) -> None:
        self._stream = stream
        # A TLS failure met while decrypting ahead, for the next call.
        self._failure: ssl.SSLError | None = None
        ssl_object = getattr(stream, "_ssl_object", None)
        read_bio = getattr(stream, "_read_bio", None)
        self._more: tuple[ssl.SSLObject, ssl.MemoryBIO] | None = None
        if isinstance(ssl_object, ssl.SSLObject) and isinstance(
            read_bio, ssl.MemoryBIO
        ):
            self._more = (ssl_object, read_bio)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive decrypted bytes: what the records already read hold.

        :raises anyio.EndOfStream: the peer closed the connection.
        :raises anyio.BrokenResourceError: the connection or TLS failed.
        """
        self._check_failure()
        try:
            data = await self._stream.receive(max_bytes)
        except ssl.SSLError as exc:
            raise anyio.BrokenResourceError(f"TLS failed: {exc}") from exc
        more = self._more
        if more is not None and len(data) < max_bytes and more[1].pending:
            return self._decrypt_buffered(data, max_bytes, *more)
        return data

    def _check_failure(self) -> None:
        if self._failure is not None:
            error = anyio.BrokenResourceError(f"TLS failed: {self._failure}")
            raise error from self._failure

    def _decrypt_buffered(
        self,
        data: bytes,
        max_bytes: int,
        ssl_object: ssl.SSLObject,
        read_bio: ssl.MemoryBIO,
    ) -> bytes:
        parts = [data]
        size = len(data)
        # Bounded by max_bytes and by the bytes already in the buffer.
        while size < max_bytes and read_bio.pending:
            try:
                piece = ssl_object.read(max_bytes - size)
            except ssl.SSLWantReadError:
                # A partial record: the next receive reads the rest.
                break
            except ssl.SSLError as exc:
                # A bad record or an alert: the bytes before it are handed
                # on, and the next call fails.
                self._failure = exc
                break
            if not piece:
                # close_notify: the next receive reports the end.
                break
            parts.append(piece)
            size += len(piece)
        return b"".join(parts) if len(parts) > 1 else data

    async def send(self, item: bytes) -> None:
        """Encrypt and send bytes.

        :raises anyio.BrokenResourceError: the connection or TLS failed.
        """
        self._check_failure()
        try:
            await self._stream.send(item)
        except (ssl.SSLError, anyio.EndOfStream) as exc:
            # AnyIO raises EndOfStream from a send once the peer has closed.
            raise anyio.BrokenResourceError(f"TLS failed: {exc!r}") from exc

    async def send_eof(self) -> None:
        """Not supported over TLS (AnyIO's ``TLSStream`` cannot half-close).

        :raises NotImplementedError: always.
        """
        await self._stream.send_eof()

    async def aclose(self) -> None:
        """Close the connection (no ``close_notify`` exchange is awaited)."""
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The TLS and socket attributes of the wrapped stream."""
        return self._stream.extra_attributes


_client_contexts = SSLContextCache()


async def start_tls(
    stream: ByteStream,
    *,
    server_name: str,
    tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
    alpn_protocols: Sequence[str] = (),
) -> ByteStream:
    """Run a client TLS handshake over a connected byte stream.

    What the socket backends' ``connect_tcp_tls`` does after connecting,
    for a byte stream from elsewhere (a ``CONNECT`` tunnel through a
    proxy, say).  The ``ssl.SSLContext`` made from ``tls_config`` is cached
    per settings and ALPN ids, and shared with the backends.  The stream
    returned reads as every backend's TLS stream: ``TLSAttribute.*`` tell
    what was negotiated, a TLS failure later raises
    :exc:`anyio.BrokenResourceError`, and an EOF without ``close_notify`` is
    a plain end of stream.  Bound the handshake's time with a cancel scope.

    :param stream: the stream to run TLS over; closed if the handshake
        fails or is cancelled.
    :param server_name: the name for SNI and certificate verification.
    :param tls_config: how to verify the server and present a client
        certificate.
    :param alpn_protocols: ALPN ids to offer, most preferred first.
    :return: the TLS stream.
    :raises ValueError: ``tls_config.minimum_version`` is unknown.
    :raises hcore_io.ConnectError: a certificate file of ``tls_config``
        cannot be loaded, or the handshake fails (an untrusted certificate
        included).
    """
    try:
        context = _client_contexts.get(tls_config, alpn_protocols)
        if context is None:
            # Loading a trust store reads files: keep it off the event loop.
            try:
                context = await anyio.to_thread.run_sync(
                    client_ssl_context, tls_config, alpn_protocols
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConnectError(f"invalid client TLS settings: {exc}") from exc
            _client_contexts.put(tls_config, alpn_protocols, context)
        tls_stream = await TLSStream.wrap(
            stream,
            server_side=False,
            hostname=server_name,
            ssl_context=context,
            standard_compatible=False,
        )
    except BaseException as exc:
        await anyio.aclose_forcefully(stream)
        if isinstance(
            exc, (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream)
        ):
            raise ConnectError(
                f"TLS handshake with {server_name!r} failed: {exc!r}"
            ) from exc
        raise
    return TLSByteStream(tls_stream)
