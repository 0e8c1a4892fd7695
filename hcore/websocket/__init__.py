"""Sans-IO WebSockets over any HTTP stream: handshakes and sessions.

The opening handshake is one HTTP exchange: an HTTP/1.1 Upgrade (RFC 6455)
or an HTTP/2 / HTTP/3 extended CONNECT (RFC 8441, RFC 9220).
:class:`ClientHandshake` builds and checks it for a client;
:func:`parse_request` and :class:`WebSocketRequest` for a server.  Either
ends with a :class:`WebSocketAccepted`, whose
:meth:`~WebSocketAccepted.session` starts the :class:`WebSocketSession` that
turns the stream's payload bytes into message events and back.

Client, over any :class:`~hcore.protocols.HTTPProtocol`::

    handshake = ClientHandshake(protocol.http_version, authority="example.com",
                                path="/chat", extensions=[PerMessageDeflate()])
    protocol.submit_headers(stream_id, handshake.request_headers)
    ...  # HeadersReceived on stream_id:
    outcome = handshake.receive_response(event.headers)
    session = outcome.session()      # if it is a WebSocketAccepted
    session.send_text("hello")
    protocol.submit_data(stream_id, session.data_to_send())
    ...  # DataReceived on stream_id:
    session.receive_data(event.data)
    for message in session.events(): ...
"""

from hcore.websocket._events import BytesFragment as BytesFragment
from hcore.websocket._events import BytesMessage as BytesMessage
from hcore.websocket._events import CloseReceived as CloseReceived
from hcore.websocket._events import PingReceived as PingReceived
from hcore.websocket._events import PongReceived as PongReceived
from hcore.websocket._events import SessionState as SessionState
from hcore.websocket._events import SessionTerminated as SessionTerminated
from hcore.websocket._events import TextFragment as TextFragment
from hcore.websocket._events import TextMessage as TextMessage
from hcore.websocket._events import WebSocketEvent as WebSocketEvent
from hcore.websocket._extensions import PerMessageDeflate as PerMessageDeflate
from hcore.websocket._handshake import ClientHandshake as ClientHandshake
from hcore.websocket._handshake import WebSocketAccepted as WebSocketAccepted
from hcore.websocket._handshake import WebSocketRejected as WebSocketRejected
from hcore.websocket._headers import accept_token as accept_token
from hcore.websocket._server_handshake import WebSocketRequest as WebSocketRequest
from hcore.websocket._server_handshake import (
    WebSocketRequestRefused as WebSocketRequestRefused,
)
from hcore.websocket._server_handshake import (
    is_websocket_request as is_websocket_request,
)
from hcore.websocket._server_handshake import parse_request as parse_request
from hcore.websocket._session import (
    DEFAULT_FRAGMENT_SIZE as DEFAULT_FRAGMENT_SIZE,
)
from hcore.websocket._session import (
    DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE,
)
from hcore.websocket._session import WebSocketSession as WebSocketSession

__all__ = (
    "DEFAULT_FRAGMENT_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "BytesFragment",
    "BytesMessage",
    "ClientHandshake",
    "CloseReceived",
    "PerMessageDeflate",
    "PingReceived",
    "PongReceived",
    "SessionState",
    "SessionTerminated",
    "TextFragment",
    "TextMessage",
    "WebSocketAccepted",
    "WebSocketEvent",
    "WebSocketRejected",
    "WebSocketRequest",
    "WebSocketRequestRefused",
    "WebSocketSession",
    "accept_token",
    "is_websocket_request",
    "parse_request",
)
