"""Factories that make a fresh protocol for each new connection.

The I/O layer holds a factory, not a protocol: an opener calls it once per
connection it opens, a listener once per connection it accepts.  For TCP the
factory learns the TLS version and the ALPN protocol the handshake agreed on,
which is how :class:`ALPNHTTPFactory` chooses between HTTP/1.1 and HTTP/2.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

from hcore._errors import LocalProtocolError
from hcore._tls import ClientTLSConfig, ServerTLSConfig
from hcore._types import Address
from hcore.protocols._protocols import HTTPOverQUICProtocol, HTTPOverTCPProtocol

__all__ = (
    "ALPNHTTPFactory",
    "HTTPOverQUICClientFactory",
    "HTTPOverQUICServerFactory",
    "HTTPOverTCPFactory",
)


class HTTPOverTCPFactory(metaclass=ABCMeta):
    """Makes the protocol for one TCP connection (client or server role)."""

    @property
    @abstractmethod
    def alpn_protocols(self) -> Sequence[str]:
        """ALPN ids to offer (client) or accept (server), most preferred first."""
        raise NotImplementedError

    @abstractmethod
    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        """Make a protocol for a connection that has just been set up.

        :param tls_version: the negotiated TLS version (``"TLSv1.3"``), or
            ``None`` on plain TCP.
        :param alpn_protocol: the ALPN id the handshake chose, if any.
        :return: a new protocol; a client's has already queued its preface.
        """
        raise NotImplementedError


class ALPNHTTPFactory(HTTPOverTCPFactory):
    """Picks one of several TCP factories by the ALPN id the handshake chose.

    Without an ALPN id (plain TCP, or a peer that offered none) the first
    factory is used, so ``ALPNHTTPFactory([HTTP1…(), HTTP2…()])`` speaks
    HTTP/1.1 unless HTTP/2 was negotiated.
    """

    def __init__(self, factories: Sequence[HTTPOverTCPFactory]) -> None:
        """:param factories: the candidates; the first is the default.

        :raises ValueError: if ``factories`` is empty.
        """
        if not factories:
            raise ValueError("ALPNHTTPFactory needs at least one factory")
        self._factories = tuple(factories)
        alpn: list[str] = []
        for factory in self._factories:
            alpn.extend(p for p in factory.alpn_protocols if p not in alpn)
        self._alpn_protocols = tuple(alpn)

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """Every candidate's ALPN ids, in the order of the candidates."""
        return self._alpn_protocols

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        """Make a protocol with the candidate that offers ``alpn_protocol``.

        :raises LocalProtocolError: if no candidate offers ``alpn_protocol``.
        """
        if alpn_protocol is None:
            chosen = self._factories[0]
        else:
            for chosen in self._factories:
                if alpn_protocol in chosen.alpn_protocols:
                    break
            else:
                raise LocalProtocolError(
                    f"no protocol for ALPN {alpn_protocol!r}; "
                    f"offered {list(self._alpn_protocols)}"
                )
        return chosen(tls_version=tls_version, alpn_protocol=alpn_protocol)


class HTTPOverQUICClientFactory(metaclass=ABCMeta):
    """Makes the client protocol for one QUIC connection."""

    @abstractmethod
    def __call__(
        self,
        *,
        remote_address: Address,
        server_name: str,
        tls_config: ClientTLSConfig,
    ) -> HTTPOverQUICProtocol:
        """Make a protocol that connects to a server.

        :param remote_address: the server's resolved address; every datagram
            goes there.
        :param server_name: the name to send in SNI and to verify.
        :param tls_config: how to verify the server and present a client
            certificate.
        :return: a new protocol, its first flight ready in
            ``datagrams_to_send()`` once ``clock()`` has been called.
        """
        raise NotImplementedError


class HTTPOverQUICServerFactory(metaclass=ABCMeta):
    """Makes the server protocol for each QUIC connection a listener accepts."""

    @property
    @abstractmethod
    def quic_connection_id_length(self) -> int:
        """Length of the connection ids the server issues, for routing."""
        raise NotImplementedError

    @property
    @abstractmethod
    def quic_supported_versions(self) -> Sequence[int]:
        """QUIC versions the server accepts; others get Version Negotiation."""
        raise NotImplementedError

    @abstractmethod
    def __call__(self, *, tls_config: ServerTLSConfig) -> HTTPOverQUICProtocol:
        """Make a protocol for a connection whose first datagram just arrived.

        :param tls_config: the certificate to present.
        :return: a new protocol, to be fed the first datagram.
        """
        raise NotImplementedError
