"""HTTP/3 messages whose content-length describes no content that follows.

RFC 9110 §8.6, §9.3.2 and RFC 9114 §4.1.2: a response to HEAD, a 1xx, 204 or
304 response has no content whatever its ``content-length`` says, and after
a 2xx to CONNECT the stream is a tunnel.  Where the field does describe the
content, a mismatch is still H3_MESSAGE_ERROR.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcore import Headers
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols import HTTPOverQUICProtocol
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore.protocols.http3._content import ContentAwareH3Connection, _pseudo
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

H3_MESSAGE_ERROR = 0x10E


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def pair(tls: TLSFiles) -> QUICPair:
    made = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    made.pump()
    return made


def request(method: bytes = b"GET", *extra: tuple[bytes, bytes]) -> Headers:
    if method == b"CONNECT":
        return [(b":method", method), (b":authority", b"upstream.test:443"), *extra]
    return [
        (b":method", method),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/resource"),
        *extra,
    ]


def response(status: bytes, length: bytes = b"1000") -> Headers:
    return [(b":status", status), (b"content-length", length)]


def send_request(
    pair: QUICPair, method: bytes, *extra: tuple[bytes, bytes], end: bool = True
) -> int:
    """Send a request and wait until the server has its header block."""
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, request(method, *extra), end_stream=end)
    pair.pump()
    events = drain(pair.server)
    assert isinstance(events[0], HeadersReceived), events
    assert events[0].stream_id == sid
    return sid


def stream_events(pair: QUICPair, protocol: HTTPOverQUICProtocol) -> list[Event]:
    pair.pump()
    events = drain(protocol)
    assert not any(isinstance(e, ConnectionTerminated) for e in events), events
    return events


def terminated(pair: QUICPair, protocol: HTTPOverQUICProtocol) -> ConnectionTerminated:
    """Run until ``protocol`` reports the end of the connection."""
    seen: list[Event] = []

    def done() -> bool:
        seen.extend(drain(protocol))
        return any(isinstance(e, ConnectionTerminated) for e in seen)

    pair.run_until(done)
    [end] = [e for e in seen if isinstance(e, ConnectionTerminated)]
    return end


def assert_get_completes(pair: QUICPair) -> None:
    """The connection still works: a GET with a sized body goes through."""
    sid = send_request(pair, b"GET")
    pair.server.submit_headers(sid, response(b"200", b"5"))
    pair.server.submit_data(sid, b"hello", end_stream=True)
    events = stream_events(pair, pair.client)
    assert events[0] == HeadersReceived(sid, tuple(response(b"200", b"5")))
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"hello"
    assert isinstance(events[-1], DataReceived) and events[-1].end_stream
    for protocol in (pair.client, pair.server):
        assert not protocol.has_expired()


def test_head_with_content_length_and_no_body(pair: QUICPair) -> None:
    sid = send_request(pair, b"HEAD")
    # The server answers as it would a GET, without the body: no error here.
    pair.server.submit_headers(sid, response(b"200"), end_stream=True)
    assert pair.server.pending_data_size(sid) == 0
    events = stream_events(pair, pair.client)
    assert events == [HeadersReceived(sid, tuple(response(b"200")), end_stream=True)]
    assert drain(pair.server) == []
    assert_get_completes(pair)


def test_head_ended_by_an_empty_data_frame(pair: QUICPair) -> None:
    sid = send_request(pair, b"HEAD")
    pair.server.submit_headers(sid, response(b"200"))
    pair.pump()
    pair.server.submit_data(sid, b"", end_stream=True)
    events = stream_events(pair, pair.client)
    assert events == [
        HeadersReceived(sid, tuple(response(b"200"))),
        DataReceived(sid, b"", end_stream=True),
    ]
    assert_get_completes(pair)


def test_head_after_interim_response(pair: QUICPair) -> None:
    sid = send_request(pair, b"HEAD")
    pair.server.submit_headers(sid, [(b":status", b"103"), (b"link", b"</a>")])
    pair.server.submit_headers(sid, response(b"200", b"77"), end_stream=True)
    events = stream_events(pair, pair.client)
    assert [type(e) for e in events] == [
        InformationalResponseReceived,
        HeadersReceived,
    ]
    assert_get_completes(pair)


def test_many_heads_then_get(pair: QUICPair) -> None:
    sids = [send_request(pair, b"HEAD") for _ in range(20)]
    for sid in sids:
        pair.server.submit_headers(sid, response(b"200", b"123456"), end_stream=True)
    events = stream_events(pair, pair.client)
    assert sorted(e.stream_id for e in events if isinstance(e, HeadersReceived)) == (
        sids
    )
    h3 = pair.client._h3  # type: ignore[attr-defined]
    assert isinstance(h3, ContentAwareH3Connection)
    # What was noted per request went with aioquic's stream records.
    assert len(h3._hcore_methods) == 0
    assert len(h3._hcore_lengths) == 0
    assert_get_completes(pair)


@pytest.mark.parametrize("status", [b"204", b"304"])
@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_no_content_status_with_content_length(
    pair: QUICPair, status: bytes, method: bytes
) -> None:
    sid = send_request(pair, method)
    pair.server.submit_headers(sid, response(status, b"42"), end_stream=True)
    events = stream_events(pair, pair.client)
    assert events == [HeadersReceived(sid, tuple(response(status, b"42")), True)]
    assert_get_completes(pair)


def test_head_response_with_data_is_malformed(pair: QUICPair) -> None:
    # RFC 9110 §9.3.2: the answer to HEAD has no content, so DATA is wrong
    # even when its length is the one the field gives.
    sid = send_request(pair, b"HEAD")
    pair.server.submit_headers(sid, response(b"200", b"5"))
    pair.server.submit_data(sid, b"hello", end_stream=True)
    end = terminated(pair, pair.client)
    assert end.error_code == H3_MESSAGE_ERROR


def test_204_with_data_is_malformed(pair: QUICPair) -> None:
    sid = send_request(pair, b"GET")
    pair.server.submit_headers(sid, [(b":status", b"204")])
    pair.server.submit_data(sid, b"x", end_stream=True)
    end = terminated(pair, pair.client)
    assert end.error_code == H3_MESSAGE_ERROR


@pytest.mark.parametrize("body", [b"short", b"longer than ten"])
def test_get_body_not_matching_content_length_fails(
    pair: QUICPair, body: bytes
) -> None:
    sid = send_request(pair, b"GET")
    pair.server.submit_headers(sid, response(b"200", b"10"))
    pair.server.submit_data(sid, body, end_stream=True)
    end = terminated(pair, pair.client)
    assert end.error_code == H3_MESSAGE_ERROR
    assert end.message is not None and "content-length" in end.message


def test_get_with_content_length_and_no_body_fails(pair: QUICPair) -> None:
    sid = send_request(pair, b"GET")
    pair.server.submit_headers(sid, response(b"200"), end_stream=True)
    end = terminated(pair, pair.client)
    assert end.error_code == H3_MESSAGE_ERROR


def test_request_body_not_matching_content_length_fails(pair: QUICPair) -> None:
    sid = send_request(pair, b"POST", (b"content-length", b"10"), end=False)
    pair.client.submit_data(sid, b"abc", end_stream=True)
    end = terminated(pair, pair.server)
    assert end.error_code == H3_MESSAGE_ERROR


def test_head_request_with_content_length_is_checked(pair: QUICPair) -> None:
    # The request's own field still describes the request's content.
    sid = send_request(pair, b"HEAD", (b"content-length", b"3"), end=False)
    pair.client.submit_data(sid, b"ab", end_stream=True)
    end = terminated(pair, pair.server)
    assert end.error_code == H3_MESSAGE_ERROR


def test_connect_tunnel_ignores_content_length(pair: QUICPair) -> None:
    # RFC 9110 §8.6: a 2xx to CONNECT must not send the field; if it does,
    # the tunnel's bytes are not measured by it, either way.
    sid = send_request(pair, b"CONNECT", (b"content-length", b"0"), end=False)
    pair.server.submit_headers(sid, response(b"200", b"3"))
    pair.client.submit_data(sid, b"tunnelled upstream bytes")
    pair.server.submit_data(sid, b"tunnelled downstream bytes")
    client_events = stream_events(pair, pair.client)
    server_events = stream_events(pair, pair.server)
    assert client_events == [
        HeadersReceived(sid, tuple(response(b"200", b"3"))),
        DataReceived(sid, b"tunnelled downstream bytes"),
    ]
    assert server_events == [DataReceived(sid, b"tunnelled upstream bytes")]
    pair.client.submit_data(sid, b"", end_stream=True)
    pair.server.submit_data(sid, b"!", end_stream=True)
    assert stream_events(pair, pair.client)[-1] == DataReceived(sid, b"!", True)
    assert stream_events(pair, pair.server) == [DataReceived(sid, b"", True)]
    assert_get_completes(pair)


def test_refused_connect_keeps_the_check(pair: QUICPair) -> None:
    # A CONNECT answered with an error is no tunnel: its body is sized.
    sid = send_request(pair, b"CONNECT", end=False)
    pair.server.submit_headers(sid, response(b"403", b"10"))
    pair.server.submit_data(sid, b"no", end_stream=True)
    end = terminated(pair, pair.client)
    assert end.error_code == H3_MESSAGE_ERROR


def test_connect_request_is_a_tunnel_whatever_the_field_order(pair: QUICPair) -> None:
    sid = pair.client.get_available_stream_id()
    head = [
        (b":authority", b"upstream.test:443"),
        (b":method", b"CONNECT"),
        (b"content-length", b"1"),
    ]
    pair.client.submit_headers(sid, head)
    pair.client.submit_data(sid, b"more than one byte", end_stream=True)
    events = stream_events(pair, pair.server)
    assert events[0] == HeadersReceived(sid, tuple(head))
    assert events[-1] == DataReceived(sid, b"more than one byte", True)


def test_trailers_after_a_sized_body(pair: QUICPair) -> None:
    sid = send_request(pair, b"GET")
    pair.server.submit_headers(sid, response(b"200", b"3"))
    pair.server.submit_data(sid, b"abc")
    pair.server.submit_headers(sid, [(b"x-sum", b"1")], end_stream=True)
    events = stream_events(pair, pair.client)
    assert events[-1] == TrailersReceived(sid, ((b"x-sum", b"1"),))
    assert_get_completes(pair)


def test_pseudo_header_lookup_stops_at_regular_fields() -> None:
    assert _pseudo([(b":status", b"204")], b":status") == b"204"
    assert _pseudo([(b":a", b"1"), (b":method", b"HEAD")], b":method") == b"HEAD"
    assert _pseudo([(b"x", b"1"), (b":method", b"HEAD")], b":method") is None
    assert _pseudo([(b":status", b"200")], b":method") is None
