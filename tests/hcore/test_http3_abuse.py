"""HTTP/3 and QUIC abuse: amplification, Retry, QPACK, stream counts, idleness.

The peer is the hcore client driven off its normal path through its aioquic
connection (raw encoder-stream instructions, raw HEADERS frames, stream ids
past the limit), or datagrams replayed by hand.  Each test cites the RFC
section whose bound it crosses and checks the answer.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
import trustme
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from hcore import Datagram, Headers, ServerTLSConfig
from hcore.events import ConnectionTerminated, DataReceived, HeadersReceived
from hcore.protocols import HTTPOverQUICProtocol
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from hcore.protocols.http3._retry import RetryTokens
from tests.hcore.quic_pairs import (
    CLIENT_ADDRESS,
    SERVER_ADDRESS,
    QUICPair,
    TLSFiles,
    drain,
    make_tls_files,
)

KEY = b"k" * 32
QPACK_DECOMPRESSION_FAILED = 0x200
QPACK_ENCODER_STREAM_ERROR = 0x201
H3_EXCESSIVE_LOAD = 0x107
STREAM_LIMIT_ERROR = 0x4
INVALID_TOKEN = 0xB


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def big_cert(tmp_path_factory: pytest.TempPathFactory) -> ServerTLSConfig:
    """A server certificate with 300 names: its flight is far over 3,600 bytes."""
    directory = Path(tmp_path_factory.mktemp("big"))
    ca = trustme.CA()
    names = ["example.test", *(f"host-{i}.example.test" for i in range(300))]
    cert = ca.issue_cert(*names)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    with open(cert_file, "wb") as file:
        for blob in cert.cert_chain_pems:
            file.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(key_file))
    return ServerTLSConfig(certfile=str(cert_file), keyfile=str(key_file))


def request() -> Headers:
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/"),
    ]


def make_pair(tls: TLSFiles, **server: object) -> QUICPair:
    made = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(**server),  # type: ignore[arg-type]
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    made.pump()
    return made


def quic_of(protocol: HTTPOverQUICProtocol) -> object:
    assert isinstance(protocol, AioquicProtocol)
    return protocol._quic


def last_event(protocol: HTTPOverQUICProtocol) -> ConnectionTerminated:
    events = drain(protocol)
    assert events and isinstance(events[-1], ConnectionTerminated), events
    assert protocol.has_expired()
    return events[-1]


def varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 §16)."""
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    return (value | 0x8000_0000).to_bytes(4, "big")


def prefixed(value: int, bits: int, first: int) -> bytes:
    """A QPACK/HPACK prefixed integer (RFC 7541 §5.1)."""
    limit = (1 << bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def encoder_stream(protocol: HTTPOverQUICProtocol, data: bytes) -> None:
    """Write raw QPACK encoder instructions (RFC 9204 §4.3)."""
    assert isinstance(protocol, AioquicProtocol) and protocol._h3 is not None
    quic = quic_of(protocol)
    quic.send_stream_data(protocol._h3._local_encoder_stream_id, data)  # type: ignore[attr-defined]


def raw_headers(protocol: HTTPOverQUICProtocol, section: bytes) -> int:
    """Open a request stream with one raw HEADERS frame (RFC 9114 §7.2.2)."""
    quic = quic_of(protocol)
    stream_id: int = quic.get_next_available_stream_id()  # type: ignore[attr-defined]
    frame = varint(0x1) + varint(len(section)) + section
    quic.send_stream_data(stream_id, frame)  # type: ignore[attr-defined]
    return stream_id


def insert_entry(size: int) -> bytes:
    """Set a 4 KiB table and insert one entry "x: aaa..." (RFC 9204 §4.3)."""
    return (
        prefixed(4096, 5, 0x20)
        + prefixed(1, 5, 0x40)
        + b"x"
        + prefixed(size, 7, 0x00)
        + b"a" * size
    )


def references(count: int) -> bytes:
    """A field section repeating dynamic entry 0 ``count`` times.

    Required Insert Count 1 (encoded 2), Base 1, then indexed field lines
    with relative index 0 (RFC 9204 §4.5.1, §4.5.2).
    """
    return b"\x02\x00" + b"\x80" * count


# -- amplification (RFC 9000 §8.1) ---------------------------------------------


def first_flight(client_tls: object, now: float) -> tuple[HTTPOverQUICProtocol, bytes]:
    client = HTTP3ClientFactory()(
        remote_address=SERVER_ADDRESS,
        server_name="example.test",
        tls_config=client_tls,  # type: ignore[arg-type]
    )
    client.clock(now)
    [initial] = client.datagrams_to_send()
    return client, initial.data


def test_server_sends_at_most_three_times_what_it_received(
    tls: TLSFiles, big_cert: ServerTLSConfig
) -> None:
    # RFC 9000 §8.1: before the client's address is validated, a server
    # sends at most three times the bytes it received.  The certificate
    # makes the server's flight far bigger than that; the client (spoofed)
    # never answers, and the server's retransmissions stay under the limit
    # until the connection gives up at its idle timeout.
    now = 100.0
    _client, initial = first_flight(tls.client(cafile=None, insecure=True), now)
    server = HTTP3ServerFactory(idle_timeout=10.0)(tls_config=big_cert)
    server.clock(now)
    server.datagram_received(Datagram(initial, CLIENT_ADDRESS))
    sent = 0
    for _ in range(1000):
        sent += sum(len(d.data) for d in server.datagrams_to_send())
        when = server.get_timer()
        if when is None:
            break
        now = max(now + 1e-6, when)
        server.clock(now)
    assert 0 < sent <= 3 * len(initial)
    assert server.get_timer() is None
    assert last_event(server).error_code is not None
    assert now <= 100.0 + 10.0 + 1.0


def test_handshake_completes_when_the_client_answers(
    tls: TLSFiles, big_cert: ServerTLSConfig
) -> None:
    # RFC 9000 §8.1: the limit lifts once the client proves its address (a
    # Handshake packet); the big flight then arrives whole.
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(cafile=None, insecure=True),
        server_tls=big_cert,
    )
    pair.run_until(
        lambda: pair.client.is_available() and pair.server.get_timer() is not None,
        max_time=5,
    )
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, request(), end_stream=True)
    pair.pump()
    assert drain(pair.server) == [HeadersReceived(sid, tuple(request()), True)]


# -- Retry (RFC 9000 §8.1.2) ---------------------------------------------------


def retry_pair(tls: TLSFiles, **server: object) -> tuple[QUICPair, HTTP3ServerFactory]:
    """A pair whose server validates addresses with Retry.

    The first server protocol answers with Retry and ends; like a listener,
    the pair then gives the client's second Initial to a new protocol.
    """
    factory = HTTP3ServerFactory(retry_key=KEY, **server)  # type: ignore[arg-type]
    pair = QUICPair(
        HTTP3ClientFactory(), factory, client_tls=tls.client(), server_tls=tls.server()
    )
    return pair, factory


def test_first_initial_gets_a_retry_and_nothing_is_kept(tls: TLSFiles) -> None:
    pair, _ = retry_pair(tls)
    [initial] = pair.client.datagrams_to_send()
    pair.server.datagram_received(initial.__class__(initial.data, CLIENT_ADDRESS))
    [retry] = pair.server.datagrams_to_send()
    assert retry.address == CLIENT_ADDRESS
    header = pull_quic_header(Buffer(data=retry.data), host_cid_length=8)
    assert header.packet_type == QuicPacketType.RETRY
    # RFC 9000 §8.1: the reply is far under three times the Initial.
    assert len(retry.data) < len(initial.data)
    assert last_event(pair.server).error_code == 0x100
    assert pair.server.get_timer() is None
    assert list(pair.server.connection_ids) == []
    assert pair.server.datagrams_to_send() == []


def test_handshake_and_request_through_retry(tls: TLSFiles) -> None:
    pair, factory = retry_pair(tls)
    first = pair.server
    for _ in range(100):
        pair.collect()
        if first.has_expired() and pair.server is first:
            # What a listener does: the client's new connection id is
            # unknown, so a new protocol takes the Initial with the token.
            pair.server = factory(tls_config=tls.server())
            pair.server.clock(pair.now)
            break
        when = pair.next_time()
        assert when is not None
        pair.advance(when)
    assert pair.server is not first
    client = pair.client
    assert isinstance(client, AioquicProtocol)
    pair.run_until(lambda: client._handshake_complete, max_time=5)
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, request(), end_stream=True)
    pair.pump()
    assert drain(pair.server) == [HeadersReceived(sid, tuple(request()), True)]
    pair.server.submit_headers(sid, [(b":status", b"200")])
    pair.server.submit_data(sid, b"hello", end_stream=True)
    pair.pump()
    events = drain(pair.client)
    assert events[-1] == DataReceived(sid, b"hello", end_stream=True)


def second_initial(tls: TLSFiles) -> tuple[bytes, HTTP3ServerFactory, float]:
    """The client's Initial that carries a Retry token, and when it was sent."""
    pair, factory = retry_pair(tls)
    [initial] = pair.client.datagrams_to_send()
    pair.server.datagram_received(Datagram(initial.data, CLIENT_ADDRESS))
    [retry] = pair.server.datagrams_to_send()
    pair.client.datagram_received(Datagram(retry.data, SERVER_ADDRESS))
    [again] = pair.client.datagrams_to_send()
    header = pull_quic_header(Buffer(data=again.data), host_cid_length=8)
    assert header.token
    return again.data, factory, pair.now


@pytest.mark.parametrize(
    ("address", "delay"),
    [(("192.0.2.99", 50000), 0.0), (("192.0.2.1", 50001), 0.0), (CLIENT_ADDRESS, 11.0)],
)
def test_token_from_another_address_or_too_old_is_dropped(
    tls: TLSFiles, address: tuple[str, int], delay: float
) -> None:
    # RFC 9000 §8.1.2, §8.1.3: a token is valid for the address it was
    # issued to, for a short time; otherwise the Initial is discarded.
    data, factory, now = second_initial(tls)
    server = factory(tls_config=tls.server())
    server.clock(now + delay)
    server.datagram_received(Datagram(data, address))
    assert server.datagrams_to_send() == []
    assert last_event(server).error_code == INVALID_TOKEN
    assert server.get_timer() is None


def test_token_accepted_within_its_lifetime(tls: TLSFiles) -> None:
    data, factory, now = second_initial(tls)
    server = factory(tls_config=tls.server())
    server.clock(now + 9.0)
    server.datagram_received(Datagram(data, CLIENT_ADDRESS))
    assert server.datagrams_to_send()
    assert drain(server) == [] and not server.has_expired()


def test_token_signed_with_another_key_is_dropped(tls: TLSFiles) -> None:
    data, _, now = second_initial(tls)
    server = HTTP3ServerFactory(retry_key=b"o" * 32)(tls_config=tls.server())
    server.clock(now)
    server.datagram_received(Datagram(data, CLIENT_ADDRESS))
    assert server.datagrams_to_send() == []
    assert last_event(server).error_code == INVALID_TOKEN


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"\x01",
        b"\x02" + b"\x00" * 40,
        b"\x01" + b"\x00" * 8 + b"\x30" + b"\x00" * 80,
    ],
)
def test_malformed_tokens_are_refused(token: bytes) -> None:
    tokens = RetryTokens(KEY, 10.0, 8)
    assert (
        tokens.validate(token, address=CLIENT_ADDRESS, destination_cid=b"c" * 8, now=5)
        is None
    )


def test_token_from_the_future_is_refused() -> None:
    tokens = RetryTokens(KEY, 10.0, 8)
    packet = tokens.retry(
        version=1,
        client_cid=b"s" * 8,
        original_cid=b"o" * 8,
        address=CLIENT_ADDRESS,
        now=50,
    )
    header = pull_quic_header(Buffer(data=packet), host_cid_length=8)
    kwargs = {"address": CLIENT_ADDRESS, "destination_cid": header.source_cid}
    assert tokens.validate(header.token, now=50, **kwargs) == b"o" * 8  # type: ignore[arg-type]
    assert tokens.validate(header.token, now=45, **kwargs) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "lifetime"), [(b"short", 10.0), (KEY, 0.0), (KEY, -1.0)]
)
def test_retry_settings_are_checked(key: bytes, lifetime: float) -> None:
    with pytest.raises(ValueError):
        HTTP3ServerFactory(retry_key=key, retry_token_lifetime=lifetime)


# -- QPACK (RFC 9204) ----------------------------------------------------------


def test_dynamic_table_is_off_by_default(tls: TLSFiles) -> None:
    # RFC 9204 §3.2.3, §4.3.1: setting a capacity above the
    # SETTINGS_QPACK_MAX_TABLE_CAPACITY we sent (0) is an encoder stream
    # error.
    pair = make_pair(tls)
    encoder_stream(pair.client, prefixed(4096, 5, 0x20))
    pair.pump()
    assert last_event(pair.server).error_code == QPACK_ENCODER_STREAM_ERROR
    assert last_event(pair.client).error_code == QPACK_ENCODER_STREAM_ERROR


def test_table_capacity_over_the_configured_one(tls: TLSFiles) -> None:
    pair = make_pair(tls, qpack_max_table_capacity=1024)
    encoder_stream(pair.client, prefixed(2048, 5, 0x20))
    pair.pump()
    assert last_event(pair.server).error_code == QPACK_ENCODER_STREAM_ERROR


def test_qpack_bomb_is_refused(tls: TLSFiles) -> None:
    # A QPACK bomb: 4 KB in the dynamic table, then one-byte references;
    # 2 KB of HEADERS would decode to 8 MB.  Over
    # SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2): H3_EXCESSIVE_LOAD.
    pair = make_pair(tls, qpack_max_table_capacity=4096, max_field_section_size=16_384)
    encoder_stream(pair.client, insert_entry(4000))
    pair.pump()
    raw_headers(pair.client, references(2000))
    pair.pump()
    refused = last_event(pair.server)
    assert refused.error_code == H3_EXCESSIVE_LOAD
    assert last_event(pair.client).error_code == H3_EXCESSIVE_LOAD


def test_big_qpack_bomb_is_refused_before_decoding(tls: TLSFiles) -> None:
    # An encoded section over the limit is refused unread: 70,000 references
    # would decode to 280 MB; memory stays small.
    pair = make_pair(tls, qpack_max_table_capacity=4096)
    encoder_stream(pair.client, insert_entry(4000))
    pair.pump()
    raw_headers(pair.client, references(70_000))
    tracemalloc.start()
    try:
        pair.pump()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024
    assert last_event(pair.server).error_code == H3_EXCESSIVE_LOAD


def test_plain_header_section_over_the_limit(tls: TLSFiles) -> None:
    # RFC 9114 §4.2.2: literal fields over the advertised size.
    pair = make_pair(tls, max_field_section_size=4096)
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, [*request(), (b"x-big", b"v" * 5000)])
    pair.pump()
    assert last_event(pair.server).error_code == H3_EXCESSIVE_LOAD


def test_header_section_within_the_limit(tls: TLSFiles) -> None:
    pair = make_pair(tls, max_field_section_size=8192)
    sid = pair.client.get_available_stream_id()
    block = [*request(), (b"x-big", b"v" * 5000)]
    pair.client.submit_headers(sid, block, end_stream=True)
    pair.pump()
    assert drain(pair.server) == [HeadersReceived(sid, tuple(block), True)]


def test_too_many_blocked_streams(tls: TLSFiles) -> None:
    # RFC 9204 §2.1.2: more streams blocked on table updates than
    # SETTINGS_QPACK_BLOCKED_STREAMS is a QPACK_DECOMPRESSION_FAILED error.
    pair = make_pair(tls, qpack_max_table_capacity=4096, qpack_blocked_streams=2)
    for _ in range(2):
        raw_headers(pair.client, references(1))
        pair.pump()
        assert drain(pair.server) == []
    raw_headers(pair.client, references(1))
    pair.pump()
    assert last_event(pair.server).error_code == QPACK_DECOMPRESSION_FAILED


def test_reference_to_a_disabled_table(tls: TLSFiles) -> None:
    # RFC 9204 §4.5.1.1: a Required Insert Count with no dynamic table is a
    # decompression failure.
    pair = make_pair(tls)
    raw_headers(pair.client, references(1))
    pair.pump()
    assert last_event(pair.server).error_code == QPACK_DECOMPRESSION_FAILED


@pytest.mark.parametrize(
    "settings",
    [
        {"qpack_max_table_capacity": -1},
        {"qpack_max_table_capacity": 2 << 20},
        {"qpack_blocked_streams": -1},
        {"max_field_section_size": 10},
    ],
)
def test_qpack_settings_are_checked(settings: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        HTTP3ServerFactory(**settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HTTP3ClientFactory(**settings)  # type: ignore[arg-type]


# -- stream counts (RFC 9000 §4.6) ---------------------------------------------


def test_stream_past_the_limit_closes_with_stream_limit_error(tls: TLSFiles) -> None:
    # RFC 9000 §4.6: a stream id beyond MAX_STREAMS is a STREAM_LIMIT_ERROR.
    pair = make_pair(tls)
    quic = quic_of(pair.client)
    quic._remote_max_streams_bidi = 1 << 20  # type: ignore[attr-defined]
    frame = varint(0x1) + varint(3) + b"\x00\x00\xd1"
    quic.send_stream_data(4 * 200, frame)  # type: ignore[attr-defined]
    pair.pump()
    assert last_event(pair.server).error_code == STREAM_LIMIT_ERROR


def test_client_waits_for_stream_credit(tls: TLSFiles) -> None:
    # RFC 9000 §4.6: the hcore client opens no more streams than allowed
    # (128 at once), and the server never holds more.
    pair = make_pair(tls)
    opened: list[int] = []
    while pair.client.is_available() and len(opened) < 1000:
        sid = pair.client.get_available_stream_id()
        pair.client.submit_headers(sid, request(), end_stream=True)
        opened.append(sid)
    assert len(opened) == 128
    pair.pump()
    events = drain(pair.server)
    assert len(events) == 128 and not pair.client.is_available()


# -- idle timeout (RFC 9000 §10.1) ---------------------------------------------


def test_silent_peer_mid_request_is_dropped_at_the_idle_timeout(tls: TLSFiles) -> None:
    # RFC 9000 §10.1: a client that opens a request and goes silent is
    # dropped after the idle timeout, freeing everything.
    pair = QUICPair(
        HTTP3ClientFactory(idle_timeout=30.0),
        HTTP3ServerFactory(idle_timeout=2.0),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    pair.pump()
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, request(), end_stream=False)
    pair.pump()
    assert isinstance(drain(pair.server)[0], HeadersReceived)
    start = pair.now
    pair.partitioned = True
    pair.run_until(pair.server.has_expired, max_time=10)
    assert pair.now - start <= 2.0 + 0.5
    assert isinstance(last_event(pair.server), ConnectionTerminated)
    assert pair.server.get_timer() is None


def test_initial_then_silence_ends_the_server_protocol(tls: TLSFiles) -> None:
    # RFC 9000 §10.1: the server arms the idle timer on the first datagram,
    # so a spoofed Initial costs at most one idle period.
    now = 10.0
    _client, initial = first_flight(tls.client(), now)
    server = HTTP3ServerFactory(idle_timeout=1.5)(tls_config=tls.server())
    server.clock(now)
    server.datagram_received(Datagram(initial, CLIENT_ADDRESS))
    for _ in range(1000):
        server.datagrams_to_send()
        when = server.get_timer()
        if when is None:
            break
        now = max(now + 1e-6, when)
        server.clock(now)
    assert server.get_timer() is None and server.has_expired()
    assert now <= 10.0 + 1.5 + 0.5
