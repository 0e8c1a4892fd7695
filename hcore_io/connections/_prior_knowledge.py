"""HTTP/1.1 and HTTP/2 on one server port, with or without TLS.

Over TLS the client's ALPN id says which version it speaks.  On plain TCP
there is no handshake to ask, but an HTTP/2 client with prior knowledge
(``h2c``, RFC 9113 §3.3) must open with the connection preface (RFC 9113
§3.4), which no HTTP/1.1 request line can start with.  The choice is made in
the listener, which reads the first bytes before any protocol exists and
hands them to the chosen protocol as its first input; so neither protocol is
looked into, and the factory stays an ordinary
:class:`~hcore.protocols.HTTPOverTCPFactory` everywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

from hcore import LocalProtocolError
from hcore.protocols import HTTPOverTCPFactory, HTTPOverTCPProtocol

__all__ = ("HTTP2_PREFACE", "PriorKnowledgeHTTPFactory")

#: The HTTP/2 client connection preface (RFC 9113 §3.4).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class PriorKnowledgeHTTPFactory(HTTPOverTCPFactory):
    """Server factory that speaks HTTP/2 to clients that ask for it, else HTTP/1.1.

    With TLS the ALPN id decides (HTTP/2 preferred); without one,
    :class:`~hcore_io.connections.HTTPOverTCPListener` reads the first bytes
    and calls :meth:`for_preface`.  Called like any factory (by code that
    does not look at the bytes), it picks by ALPN and defaults to HTTP/1.1.

    :param http1: makes HTTP/1.1 protocols.
    :param http2: makes HTTP/2 protocols.
    """

    def __init__(self, http1: HTTPOverTCPFactory, http2: HTTPOverTCPFactory) -> None:
        self._http1 = http1
        self._http2 = http2
        alpn: list[str] = []
        for factory in (http2, http1):
            alpn.extend(p for p in factory.alpn_protocols if p not in alpn)
        self._alpn_protocols = tuple(alpn)

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """HTTP/2's ALPN ids, then HTTP/1.1's."""
        return self._alpn_protocols

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        """Make the protocol the ALPN id asks for; HTTP/1.1 without one.

        :raises hcore.LocalProtocolError: for an ALPN id neither version offers.
        """
        if alpn_protocol is not None and alpn_protocol in self._http2.alpn_protocols:
            return self._http2(tls_version=tls_version, alpn_protocol=alpn_protocol)
        if alpn_protocol is None or alpn_protocol in self._http1.alpn_protocols:
            return self._http1(tls_version=tls_version, alpn_protocol=alpn_protocol)
        raise LocalProtocolError(f"no protocol for ALPN {alpn_protocol!r}")

    @staticmethod
    def needs_more(data: bytes) -> bool:
        """Whether the first bytes could still be the start of the HTTP/2 preface."""
        return len(data) < len(HTTP2_PREFACE) and HTTP2_PREFACE.startswith(data)

    def for_preface(
        self, data: bytes, *, tls_version: str | None = None
    ) -> HTTPOverTCPProtocol:
        """Make the protocol for a connection that began with ``data``.

        :param data: the first bytes the client sent (at least enough that
            :meth:`needs_more` is false, unless the client stopped early).
        :param tls_version: the TLS version, when TLS without ALPN was used.
        :return: HTTP/2 if ``data`` starts with the preface, else HTTP/1.1.
        """
        if data.startswith(HTTP2_PREFACE):
            return self._http2(tls_version=tls_version, alpn_protocol=None)
        return self._http1(tls_version=tls_version, alpn_protocol=None)
