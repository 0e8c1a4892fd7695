"""Interoperability in memory with a third-party WebSocket: wsproto's own
connection (handshake on h11, its permessage-deflate) against our handshake
helpers and session over the hcore HTTP/1.1 protocols, both ways round."""

from __future__ import annotations

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPProtocol, default_registry
from hcore.websocket import (
    BytesMessage,
    ClientHandshake,
    CloseReceived,
    PerMessageDeflate,
    PingReceived,
    PongReceived,
    SessionState,
    TextMessage,
    WebSocketAccepted,
    WebSocketEvent,
    WebSocketRequest,
    WebSocketSession,
    parse_request,
)
from tests.hcore.pairs import drain


def _wsproto_events(peer: WSConnection, data: bytes) -> list[ws.Event]:
    peer.receive_data(data)
    return list(peer.events())


def _feed(
    protocol: HTTPOverTCPProtocol, session: WebSocketSession, data: bytes
) -> list[WebSocketEvent]:
    protocol.bytes_received(data)
    for event in drain(protocol):
        assert isinstance(event, DataReceived), event
        session.receive_data(event.data)
    return list(session.events())


def _send(protocol: HTTPOverTCPProtocol, session: WebSocketSession) -> bytes:
    protocol.submit_data(1, session.data_to_send())
    return protocol.bytes_to_send()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "deflate"])
def test_wsproto_client_against_our_server(compress: bool) -> None:
    client = WSConnection(ConnectionType.CLIENT)
    server = default_registry.tcp_server_factory("1.1")()
    server.bytes_received(
        client.send(
            ws.Request(
                host="example.test",
                target="/chat",
                subprotocols=["chat"],
                extensions=[WsprotoDeflate()] if compress else [],
            )
        )
    )
    [head] = drain(server)
    assert isinstance(head, HeadersReceived)
    request = parse_request(head.headers)
    assert isinstance(request, WebSocketRequest)
    accepted = request.accept(
        subprotocol="chat",
        extensions=[PerMessageDeflate()] if compress else [],
    )
    assert len(accepted.extensions) == int(compress)
    server.submit_headers(head.stream_id, accepted.headers)
    [accept] = _wsproto_events(client, server.bytes_to_send())
    assert isinstance(accept, ws.AcceptConnection)
    assert accept.subprotocol == "chat"
    assert len(accept.extensions) == int(compress)
    session = accepted.session(fragment_size=1000)

    text = "hello from wsproto " * 200
    assert _feed(
        server,
        session,
        client.send(ws.Message(data=text))
        + client.send(ws.Message(data=b"\x00" * 5000))
        + client.send(ws.Ping(b"p")),
    ) == [TextMessage(text), BytesMessage(b"\x00" * 5000), PingReceived(b"p")]
    session.send_text("ünïcödé " * 500)
    session.send_bytes(b"\x01\x02" * 3000)
    received = _wsproto_events(client, _send(server, session))
    assert received[0] == ws.Pong(payload=b"p")
    assert "".join(e.data for e in received if isinstance(e, ws.TextMessage)) == (
        "ünïcödé " * 500
    )
    assert b"".join(e.data for e in received if isinstance(e, ws.BytesMessage)) == (
        b"\x01\x02" * 3000
    )

    assert _feed(
        server, session, client.send(ws.CloseConnection(code=1001, reason="bye"))
    ) == [CloseReceived(1001, "bye")]
    assert session.state is SessionState.CLOSED
    [closed] = _wsproto_events(client, _send(server, session))
    assert isinstance(closed, ws.CloseConnection) and closed.code == 1001


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "deflate"])
def test_our_client_against_a_wsproto_server(compress: bool) -> None:
    server = WSConnection(ConnectionType.SERVER)
    client = default_registry.tcp_client_factory("1.1")()
    handshake = ClientHandshake(
        "1.1",
        scheme="ws",
        authority="example.test",
        path="/echo",
        subprotocols=["a", "b"],
        extensions=[PerMessageDeflate()] if compress else [],
    )
    client.submit_headers(1, handshake.request_headers)
    [request] = _wsproto_events(server, client.bytes_to_send())
    assert isinstance(request, ws.Request)
    assert request.target == "/echo" and request.subprotocols == ["a", "b"]
    client.bytes_received(
        server.send(
            ws.AcceptConnection(
                subprotocol="b",
                extensions=[WsprotoDeflate()] if compress else [],
            )
        )
    )
    [response] = drain(client)
    assert isinstance(response, HeadersReceived)
    accepted = handshake.receive_response(response.headers)
    assert isinstance(accepted, WebSocketAccepted), accepted
    assert accepted.subprotocol == "b"
    assert len(accepted.extensions) == int(compress)
    session = accepted.session(fragment_size=700)

    session.send_text("x" * 3000)
    session.send_bytes(b"y" * 3000)
    session.send_ping(b"hi")
    received = _wsproto_events(server, _send(client, session))
    assert "".join(e.data for e in received if isinstance(e, ws.TextMessage)) == (
        "x" * 3000
    )
    assert b"".join(e.data for e in received if isinstance(e, ws.BytesMessage)) == (
        b"y" * 3000
    )
    assert received[-1] == ws.Ping(payload=b"hi")
    reply = (
        server.send(ws.Message(data="echo " * 1000))
        + server.send(received[-1].response())
        + server.send(ws.CloseConnection(code=4000, reason="done"))
    )
    assert _feed(client, session, reply) == [
        TextMessage("echo " * 1000),
        PongReceived(b"hi"),
        CloseReceived(4000, "done"),
    ]
    [closed] = _wsproto_events(server, _send(client, session))
    assert isinstance(closed, ws.CloseConnection) and closed.code == 4000
