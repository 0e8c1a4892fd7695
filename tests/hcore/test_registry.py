"""The protocol registry and the ALPN factory."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hcore import LocalProtocolError
from hcore.protocols import (
    ALPNHTTPFactory,
    HTTPOverQUICClientFactory,
    HTTPOverQUICServerFactory,
    HTTPOverTCPFactory,
    HTTPOverTCPProtocol,
    ProtocolRegistry,
    default_registry,
)


class _Recorder(HTTPOverTCPFactory):
    """A factory that records its calls and returns a protocol from another."""

    def __init__(self, alpn: Sequence[str], inner: HTTPOverTCPFactory) -> None:
        self._alpn = tuple(alpn)
        self.inner = inner
        self.calls: list[tuple[str | None, str | None]] = []

    @property
    def alpn_protocols(self) -> Sequence[str]:
        return self._alpn

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        self.calls.append((tls_version, alpn_protocol))
        return self.inner(tls_version=tls_version, alpn_protocol=alpn_protocol)


def test_builtins_are_registered_and_make_factories() -> None:
    # "httptools" is there because the test extra installs httptools.
    assert default_registry.names("1.1") == ("h11", "httptools")
    assert default_registry.names("2") == ("h2",)
    assert default_registry.names("3") == ("aioquic",)
    h1 = default_registry.tcp_client_factory("1.1")
    assert list(h1.alpn_protocols) == ["http/1.1"]
    assert h1().http_version == "1.1"
    h2s = default_registry.tcp_server_factory("2", "h2")
    assert list(h2s.alpn_protocols) == ["h2"]
    assert h2s().http_version == "2"
    assert isinstance(default_registry.quic_client_factory(), HTTPOverQUICClientFactory)
    assert isinstance(default_registry.quic_server_factory(), HTTPOverQUICServerFactory)


def test_user_implementation_is_picked_by_name_and_can_be_default() -> None:
    registry = ProtocolRegistry()
    registry.register(
        "1.1",
        "h11",
        client=default_registry.get("1.1").client,
        server=default_registry.get("1.1").server,
    )
    made: list[_Recorder] = []

    def make() -> _Recorder:
        made.append(_Recorder(["http/1.1"], default_registry.tcp_client_factory("1.1")))
        return made[-1]

    registry.register("1.1", "mine", client=make, server=make)
    assert registry.names("1.1") == ("h11", "mine")
    assert registry.get("1.1").name == "h11"
    assert registry.tcp_client_factory("1.1", "mine") is made[-1]
    registry.register(
        "1.1", "mine", client=make, server=make, default=True, replace=True
    )
    assert registry.get("1.1").name == "mine"
    registry.unregister("1.1", "mine")
    assert registry.get("1.1").name == "h11"
    registry.unregister("1.1", "h11")
    with pytest.raises(LookupError, match="registered: \\[\\]"):
        registry.get("1.1")


def test_registry_errors_are_clear() -> None:
    registry = ProtocolRegistry()
    entry = default_registry.get("2")
    registry.register("2", "h2", client=entry.client, server=entry.server)
    with pytest.raises(ValueError, match="exists"):
        registry.register("2", "h2", client=entry.client, server=entry.server)
    with pytest.raises(ValueError, match="unknown HTTP version '4'"):
        registry.names("4")
    with pytest.raises(LookupError, match="'nope'"):
        registry.get("2", "nope")
    with pytest.raises(LookupError):
        registry.unregister("2", "nope")
    # A TCP factory where a QUIC one is asked for is refused, not returned.
    registry.register("3", "wrong", client=entry.client, server=entry.server)
    with pytest.raises(TypeError, match="HTTPOverQUICClientFactory"):
        registry.quic_client_factory()
    with pytest.raises(TypeError, match="HTTPOverQUICServerFactory"):
        registry.quic_server_factory()


def test_alpn_factory_picks_by_negotiated_protocol() -> None:
    h1 = _Recorder(["http/1.1"], default_registry.tcp_server_factory("1.1"))
    h2 = _Recorder(["h2"], default_registry.tcp_server_factory("2"))
    factory = ALPNHTTPFactory([h1, h2])
    assert list(factory.alpn_protocols) == ["http/1.1", "h2"]
    assert factory(tls_version="TLSv1.3", alpn_protocol="h2").http_version == "2"
    assert factory(alpn_protocol="http/1.1").http_version == "1.1"
    assert factory().http_version == "1.1"
    assert h2.calls == [("TLSv1.3", "h2")]
    assert h1.calls == [(None, "http/1.1"), (None, None)]
    with pytest.raises(LocalProtocolError, match="no protocol for ALPN 'h3'"):
        factory(alpn_protocol="h3")
    with pytest.raises(ValueError, match="at least one"):
        ALPNHTTPFactory([])


def test_alpn_factory_lists_each_id_once() -> None:
    a = _Recorder(["h2", "http/1.1"], default_registry.tcp_server_factory("2"))
    b = _Recorder(["http/1.1"], default_registry.tcp_server_factory("1.1"))
    assert list(ALPNHTTPFactory([a, b]).alpn_protocols) == ["h2", "http/1.1"]
