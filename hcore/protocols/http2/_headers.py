"""Checks on header blocks: the ones we are asked to send and the ones we get.

h2 can validate header blocks, but it treats a malformed received block as
a connection error, and it changes stream state before it validates a block
we send.  RFC 9113 §8.1.1 makes a malformed request or response a *stream*
error, and hcore promises that a refused ``submit_headers()`` leaves the
state unchanged, so h2's checks are off and these run instead, each in one
pass over the block:

- :func:`received` checks a block from the peer and returns it as a tuple
  of ``(name, value)`` tuples, or raises :class:`MalformedHeaders`, which the
  protocol turns into a stream reset.
- :func:`request_to_send`, :func:`response_to_send` and
  :func:`trailers_to_send` check a block the application submits, raising
  :class:`~hcore.LocalProtocolError`, and return what to hand to h2.

Connection-specific fields (RFC 9113 §8.2.2) in a block to send are dropped
rather than refused, so that an application written for HTTP/1.1 (or a
proxy forwarding an HTTP/1.1 message) works unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hpack import HeaderTuple, NeverIndexedHeaderTuple

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.protocols.http2._hpack import RememberedBlock

__all__ = (
    "REQUEST",
    "RESPONSE",
    "TRAILERS",
    "MalformedHeaders",
    "ReceivedChecker",
    "ResponseChecker",
    "received",
    "request_to_send",
    "response_to_send",
    "trailers_to_send",
)

# The kinds of received block.
REQUEST = 0
RESPONSE = 1
TRAILERS = 2

# RFC 9113 §8.2.1: a received field name may hold 0x21-0x7e except
# upper-case letters and (past the first octet) a colon; a value may not
# hold NUL, CR or LF nor start or end with SP or HTAB.
_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
# What we send is held to RFC 9110 §5.1 and §5.5: lower-case tokens, and
# values without control characters other than HTAB.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE_TO_SEND = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|\A[ \t]|[ \t]\Z")

# RFC 9113 §8.2.2
_CONNECTION_SPECIFIC = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    )
)
# RFC 9113 §8.3.1 and RFC 8441 §4
_REQUEST_PSEUDO = frozenset(
    (b":method", b":scheme", b":authority", b":path", b":protocol")
)
# HPACK never-indexed (RFC 7541 §7.1.3) for credentials that a compression
# oracle could recover; short cookies likewise, as nghttp2 and Firefox do.
_SENSITIVE = frozenset((b"authorization", b"proxy-authorization"))


class MalformedHeaders(Exception):
    """A received header block is malformed (RFC 9113 §8.1.1) or too large."""


def received(
    headers: Sequence[tuple[bytes, bytes]],
    kind: int,
    max_size: int,
    *,
    allow_protocol: bool = False,
) -> tuple[tuple[bytes, bytes], ...]:
    """Check a decoded header block from the peer.

    Several ``cookie`` fields are joined into one with ``"; "`` (RFC 9113
    §8.2.3), at the place of the first.

    :param headers: the block as h2 decoded it.
    :param kind: :data:`REQUEST`, :data:`RESPONSE` (final or 1xx) or
        :data:`TRAILERS`.
    :param max_size: the largest acceptable size, counted as RFC 9113
        §6.5.2 does (name + value + 32 per field).
    :param allow_protocol: whether ``:protocol`` is allowed (we advertised
        SETTINGS_ENABLE_CONNECT_PROTOCOL).
    :return: the block as a tuple of ``(name, value)`` tuples.
    :raises MalformedHeaders: if the block breaks RFC 9113 §8.2 or §8.3, or
        is larger than ``max_size``.
    """
    pseudo: dict[bytes, bytes] = {}
    size = 0
    regular = False
    cookies = 0
    host: bytes | None = None
    bad_name = _BAD_NAME.search
    bad_value = _BAD_VALUE.search
    for name, value in headers:
        size += len(name) + len(value) + 32
        if name[:1] == b":":
            # RFC 9113 §8.3: pseudo-header fields come first, once each.
            if regular or name in pseudo:
                raise MalformedHeaders(f"misplaced or repeated {name!r}")
            pseudo[name] = value
        else:
            regular = True
            if not name or bad_name(name):
                raise MalformedHeaders(f"invalid field name {name!r}")
            if name in _CONNECTION_SPECIFIC:
                raise MalformedHeaders(f"connection-specific field {name!r}")
            if name == b"te":
                if value.lower() != b"trailers":
                    raise MalformedHeaders(f"te: {value!r}")
            elif name == b"cookie":
                cookies += 1
            elif name == b"host":
                host = value
        if value and bad_value(value):
            raise MalformedHeaders(f"invalid value in field {name!r}")
    if size > max_size:
        raise MalformedHeaders(f"header block of {size} bytes over {max_size}")
    if kind == REQUEST:
        _check_request(pseudo, host, allow_protocol)
    elif kind == RESPONSE:
        status = pseudo.get(b":status")
        if len(pseudo) != 1 or status is None or not _valid_status(status):
            raise MalformedHeaders(f"bad response pseudo-headers {sorted(pseudo)}")
        if status == b"101":
            # RFC 9113 §8.6: HTTP/2 has no 101 Switching Protocols.
            raise MalformedHeaders("101 response")
    elif pseudo:
        raise MalformedHeaders(f"pseudo-headers in trailers {sorted(pseudo)}")
    result = tuple(headers)
    if cookies > 1:
        result = _join_cookies(result)
    return result


# What ReceivedChecker remembers before any block passed (shared: no
# allocation per connection).
_NONE_YET: tuple[object, int, tuple[tuple[bytes, bytes], ...]] = (None, -1, ())


class ReceivedChecker:
    """:func:`received` for one connection, remembering blocks that passed.

    Peers repeat their header blocks (h2load, API clients, a server's fixed
    responses), and the outcome of the check depends only on the block and
    the connection's limits, so a small block that passed is remembered:
    at most :attr:`MAX_ENTRIES` blocks of at most :attr:`MAX_BYTES` bytes of
    names and values.  A block that failed is checked again each time.

    :param max_size: the connection's SETTINGS_MAX_HEADER_LIST_SIZE.
    :param allow_protocol: whether ``:protocol`` is allowed in requests.
    """

    MAX_ENTRIES = 16
    MAX_BYTES = 1024

    __slots__ = ("_allow_protocol", "_last", "_max_size", "_memo")

    def __init__(self, max_size: int, allow_protocol: bool) -> None:
        self._max_size = max_size
        self._allow_protocol = allow_protocol
        # The last block that passed, as given (a tuple, which cannot
        # change), its kind and the result: a peer's blocks come from the
        # decoder's memory as the same tuple again and again.
        self._last: tuple[object, int, tuple[tuple[bytes, bytes], ...]] = _NONE_YET
        self._memo: dict[
            tuple[int, tuple[tuple[bytes, bytes], ...]],
            tuple[tuple[bytes, bytes], ...],
        ] = {}

    def check(
        self, headers: Sequence[tuple[bytes, bytes]], kind: int
    ) -> tuple[tuple[bytes, bytes], ...]:
        """Check a block as :func:`received` does.

        :param headers: the block as h2 decoded it.
        :param kind: :data:`REQUEST` or :data:`RESPONSE`.
        :return: the block as a tuple of ``(name, value)`` tuples.
        :raises MalformedHeaders: as :func:`received`.
        """
        last, last_kind, fields = self._last
        if headers is last and kind == last_kind:
            return fields
        block = tuple(headers)
        key = (kind, block)
        memo = self._memo
        known = memo.get(key)
        if known is not None:
            fields = known
        else:
            fields = received(
                headers, kind, self._max_size, allow_protocol=self._allow_protocol
            )
            if sum(len(n) + len(v) for n, v in fields) > self.MAX_BYTES:
                return fields
            if len(memo) >= self.MAX_ENTRIES:
                memo.clear()
            memo[key] = fields
        if block is headers:
            self._last = (block, kind, fields)
        return fields


class ResponseChecker:
    """:func:`response_to_send` for one connection, remembering blocks that passed.

    An application answers with the same few header blocks again and again,
    and the outcome of the check depends only on the block, so a small
    block that passed is remembered, as :class:`ReceivedChecker` does: only
    blocks that are lists or tuples of ``(bytes, bytes)`` tuples (exact
    types, so that a look-up cannot match what the check would refuse), at
    most :attr:`MAX_ENTRIES` of at most :attr:`MAX_BYTES` bytes of names and
    values.  A block that failed is checked again each time.
    """

    MAX_ENTRIES = 16
    MAX_BYTES = 1024

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        # The block -> (the block to send if it is not the caller's own,
        # whether it is informational, its encoding as last remembered).
        self._memo: dict[
            tuple[tuple[bytes, bytes], ...],
            tuple[tuple[tuple[bytes, bytes], ...] | None, bool, RememberedBlock],
        ] = {}

    def check(self, headers: Headers) -> tuple[Sequence[tuple[bytes, bytes]], bool]:
        """Check a response block as :func:`response_to_send` does.

        :param headers: the block.
        :return: the block to hand to h2, and whether it is informational.
        :raises LocalProtocolError: as :func:`response_to_send`.
        """
        fields, informational, _ = self.check_block(headers)
        return fields, informational

    def check_block(
        self, headers: Headers
    ) -> tuple[Sequence[tuple[bytes, bytes]], bool, RememberedBlock | None]:
        """:meth:`check`, with a place to remember the block's encoding.

        :param headers: the block.
        :return: the block to hand to h2, whether it is informational, and
            the remembered block's :class:`~._hpack.RememberedBlock` (for
            :meth:`~._hpack.MemoEncoder.encode_remembered`), if it is
            remembered.
        :raises LocalProtocolError: as :func:`response_to_send`.
        """
        kind = type(headers)
        if kind is not list and kind is not tuple:
            return (*response_to_send(headers), None)
        plain = True
        try:
            for field in headers:
                if type(field) is not tuple:
                    plain = False
                    break
                name, value = field
                if type(name) is not bytes or type(value) is not bytes:
                    plain = False
                    break
        except ValueError:
            # A field that is not a pair.
            plain = False
        if not plain:
            return (*response_to_send(headers), None)
        # (The same object for a tuple.)
        key = tuple(headers)
        memo = self._memo
        known = memo.get(key)
        if known is not None:
            rebuilt, informational, encoded = known
            if rebuilt is None:
                return headers, informational, encoded
            # (A list of hpack's header tuples, as _to_send builds it.)
            return list(rebuilt), informational, encoded
        fields, informational = response_to_send(headers)
        if sum(len(name) + len(value) for name, value in key) > self.MAX_BYTES:
            return fields, informational, None
        if len(memo) >= self.MAX_ENTRIES:
            memo.clear()
        encoded = RememberedBlock()
        memo[key] = (
            None if fields is headers else tuple(fields),
            informational,
            encoded,
        )
        return fields, informational, encoded


def _check_request(
    pseudo: dict[bytes, bytes], host: bytes | None, allow_protocol: bool
) -> None:
    if not pseudo.keys() <= _REQUEST_PSEUDO:
        raise MalformedHeaders(f"bad request pseudo-headers {sorted(pseudo)}")
    method = pseudo.get(b":method")
    if not method:
        raise MalformedHeaders("no :method")
    authority = pseudo.get(b":authority")
    if b":protocol" in pseudo:
        # RFC 8441 §4: extended CONNECT, only once we offered it.
        if not allow_protocol or method != b"CONNECT":
            raise MalformedHeaders(":protocol not allowed here")
        if not (pseudo.get(b":scheme") and pseudo.get(b":path") and authority):
            raise MalformedHeaders(
                "extended CONNECT without :scheme, :path or :authority"
            )
    elif method == b"CONNECT":
        # RFC 9113 §8.5
        if b":scheme" in pseudo or b":path" in pseudo or not authority:
            raise MalformedHeaders("CONNECT needs :authority only")
    elif not (pseudo.get(b":scheme") and pseudo.get(b":path")):
        # RFC 9113 §8.3.1
        raise MalformedHeaders("request without :scheme or :path")
    if host is not None and authority is not None and host != authority:
        # RFC 9113 §8.3.1: Host must not disagree with :authority.
        raise MalformedHeaders("host and :authority differ")


def _valid_status(status: bytes) -> bool:
    return len(status) == 3 and status.isdigit() and b"1" <= status[:1] <= b"5"


def _join_cookies(
    headers: tuple[tuple[bytes, bytes], ...],
) -> tuple[tuple[bytes, bytes], ...]:
    joined = b"; ".join(value for name, value in headers if name == b"cookie")
    result: list[tuple[bytes, bytes]] = []
    for field in headers:
        if field[0] != b"cookie":
            result.append(field)
        elif joined:
            result.append(NeverIndexedHeaderTuple(b"cookie", joined))
            joined = b""
    return tuple(result)


def request_to_send(
    headers: Headers, *, allow_protocol: bool
) -> Sequence[tuple[bytes, bytes]]:
    """Check a request header block the application submits.

    :param headers: the block.
    :param allow_protocol: whether the peer accepts extended CONNECT.
    :return: the block to hand to h2.
    :raises LocalProtocolError: if the block is not a valid request.
    """
    pseudo, fields = _to_send(headers)
    if not pseudo.keys() <= _REQUEST_PSEUDO:
        raise LocalProtocolError(f"unknown request pseudo-headers in {sorted(pseudo)}")
    method = pseudo.get(b":method")
    if not method:
        raise LocalProtocolError("a request needs :method")
    authority = pseudo.get(b":authority")
    if b":protocol" in pseudo:
        if method != b"CONNECT":
            raise LocalProtocolError(":protocol needs :method CONNECT (RFC 8441)")
        if not allow_protocol:
            raise LocalProtocolError(
                "the peer has not enabled extended CONNECT (RFC 8441)"
            )
        if not (pseudo.get(b":scheme") and pseudo.get(b":path") and authority):
            raise LocalProtocolError(
                "extended CONNECT needs :scheme, :path and :authority"
            )
    elif method == b"CONNECT":
        if b":scheme" in pseudo or b":path" in pseudo or not authority:
            raise LocalProtocolError("CONNECT takes :authority and no :scheme or :path")
    elif not (pseudo.get(b":scheme") and pseudo.get(b":path")):
        raise LocalProtocolError("a request needs :scheme and a non-empty :path")
    return fields


def response_to_send(headers: Headers) -> tuple[Sequence[tuple[bytes, bytes]], bool]:
    """Check a response header block (final or 1xx) the application submits.

    :param headers: the block.
    :return: the block to hand to h2, and whether it is informational (1xx).
    :raises LocalProtocolError: if the block is not a valid response.
    """
    pseudo, fields = _to_send(headers)
    status = pseudo.get(b":status")
    if len(pseudo) != 1 or status is None or not _valid_status(status):
        raise LocalProtocolError("a response needs a valid :status and nothing else")
    if status == b"101":
        raise LocalProtocolError(
            "HTTP/2 has no 101 Switching Protocols (RFC 9113 §8.6)"
        )
    return fields, status[:1] == b"1"


def trailers_to_send(headers: Headers) -> Sequence[tuple[bytes, bytes]]:
    """Check a trailer block the application submits.

    :param headers: the block.
    :return: the block to hand to h2.
    :raises LocalProtocolError: if the block holds pseudo-headers or bad fields.
    """
    pseudo, fields = _to_send(headers)
    if pseudo:
        raise LocalProtocolError("trailers cannot hold pseudo-headers")
    return fields


def _to_send(
    headers: Headers,
) -> tuple[dict[bytes, bytes], Sequence[tuple[bytes, bytes]]]:
    """Check every field; return the pseudo-headers and the block for h2.

    The block is the caller's own sequence unless fields had to be dropped
    or marked never-indexed, so the common case copies nothing.
    """
    pseudo: dict[bytes, bytes] = {}
    regular = False
    rebuild = False
    token = _TOKEN.fullmatch
    bad_value = _BAD_VALUE_TO_SEND.search
    try:
        if not isinstance(headers, list | tuple):
            # Read twice below: a one-shot iterable would come out empty.
            headers = list(headers)
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                raise LocalProtocolError(
                    f"header names and values must be bytes: {name!r}"
                )
            if name[:1] == b":":
                if regular or name in pseudo:
                    raise LocalProtocolError(f"misplaced or repeated {name!r}")
                pseudo[name] = value
            else:
                regular = True
                if not token(name):
                    raise LocalProtocolError(f"invalid header name {name!r}")
                if (
                    name in _CONNECTION_SPECIFIC
                    or name in _SENSITIVE
                    or name == b"te"
                    or name == b"cookie"
                ):
                    rebuild = True
            if value and bad_value(value):
                raise LocalProtocolError(f"invalid value for header {name!r}")
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"headers must be (name, value) pairs: {exc}") from exc
    if not rebuild:
        return pseudo, headers
    fields: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name in _CONNECTION_SPECIFIC or (
            name == b"te" and value.lower() != b"trailers"
        ):
            # RFC 9113 §8.2.2: these do not exist in HTTP/2.
            continue
        if name in _SENSITIVE or (name == b"cookie" and len(value) < 20):
            fields.append(NeverIndexedHeaderTuple(name, value))
        else:
            fields.append(HeaderTuple(name, value))
    return pseudo, fields
