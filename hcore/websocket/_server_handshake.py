"""The server's half of the opening handshake: check a request, answer it.

:func:`parse_request` checks an HTTP/1.1 Upgrade (RFC 6455 §4.2.1) or an
extended CONNECT (RFC 8441 §4, RFC 9220 §3) and gives either a
:class:`WebSocketRequest`, which the application accepts or rejects, or the
refusal (400/426) to send without bothering it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.websocket._extensions import (
    ExtensionOffer,
    PerMessageDeflate,
    accept_deflate_offers,
    format_extensions,
    parse_extensions,
)
from hcore.websocket._handshake import WebSocketAccepted
from hcore.websocket._headers import (
    VERSION,
    WEBSOCKET,
    accept_token,
    check_extra,
    one,
    subprotocols_of,
    tokens,
    values,
)

__all__ = (
    "WebSocketRequest",
    "WebSocketRequestRefused",
    "is_websocket_request",
    "parse_request",
)


def is_websocket_request(headers: Headers) -> bool:
    """Whether a request asks for a WebSocket (valid or not).

    True for an extended CONNECT with ``:protocol websocket`` and for a
    request with ``upgrade: websocket``; :func:`parse_request` then checks
    the rest.

    :param headers: the request header block.
    """
    protocol = one(headers, b":protocol")
    if protocol is not None:
        return protocol.lower() == WEBSOCKET
    return WEBSOCKET in tokens(headers, b"upgrade")


@dataclass(frozen=True)
class WebSocketRequestRefused:
    """Server side: a request that cannot open a WebSocket, and the answer."""

    #: 400, or 426 (the version or the upgrade is wrong, RFC 6455 §4.4).
    status: int
    #: What is wrong, for logs (and a response body, if wanted).
    reason: str
    #: The response header block to send.
    headers: Headers


@dataclass(frozen=True)
class WebSocketRequest:
    """Server side: a valid WebSocket request, waiting to be accepted or not."""

    #: Whether it came as extended CONNECT (HTTP/2, HTTP/3) rather than an
    #: HTTP/1.1 Upgrade.
    extended_connect: bool
    #: ``:scheme`` (``b"http"``/``b"https"``).
    scheme: bytes
    #: ``:authority``.
    authority: bytes
    #: ``:path``, with the query.
    path: bytes
    #: The subprotocols offered, preferred first.
    subprotocols: tuple[str, ...]
    #: The whole request header block.
    headers: Headers
    _key: bytes | None = field(default=None, repr=False)
    _offers: tuple[ExtensionOffer, ...] = field(default=(), repr=False)

    def accept(
        self,
        *,
        subprotocol: str | None = None,
        extensions: Sequence[PerMessageDeflate] = (),
        headers: Headers = (),
    ) -> WebSocketAccepted:
        """Accept: build the ``101`` (HTTP/1.1) or ``200`` response.

        :param subprotocol: one of :attr:`subprotocols`, or ``None``.
        :param extensions: permessage-deflate to agree to if the client
            offered it, with this server's preferences (empty: none).
        :param headers: more response headers (none of the handshake's).
        :return: the response (:attr:`WebSocketAccepted.headers`, to submit
            without ``end_stream``) and the agreement.
        :raises LocalProtocolError: for a subprotocol not offered or a
            header the handshake sets itself.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise LocalProtocolError(f"subprotocol {subprotocol!r} was not offered")
        extra = check_extra(headers)
        agreed = None
        if extensions:
            agreed = accept_deflate_offers(self._offers, extensions[0])
        response: list[tuple[bytes, bytes]]
        if self.extended_connect:
            # RFC 8441 §5.
            response = [(b":status", b"200")]
        else:
            # RFC 6455 §4.2.2.
            assert self._key is not None
            response = [
                (b":status", b"101"),
                (b"upgrade", WEBSOCKET),
                (b"connection", b"upgrade"),
                (b"sec-websocket-accept", accept_token(self._key)),
            ]
        if subprotocol is not None:
            response.append((b"sec-websocket-protocol", subprotocol.encode()))
        if agreed is not None:
            response.append(
                (b"sec-websocket-extensions", format_extensions([agreed], False))
            )
        return WebSocketAccepted(
            client=False,
            headers=(*response, *extra),
            subprotocol=subprotocol,
            extensions=() if agreed is None else (agreed,),
        )

    def reject(self, status: int = 403, headers: Headers = ()) -> Headers:
        """Refuse: build a response header block with ``status``.

        :param status: a final status that opens nothing (not 101, not 2xx).
        :param headers: more response headers (``content-length`` etc.; the
            body goes on the stream as for any response).
        :return: the header block.
        :raises LocalProtocolError: if ``status`` would open the WebSocket.
        """
        if not 300 <= status <= 599:
            raise LocalProtocolError(f"status {status} does not refuse")
        return ((b":status", str(status).encode()), *check_extra(headers))


def _refused(
    status: int, reason: str, *extra: tuple[bytes, bytes]
) -> WebSocketRequestRefused:
    headers = ((b":status", str(status).encode()), *extra)
    return WebSocketRequestRefused(status, reason, headers)


def parse_request(headers: Headers) -> WebSocketRequest | WebSocketRequestRefused:
    """Check a WebSocket request (RFC 6455 §4.2.1, RFC 8441 §4, RFC 9220 §3).

    :param headers: the request header block, as a protocol delivered it.
    :return: the request to accept or reject, or the refusal to send (400,
        or 426 with the headers RFC 6455 §4.2.2 and RFC 9110 §15.5.22 ask).
    """
    method = one(headers, b":method")
    scheme = one(headers, b":scheme") or b"http"
    authority = one(headers, b":authority")
    path = one(headers, b":path")
    protocol = one(headers, b":protocol")
    extended = protocol is not None
    if extended:
        if method != b"CONNECT" or (protocol or b"").lower() != WEBSOCKET:
            return _refused(400, "extended CONNECT for another protocol")
        if not path or one(headers, b":scheme") is None:
            return _refused(400, "extended CONNECT needs :scheme and :path")
        key = None
    else:
        if WEBSOCKET not in tokens(headers, b"upgrade") or (
            b"upgrade" not in tokens(headers, b"connection")
        ):
            return _refused(
                426,
                "not a WebSocket upgrade",
                (b"upgrade", WEBSOCKET),
                (b"connection", b"upgrade"),
            )
        if method != b"GET":
            return _refused(400, "a WebSocket upgrade must be a GET")
        key = one(headers, b"sec-websocket-key")
        try:
            valid_key = (
                key is not None and len(base64.b64decode(key, validate=True)) == 16
            )
        except binascii.Error:
            valid_key = False
        if not valid_key:
            return _refused(400, "missing or invalid sec-websocket-key")
    if not authority or not path:
        return _refused(400, "missing :authority or :path")
    if one(headers, b"sec-websocket-version") != VERSION:
        # RFC 6455 §4.4: say which version we speak.  Upgrade is HTTP/1.1's
        # only (RFC 9113 §8.2.2), so extended CONNECT gets a plain 400.
        version = (b"sec-websocket-version", VERSION)
        if extended:
            return _refused(400, "unsupported sec-websocket-version", version)
        return _refused(
            426,
            "unsupported sec-websocket-version",
            version,
            (b"upgrade", WEBSOCKET),
            (b"connection", b"upgrade"),
        )
    try:
        subprotocols = subprotocols_of(headers)
        offers = parse_extensions(values(headers, b"sec-websocket-extensions"))
    except ValueError as exc:
        return _refused(400, f"malformed WebSocket header: {exc}")
    return WebSocketRequest(
        extended_connect=extended,
        scheme=scheme,
        authority=authority,
        path=path,
        subprotocols=subprotocols,
        headers=tuple(headers),
        _key=key,
        _offers=tuple(offers),
    )
