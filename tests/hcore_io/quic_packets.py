"""Hand-built QUIC datagrams for the listener tests (RFC 9000 §17)."""

from __future__ import annotations

QUIC_V1 = 0x00000001


def long_header_datagram(
    destination_cid: bytes,
    *,
    source_cid: bytes = b"s" * 8,
    version: int = QUIC_V1,
    packet_type: int = 0,
    size: int = 1200,
) -> bytes:
    """A long header packet padded to ``size`` bytes (an Initial by default).

    :param destination_cid: the Destination Connection ID.
    :param source_cid: the Source Connection ID.
    :param version: the version field.
    :param packet_type: the two long packet type bits (0 is Initial in v1).
    :param size: the datagram size; 1200 makes it eligible to start a connection.
    """
    header = b"".join(
        [
            bytes([0xC0 | (packet_type << 4)]),
            version.to_bytes(4, "big"),
            bytes([len(destination_cid)]),
            destination_cid,
            bytes([len(source_cid)]),
            source_cid,
        ]
    )
    return header + b"\x00" * max(0, size - len(header))


def initial_datagram(destination_cid: bytes, *, size: int = 1200) -> bytes:
    """A QUIC v1 Initial datagram for ``destination_cid``, padded to ``size``."""
    return long_header_datagram(destination_cid, size=size)


def short_header_datagram(destination_cid: bytes, payload: bytes = b"1rtt") -> bytes:
    """A short header (1-RTT) packet for ``destination_cid``."""
    return bytes([0x40]) + destination_cid + payload
