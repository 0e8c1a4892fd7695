"""Endpoints: where a server listens, written as ``http://HOST:PORT`` or ``https://...``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ("Endpoint", "parse_endpoint")


@dataclass(frozen=True)
class Endpoint:
    """One place to listen.

    ``http`` listens on TCP for HTTP/1.1 and HTTP/2 with prior knowledge
    (h2c).  ``https`` listens on TCP with TLS (HTTP/1.1 and HTTP/2 chosen
    by ALPN) and on UDP, on the same port, for HTTP/3.
    """

    #: ``"http"`` or ``"https"``.
    scheme: str
    #: The address to bind (an IP address or a host name; ``""`` for every
    #: interface).
    host: str
    #: The port; ``0`` lets the system pick one.
    port: int

    @property
    def tls(self) -> bool:
        """Whether the endpoint uses TLS."""
        return self.scheme == "https"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``http://HOST:PORT`` or ``https://HOST:PORT`` (IPv6 in brackets).

    :raises ValueError: if the text is not such an endpoint.
    """
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint {text!r}: the scheme must be http or https")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"endpoint {text!r}: only a host and a port may be given")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"endpoint {text!r}: no user information allowed")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint {text!r}: {exc}") from None
    if port is None:
        raise ValueError(f"endpoint {text!r}: a port is required")
    host = parts.hostname
    if host is None:
        raise ValueError(f"endpoint {text!r}: a host is required")
    return Endpoint(parts.scheme, host, port)
