"""A registry of protocol implementations, so that users can plug in their own.

Each implementation is registered under an HTTP version and a name with a
client and a server factory class (or any callable that makes a factory).
The first implementation registered for a version is its default until
another is registered with ``default=True``.  Openers, listeners and the
server look factories up here, so a user's implementation is used the same
way ours are: by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from hcore.protocols._factories import (
    HTTPOverQUICClientFactory,
    HTTPOverQUICServerFactory,
    HTTPOverTCPFactory,
)

__all__ = ("ProtocolImplementation", "ProtocolRegistry", "default_registry")

ClientFactory: TypeAlias = HTTPOverTCPFactory | HTTPOverQUICClientFactory
ServerFactory: TypeAlias = HTTPOverTCPFactory | HTTPOverQUICServerFactory

_VERSIONS = ("1.1", "2", "3")


@dataclass(frozen=True)
class ProtocolImplementation:
    """One registered implementation of an HTTP version."""

    #: The name it is registered under, unique within its version.
    name: str
    #: ``"1.1"``, ``"2"`` or ``"3"``.
    http_version: str
    #: Makes a client factory (often the factory class itself).
    client: Callable[[], ClientFactory]
    #: Makes a server factory (often the factory class itself).
    server: Callable[[], ServerFactory]


class ProtocolRegistry:
    """Protocol implementations by HTTP version and name."""

    def __init__(self) -> None:
        self._by_version: dict[str, dict[str, ProtocolImplementation]] = {
            version: {} for version in _VERSIONS
        }
        self._defaults: dict[str, str] = {}

    def register(
        self,
        http_version: str,
        name: str,
        *,
        client: Callable[[], ClientFactory],
        server: Callable[[], ServerFactory],
        default: bool = False,
        replace: bool = False,
    ) -> ProtocolImplementation:
        """Register an implementation of an HTTP version.

        :param http_version: ``"1.1"`` or ``"2"`` (TCP factories) or ``"3"``
            (QUIC factories).
        :param name: the name users pick it by.
        :param client: makes the client factory.
        :param server: makes the server factory.
        :param default: make it the version's default.
        :param replace: allow replacing an implementation of the same name.
        :return: the registered entry.
        :raises ValueError: for an unknown version, or a name already taken
            without ``replace``.
        """
        implementations = self._versions(http_version)
        if name in implementations and not replace:
            raise ValueError(f"HTTP/{http_version} implementation {name!r} exists")
        entry = ProtocolImplementation(name, http_version, client, server)
        implementations[name] = entry
        if default or http_version not in self._defaults:
            self._defaults[http_version] = name
        return entry

    def unregister(self, http_version: str, name: str) -> None:
        """Remove an implementation; the version's default falls back to the first left.

        :raises LookupError: if no such implementation is registered.
        """
        implementations = self._versions(http_version)
        self.get(http_version, name)
        del implementations[name]
        if self._defaults.get(http_version) == name:
            del self._defaults[http_version]
            if implementations:
                self._defaults[http_version] = next(iter(implementations))

    def names(self, http_version: str) -> tuple[str, ...]:
        """The names registered for a version, in registration order."""
        return tuple(self._versions(http_version))

    def get(self, http_version: str, name: str | None = None) -> ProtocolImplementation:
        """Look an implementation up; ``name=None`` gives the version's default.

        :raises LookupError: if there is no such implementation.
        """
        implementations = self._versions(http_version)
        if name is None:
            name = self._defaults.get(http_version)
        if name is None or name not in implementations:
            raise LookupError(
                f"no HTTP/{http_version} implementation named {name!r}; "
                f"registered: {sorted(implementations)}"
            )
        return implementations[name]

    def tcp_client_factory(
        self, http_version: str, name: str | None = None
    ) -> HTTPOverTCPFactory:
        """Make the client factory of an HTTP/1.1 or HTTP/2 implementation.

        :raises TypeError: if the implementation's factory is not a TCP one.
        """
        factory = self.get(http_version, name).client()
        if not isinstance(factory, HTTPOverTCPFactory):
            raise TypeError(_not_a(factory, HTTPOverTCPFactory))
        return factory

    def tcp_server_factory(
        self, http_version: str, name: str | None = None
    ) -> HTTPOverTCPFactory:
        """Make the server factory of an HTTP/1.1 or HTTP/2 implementation.

        :raises TypeError: if the implementation's factory is not a TCP one.
        """
        factory = self.get(http_version, name).server()
        if not isinstance(factory, HTTPOverTCPFactory):
            raise TypeError(_not_a(factory, HTTPOverTCPFactory))
        return factory

    def quic_client_factory(self, name: str | None = None) -> HTTPOverQUICClientFactory:
        """Make the client factory of an HTTP/3 implementation.

        :raises TypeError: if the implementation's factory is not a QUIC one.
        """
        factory = self.get("3", name).client()
        if not isinstance(factory, HTTPOverQUICClientFactory):
            raise TypeError(_not_a(factory, HTTPOverQUICClientFactory))
        return factory

    def quic_server_factory(self, name: str | None = None) -> HTTPOverQUICServerFactory:
        """Make the server factory of an HTTP/3 implementation.

        :raises TypeError: if the implementation's factory is not a QUIC one.
        """
        factory = self.get("3", name).server()
        if not isinstance(factory, HTTPOverQUICServerFactory):
            raise TypeError(_not_a(factory, HTTPOverQUICServerFactory))
        return factory

    def _versions(self, http_version: str) -> dict[str, ProtocolImplementation]:
        try:
            return self._by_version[http_version]
        except KeyError:
            raise ValueError(
                f"unknown HTTP version {http_version!r}; expected one of {_VERSIONS}"
            ) from None


def _not_a(factory: object, kind: type) -> str:
    return f"{factory!r} is not a {kind.__name__}"


#: The registry that hcore's own implementations are registered in and that
#: the I/O layer consults unless given another.
default_registry = ProtocolRegistry()
