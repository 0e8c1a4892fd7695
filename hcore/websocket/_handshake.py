"""Opening handshakes: HTTP/1.1 Upgrade, and extended CONNECT on HTTP/2 and /3.

A WebSocket opens with one HTTP exchange on one stream, after which the
stream carries frames (:class:`~hcore.websocket.WebSocketSession`):

- HTTP/1.1 (RFC 6455 §4): ``GET`` with ``upgrade: websocket``,
  ``connection: upgrade`` and a random ``sec-websocket-key``; the server
  answers ``101`` with ``sec-websocket-accept``, the key's SHA-1 digest.
- HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220): ``CONNECT`` with
  ``:protocol websocket``, no key, no ``upgrade``/``connection`` (they are
  connection-specific there); the server answers ``2xx``.  The server must
  have enabled extended CONNECT (``SETTINGS_ENABLE_CONNECT_PROTOCOL``).

Both carry ``sec-websocket-version: 13`` and may negotiate a subprotocol
(``sec-websocket-protocol``) and permessage-deflate
(``sec-websocket-extensions``, RFC 7692).  Headers are in hcore's form:
pseudo-headers first, names in lower case; the HTTP/1.1 protocol turns them
into the wire form.

Client: :class:`ClientHandshake` builds the request and checks the response.
The server's half is in :mod:`._server_handshake`; both end with the
:class:`WebSocketAccepted` defined here.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.websocket._extensions import (
    PerMessageDeflate,
    format_extensions,
    negotiated_from_response,
    parse_extensions,
)
from hcore.websocket._headers import (
    VERSION,
    VERSIONS,
    WEBSOCKET,
    accept_token,
    check_extra,
    check_subprotocols,
    one,
    subprotocols_of,
    tokens,
    values,
)
from hcore.websocket._session import (
    DEFAULT_FRAGMENT_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    WebSocketSession,
)

__all__ = ("ClientHandshake", "WebSocketAccepted", "WebSocketRejected")


@dataclass(frozen=True)
class WebSocketAccepted:
    """A successful handshake: the response, and what was agreed."""

    #: Whether this is the client end.
    client: bool
    #: The response header block: the one a server sends, or the one a
    #: client received.
    headers: Headers
    #: The agreed subprotocol, if any.
    subprotocol: str | None
    #: The agreed extensions (permessage-deflate or nothing).
    extensions: tuple[PerMessageDeflate, ...]

    def session(
        self,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        auto_pong: bool = True,
        auto_close: bool = True,
        stream_messages: bool = False,
    ) -> WebSocketSession:
        """Start the session this handshake opened.

        The parameters are :class:`~hcore.websocket.WebSocketSession`'s.

        :return: the session, for this end, with the agreed extensions.
        :raises ValueError: if a limit is out of range.
        """
        return WebSocketSession(
            self.client,
            extensions=self.extensions,
            max_message_size=max_message_size,
            fragment_size=fragment_size,
            auto_pong=auto_pong,
            auto_close=auto_close,
            stream_messages=stream_messages,
        )


@dataclass(frozen=True)
class WebSocketRejected:
    """Client side: the response did not open a WebSocket.

    Either the server refused (any status but 101, or 2xx for extended
    CONNECT; the response body, if any, follows on the stream) or its
    answer broke RFC 6455 (then the stream should be reset or the
    connection closed).
    """

    #: The response status.
    status: int
    #: Why this is not an acceptance.
    reason: str
    #: The response header block.
    headers: Headers


class ClientHandshake:
    """The client's half of a WebSocket opening handshake.

    :param http_version: ``"1.1"`` (Upgrade), ``"2"`` or ``"3"`` (extended
        CONNECT): the version of the connection the request goes on.
    :param authority: host and port (``:authority``).
    :param path: path and query (``:path``).
    :param scheme: ``"http"``/``"https"``, or ``"ws"``/``"wss"`` (mapped to
        the former, RFC 8441 §4).
    :param subprotocols: subprotocols to offer, preferred first.
    :param extensions: permessage-deflate offers (empty: no compression).
    :param headers: more request headers (no pseudo-headers, none of the
        handshake's own).
    :param key: the ``sec-websocket-key`` (HTTP/1.1); random by default.
    :raises LocalProtocolError: for an unknown version or scheme, a bad
        subprotocol or a header the handshake sets itself.
    """

    def __init__(
        self,
        http_version: str,
        *,
        authority: str,
        path: str = "/",
        scheme: str = "https",
        subprotocols: Sequence[str] = (),
        extensions: Sequence[PerMessageDeflate] = (),
        headers: Headers = (),
        key: bytes | None = None,
    ) -> None:
        if http_version not in VERSIONS:
            raise LocalProtocolError(f"unknown HTTP version {http_version!r}")
        schemes = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
        if scheme not in schemes:
            raise LocalProtocolError(f"not a WebSocket scheme: {scheme!r}")
        check_subprotocols(subprotocols)
        extra = check_extra(headers)
        self._extended_connect = http_version != "1.1"
        self._subprotocols = tuple(subprotocols)
        self._extensions = tuple(extensions)
        # RFC 6455 §4.1: 16 random bytes, base64 encoded.
        self._key = key if key is not None else base64.b64encode(os.urandom(16))
        request: list[tuple[bytes, bytes]]
        if self._extended_connect:
            # RFC 8441 §4, RFC 9220 §3.
            request = [
                (b":method", b"CONNECT"),
                (b":protocol", WEBSOCKET),
                (b":scheme", schemes[scheme].encode()),
                (b":authority", authority.encode("ascii")),
                (b":path", path.encode("ascii")),
            ]
        else:
            # RFC 6455 §4.1.
            request = [
                (b":method", b"GET"),
                (b":scheme", schemes[scheme].encode()),
                (b":authority", authority.encode("ascii")),
                (b":path", path.encode("ascii")),
                (b"upgrade", WEBSOCKET),
                (b"connection", b"upgrade"),
                (b"sec-websocket-key", self._key),
            ]
        request.append((b"sec-websocket-version", VERSION))
        if subprotocols:
            request.append(
                (b"sec-websocket-protocol", ", ".join(subprotocols).encode())
            )
        if extensions:
            request.append(
                (b"sec-websocket-extensions", format_extensions(extensions, True))
            )
        self._request = (*request, *extra)

    @property
    def extended_connect(self) -> bool:
        """Whether this is an HTTP/2 or HTTP/3 extended CONNECT."""
        return self._extended_connect

    @property
    def request_headers(self) -> Headers:
        """The request header block to submit (without ``end_stream``)."""
        return self._request

    def receive_response(
        self, headers: Headers
    ) -> WebSocketAccepted | WebSocketRejected:
        """Check the server's final response.

        :param headers: the response header block (``:status`` first).
        :return: :class:`WebSocketAccepted` (start its session), or
            :class:`WebSocketRejected` with the reason.
        """
        status_value = one(headers, b":status") or b""
        status = int(status_value) if status_value.isdigit() else 0

        def rejected(reason: str) -> WebSocketRejected:
            return WebSocketRejected(status, reason, tuple(headers))

        if self._extended_connect:
            # RFC 8441 §5: a 2xx opens the tunnel.
            if not 200 <= status < 300:
                return rejected(f"the server answered {status}, not 2xx")
        else:
            if status != 101:
                return rejected(f"the server answered {status}, not 101")
            # RFC 6455 §4.1, the client's checks 2-4.
            if WEBSOCKET not in tokens(headers, b"upgrade"):
                return rejected("the 101 lacks upgrade: websocket")
            if b"upgrade" not in tokens(headers, b"connection"):
                return rejected("the 101 lacks connection: upgrade")
            if one(headers, b"sec-websocket-accept") != accept_token(self._key):
                return rejected("wrong or missing sec-websocket-accept")
        # RFC 6455 §4.1, check 6: at most one subprotocol, one we offered.
        try:
            chosen = subprotocols_of(headers)
        except ValueError:
            return rejected("malformed sec-websocket-protocol")
        if len(chosen) > 1 or (chosen and chosen[0] not in self._subprotocols):
            return rejected(f"the server chose a subprotocol not offered: {chosen}")
        # RFC 6455 §4.1, check 5, and RFC 7692 §5.
        try:
            agreed = negotiated_from_response(
                parse_extensions(values(headers, b"sec-websocket-extensions")),
                self._extensions,
            )
        except ValueError as exc:
            return rejected(f"bad sec-websocket-extensions: {exc}")
        return WebSocketAccepted(
            client=True,
            headers=tuple(headers),
            subprotocol=chosen[0] if chosen else None,
            extensions=() if agreed is None else (agreed,),
        )
