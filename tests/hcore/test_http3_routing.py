"""Routing datagrams before a connection exists, and bad input of every kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import QuicPacketType, QuicProtocolVersion, pull_quic_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcore import Datagram, Headers, LocalProtocolError
from hcore.events import ConnectionTerminated, HeadersReceived
from hcore.protocols.http3 import (
    DatagramRoute,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
    build_version_negotiation,
    parse_datagram_route,
)
from tests.hcore.quic_pairs import (
    CLIENT_ADDRESS,
    SERVER_ADDRESS,
    QUICPair,
    TLSFiles,
    drain,
    make_tls_files,
)

V1 = QuicProtocolVersion.VERSION_1
V2 = QuicProtocolVersion.VERSION_2
SUPPORTED = (V1, V2)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def initial(tls: TLSFiles) -> bytes:
    """A client's first datagram: an Initial padded to 1200 bytes."""
    client = HTTP3ClientFactory()(
        remote_address=SERVER_ADDRESS,
        server_name="example.test",
        tls_config=tls.client(),
    )
    client.clock(0.0)
    [first] = client.datagrams_to_send()
    return first.data


def request() -> Headers:
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/"),
    ]


def long_header(version: int, dcid: bytes, scid: bytes, size: int = 1200) -> bytes:
    head = (
        bytes([0xC0])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
    )
    return head + bytes(size - len(head))


def test_initial_of_a_supported_version(initial: bytes) -> None:
    route = parse_datagram_route(initial, 8, SUPPORTED)
    assert not route.drop
    assert route.is_initial
    assert not route.needs_version_negotiation
    assert route.version == V1
    assert len(route.destination_connection_id) == 8
    assert len(route.source_connection_id) == 8


def test_the_server_routes_by_the_ids_it_reports(tls: TLSFiles, initial: bytes) -> None:
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    first = pair.client.datagrams_to_send()[0].data
    route = parse_datagram_route(first, 8, SUPPORTED)
    pair.server.datagram_received(Datagram(first, CLIENT_ADDRESS))
    assert route.destination_connection_id in pair.server.connection_ids
    pair.pump()
    pair.client.submit_headers(1, request(), end_stream=True)
    for datagram in pair.client.datagrams_to_send():
        later = parse_datagram_route(datagram.data, 8, SUPPORTED)
        assert not later.drop and not later.is_initial and later.version is None
        assert later.destination_connection_id in pair.server.connection_ids
        pair.server.datagram_received(Datagram(datagram.data, CLIENT_ADDRESS))
    assert isinstance(drain(pair.server)[0], HeadersReceived)
    # The original destination id was only needed until the handshake.
    assert route.destination_connection_id not in pair.server.connection_ids


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x40",  # short header without a connection id
        b"\x00" * 50,  # fixed bit clear
        b"\xc0\x00\x00",  # long header cut in the version
        b"\xc0\x00\x00\x00\x01\x08abc",  # cut in the destination id
        b"\xc0\x00\x00\x00\x01\x02ab\x09abc",  # cut in the source id
    ],
)
def test_garbage_is_dropped(data: bytes) -> None:
    assert parse_datagram_route(data, 8, SUPPORTED) == DatagramRoute(drop=True)


def test_truncated_initial_is_dropped(initial: bytes) -> None:
    assert parse_datagram_route(initial[:1000], 8, SUPPORTED).drop
    assert parse_datagram_route(initial[:60], 8, SUPPORTED).drop


def test_small_initial_is_dropped() -> None:
    # RFC 9000 §14.1: Initial packets come in datagrams of 1200 bytes or more.
    head = long_header(V1, b"d" * 8, b"s" * 8, size=24)
    packet = head[:-1] + b"\x00" + b"\x14" + bytes(20)  # token 0, length 20
    header = pull_quic_header(Buffer(data=packet), host_cid_length=8)
    assert header.packet_type is QuicPacketType.INITIAL
    assert parse_datagram_route(packet, 8, SUPPORTED).drop


def test_short_header_routes_by_its_connection_id() -> None:
    route = parse_datagram_route(b"\x40" + b"c" * 8 + bytes(30), 8, SUPPORTED)
    assert route == DatagramRoute(drop=False, destination_connection_id=b"c" * 8)


def test_unknown_version_gets_version_negotiation() -> None:
    data = long_header(0x1A2A3A4A, b"d" * 8, b"s" * 5)
    route = parse_datagram_route(data, 8, SUPPORTED)
    assert route.needs_version_negotiation and not route.drop and not route.is_initial
    reply = build_version_negotiation(route, SUPPORTED)
    header = pull_quic_header(Buffer(data=reply), host_cid_length=8)
    assert header.packet_type is QuicPacketType.VERSION_NEGOTIATION
    assert header.destination_cid == b"s" * 5
    assert header.source_cid == b"d" * 8
    assert header.supported_versions == list(SUPPORTED)


def test_version_negotiation_reads_long_ids_of_other_versions() -> None:
    # RFC 8999 lets other versions use connection ids of up to 255 bytes.
    data = long_header(0x0A0A0A0A, b"d" * 40, b"s" * 30)
    route = parse_datagram_route(data, 8, SUPPORTED)
    assert route.needs_version_negotiation
    assert route.destination_connection_id == b"d" * 40
    assert len(build_version_negotiation(route, [V1])) == 7 + 40 + 30 + 4


def test_no_version_negotiation_for_small_or_negotiation_datagrams() -> None:
    assert parse_datagram_route(
        long_header(0x1A2A3A4A, b"d", b"s", 100), 8, SUPPORTED
    ).drop
    assert parse_datagram_route(long_header(0, b"d", b"s"), 8, SUPPORTED).drop


def test_build_version_negotiation_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        build_version_negotiation(DatagramRoute(drop=True), SUPPORTED)
    route = parse_datagram_route(long_header(0x1A2A3A4A, b"d", b"s"), 8, SUPPORTED)
    with pytest.raises(LocalProtocolError):
        build_version_negotiation(route, [])


def test_version_negotiation_end_to_end(tls: TLSFiles) -> None:
    # A client that starts with QUIC v2 meets a listener that only speaks v1;
    # the listener answers from the route, the client retries with v1.
    server_factory = HTTP3ServerFactory(supported_versions=[V1])
    pair = QUICPair(
        HTTP3ClientFactory(supported_versions=[V2, V1]),
        server_factory,
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    [first] = pair.client.datagrams_to_send()
    route = parse_datagram_route(
        first.data,
        server_factory.quic_connection_id_length,
        server_factory.quic_supported_versions,
    )
    assert route.version == V2 and route.needs_version_negotiation
    pair.server.datagram_received(Datagram(first.data, CLIENT_ADDRESS))
    assert pair.server.connection_ids == ()  # the protocol dropped it too
    reply = build_version_negotiation(route, server_factory.quic_supported_versions)
    pair.client.datagram_received(Datagram(reply, SERVER_ADDRESS))
    pair.pump()
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    assert isinstance(drain(pair.server)[0], HeadersReceived)


def test_server_protocol_waits_for_a_real_initial(
    tls: TLSFiles, initial: bytes
) -> None:
    server = HTTP3ServerFactory()(tls_config=tls.server())
    assert server.get_timer() is None
    assert server.datagrams_to_send() == []
    with pytest.raises(LocalProtocolError):
        server.datagram_received(Datagram(initial, CLIENT_ADDRESS))  # no clock yet
    server.clock(0.0)
    for junk in (b"", b"\x40" + bytes(40), initial[:1000], bytes(1500)):
        server.datagram_received(Datagram(junk, CLIENT_ADDRESS))
        assert server.connection_ids == ()
        assert server.datagrams_to_send() == []
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"200")])
    server.submit_stream_reset(1)
    server.submit_close()
    assert drain(server) == [ConnectionTerminated(0x100)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1400))
def test_random_bytes_never_raise(data: bytes) -> None:
    route = parse_datagram_route(data, 8, SUPPORTED)
    if route.needs_version_negotiation:
        assert build_version_negotiation(route, SUPPORTED)
    assert route.drop or route.destination_connection_id or data[0] & 0x80


@settings(max_examples=40, deadline=None)
@given(
    junk=st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.binary(min_size=1200, max_size=1300),
            st.builds(lambda b: b"\x40" + b, st.binary(max_size=100)),
            st.builds(lambda b: b"\xc0\x00\x00\x00\x01" + b, st.binary(max_size=1300)),
        ),
        max_size=5,
    )
)
def test_junk_into_a_live_connection_changes_nothing(
    tls: TLSFiles, junk: list[bytes]
) -> None:
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    pair.pump()
    for data in junk:
        pair.client.datagram_received(Datagram(data, SERVER_ADDRESS))
        pair.server.datagram_received(Datagram(data, CLIENT_ADDRESS))
        # From an address the client never talked to: dropped unread.
        pair.client.datagram_received(Datagram(data, ("203.0.113.5", 443)))
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    assert drain(pair.server) == [HeadersReceived(1, tuple(request()), end_stream=True)]
    assert drain(pair.client) == []
