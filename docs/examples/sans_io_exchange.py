"""One request and its response between two sans-IO protocols, in memory.

No sockets and no event loop: the client protocol's bytes are handed to the
server protocol and back, and each side's events are printed.  Change
``VERSION`` to ``"1.1"`` and the same code speaks HTTP/1.1.
"""

from __future__ import annotations

from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPProtocol, default_registry

VERSION = "2"


def exchange(client: HTTPOverTCPProtocol, server: HTTPOverTCPProtocol) -> None:
    """Move bytes both ways until neither side has more to say (bounded)."""
    for _ in range(100):
        to_server, to_client = client.bytes_to_send(), server.bytes_to_send()
        if not (to_server or to_client):
            return
        server.bytes_received(to_server)
        client.bytes_received(to_client)
    raise RuntimeError("the protocols are still talking")


client = default_registry.tcp_client_factory(VERSION)()
server = default_registry.tcp_server_factory(VERSION)()

stream_id = client.get_available_stream_id()
request = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"example"),
    (b":path", b"/"),
]
client.submit_headers(stream_id, request, end_stream=True)
exchange(client, server)

while (event := server.next_event()) is not None:
    print("server got", event)
    if isinstance(event, HeadersReceived):
        server.submit_headers(event.stream_id, [(b":status", b"200")])
        server.submit_data(event.stream_id, b"hello", end_stream=True)
exchange(client, server)

while (event := client.next_event()) is not None:
    print("client got", event)
    if isinstance(event, DataReceived):
        assert event.data == b"hello"
