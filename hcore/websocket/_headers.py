"""Header rules shared by both ends of the opening handshake (RFC 6455 §4, §9.1)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from hcore._errors import LocalProtocolError
from hcore._types import Headers

__all__ = (
    "GUID",
    "RESERVED",
    "VERSION",
    "VERSIONS",
    "WEBSOCKET",
    "accept_token",
    "check_extra",
    "check_subprotocols",
    "is_token",
    "one",
    "subprotocols_of",
    "tokens",
    "values",
)

# RFC 6455 §1.3: the GUID appended to the key before hashing.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# RFC 6455 §4.1: the only version.
VERSION = b"13"
WEBSOCKET = b"websocket"
# The HTTP versions a handshake can run on.
VERSIONS = ("1.1", "2", "3")
# Headers the handshake owns; callers may not add them.
RESERVED = frozenset(
    (
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-accept",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    )
)
_SEPARATORS = frozenset(b'()<>@,;:\\"/[]?={} \t')


def accept_token(key: bytes) -> bytes:
    """The ``sec-websocket-accept`` value for a ``sec-websocket-key`` (RFC 6455 §4.2.2).

    :param key: the key, as sent (base64 text).
    :return: base64 of the SHA-1 of the key and the RFC's GUID.
    """
    digest = hashlib.sha1(key + GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest)


def values(headers: Headers, name: bytes) -> list[bytes]:
    """Every value of header ``name``, in order."""
    return [value for key, value in headers if key == name]


def one(headers: Headers, name: bytes) -> bytes | None:
    """The value of a header that must appear once, or ``None``."""
    found = values(headers, name)
    return found[0] if len(found) == 1 else None


def tokens(headers: Headers, name: bytes) -> list[bytes]:
    """A comma-separated list header's elements, lower-cased."""
    return [
        item.strip().lower()
        for value in values(headers, name)
        for item in value.split(b",")
        if item.strip()
    ]


def is_token(value: bytes) -> bool:
    """Whether ``value`` is an RFC 9110 §5.6.2 token."""
    return bool(value) and all(33 <= b <= 126 and b not in _SEPARATORS for b in value)


def subprotocols_of(headers: Headers) -> tuple[str, ...]:
    """``sec-websocket-protocol``'s list; :raises ValueError: if malformed."""
    items = [
        item.strip()
        for value in values(headers, b"sec-websocket-protocol")
        for item in value.split(b",")
        if item.strip()
    ]
    if not all(is_token(item) for item in items):
        raise ValueError("malformed sec-websocket-protocol")
    return tuple(item.decode("ascii") for item in items)


def check_extra(headers: Headers) -> tuple[tuple[bytes, bytes], ...]:
    """Check a caller's extra headers: plain, lower-case, not the handshake's."""
    extra = tuple((bytes(name), bytes(value)) for name, value in headers)
    for name, _ in extra:
        if name.startswith(b":") or name != name.lower() or name in RESERVED:
            raise LocalProtocolError(
                f"header {name!r} is the handshake's to set (or not lower-case)"
            )
    return extra


def check_subprotocols(subprotocols: Sequence[str]) -> None:
    """Check that subprotocols to offer are tokens (RFC 6455 §4.1)."""
    for item in subprotocols:
        if not is_token(item.encode("ascii", "replace")):
            raise LocalProtocolError(f"subprotocol {item!r} is not a token")
