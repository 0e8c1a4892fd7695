"""A WebSocket and an event stream without I/O: hcore.websocket and hcore.sse.

Both ends of a WebSocket run in memory: the handshake's header blocks and
the sessions' bytes are handed from one to the other directly, where a real
program would put them on an HTTP stream (of any version).  Then an event
stream is written with :func:`~hcore.sse.encode_event` and read back with
:class:`~hcore.sse.EventStreamParser`, cut at every byte.

Run it: ``python docs/examples/sans_io_websocket_sse.py``.
"""

from __future__ import annotations

from hcore.sse import EventStreamParser, ServerSentEvent, encode_comment, encode_event
from hcore.websocket import (
    ClientHandshake,
    PerMessageDeflate,
    WebSocketAccepted,
    WebSocketRequest,
    WebSocketSession,
    parse_request,
)


def handshake() -> tuple[WebSocketSession, WebSocketSession]:
    """Open a WebSocket: the client's request, the server's answer."""
    client = ClientHandshake(
        "2",  # an extended CONNECT; "1.1" would make an Upgrade request
        authority="example.com",
        path="/chat",
        subprotocols=["chat.v2", "chat.v1"],
        extensions=[PerMessageDeflate()],
    )
    # The server parses the request header block its protocol delivered.
    request = parse_request(client.request_headers)
    assert isinstance(request, WebSocketRequest)  # else: send its refusal
    accepted = request.accept(
        subprotocol=request.subprotocols[0], extensions=[PerMessageDeflate()]
    )
    print("response:", accepted.headers)
    # The client checks the response header block.
    outcome = client.receive_response(accepted.headers)
    assert isinstance(outcome, WebSocketAccepted)  # else: WebSocketRejected
    print("agreed:", outcome.subprotocol, outcome.extensions)
    return outcome.session(), accepted.session()


def exchange(client: WebSocketSession, server: WebSocketSession) -> None:
    """Messages, a ping and the closing handshake, bytes handed across."""
    client.send_text("hello " * 100)  # compressed: permessage-deflate
    client.send_ping(b"are you there?")
    wire = client.data_to_send()
    print(f"client sends {len(wire)} bytes")
    server.receive_data(wire)
    for event in server.events():
        print("server got", type(event).__name__)
    # The session answered the ping by itself; now the server sends.
    server.send_bytes(b"\x00\x01\x02")
    client.receive_data(server.data_to_send())
    client.send_close(1000, "bye")
    server.receive_data(client.data_to_send())  # the server echoes the Close
    client.receive_data(server.data_to_send())
    for event in client.events():
        print("client got", event)
    print("states:", client.state.name, server.state.name)


def event_stream() -> None:
    """An event stream written, then read back cut at every byte."""
    body = (
        encode_comment("keep-alive")
        + encode_event(ServerSentEvent("first\nof two lines", id="1"))
        + encode_event(ServerSentEvent('{"x": 1}', event="update", id="2", retry=500))
    )
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    for index in range(len(body)):
        events += parser.feed(body[index : index + 1])
    for event in events:
        print(event)
    print("last event id:", parser.last_event_id, "retry:", parser.retry)


if __name__ == "__main__":
    exchange(*handshake())
    event_stream()
