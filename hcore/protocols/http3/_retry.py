"""Address validation with Retry packets (RFC 9000 §8.1.2), without state.

Theory of operation: before a server spends a handshake (and up to three
times the bytes it received, RFC 9000 §8.1) on a client address that may
be spoofed, it can answer the client's first Initial with a Retry packet
carrying a token.  A client that really is at that address sends its
Initial again, with the token, to the new connection id the Retry chose.

The token proves that, to the server alone: it holds the original
destination connection id and the time it was issued, and ends with an
HMAC-SHA256 over those, the client's address and the connection id the
Retry told the client to use.  Nothing is kept between the Retry and the
second Initial, so a flood of spoofed Initials costs one small reply each.
The key and the clock come from the caller (the factory's ``retry_key``
and the protocol's ``clock()``); the Retry's connection id is derived from
the key too, so no random source is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from aioquic.quic.packet import encode_quic_retry

from hcore._types import Address

__all__ = ("RetryTokens",)

_FORMAT = 1
_MAC_SIZE = 16
# format, issue time in milliseconds, then the original connection id.
_PREFIX = struct.Struct("!BQB")
# RFC 9000 §17.2: connection ids are at most 20 bytes.
_MAX_CID = 20


def _address_bytes(address: Address) -> bytes:
    return f"{address[0]}|{address[1]}".encode()


class RetryTokens:
    """Makes Retry packets and checks the tokens clients bring back.

    :param key: the secret the tokens are signed with, at least 16 bytes;
        servers behind one address share it.
    :param lifetime: seconds a token stays valid; the client sends it back
        at once, so a few seconds are plenty (RFC 9000 §8.1.4).
    :param connection_id_length: length of the connection id the Retry
        gives the client (the server's ``connection_id_length``).
    :raises ValueError: for a short key or a lifetime that is not positive.
    """

    def __init__(self, key: bytes, lifetime: float, connection_id_length: int) -> None:
        if len(key) < 16:
            raise ValueError("retry_key must be at least 16 bytes")
        if not lifetime > 0:
            raise ValueError("retry_token_lifetime must be positive")
        self._key = bytes(key)
        self._lifetime = float(lifetime)
        self._cid_length = connection_id_length

    def _mac(self, body: bytes, address: Address, retry_cid: bytes) -> bytes:
        message = body + b"|" + _address_bytes(address) + b"|" + retry_cid
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_SIZE]

    def retry(
        self,
        *,
        version: int,
        client_cid: bytes,
        original_cid: bytes,
        address: Address,
        now: float,
    ) -> bytes:
        """Build the Retry packet that answers a client's first Initial.

        :param version: the QUIC version of the Initial.
        :param client_cid: the Initial's source connection id.
        :param original_cid: the Initial's destination connection id.
        :param address: where the Initial came from.
        :param now: the current time, on the protocol's clock.
        :return: the datagram payload to send back to ``address``.
        """
        body = _PREFIX.pack(_FORMAT, int(now * 1000), len(original_cid)) + original_cid
        # RFC 9000 §17.2.5.1: the Retry's source connection id must differ
        # from the Initial's destination; it is derived, not random.
        seed = hmac.new(self._key, b"cid|" + body, hashlib.sha256).digest()
        retry_cid = seed[: self._cid_length]
        token = body + self._mac(body, address, retry_cid)
        return encode_quic_retry(
            version=version,
            source_cid=retry_cid,
            destination_cid=client_cid,
            original_destination_cid=original_cid,
            retry_token=token,
        )

    def validate(
        self, token: bytes, *, address: Address, destination_cid: bytes, now: float
    ) -> bytes | None:
        """Check a token from a client's Initial.

        :param token: the token field of the Initial.
        :param address: where the Initial came from.
        :param destination_cid: the Initial's destination connection id, which
            must be the one the Retry chose.
        :param now: the current time, on the protocol's clock.
        :return: the original destination connection id, or ``None`` when the
            token is not one of ours, was issued to another address or
            connection id, or has expired.
        """
        if len(token) < _PREFIX.size + _MAC_SIZE:
            return None
        form, issued_ms, cid_length = _PREFIX.unpack_from(token)
        end = _PREFIX.size + cid_length
        if form != _FORMAT or cid_length > _MAX_CID or len(token) != end + _MAC_SIZE:
            return None
        body, mac = token[:end], token[end:]
        if not hmac.compare_digest(mac, self._mac(body, address, destination_cid)):
            return None
        age = now - issued_ms / 1000
        # A token from the future was issued by a clock we do not share.
        if not -1.0 <= age <= self._lifetime:
            return None
        return body[_PREFIX.size :]
