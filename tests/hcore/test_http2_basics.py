"""HTTP/2 basics: preface, SETTINGS, factories, and ordinary exchanges."""

from __future__ import annotations

import pytest
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from hcore import HTTP2_ERROR_CODES, LocalProtocolError
from hcore.events import (
    DataReceived,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols import ALPNHTTPFactory, default_registry
from hcore.protocols.http2 import (
    H2ClientProtocol,
    H2Protocol,
    H2ServerProtocol,
    HTTP2ClientFactory,
    HTTP2ServerFactory,
)
from tests.hcore.http2_helpers import PREFACE, RawClient, h2_pair, parse_frames, request
from tests.hcore.pairs import TCPPair, drain

OK = [(b":status", b"200")]


def test_client_queues_preface_settings_and_connection_window() -> None:
    client = H2ClientProtocol()
    data = client.bytes_to_send()
    assert data.startswith(PREFACE)
    settings, window = parse_frames(data)
    assert isinstance(settings, SettingsFrame)
    assert settings.settings[SettingsFrame.ENABLE_PUSH] == 0
    assert settings.settings[SettingsFrame.INITIAL_WINDOW_SIZE] == 65_535
    assert settings.settings[SettingsFrame.MAX_HEADER_LIST_SIZE] == 65_536
    assert isinstance(window, WindowUpdateFrame)
    assert (window.stream_id, window.window_increment) == (0, 2**20 - 65_535)
    assert client.bytes_to_send() == b""


def test_server_settings_and_h2c_prior_knowledge() -> None:
    server = H2ServerProtocol(max_concurrent_streams=7, enable_connect_protocol=True)
    [settings, _window] = parse_frames(server.bytes_to_send())
    assert isinstance(settings, SettingsFrame)
    assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 7
    assert settings.settings[SettingsFrame.ENABLE_CONNECT_PROTOCOL] == 1
    # The preface is accepted on plain TCP, with no HTTP/1.1 upgrade.
    client = H2ClientProtocol()
    server.bytes_received(client.bytes_to_send())
    [ack] = parse_frames(server.bytes_to_send())
    assert isinstance(ack, SettingsFrame)
    assert "ACK" in ack.flags
    assert server.next_event() is None


def test_properties() -> None:
    pair = h2_pair()
    for protocol in (pair.client, pair.server):
        assert isinstance(protocol, H2Protocol)
        assert protocol.http_version == "2"
        assert protocol.multiplexed
        assert protocol.error_codes is HTTP2_ERROR_CODES
        assert not protocol.has_expired()
        assert protocol.is_available()
        assert protocol.pending_data_size(1) == 0
    assert pair.client.get_available_stream_id() == 1
    assert pair.client.get_available_stream_id() == 1
    with pytest.raises(LocalProtocolError):
        pair.server.get_available_stream_id()


def test_factories_and_registry() -> None:
    client_factory = HTTP2ClientFactory(initial_window_size=100_000)
    server_factory = HTTP2ServerFactory(max_concurrent_streams=3)
    assert tuple(client_factory.alpn_protocols) == ("h2",)
    assert tuple(server_factory.alpn_protocols) == ("h2",)
    client = client_factory(tls_version="TLSv1.3", alpn_protocol="h2")
    server = server_factory()
    assert isinstance(client, H2ClientProtocol)
    assert isinstance(server, H2ServerProtocol)
    settings = parse_frames(client.bytes_to_send())[0]
    assert isinstance(settings, SettingsFrame)
    assert settings.settings[SettingsFrame.INITIAL_WINDOW_SIZE] == 100_000
    settings = parse_frames(server.bytes_to_send())[0]
    assert isinstance(settings, SettingsFrame)
    assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 3
    with pytest.raises(LocalProtocolError):
        client_factory(alpn_protocol="http/1.1")
    with pytest.raises(LocalProtocolError):
        server_factory(alpn_protocol="http/1.1")
    assert isinstance(default_registry.tcp_client_factory("2"), HTTP2ClientFactory)
    assert isinstance(
        default_registry.tcp_server_factory("2", "h2"), HTTP2ServerFactory
    )
    chosen = ALPNHTTPFactory([HTTP2ClientFactory()])(alpn_protocol="h2")
    assert isinstance(chosen, H2ClientProtocol)


@pytest.mark.parametrize(
    "option",
    [
        {"initial_window_size": 65_534},
        {"initial_window_size": 2**31},
        {"connection_window_size": 1000},
        {"max_header_list_size": 0},
        {"max_concurrent_streams": 0},
        {"max_rapid_resets": -1},
        {"rapid_reset_window": 0},
        {"enable_connect_protocol": 1},
        {"max_concurrent_streams": 1.5},
    ],
)
def test_bad_options_are_refused(option: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HTTP2ServerFactory(**option)  # type: ignore[arg-type]


def test_client_factory_checks_options() -> None:
    with pytest.raises(ValueError):
        HTTP2ClientFactory(max_header_list_size=-5)


def test_concurrent_streams_are_multiplexed() -> None:
    pair = h2_pair()
    ids = []
    for n in range(3):
        sid = pair.client.get_available_stream_id()
        pair.client.submit_headers(sid, request(f"/{n}".encode()), end_stream=True)
        ids.append(sid)
    assert ids == [1, 3, 5]
    pair.pump()
    requests = pair.server_events()
    assert [type(e) for e in requests] == [HeadersReceived] * 3
    assert all(isinstance(e, HeadersReceived) and e.end_stream for e in requests)
    # Answer in reverse order, interleaving the bodies.
    for sid in reversed(ids):
        pair.server.submit_headers(sid, OK)
    for sid in ids:
        pair.server.submit_data(sid, b"body %d" % sid)
    for sid in ids:
        pair.server.submit_data(sid, b"", end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(5, OK),
        HeadersReceived(3, OK),
        HeadersReceived(1, OK),
        DataReceived(1, b"body 1"),
        DataReceived(3, b"body 3"),
        DataReceived(5, b"body 5"),
        DataReceived(1, b"", end_stream=True),
        DataReceived(3, b"", end_stream=True),
        DataReceived(5, b"", end_stream=True),
    ]
    # Every stream is closed on both sides now.
    for sid in ids:
        with pytest.raises(LocalProtocolError):
            pair.client.submit_data(sid, b"x")
        with pytest.raises(LocalProtocolError):
            pair.server.submit_data(sid, b"x")


def test_request_body_trailers_and_response_trailers() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/up", b"POST", (b"te", b"trailers")))
    client.submit_data(1, b"abc")
    client.submit_headers(1, [(b"x-sum", b"6")], end_stream=True)
    pair.pump()
    assert pair.server_events() == [
        HeadersReceived(1, request(b"/up", b"POST", (b"te", b"trailers"))),
        DataReceived(1, b"abc"),
        TrailersReceived(1, [(b"x-sum", b"6")]),
    ]
    server.submit_headers(1, OK)
    server.submit_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(1, OK),
        TrailersReceived(1, [(b"grpc-status", b"0")]),
    ]
    assert not client.has_expired()


def test_informational_responses() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/", b"PUT", (b"expect", b"100-continue")))
    pair.pump()
    pair.server_events()
    pair.server.submit_headers(1, [(b":status", b"100")])
    pair.server.submit_headers(1, [(b":status", b"103"), (b"link", b"</a.css>")])
    pair.pump()
    assert pair.client_events() == [
        InformationalResponseReceived(1, [(b":status", b"100")]),
        InformationalResponseReceived(
            1, [(b":status", b"103"), (b"link", b"</a.css>")]
        ),
    ]
    pair.client.submit_data(1, b"x", end_stream=True)
    pair.server.submit_headers(1, [(b":status", b"204")], end_stream=True)
    pair.pump()
    assert pair.server_events() == [DataReceived(1, b"x", end_stream=True)]
    assert pair.client_events() == [
        HeadersReceived(1, [(b":status", b"204")], end_stream=True)
    ]


def test_connect_tunnel_passes_bytes() -> None:
    pair = h2_pair()
    connect = [(b":method", b"CONNECT"), (b":authority", b"upstream.test:443")]
    pair.client.submit_headers(1, connect)
    pair.pump()
    assert pair.server_events() == [HeadersReceived(1, connect)]
    pair.server.submit_headers(1, OK)
    pair.server.submit_data(1, b"\x16\x03\x01 server hello")
    pair.client.submit_data(1, b"\x16\x03\x01 client hello")
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(1, OK),
        DataReceived(1, b"\x16\x03\x01 server hello"),
    ]
    assert pair.server_events() == [DataReceived(1, b"\x16\x03\x01 client hello")]
    pair.client.submit_data(1, b"", end_stream=True)
    pair.server.submit_data(1, b"", end_stream=True)
    pair.pump()
    assert pair.client_events() == [DataReceived(1, b"", end_stream=True)]
    assert pair.server_events() == [DataReceived(1, b"", end_stream=True)]


def _websocket_request() -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/chat"),
        (b"sec-websocket-version", b"13"),
    ]


def test_extended_connect_when_the_server_enables_it() -> None:
    pair = h2_pair(server=H2ServerProtocol(enable_connect_protocol=True))
    pair.client.submit_headers(1, _websocket_request())
    pair.pump()
    assert pair.server_events() == [HeadersReceived(1, _websocket_request())]
    pair.server.submit_headers(1, OK)
    pair.server.submit_data(1, b"\x81\x02hi")
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(1, OK),
        DataReceived(1, b"\x81\x02hi"),
    ]


def test_extended_connect_needs_the_servers_setting() -> None:
    pair = h2_pair()
    with pytest.raises(LocalProtocolError, match="extended CONNECT"):
        pair.client.submit_headers(1, _websocket_request())
    assert pair.client.bytes_to_send() == b""
    assert pair.client.get_available_stream_id() == 1


def test_cookies_are_joined_and_kept_out_of_the_index() -> None:
    pair = h2_pair()
    pair.client.submit_headers(
        1,
        request(b"/", b"GET", (b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")),
        end_stream=True,
    )
    pair.pump()
    [event] = pair.server_events()
    assert isinstance(event, HeadersReceived)
    assert event.headers == tuple(
        request(b"/", b"GET", (b"cookie", b"a=1; b=2"), (b"x", b"y"))
    )
    assert isinstance(event.headers[4], NeverIndexedHeaderTuple)


def test_credentials_are_sent_never_indexed() -> None:
    pair = h2_pair()
    pair.client.submit_headers(
        1,
        request(b"/", b"GET", (b"authorization", b"Basic dXNlcjpwYXNz")),
        end_stream=True,
    )
    pair.pump()
    [event] = pair.server_events()
    assert isinstance(event, HeadersReceived)
    assert event.headers[4] == (b"authorization", b"Basic dXNlcjpwYXNz")
    assert isinstance(event.headers[4], NeverIndexedHeaderTuple)


def test_connection_specific_fields_are_dropped_when_sending() -> None:
    pair = h2_pair()
    pair.client.submit_headers(
        1,
        request(
            b"/",
            b"GET",
            (b"connection", b"keep-alive"),
            (b"keep-alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
            (b"te", b"gzip"),
            (b"te", b"trailers"),
            (b"accept", b"*/*"),
        ),
        end_stream=True,
    )
    pair.pump()
    [event] = pair.server_events()
    assert isinstance(event, HeadersReceived)
    assert event.headers == tuple(
        request(b"/", b"GET", (b"te", b"trailers"), (b"accept", b"*/*"))
    )


def test_large_header_block_spans_continuation_frames() -> None:
    pair = h2_pair()
    big = b"v" * 40_000
    pair.client.submit_headers(
        1, request(b"/", b"GET", (b"x-big", big)), end_stream=True
    )
    frames = parse_frames(pair.client.bytes_to_send())
    assert isinstance(frames[0], HeadersFrame)
    assert any(isinstance(f, ContinuationFrame) for f in frames)
    pair.server.bytes_received(
        b"".join(f.serialize() for f in frames)  # the same bytes, re-serialized
    )
    [event] = drain(pair.server)
    assert isinstance(event, HeadersReceived)
    assert event.headers[4] == (b"x-big", big)


def test_padding_credit_is_returned_at_once() -> None:
    server = H2ServerProtocol(connection_window_size=65_535)
    raw = RawClient(server)
    raw.start()
    raw.send(*raw.headers(1, request(b"/", b"POST"), end_stream=False))
    assert drain(server) == [HeadersReceived(1, request(b"/", b"POST"))]
    # 400 frames of 1 byte + 255 padding: 100 KiB of window, 400 bytes of data.
    for _ in range(400):
        raw.send(raw.data(1, b"z", pad=255))
        for event in drain(server):
            assert event == DataReceived(1, b"z")
    updates = [f for f in raw.read() if isinstance(f, WindowUpdateFrame)]
    credit = {0: 0, 1: 0}
    for update in updates:
        credit[update.stream_id] += update.window_increment
    # Everything but the last few frames' worth has been credited back.
    assert credit[0] >= 400 * 257 - 65_535 // 2
    assert credit[1] >= 400 * 257 - 65_535 // 2
    assert not any(isinstance(f, DataFrame) for f in raw.frames)


def test_unknown_and_extension_frames_are_ignored() -> None:
    pair = h2_pair()
    # PING, PRIORITY and an unknown frame type 0xfa.
    pair.server.bytes_received(bytes.fromhex("000008060000000000") + b"12345678")
    pair.server.bytes_received(bytes.fromhex("0000050200000000030000000010"))
    pair.server.bytes_received(bytes.fromhex("000002fa0000000000") + b"hi")
    assert drain(pair.server) == []
    assert not pair.server.has_expired()
    pong = parse_frames(pair.server.bytes_to_send())
    assert [type(f).__name__ for f in pong] == ["PingFrame"]


def test_pair_from_factories() -> None:
    pair = TCPPair(HTTP2ClientFactory()(), HTTP2ServerFactory()())
    pair.pump()
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    assert pair.server_events() == [HeadersReceived(1, request(), end_stream=True)]
