"""The ASGI side of a server WebSocket: its scope, the server's settings.

Used by :class:`~hcore_io.server._websocket.WebSocketExchange`.
"""

from __future__ import annotations

from urllib.parse import unquote

from hcore.websocket import WebSocketRequest
from hcore_io.server._exchange import ConnectionInfo

__all__ = ("HANDSHAKE_FIELDS", "WebSocketOptions", "fields_of", "websocket_scope")

_ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# Response fields the handshake sets itself: an application's are dropped.
HANDSHAKE_FIELDS = frozenset(
    (
        b"connection",
        b"upgrade",
        b"sec-websocket-accept",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
        b"sec-websocket-version",
    )
)


class WebSocketOptions:
    """The server's WebSocket settings, shared by every exchange.

    :param max_message_size: largest message received, in bytes after
        decompression; a larger one closes the WebSocket with 1009.
    :param deflate: agree to permessage-deflate (RFC 7692) when offered.
    :param close_timeout: seconds the closing handshake (the peer's Close,
        then the end of its stream) may take.
    """

    __slots__ = ("close_timeout", "deflate", "max_message_size")

    def __init__(
        self, *, max_message_size: int, deflate: bool, close_timeout: float
    ) -> None:
        if not max_message_size > 0 or not close_timeout > 0:
            raise ValueError("WebSocket limits must be positive")
        self.max_message_size = max_message_size
        self.deflate = deflate
        self.close_timeout = close_timeout


def fields_of(headers: object) -> list[tuple[bytes, bytes]]:
    """Check an ASGI message's ``headers``: pairs of bytes, names lower-cased.

    :raises RuntimeError: if they are not.
    """
    if not isinstance(headers, list | tuple):
        raise RuntimeError("headers must be a list of pairs")
    fields: list[tuple[bytes, bytes]] = []
    for pair in headers:
        name, value = pair
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise RuntimeError(f"header {pair!r} is not a pair of bytes")
        fields.append((name.lower(), value))
    return fields


def websocket_scope(
    request: WebSocketRequest, info: ConnectionInfo
) -> dict[str, object]:
    """The ASGI ``websocket`` scope of a request (ASGI spec 2.4).

    :param request: the checked request.
    :param info: what the connection's exchanges share.
    :return: the scope, with the ``websocket.http.response`` extension.
    """
    fields = [(n, v) for n, v in request.headers if n[:1] != b":"]
    if not any(name == b"host" for name, _ in fields):
        fields.insert(0, (b"host", request.authority))
    raw_path, _, query = request.path.partition(b"?")
    scope: dict[str, object] = {
        "type": "websocket",
        "asgi": _ASGI_VERSION,
        "http_version": info.http_version,
        "scheme": "wss" if request.scheme == b"https" else "ws",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": info.root_path,
        "headers": fields,
        "client": info.client,
        "server": info.server,
        "subprotocols": list(request.subprotocols),
        "extensions": {"websocket.http.response": {}},
    }
    if info.state is not None:
        scope["state"] = dict(info.state)
    return scope
