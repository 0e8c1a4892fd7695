"""Factories that make an HTTP/1.1 protocol for each new TCP connection.

The h11 and the httptools factories differ only in the protocol class they
make: :class:`_ClientFactory` and :class:`_ServerFactory` hold the limits,
their checks and the ALPN answer, and each factory names its class in
``_protocol_class``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from hcore._errors import LocalProtocolError
from hcore.protocols._factories import HTTPOverTCPFactory
from hcore.protocols._protocols import HTTPOverTCPProtocol
from hcore.protocols.http1._client import H11ClientProtocol
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from hcore.protocols.http1._server import H11ServerProtocol

if TYPE_CHECKING:
    from hcore.protocols.http1._httptools_client import HTTPToolsClientProtocol
    from hcore.protocols.http1._httptools_server import HTTPToolsServerProtocol

__all__ = (
    "HTTP1ClientFactory",
    "HTTP1ServerFactory",
    "HTTPToolsClientFactory",
    "HTTPToolsServerFactory",
)

_ALPN = ("http/1.1",)

_P = TypeVar("_P", bound=HTTPOverTCPProtocol)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return value


def _check_alpn(alpn_protocol: str | None) -> None:
    if alpn_protocol is not None and alpn_protocol not in _ALPN:
        raise LocalProtocolError(f"HTTP/1.1 cannot speak ALPN {alpn_protocol!r}")


class _ClientFactory(HTTPOverTCPFactory, Generic[_P]):
    """Makes a client protocol of ``_protocol_class()`` for each connection.

    The parameters are those of :class:`HTTP1ClientFactory`.
    """

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    ) -> None:
        self._max_header_size = _positive("max_header_size", max_header_size)
        self._max_header_count = _positive("max_header_count", max_header_count)
        self._protocol = self._protocol_class()

    @staticmethod
    @abstractmethod
    def _protocol_class() -> Callable[..., _P]:
        """The class of the protocols made."""

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``["http/1.1"]``."""
        return list(_ALPN)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> _P:
        """Make a client protocol; HTTP/1.1 has no preface, nothing is queued.

        :raises LocalProtocolError: if ``alpn_protocol`` is not ``http/1.1``.
        """
        _check_alpn(alpn_protocol)
        return self._protocol(
            max_header_size=self._max_header_size,
            max_header_count=self._max_header_count,
        )


class _ServerFactory(HTTPOverTCPFactory, Generic[_P]):
    """Makes a server protocol of ``_protocol_class()`` for each connection.

    The parameters are those of :class:`HTTP1ServerFactory`.
    """

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE,
        scheme: str | None = None,
    ) -> None:
        self._max_header_size = _positive("max_header_size", max_header_size)
        self._max_header_count = _positive("max_header_count", max_header_count)
        self._max_pipelined_size = _positive("max_pipelined_size", max_pipelined_size)
        self._scheme = scheme
        self._protocol = self._protocol_class()

    @staticmethod
    @abstractmethod
    def _protocol_class() -> Callable[..., _P]:
        """The class of the protocols made."""

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``["http/1.1"]``."""
        return list(_ALPN)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> _P:
        """Make a server protocol for an accepted connection.

        :raises LocalProtocolError: if ``alpn_protocol`` is not ``http/1.1``.
        """
        _check_alpn(alpn_protocol)
        scheme = self._scheme
        if scheme is None:
            scheme = "http" if tls_version is None else "https"
        return self._protocol(
            scheme=scheme,
            max_header_size=self._max_header_size,
            max_header_count=self._max_header_count,
            max_pipelined_size=self._max_pipelined_size,
        )


class HTTP1ClientFactory(_ClientFactory[H11ClientProtocol]):
    """Makes an :class:`H11ClientProtocol` for each connection a client opens.

    :param max_header_size: largest response head (status line and fields)
        accepted, in bytes; a larger one ends the connection with
        ``error_code=431``.
    :param max_header_count: most fields accepted in a head or trailers.
    :raises ValueError: if a limit is not positive.
    """

    @staticmethod
    def _protocol_class() -> type[H11ClientProtocol]:
        return H11ClientProtocol


class HTTP1ServerFactory(_ServerFactory[H11ServerProtocol]):
    """Makes an :class:`H11ServerProtocol` for each connection a server accepts.

    :param max_header_size: largest request head accepted, in bytes; a
        larger one is answered with 431.
    :param max_header_count: most fields accepted in a head or trailers
        (431 beyond).
    :param max_pipelined_size: most bytes held that a client sent ahead of
        the current exchange (pipelined requests, early tunnel bytes).
    :param scheme: ``:scheme`` given to requests; by default ``"https"``
        when the connection uses TLS and ``"http"`` otherwise.
    :raises ValueError: if a limit is not positive.
    """

    @staticmethod
    def _protocol_class() -> type[H11ServerProtocol]:
        return H11ServerProtocol


class HTTPToolsClientFactory(_ClientFactory["HTTPToolsClientProtocol"]):
    """Makes an HTTP/1.1 client protocol parsed by httptools (llhttp).

    The same limits, defaults and events as :class:`HTTP1ClientFactory`;
    registered in :data:`hcore.protocols.default_registry` as the client
    side of ``"httptools"`` when httptools is installed (the ``httptools``
    extra).

    :raises ImportError: if httptools is not installed.
    :raises ValueError: if a limit is not positive.
    """

    @staticmethod
    def _protocol_class() -> type[HTTPToolsClientProtocol]:
        # Imported here so that hcore.protocols.http1 works without httptools.
        from hcore.protocols.http1._httptools_client import HTTPToolsClientProtocol

        return HTTPToolsClientProtocol


class HTTPToolsServerFactory(_ServerFactory["HTTPToolsServerProtocol"]):
    """Makes an HTTP/1.1 server protocol parsed by httptools (llhttp).

    The same limits, defaults and events as :class:`HTTP1ServerFactory`;
    registered in :data:`hcore.protocols.default_registry` as
    ``"httptools"`` when httptools is installed (the ``httptools`` extra).

    :raises ImportError: if httptools is not installed.
    :raises ValueError: if a limit is not positive.
    """

    @staticmethod
    def _protocol_class() -> type[HTTPToolsServerProtocol]:
        # Imported here so that hcore.protocols.http1 works without httptools.
        from hcore.protocols.http1._httptools_server import HTTPToolsServerProtocol

        return HTTPToolsServerProtocol
