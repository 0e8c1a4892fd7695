"""How the pool picks the protocol of a TCP connection."""

from __future__ import annotations

from collections.abc import Sequence

from hcore.protocols import HTTPOverTCPFactory, HTTPOverTCPProtocol

__all__ = ("ClientTCPFactory",)


class ClientTCPFactory(HTTPOverTCPFactory):
    """HTTP/2 when ALPN chose it (or with prior knowledge), else HTTP/1.1.

    Unlike :class:`~hcore.protocols.ALPNHTTPFactory`, which uses its first
    factory when no ALPN id was agreed, this offers ``h2`` first but falls
    back to HTTP/1.1 with a TLS server that does not speak ALPN.

    :param http1: makes HTTP/1.1 protocols, or ``None`` not to offer it.
    :param http2: makes HTTP/2 protocols, or ``None`` not to offer it.
    :param prior_knowledge: speak HTTP/2 on plain TCP (h2c, RFC 9113 §3.3).
    :raises ValueError: if neither version is given.
    """

    def __init__(
        self,
        http1: HTTPOverTCPFactory | None,
        http2: HTTPOverTCPFactory | None,
        *,
        prior_knowledge: bool = False,
    ) -> None:
        if http1 is None and http2 is None:
            raise ValueError("a TCP factory needs HTTP/1.1 or HTTP/2")
        self._http1 = http1
        self._http2 = http2
        self._prior_knowledge = prior_knowledge or http1 is None
        alpn: list[str] = []
        for factory in (http2, http1):
            if factory is not None:
                alpn.extend(p for p in factory.alpn_protocols if p not in alpn)
        self._alpn = tuple(alpn)

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``h2`` (if offered) first, then ``http/1.1``."""
        return self._alpn

    @property
    def may_multiplex(self) -> bool:
        """Whether connections made with TLS may turn out HTTP/2."""
        return self._http2 is not None

    def plain_is_http2(self) -> bool:
        """Whether a plain-TCP connection speaks HTTP/2 (prior knowledge)."""
        return self._http2 is not None and self._prior_knowledge

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        """Make the protocol ALPN chose; without ALPN, see the class."""
        http1, http2 = self._http1, self._http2
        if http2 is not None and (
            alpn_protocol in http2.alpn_protocols
            or (alpn_protocol is None and tls_version is None and self._prior_knowledge)
            or http1 is None
        ):
            return http2(tls_version=tls_version, alpn_protocol=alpn_protocol)
        assert http1 is not None
        return http1(tls_version=tls_version, alpn_protocol=alpn_protocol)
