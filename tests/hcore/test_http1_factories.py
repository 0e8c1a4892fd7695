"""HTTP/1.1 factories, the registry entry and the package's public names."""

from __future__ import annotations

import pytest

import hcore.protocols.http1 as http1
from hcore import LocalProtocolError
from hcore.events import HeadersReceived
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory, default_registry
from hcore.protocols.http1 import (
    H11ClientProtocol,
    H11ServerProtocol,
    HTTP1ClientFactory,
    HTTP1ServerFactory,
)


def test_public_names() -> None:
    assert isinstance(http1.__all__, tuple)
    for name in http1.__all__:
        assert getattr(http1, name).__module__.startswith("hcore.protocols.http1.")


def test_factories_make_fresh_protocols() -> None:
    client_factory, server_factory = HTTP1ClientFactory(), HTTP1ServerFactory()
    for factory in (client_factory, server_factory):
        assert isinstance(factory, HTTPOverTCPFactory)
        assert list(factory.alpn_protocols) == ["http/1.1"]
    first = client_factory()
    assert isinstance(first, H11ClientProtocol) and first is not client_factory()
    assert first.bytes_to_send() == b""  # HTTP/1.1 has no preface
    server = server_factory(tls_version="TLSv1.3", alpn_protocol="http/1.1")
    assert isinstance(server, H11ServerProtocol)


def test_factories_refuse_other_alpn() -> None:
    with pytest.raises(LocalProtocolError):
        HTTP1ClientFactory()(alpn_protocol="h2")
    with pytest.raises(LocalProtocolError):
        HTTP1ServerFactory()(tls_version="TLSv1.3", alpn_protocol="h2")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_header_size must be positive"):
        HTTP1ServerFactory(max_header_size=0)
    with pytest.raises(ValueError, match="max_header_count must be positive"):
        HTTP1ServerFactory(max_header_count=-1)
    with pytest.raises(ValueError, match="max_pipelined_size must be positive"):
        HTTP1ServerFactory(max_pipelined_size=0)
    with pytest.raises(ValueError, match="max_header_size must be positive"):
        HTTP1ClientFactory(max_header_size=0)
    with pytest.raises(ValueError, match="max_header_count must be positive"):
        HTTP1ClientFactory(max_header_count=0)


def test_registered_as_h11() -> None:
    assert "h11" in default_registry.names("1.1")
    assert isinstance(
        default_registry.tcp_client_factory("1.1", "h11"), HTTP1ClientFactory
    )
    assert isinstance(
        default_registry.tcp_server_factory("1.1", "h11"), HTTP1ServerFactory
    )


def test_alpn_factory_falls_back_to_http1() -> None:
    factory = ALPNHTTPFactory([HTTP1ServerFactory()])
    assert isinstance(factory(), H11ServerProtocol)
    assert isinstance(factory(alpn_protocol="http/1.1"), H11ServerProtocol)


def test_protocols_can_be_made_directly_with_default_limits() -> None:
    client, server = H11ClientProtocol(), H11ServerProtocol(scheme="https")
    client.submit_headers(
        1,
        [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"h"),
            (b":path", b"/"),
        ],
        True,
    )
    server.bytes_received(client.bytes_to_send())
    event = server.next_event()
    assert isinstance(event, HeadersReceived)
    assert event.headers[1] == (b":scheme", b"https")
