"""How :class:`HTTPServer` binds its endpoints: the listeners and their factories.

An ``http`` endpoint is one TCP listener (HTTP/1.1 and, by prior knowledge,
HTTP/2).  An ``https`` endpoint is a TLS listener for HTTP/1.1 and HTTP/2
(by ALPN) and, with HTTP/3, a QUIC listener on the same port number; the
TLS side's responses then carry ``Alt-Svc`` (RFC 7838) pointing at it.
When the system picks the port, a few tries find one free on both TCP and
UDP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from hcore import ServerTLSConfig
from hcore.protocols import HTTPOverTCPFactory, ProtocolImplementation
from hcore.protocols.http2 import HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ServerFactory
from hcore_io._exceptions import NetworkError
from hcore_io._limits import Limits
from hcore_io.connections import (
    HTTPListener,
    HTTPOverQUICListener,
    HTTPOverTCPListener,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import ServerNetworking
from hcore_io.server._endpoints import Endpoint

__all__ = ("Listening", "bind_endpoint", "make_tcp_factory")

#: A listener, with the fields every response on its connections carries.
Listening = tuple[HTTPListener, tuple[tuple[bytes, bytes], ...]]

# Attempts at finding a port free on both TCP and UDP when the system picks.
_PORT_ATTEMPTS = 20


def _port(listener: HTTPListener, default: int) -> int:
    addresses = listener.local_addresses
    return addresses[0][1] if addresses else default


def make_tcp_factory(
    http1_maker: ProtocolImplementation,
    limits: Limits,
    *,
    http1: bool,
    http2: bool,
    extended_connect: bool,
) -> HTTPOverTCPFactory | None:
    """The factory for the TCP side: HTTP/1.1, HTTP/2, or both.

    :param http1_maker: the registered HTTP/1.1 implementation.
    :param limits: the server's bounds.
    :param http1: serve HTTP/1.1.
    :param http2: serve HTTP/2.
    :param extended_connect: advertise RFC 8441 extended CONNECT on HTTP/2.
    :return: the factory, or ``None`` if neither version is served.
    :raises TypeError: if the implementation makes no TCP factory.
    """
    # Registered makers take the HTTP/1.1 limits as keywords, like
    # hcore's factory classes.
    make = cast(Callable[..., object], http1_maker.server)
    http1_factory = make(
        max_header_size=limits.max_header_size,
        max_header_count=limits.max_header_count,
        max_pipelined_size=limits.max_pipelined_size,
    )
    if not isinstance(http1_factory, HTTPOverTCPFactory):
        raise TypeError(f"{http1_factory!r} is not an HTTPOverTCPFactory")
    http2_factory = HTTP2ServerFactory(
        max_concurrent_streams=limits.max_concurrent_streams,
        max_header_list_size=limits.max_header_size,
        enable_connect_protocol=extended_connect,
    )
    if http1 and http2:
        return PriorKnowledgeHTTPFactory(http1_factory, http2_factory)
    if http1:
        return http1_factory
    if http2:
        return http2_factory
    return None


async def _listen_tcp(
    networking: ServerNetworking,
    factory: HTTPOverTCPFactory,
    address: tuple[str, int],
    tls_config: ServerTLSConfig | None,
    limits: Limits,
) -> HTTPOverTCPListener:
    return await HTTPOverTCPListener.create(
        factory,
        networking,
        local_address=address,
        tls_config=tls_config,
        preface_timeout=limits.request_header_timeout,
        max_buffered_data=limits.max_buffered_data,
    )


async def bind_endpoint(
    networking: ServerNetworking,
    endpoint: Endpoint,
    *,
    tcp_factory: HTTPOverTCPFactory | None,
    tls_config: ServerTLSConfig | None,
    http3: bool,
    limits: Limits,
) -> tuple[int, list[Listening]]:
    """Listen on an endpoint.

    :param networking: the backend.
    :param endpoint: where.
    :param tcp_factory: the TCP side's factory (:func:`make_tcp_factory`).
    :param tls_config: the certificate (required for ``https``).
    :param http3: also listen for HTTP/3 on an ``https`` endpoint.
    :param limits: the server's bounds.
    :return: the port bound and the listeners made.
    :raises ValueError: for plain ``http`` with neither HTTP/1.1 nor HTTP/2.
    :raises hcore_io.NetworkError: if the address cannot be bound.
    """
    address = (endpoint.host, endpoint.port)
    if not endpoint.tls:
        if tcp_factory is None:
            raise ValueError(f"{endpoint}: plain http needs HTTP/1.1 or HTTP/2")
        plain = await _listen_tcp(networking, tcp_factory, address, None, limits)
        return _port(plain, endpoint.port), [(plain, ())]
    assert tls_config is not None
    # Bounded: a few tries at a port free on both TCP and UDP.
    for attempt in range(_PORT_ATTEMPTS):
        tcp: HTTPOverTCPListener | None = None
        if tcp_factory is not None:
            tcp = await _listen_tcp(
                networking, tcp_factory, address, tls_config, limits
            )
        if not http3:
            assert tcp is not None
            return _port(tcp, endpoint.port), [(tcp, ())]
        port = endpoint.port if tcp is None else _port(tcp, endpoint.port)
        try:
            quic = await HTTPOverQUICListener.create(
                HTTP3ServerFactory(),
                networking,
                local_address=(endpoint.host, port),
                tls_config=tls_config,
                max_buffered_data=limits.max_buffered_data,
            )
        except NetworkError:
            if tcp is not None:
                await tcp.aclose()
            if endpoint.port or attempt == _PORT_ATTEMPTS - 1:
                raise
            continue
        quic_port = _port(quic, port)
        alt_svc = ((b"alt-svc", b'h3=":%d"; ma=86400' % quic_port),)
        made: list[Listening] = [(quic, ())]
        if tcp is not None:
            made.insert(0, (tcp, alt_svc))
        return quic_port, made
    raise AssertionError("unreachable: the last attempt raises")
