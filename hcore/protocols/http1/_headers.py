"""Translation between hcore header blocks and HTTP/1.1 message heads.

hcore applications speak in HTTP/2 terms on every version: a request is a
header block led by ``:method``, ``:scheme``, ``:authority`` and ``:path``, a
response one led by ``:status``.  HTTP/1.1 carries the same information in the
request line, the ``Host`` field and the status line (RFC 9112 §3, §4).  The
functions here convert both ways and decide how a body we send is framed, so
that the protocol can refuse a bad call *before* h11 sees it (a failed
``h11.Connection.send`` would leave h11 in its ERROR state).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

import h11

from hcore._errors import LocalProtocolError
from hcore._types import Headers

__all__ = (
    "BadMessage",
    "Framing",
    "OutgoingBody",
    "RequestPlan",
    "check_fields",
    "plan_request",
    "plan_request_head",
    "plan_response_head",
    "plan_trailers",
    "proposes_upgrade",
    "received_fields",
    "request_block",
    "request_event",
    "response_event",
    "scheme_bytes",
)

_Fields = list[tuple[bytes, bytes]]

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_ABSOLUTE_FORM = re.compile(rb"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)$", re.S)
# RFC 9112 §3.2.3: authority-form = uri-host ":" port
_AUTHORITY_FORM = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[^\s/?#@\[\]:]+):[0-9]+$")
_DIGITS = re.compile(rb"^[0-9]{1,19}$")
_REQUEST_PSEUDO = (b":method", b":scheme", b":authority", b":path")
# RFC 9110 §6.5.1: fields that frame or route a message cannot be trailers.
_FORBIDDEN_TRAILERS = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"connection", b"trailer"}
)
_METHODS_WITH_CONTENT = frozenset({b"POST", b"PUT", b"PATCH"})
# RFC 9110 §5.1, §5.5, as h11 reads them: a token; field-vchar (anything but
# NUL and whitespace) runs separated by SP / HTAB.
_FIELD_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
#: Field names already found valid (bounded).
_GOOD_NAMES: set[bytes] = set()
#: Reason phrases of the registered status codes (RFC 9110 §15).
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
#: The valid values of ``:status``.
_STATUS_CODES = {b"%d" % code: code for code in range(100, 600)}


class BadMessage(Exception):
    """A received message head cannot be expressed as an hcore header block."""


class Framing(enum.Enum):
    """How the body of a message we send is delimited (RFC 9112 §6)."""

    #: ``Content-Length``; also used for bodies that must be empty.
    LENGTH = "length"
    #: ``Transfer-Encoding: chunked``; the only framing that carries trailers.
    CHUNKED = "chunked"
    #: Delimited by closing the connection (responses to HTTP/1.0 peers).
    CLOSE = "close"


# Looked up once for the checks made on every piece of body (an enum member
# costs a look-up through its metaclass on every access).
_LENGTH = Framing.LENGTH


@dataclass(slots=True)
class OutgoingBody:
    """The body this side is sending, checked before each piece reaches h11."""

    framing: Framing
    #: Bytes still owed under ``Content-Length`` framing.
    remaining: int = 0
    #: Whether the message was ended.
    ended: bool = False

    def check(self, size: int, end_stream: bool) -> None:
        """Refuse a piece of body that h11 would refuse.

        :raises LocalProtocolError: if the body already ended, or the piece
            breaks the declared ``Content-Length``.
        """
        if self.ended:
            raise LocalProtocolError("the stream has already ended on this side")
        if self.framing is not _LENGTH:
            return
        if size > self.remaining:
            raise LocalProtocolError(
                f"{size} bytes exceed the {self.remaining} left of Content-Length"
            )
        if end_stream and size != self.remaining:
            raise LocalProtocolError(
                f"stream ended {self.remaining - size} bytes short of Content-Length"
            )

    def consume(self, size: int, end_stream: bool) -> None:
        """Account for a piece that was sent."""
        if self.framing is _LENGTH:
            self.remaining -= size
        if end_stream:
            self.ended = True


@dataclass
class RequestPlan:
    """What sending one request involves."""

    #: The request head for h11.
    request: h11.Request
    #: How its body is framed; ``None`` when the request proposes a tunnel
    #: (CONNECT, or Upgrade without content): its head is the whole request.
    body: OutgoingBody | None


def _split_pseudo(
    headers: Headers, allowed: Sequence[bytes]
) -> tuple[dict[bytes, bytes], _Fields]:
    """Separate the pseudo-headers (RFC 9113 §8.3) from the regular fields.

    :raises LocalProtocolError: on an unknown, repeated or misplaced
        pseudo-header.
    """
    pseudo: dict[bytes, bytes] = {}
    fields: _Fields = []
    for name, value in headers:
        if name.startswith(b":"):
            if fields:
                raise LocalProtocolError(f"pseudo-header {name!r} after regular fields")
            if name not in allowed:
                raise LocalProtocolError(f"pseudo-header {name!r} is not allowed here")
            if name in pseudo:
                raise LocalProtocolError(f"pseudo-header {name!r} repeated")
            pseudo[name] = value
        else:
            fields.append((name, value))
    return pseudo, fields


def _values(fields: _Fields, name: bytes) -> list[bytes]:
    return [value for field, value in fields if field.lower() == name]


def _framing_fields(fields: _Fields) -> tuple[int | None, bool]:
    """Read the ``Content-Length`` and ``Transfer-Encoding`` we are to send.

    :raises LocalProtocolError: on a malformed length, or both fields.
    """
    values: list[bytes] = []
    chunked = False
    for name, value in fields:
        name = name.lower()
        if name == b"content-length":
            values.append(value)
        elif name == b"transfer-encoding":
            chunked = True
    return _framing(values, chunked)


def _framing(values: list[bytes], chunked: bool) -> tuple[int | None, bool]:
    """Decide the framing from the ``Content-Length`` values and ``chunked``.

    Only what decides the framing is checked here; h11 checks the rest when
    the event is built (one chunked coding, one length).

    :raises LocalProtocolError: on a malformed length, or both fields.
    """
    if not values:
        return None, chunked
    if not chunked and len(values) == 1:
        # One plain length, the common case.
        value = values[0]
        if b"," not in value:
            value = value.strip()
            if _DIGITS.match(value):
                return int(value), False
    lengths: set[bytes] = set()
    for value in values:
        if b"," in value:
            lengths.update(item.strip() for item in value.split(b","))
        else:
            lengths.add(value.strip())
    if chunked:
        # RFC 9112 §6.2: a sender MUST NOT send Content-Length with
        # Transfer-Encoding.
        raise LocalProtocolError("Content-Length and Transfer-Encoding together")
    # RFC 9110 §8.6: Content-Length = 1*DIGIT, one value.
    if len(lengths) != 1 or not _DIGITS.match(next(iter(lengths))):
        raise LocalProtocolError(f"bad Content-Length {sorted(lengths)!r}")
    return int(lengths.pop()), chunked


def proposes_upgrade(fields: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether fields ask to switch protocols (RFC 9110 §7.8), as h11 reads them."""
    for name, value in fields:
        if name.lower() == b"upgrade" and any(
            part.strip() for part in value.split(b",")
        ):
            return True
    return False


def plan_request(headers: Headers, end_stream: bool) -> RequestPlan:
    """Turn a request header block into h11's request event and framing.

    :raises LocalProtocolError: if the block is not a valid request.
    """
    method, target, fields, body = plan_request_head(headers, end_stream)
    return RequestPlan(request_event(method, target, fields), body)


def request_event(method: bytes, target: bytes, fields: _Fields) -> h11.Request:
    """Build h11's event for a planned request head.

    :raises LocalProtocolError: with h11's complaint about the head.
    """
    try:
        return h11.Request(method=method, target=target, headers=fields)
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc


def plan_request_head(
    headers: Headers, end_stream: bool
) -> tuple[bytes, bytes, _Fields, OutgoingBody | None]:
    """Turn a request header block into a request line, ``Host`` and framing.

    ``:path`` is sent as the request target as it is, so an absolute URI
    there produces the absolute form a forward proxy expects (RFC 9112
    §3.2.2).  CONNECT sends ``:authority`` in authority form (RFC 9112
    §3.2.3).  A request left open (``end_stream=False``) without
    ``Content-Length`` is sent chunked, except CONNECT and Upgrade requests,
    whose open side is kept for the tunnel.

    What :func:`plan_request` does short of building h11's event, which
    checks the rest (the method, the target, the fields); a writer of its
    own checks them itself.

    :return: the method, the target, the fields and the body framing
        (``None`` for a proposed tunnel).
    :raises LocalProtocolError: if the block is not a valid request.
    """
    pseudo, fields = _split_pseudo(headers, _REQUEST_PSEUDO)
    method = pseudo.get(b":method")
    if not method:
        raise LocalProtocolError("a request needs :method")
    authority = pseudo.get(b":authority")
    hosts = _values(fields, b"host")
    if len(hosts) > 1:
        raise LocalProtocolError("more than one Host field")
    if authority is not None and hosts and hosts[0] != authority:
        raise LocalProtocolError(":authority and Host differ")
    if authority is None:
        if not hosts:
            # RFC 9112 §3.2: every HTTP/1.1 request carries Host.
            raise LocalProtocolError("a request needs :authority or Host")
        authority = hosts[0]
    fields = [(b"host", authority)] + [
        (name, value) for name, value in fields if name.lower() != b"host"
    ]
    upgrade = proposes_upgrade(fields)
    length, chunked = _framing_fields(fields)
    if method == b"CONNECT":
        # RFC 9113 §8.5: CONNECT has :authority only.
        if b":scheme" in pseudo or b":path" in pseudo:
            raise LocalProtocolError("CONNECT takes no :scheme or :path")
        if length is not None or chunked:
            raise LocalProtocolError("CONNECT requests carry no content")
        target = authority
    else:
        path = pseudo.get(b":path")
        if not pseudo.get(b":scheme") or not path:
            raise LocalProtocolError("a request needs :scheme and :path")
        target = path
    tunnel = method == b"CONNECT" or (upgrade and length is None and not chunked)
    body: OutgoingBody | None = None
    if not tunnel:
        if length is None and not chunked:
            if end_stream:
                if method in _METHODS_WITH_CONTENT:
                    # RFC 9110 §8.6: say the content is empty.
                    fields.append((b"content-length", b"0"))
            else:
                fields.append((b"transfer-encoding", b"chunked"))
                chunked = True
        if chunked:
            body = OutgoingBody(Framing.CHUNKED)
        else:
            body = OutgoingBody(Framing.LENGTH, length or 0)
    return method, target, fields, body


def _status(raw: bytes | None) -> int:
    if raw is None:
        raise LocalProtocolError("a response needs :status")
    # Three digits, 100 to 599 (RFC 9110 §15).
    status = _STATUS_CODES.get(raw)
    if status is None:
        raise LocalProtocolError(f"bad :status {raw!r}")
    return status


def plan_response_head(
    headers: Headers,
    end_stream: bool,
    *,
    request_method: bytes,
    peer_version: bytes,
    close: bool,
) -> tuple[int, bytes, _Fields, OutgoingBody | None]:
    """Turn a response header block into a status, fields and framing.

    h11's event is built from it by :func:`response_event`; a writer of
    its own checks the fields with :func:`check_fields`.

    :param request_method: the method of the request being answered.
    :param peer_version: the HTTP version of that request.
    :param close: add ``Connection: close``.
    :return: the status, its reason phrase, the fields and the body framing
        (``None`` for 1xx).
    :raises LocalProtocolError: if the block is not a valid response.
    """
    # _split_pseudo and _framing_fields in one pass: this runs per response.
    raw_status: bytes | None = None
    fields: _Fields = []
    lengths: list[bytes] = []
    chunked = False
    for name, value in headers:
        if name[:1] == b":":
            # RFC 9113 §8.3: pseudo-headers first, each once.
            if fields:
                raise LocalProtocolError(f"pseudo-header {name!r} after regular fields")
            if name != b":status":
                raise LocalProtocolError(f"pseudo-header {name!r} is not allowed here")
            if raw_status is not None:
                raise LocalProtocolError(f"pseudo-header {name!r} repeated")
            raw_status = value
            continue
        fields.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            lengths.append(value)
        elif lower == b"transfer-encoding":
            chunked = True
    status = _status(raw_status)
    reason = _REASONS.get(status, b"")
    if status < 200:
        if end_stream and status != 101:
            raise LocalProtocolError("an interim (1xx) response cannot end the stream")
        return status, reason, fields, None
    if close and b"close" not in b",".join(_values(fields, b"connection")).lower():
        fields.append((b"connection", b"close"))
    length, chunked = _framing(lengths, chunked)
    if request_method == b"CONNECT" and status < 300:
        # RFC 9110 §9.3.6: no Content-Length or Transfer-Encoding in a 2xx
        # to CONNECT; the tunnel starts right after the head.
        if length is not None or chunked:
            raise LocalProtocolError("a 2xx to CONNECT carries no framing fields")
        body = OutgoingBody(Framing.LENGTH, 0)
    elif status in (204, 304) or request_method == b"HEAD":
        # RFC 9110 §6.4.1: these responses never have content.
        body = OutgoingBody(Framing.LENGTH, 0)
    elif length is not None:
        body = OutgoingBody(Framing.LENGTH, length)
    elif end_stream and not chunked:
        fields.append((b"content-length", b"0"))
        body = OutgoingBody(Framing.LENGTH, 0)
    elif peer_version < b"1.1":
        # RFC 9112 §6.3: an HTTP/1.0 peer gets a close-delimited body (h11
        # drops any Transfer-Encoding for it).
        body = OutgoingBody(Framing.CLOSE)
    else:
        body = OutgoingBody(Framing.CHUNKED)
    return status, reason, fields, body


def response_event(
    status: int, reason: bytes, fields: _Fields, *, interim: bool
) -> h11.InformationalResponse | h11.Response:
    """Build h11's event for a planned response head.

    :param interim: a 1xx response (``plan_response_head`` gave no body).
    :raises LocalProtocolError: with h11's complaint about the fields.
    """
    try:
        if interim:
            return h11.InformationalResponse(
                status_code=status, headers=fields, reason=reason
            )
        return h11.Response(status_code=status, headers=fields, reason=reason)
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc


def check_fields(fields: Sequence[tuple[bytes, bytes]]) -> None:
    """Refuse the fields h11 would refuse to send (RFC 9110 §5.1, §5.5).

    Names are tokens, values ``field-vchar`` separated by spaces or tabs,
    and ``Transfer-Encoding`` is one ``chunked`` (the only coding written).
    Names seen valid are remembered, as a server sends the same few.

    :raises LocalProtocolError: on the first field h11 would refuse.
    """
    codings = 0
    for name, value in fields:
        if name not in _GOOD_NAMES:
            if not _FIELD_NAME.fullmatch(name):
                raise LocalProtocolError(f"Illegal header name {name!r}")
            if len(_GOOD_NAMES) < 256:
                _GOOD_NAMES.add(name)
        if not _FIELD_VALUE.fullmatch(value):
            raise LocalProtocolError(f"Illegal header value {value!r}")
        if name.lower() == b"transfer-encoding":
            codings += 1
            if codings > 1 or value.lower() != b"chunked":
                raise LocalProtocolError("Only Transfer-Encoding: chunked is supported")


def plan_trailers(headers: Headers, body: OutgoingBody) -> h11.EndOfMessage:
    """Check a trailer block and wrap it for h11.

    :raises LocalProtocolError: if the body cannot carry trailers or the
        block is malformed.
    """
    body.check(0, True)
    if body.framing is not Framing.CHUNKED:
        raise LocalProtocolError("trailers need a chunked body")
    _, fields = _split_pseudo(headers, ())
    for name, _ in fields:
        if name.lower() in _FORBIDDEN_TRAILERS:
            raise LocalProtocolError(f"{name!r} cannot be a trailer field")
    try:
        return h11.EndOfMessage(headers=fields)
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc


_SCHEMES = {"http": b"http", "https": b"https"}


def scheme_bytes(scheme: str) -> bytes:
    """``scheme`` as the bytes :func:`request_block` takes, shared when common."""
    return _SCHEMES.get(scheme) or scheme.encode("ascii")


def request_block(
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    scheme: bytes,
) -> tuple[tuple[bytes, bytes], ...]:
    """Express a parsed request line and fields as an hcore header block.

    The request target gives ``:path`` (origin or asterisk form), all three
    of ``:scheme``, ``:authority`` and ``:path`` (absolute form, whose
    authority wins over ``Host``, RFC 9112 §3.2.2) or ``:authority`` alone
    (CONNECT).  Otherwise ``:authority`` comes from ``Host``, and is left out
    for an HTTP/1.0 request without one.

    :param method: the request method.
    :param target: the request target, as sent.
    :param headers: the fields, names lower-case.
    :param scheme: ``:scheme`` for origin-form targets.
    :raises BadMessage: if the target does not fit the method.
    """
    fields = [field for field in headers if field[0] != b"host"]
    if len(fields) + 1 == len(headers) and target[:1] == b"/" and method != b"CONNECT":
        # The common case, origin form and one Host, built directly.  The
        # loop always finds the Host field.
        for name, value in headers:  # pragma: no branch
            if name == b"host":
                return (
                    (b":method", method),
                    (b":scheme", scheme),
                    (b":authority", value),
                    (b":path", target),
                    *fields,
                )
    hosts = [value for name, value in headers if name == b"host"]
    pseudo: _Fields = [(b":method", method)]
    if method == b"CONNECT":
        if not _AUTHORITY_FORM.match(target):
            raise BadMessage(f"CONNECT needs a host:port target, not {target!r}")
        pseudo.append((b":authority", target))
        return (*pseudo, *fields)
    # Origin form first: it is the common one, and no scheme starts with "/".
    absolute = None if target[:1] == b"/" else _ABSOLUTE_FORM.match(target)
    if absolute is not None:
        scheme, authority, path = absolute.groups()
        if not authority:
            raise BadMessage(f"no authority in {target!r}")
        scheme = scheme.lower()
        if not path.startswith(b"/"):
            path = b"/" + path
        hosts = [authority]
    elif target == b"*":
        # RFC 9112 §3.2.4: the asterisk form is for OPTIONS only.
        if method != b"OPTIONS":
            raise BadMessage(f"{method!r} cannot target '*'")
        path = target
    elif target.startswith(b"/"):
        path = target
    else:
        raise BadMessage(f"bad request target {target!r}")
    pseudo.append((b":scheme", scheme))
    if hosts:
        pseudo.append((b":authority", hosts[0]))
    pseudo.append((b":path", path))
    return (*pseudo, *fields)


def received_fields(headers: h11._headers.Headers) -> list[tuple[bytes, bytes]]:
    """The fields of a head or trailers h11 parsed, names lower-case.

    The same pairs iterating h11's ``Headers`` gives, without its
    item-by-item ``Sequence`` iteration.
    """
    return [(name.lower(), value) for name, value in headers.raw_items()]
