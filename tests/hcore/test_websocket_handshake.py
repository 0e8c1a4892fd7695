"""Opening handshake helpers: request and response shapes for HTTP/1.1 Upgrade
and HTTP/2 / HTTP/3 extended CONNECT, their checks, subprotocols and
permessage-deflate negotiation (RFC 6455 §4, RFC 8441, RFC 9220, RFC 7692)."""

from __future__ import annotations

import pytest

from hcore import Headers, LocalProtocolError
from hcore.websocket import (
    ClientHandshake,
    PerMessageDeflate,
    WebSocketAccepted,
    WebSocketRejected,
    WebSocketRequest,
    WebSocketRequestRefused,
    accept_token,
    is_websocket_request,
    parse_request,
)
from hcore.websocket._extensions import (
    accept_deflate_offers,
    negotiated_from_response,
    parse_extensions,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def test_accept_token_matches_rfc_6455_example() -> None:
    # RFC 6455 §1.3.
    assert accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_http1_request_shape() -> None:
    handshake = ClientHandshake(
        "1.1",
        scheme="ws",
        authority="example.test:8080",
        path="/chat?x=1",
        subprotocols=["v2.chat", "chat"],
        extensions=[PerMessageDeflate()],
        headers=[(b"origin", b"http://example.test")],
        key=KEY,
    )
    assert not handshake.extended_connect
    assert handshake.request_headers == (
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"example.test:8080"),
        (b":path", b"/chat?x=1"),
        (b"upgrade", b"websocket"),
        (b"connection", b"upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"v2.chat, chat"),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
        (b"origin", b"http://example.test"),
    )


@pytest.mark.parametrize("version", ["2", "3"])
def test_extended_connect_request_shape(version: str) -> None:
    handshake = ClientHandshake(version, scheme="wss", authority="example.test")
    assert handshake.extended_connect
    assert handshake.request_headers == (
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/"),
        (b"sec-websocket-version", b"13"),
    )


def test_random_keys_are_valid_and_differ() -> None:
    keys = set()
    for _ in range(5):
        headers = dict(ClientHandshake("1.1", authority="h").request_headers)
        keys.add(headers[b"sec-websocket-key"])
        assert isinstance(parse_request(tuple(headers.items())), WebSocketRequest)
    assert len(keys) == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"http_version": "1.0"},
        {"scheme": "ftp"},
        {"subprotocols": ["bad protocol"]},
        {"subprotocols": ["ünicode"]},
        {"headers": [(b":path", b"/x")]},
        {"headers": [(b"sec-websocket-key", b"x")]},
        {"headers": [(b"X-Upper", b"x")]},
    ],
)
def test_client_handshake_misuse(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"http_version": "1.1", "authority": "h", **kwargs}
    with pytest.raises(LocalProtocolError):
        ClientHandshake(**args)  # type: ignore[arg-type]


def _response_101(key: bytes = KEY, *extra: tuple[bytes, bytes]) -> Headers:
    return (
        (b":status", b"101"),
        (b"upgrade", b"WebSocket"),
        (b"connection", b"keep-alive, Upgrade"),
        (b"sec-websocket-accept", accept_token(key)),
        *extra,
    )


def test_client_accepts_a_valid_101() -> None:
    handshake = ClientHandshake("1.1", authority="h", key=KEY, subprotocols=["a", "b"])
    outcome = handshake.receive_response(
        _response_101(KEY, (b"sec-websocket-protocol", b"b"))
    )
    assert isinstance(outcome, WebSocketAccepted)
    assert outcome.client and outcome.subprotocol == "b" and outcome.extensions == ()
    session = outcome.session(max_message_size=10, fragment_size=5)
    assert session.client


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (((b":status", b"200"),), "not 101"),
        (((b":status", b"xyz"),), "not 101"),
        (_response_101(b"other key"), "sec-websocket-accept"),
        (
            tuple(h for h in _response_101() if h[0] != b"upgrade"),
            "upgrade: websocket",
        ),
        (
            tuple(h for h in _response_101() if h[0] != b"connection"),
            "connection: upgrade",
        ),
        (_response_101(KEY, (b"sec-websocket-protocol", b"c")), "not offered"),
        (_response_101(KEY, (b"sec-websocket-protocol", b"a, b")), "not offered"),
        (_response_101(KEY, (b"sec-websocket-protocol", b"a b")), "malformed"),
        (
            _response_101(KEY, (b"sec-websocket-extensions", b"x-custom")),
            "not offered",
        ),
        (
            _response_101(KEY, (b"sec-websocket-extensions", b"permessage-deflate")),
            "not offered",
        ),
    ],
)
def test_client_rejects_a_bad_101(response: Headers, reason: str) -> None:
    handshake = ClientHandshake("1.1", authority="h", key=KEY, subprotocols=["a", "b"])
    outcome = handshake.receive_response(response)
    assert isinstance(outcome, WebSocketRejected)
    assert reason in outcome.reason
    assert outcome.headers == tuple(response)


@pytest.mark.parametrize(
    ("status", "accepted"),
    [(b"200", True), (b"204", True), (b"101", False), (b"403", False)],
)
def test_client_extended_connect_status(status: bytes, accepted: bool) -> None:
    handshake = ClientHandshake("2", authority="h")
    outcome = handshake.receive_response(((b":status", status),))
    assert isinstance(outcome, WebSocketAccepted) == accepted
    if not accepted:
        assert isinstance(outcome, WebSocketRejected)
        assert outcome.status == int(status)


# -- server side -----------------------------------------------------------------


def _upgrade(*changes: tuple[bytes, bytes | None]) -> list[tuple[bytes, bytes]]:
    headers = dict(
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"example.test"),
            (b":path", b"/ws"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", KEY),
            (b"sec-websocket-version", b"13"),
        ]
    )
    for name, value in changes:
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return list(headers.items())


def _connect(*changes: tuple[bytes, bytes | None]) -> list[tuple[bytes, bytes]]:
    headers = dict(
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"https"),
            (b":authority", b"example.test"),
            (b":path", b"/ws"),
            (b"sec-websocket-version", b"13"),
        ]
    )
    for name, value in changes:
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return list(headers.items())


def test_server_accepts_an_upgrade() -> None:
    request = parse_request(
        _upgrade(
            (b"sec-websocket-protocol", b"chat, superchat"),
            (
                b"sec-websocket-extensions",
                b"permessage-deflate; client_max_window_bits",
            ),
        )
    )
    assert isinstance(request, WebSocketRequest)
    assert not request.extended_connect
    assert request.subprotocols == ("chat", "superchat")
    assert (request.scheme, request.authority, request.path) == (
        b"http",
        b"example.test",
        b"/ws",
    )
    accepted = request.accept(
        subprotocol="chat",
        extensions=[PerMessageDeflate(server_no_context_takeover=True)],
        headers=[(b"set-cookie", b"a=b")],
    )
    assert accepted.headers == (
        (b":status", b"101"),
        (b"upgrade", b"websocket"),
        (b"connection", b"upgrade"),
        (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"sec-websocket-protocol", b"chat"),
        (
            b"sec-websocket-extensions",
            b"permessage-deflate; server_no_context_takeover",
        ),
        (b"set-cookie", b"a=b"),
    )
    assert not accepted.client
    assert accepted.extensions == (PerMessageDeflate(server_no_context_takeover=True),)


def test_server_accepts_extended_connect_without_extensions() -> None:
    request = parse_request(
        _connect((b"sec-websocket-extensions", b"permessage-deflate"))
    )
    assert isinstance(request, WebSocketRequest)
    assert request.extended_connect
    accepted = request.accept()  # the server does not want compression
    assert accepted.headers == ((b":status", b"200"),)
    assert accepted.extensions == () and accepted.subprotocol is None


def test_server_accept_and_reject_misuse() -> None:
    request = parse_request(_upgrade((b"sec-websocket-protocol", b"chat")))
    assert isinstance(request, WebSocketRequest)
    with pytest.raises(LocalProtocolError):
        request.accept(subprotocol="other")
    with pytest.raises(LocalProtocolError):
        request.accept(headers=[(b"sec-websocket-accept", b"x")])
    with pytest.raises(LocalProtocolError):
        request.reject(200)
    with pytest.raises(LocalProtocolError):
        request.reject(101)
    assert request.reject() == ((b":status", b"403"),)
    assert request.reject(401, [(b"www-authenticate", b"Basic")]) == (
        (b":status", b"401"),
        (b"www-authenticate", b"Basic"),
    )


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        (_upgrade((b"upgrade", None)), 426, "not a WebSocket upgrade"),
        (_upgrade((b"connection", b"keep-alive")), 426, "not a WebSocket upgrade"),
        (_upgrade((b":method", b"POST")), 400, "GET"),
        (_upgrade((b"sec-websocket-key", None)), 400, "sec-websocket-key"),
        (_upgrade((b"sec-websocket-key", b"not base64!")), 400, "sec-websocket-key"),
        (_upgrade((b"sec-websocket-key", b"c2hvcnQ=")), 400, "sec-websocket-key"),
        (_upgrade((b"sec-websocket-version", b"8")), 426, "version"),
        (_upgrade((b"sec-websocket-version", None)), 426, "version"),
        (_upgrade((b":authority", None)), 400, ":authority"),
        (_upgrade((b"sec-websocket-protocol", b"a b")), 400, "malformed"),
        (_upgrade((b"sec-websocket-extensions", b"bad name;")), 400, "malformed"),
        (_connect((b":protocol", b"webtransport")), 400, "another protocol"),
        (_connect((b":method", b"GET")), 400, "another protocol"),
        (_connect((b":path", None)), 400, ":scheme and :path"),
        (_connect((b":scheme", None)), 400, ":scheme and :path"),
        (_connect((b":authority", None)), 400, ":authority"),
        (_connect((b"sec-websocket-version", b"12")), 400, "version"),
    ],
)
def test_server_refuses_bad_requests(
    headers: list[tuple[bytes, bytes]], status: int, reason: str
) -> None:
    refused = parse_request(headers)
    assert isinstance(refused, WebSocketRequestRefused)
    assert refused.status == status
    assert reason in refused.reason
    assert refused.headers[0] == (b":status", str(status).encode())
    response = dict(refused.headers)
    if "version" in reason:
        assert response[b"sec-websocket-version"] == b"13"
    if status == 426:
        # RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        assert response[b"upgrade"] == b"websocket"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (_upgrade(), True),
        (_upgrade((b"upgrade", b"h2c, WebSocket")), True),
        (_upgrade((b"upgrade", None)), False),
        (_connect(), True),
        (_connect((b":protocol", b"WEBSOCKET")), True),
        (_connect((b":protocol", b"connect-udp")), False),
        ([(b":method", b"GET"), (b":path", b"/")], False),
    ],
)
def test_is_websocket_request(
    headers: list[tuple[bytes, bytes]], expected: bool
) -> None:
    assert is_websocket_request(headers) is expected


# -- permessage-deflate negotiation (RFC 7692) ----------------------------------


def test_deflate_parameters_render() -> None:
    assert PerMessageDeflate().offer() == "permessage-deflate; client_max_window_bits"
    assert PerMessageDeflate().response() == "permessage-deflate"
    full = PerMessageDeflate(
        client_no_context_takeover=True,
        server_no_context_takeover=True,
        client_max_window_bits=10,
        server_max_window_bits=11,
    )
    assert full.offer() == (
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover;"
        " server_max_window_bits=11; client_max_window_bits=10"
    )
    assert full.response() == full.offer()


@pytest.mark.parametrize("bits", [8, 16, 0, "10", True])
def test_deflate_window_bits_range(bits: object) -> None:
    with pytest.raises(ValueError):
        PerMessageDeflate(client_max_window_bits=bits)  # type: ignore[arg-type]


def test_parse_extensions_grammar() -> None:
    assert parse_extensions(
        [b'permessage-deflate; client_max_window_bits="10" ; x', b", , foo"]
    ) == [
        ("permessage-deflate", (("client_max_window_bits", "10"), ("x", None))),
        ("foo", ()),
    ]
    # A quoted-pair unquotes to its character (RFC 9110 §5.6.4).
    assert parse_extensions([b'a; b="\\x"']) == [("a", (("b", "x"),))]


@pytest.mark.parametrize(
    "value",
    [
        b"a b",
        b'a; b="q\\"uoted"',
        b"a; =1",
        b'a; b="unterminated',
        b"a; b=c d",
        b'a; b="c,d"',
        b"a; b=",
    ],
)
def test_parse_extensions_rejects(value: bytes) -> None:
    with pytest.raises(ValueError):
        parse_extensions([value])


def _offers(value: bytes) -> list[tuple[str, tuple[tuple[str, str | None], ...]]]:
    return parse_extensions([value])


@pytest.mark.parametrize(
    ("offer", "preference", "agreed"),
    [
        (b"permessage-deflate", PerMessageDeflate(), PerMessageDeflate()),
        (
            b"permessage-deflate; server_no_context_takeover",
            PerMessageDeflate(),
            PerMessageDeflate(server_no_context_takeover=True),
        ),
        (
            b"permessage-deflate; client_no_context_takeover",
            PerMessageDeflate(),
            PerMessageDeflate(client_no_context_takeover=True),
        ),
        (
            b"permessage-deflate; server_max_window_bits=12",
            PerMessageDeflate(server_max_window_bits=10),
            PerMessageDeflate(server_max_window_bits=10),
        ),
        (
            b"permessage-deflate; server_max_window_bits=10",
            PerMessageDeflate(server_max_window_bits=12),
            PerMessageDeflate(server_max_window_bits=10),
        ),
        (
            b"permessage-deflate; client_max_window_bits",
            PerMessageDeflate(client_max_window_bits=11),
            PerMessageDeflate(client_max_window_bits=11),
        ),
        (
            b"permessage-deflate; client_max_window_bits=9",
            PerMessageDeflate(client_max_window_bits=11),
            PerMessageDeflate(client_max_window_bits=9),
        ),
        # The server wants a small client window the first offer cannot give;
        # the second can.
        (
            b"permessage-deflate, permessage-deflate; client_max_window_bits",
            PerMessageDeflate(client_max_window_bits=9),
            PerMessageDeflate(client_max_window_bits=9),
        ),
        # Unknown extensions and unusable offers are skipped.
        (
            b"x-foo, permessage-deflate; server_max_window_bits=8,"
            b" permessage-deflate; mystery, permessage-deflate; "
            b"server_no_context_takeover; server_no_context_takeover,"
            b" permessage-deflate; server_no_context_takeover=1,"
            b" permessage-deflate",
            PerMessageDeflate(),
            PerMessageDeflate(),
        ),
        (b"x-foo", PerMessageDeflate(), None),
        (
            b"permessage-deflate",
            PerMessageDeflate(client_max_window_bits=10),
            None,
        ),
    ],
)
def test_server_deflate_negotiation(
    offer: bytes, preference: PerMessageDeflate, agreed: PerMessageDeflate | None
) -> None:
    assert accept_deflate_offers(_offers(offer), preference) == agreed


OFFER = PerMessageDeflate()


@pytest.mark.parametrize(
    ("response", "offers", "agreed"),
    [
        (b"", [OFFER], None),
        (b"permessage-deflate", [OFFER], PerMessageDeflate()),
        (
            b"permessage-deflate; client_max_window_bits=10; server_max_window_bits=9;"
            b" client_no_context_takeover; server_no_context_takeover",
            [OFFER],
            PerMessageDeflate(
                client_no_context_takeover=True,
                server_no_context_takeover=True,
                client_max_window_bits=10,
                server_max_window_bits=9,
            ),
        ),
        # The second offer fits the answer.
        (
            b"permessage-deflate",
            [PerMessageDeflate(server_no_context_takeover=True), OFFER],
            PerMessageDeflate(),
        ),
    ],
)
def test_client_deflate_negotiation(
    response: bytes,
    offers: list[PerMessageDeflate],
    agreed: PerMessageDeflate | None,
) -> None:
    assert negotiated_from_response(_offers(response), offers) == agreed


@pytest.mark.parametrize(
    ("response", "offers"),
    [
        (b"permessage-deflate, permessage-deflate", [OFFER]),
        (b"x-foo", [OFFER]),
        (b"permessage-deflate", []),
        (b"permessage-deflate; client_max_window_bits", [OFFER]),
        (b"permessage-deflate; bogus", [OFFER]),
        (b"permessage-deflate", [PerMessageDeflate(server_no_context_takeover=True)]),
        (b"permessage-deflate", [PerMessageDeflate(server_max_window_bits=10)]),
        (
            b"permessage-deflate; server_max_window_bits=11",
            [PerMessageDeflate(server_max_window_bits=10)],
        ),
        (
            b"permessage-deflate; client_max_window_bits=11",
            [PerMessageDeflate(client_max_window_bits=10)],
        ),
    ],
)
def test_client_refuses_bad_deflate_answers(
    response: bytes, offers: list[PerMessageDeflate]
) -> None:
    with pytest.raises(ValueError):
        negotiated_from_response(_offers(response), offers)
