"""Routing of datagrams that reach a QUIC listener, before any connection exists.

A listener shares one UDP socket between connections and tells them apart by
the destination connection id of each packet (RFC 9000 §5.2).
:func:`parse_datagram_route` reads what it needs from the first packet of a
datagram without decrypting anything, and never raises: anything that is not
QUIC comes back as a route with :attr:`DatagramRoute.drop` set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# aioquic.buffer re-exports its C Buffer without marking it public.
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from hcore._errors import LocalProtocolError

__all__ = ("DatagramRoute", "build_version_negotiation", "parse_datagram_route")

# RFC 9000 §14.1: a server drops Initial packets in smaller datagrams, and
# answers unknown versions only in datagrams at least this big (§5.2.2, §6.1)
# so that Version Negotiation cannot amplify an attack.
_MIN_INITIAL_DATAGRAM = 1200
_LONG_HEADER = 0x80
_VERSION_NEGOTIATION = 0


@dataclass(frozen=True)
class DatagramRoute:
    """What a QUIC listener should do with a datagram, read from its header.

    Route by :attr:`destination_connection_id` to an existing connection; if
    there is none, open one when :attr:`is_initial`; answer
    :attr:`needs_version_negotiation` with :func:`build_version_negotiation`;
    otherwise drop the datagram.
    """

    #: Nothing to do: not a QUIC packet, malformed, truncated, or not
    #: acceptable (an Initial in a datagram under 1200 bytes, a Version
    #: Negotiation packet, an unknown version in a small datagram).
    drop: bool
    #: The destination connection id to route by (empty when dropped).
    destination_connection_id: bytes = b""
    #: The source connection id of a long-header packet.
    source_connection_id: bytes = b""
    #: The QUIC version of a long-header packet; ``None`` for a short header.
    version: int | None = None
    #: Whether it is a long-header Initial of a supported version in a datagram
    #: big enough to open a connection.
    is_initial: bool = False
    #: Whether to answer with Version Negotiation (an unsupported version).
    needs_version_negotiation: bool = False


_DROP = DatagramRoute(drop=True)


def _invariant_header(data: bytes) -> tuple[int, bytes, bytes] | None:
    # The version-independent long header (RFC 8999 §5.1): first byte,
    # 32-bit version, then two length-prefixed connection ids of up to 255
    # bytes each, whatever the version.
    if len(data) < 7:
        return None
    version = int.from_bytes(data[1:5], "big")
    dcid_end = 6 + data[5]
    if dcid_end + 1 > len(data):
        return None
    scid_end = dcid_end + 1 + data[dcid_end]
    if scid_end > len(data):
        return None
    return version, data[6:dcid_end], data[dcid_end + 1 : scid_end]


def parse_datagram_route(
    data: bytes, connection_id_length: int, supported_versions: Sequence[int]
) -> DatagramRoute:
    """Decide where a datagram that reached a QUIC listener goes.

    :param data: the datagram payload.
    :param connection_id_length: the length of the connection ids the server
        issues, needed to read short headers (the server factory's
        ``quic_connection_id_length``).
    :param supported_versions: the versions the server accepts (the server
        factory's ``quic_supported_versions``).
    :return: the route; garbage gives ``drop=True``, never an exception.
    """
    if not data:
        return _DROP
    if data[0] & _LONG_HEADER:
        invariant = _invariant_header(data)
        if invariant is None:
            return _DROP
        version, dcid, scid = invariant
        if version == _VERSION_NEGOTIATION:
            # Only clients act on Version Negotiation (RFC 9000 §6.2).
            return _DROP
        if version not in supported_versions:
            if len(data) < _MIN_INITIAL_DATAGRAM:
                return _DROP
            return DatagramRoute(
                drop=False,
                destination_connection_id=dcid,
                source_connection_id=scid,
                version=version,
                needs_version_negotiation=True,
            )
    try:
        header = pull_quic_header(
            Buffer(data=data), host_cid_length=connection_id_length
        )
    except ValueError:
        # aioquic's parse errors, BufferReadError included, are ValueErrors.
        return _DROP
    if (
        header.packet_type is QuicPacketType.INITIAL
        and len(data) < _MIN_INITIAL_DATAGRAM
    ):
        return _DROP
    return DatagramRoute(
        drop=False,
        destination_connection_id=header.destination_cid,
        source_connection_id=header.source_cid,
        version=header.version,
        is_initial=header.packet_type is QuicPacketType.INITIAL,
    )


def build_version_negotiation(
    route: DatagramRoute, supported_versions: Sequence[int]
) -> bytes:
    """Build the Version Negotiation packet that answers a datagram.

    The reply swaps the connection ids of the client's packet and lists the
    versions the server accepts (RFC 9000 §17.2.1).

    :param route: a route with :attr:`~DatagramRoute.needs_version_negotiation`.
    :param supported_versions: the versions to offer.
    :return: the datagram payload to send back to the datagram's source.
    :raises LocalProtocolError: if the route does not call for one, or no
        version is offered.
    """
    if not route.needs_version_negotiation:
        raise LocalProtocolError("this datagram does not call for Version Negotiation")
    if not supported_versions:
        raise LocalProtocolError("Version Negotiation needs at least one version")
    return encode_quic_version_negotiation(
        source_cid=route.destination_connection_id,
        destination_cid=route.source_connection_id,
        supported_versions=list(supported_versions),
    )
