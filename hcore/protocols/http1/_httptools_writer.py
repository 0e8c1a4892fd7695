"""Writing HTTP/1.1 heads without h11, checked and framed the way h11 does."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.protocols.http1._headers import (
    Framing,
    OutgoingBody,
    check_fields,
    plan_request,
    plan_request_head,
    plan_trailers,
)

__all__ = ("head_fields", "last_chunk", "request_head", "rewrite_framing")

# RFC 9110 §9.1: method = token; RFC 9112 §3.2: the target, as h11 reads it
# (visible ASCII).
_METHOD = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")


def request_head(
    headers: Headers, end_stream: bool
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], OutgoingBody | None]:
    """Plan a request (:func:`plan_request_head`) and check it as h11 would.

    The fields come back as h11 would write them: one ``Content-Length``
    of one value, the ``Transfer-Encoding`` value in lower case.

    :return: the method, the target, the fields to write and the body
        framing (``None`` for a proposed tunnel).
    :raises LocalProtocolError: if the block is not a valid request, with
        h11's complaint when h11 is the one that would refuse it.
    """
    method, target, fields, body = plan_request_head(headers, end_stream)
    if not all(type(n) is bytes and type(v) is bytes for n, v in fields):
        # h11 takes text too: let it convert and check.
        request = plan_request(headers, end_stream).request
        return request.method, request.target, request.headers.raw_items(), body
    out: list[tuple[bytes, bytes]] = []
    length = coding = False
    for name, value in fields:
        lower = name.lower()
        if lower == b"content-length":
            # plan_request_head allowed one value only, maybe repeated.
            if length:
                continue
            length = True
            value = value.split(b",")[0].strip()
        elif lower == b"transfer-encoding":
            if coding:
                raise LocalProtocolError("multiple Transfer-Encoding headers")
            coding = True
            value = value.lower()
        out.append((name, value))
    # Then as h11 goes on: every field, then the method and the target.
    check_fields(fields)
    if not _METHOD.fullmatch(method):
        raise LocalProtocolError("Illegal method characters")
    if not _TARGET.fullmatch(target):
        raise LocalProtocolError("Illegal target characters")
    return method, target, out, body


def head_fields(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Write fields and the empty line ending a head (RFC 9112 §5)."""
    return b"".join([b"%s: %s\r\n" % field for field in fields]) + b"\r\n"


def last_chunk(headers: Headers, body: OutgoingBody, end_stream: bool) -> bytes:
    """Write the last chunk with trailers, which end the body (RFC 9112 §7.1.2).

    The fields are checked as h11 checks them (:func:`plan_trailers`).

    :raises LocalProtocolError: if the trailers would not end the stream,
        the body is not chunked or has ended, or the block is malformed.
    """
    if not end_stream:
        raise LocalProtocolError("trailers must end the stream")
    fields = plan_trailers(headers, body).headers.raw_items()
    return b"0\r\n" + head_fields(fields)


def _tokens(fields: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [
        token.strip().lower()
        for field, value in fields
        if field.lower() == name
        for token in value.split(b",")
        if token.strip()
    ]


def rewrite_framing(
    fields: Sequence[tuple[bytes, bytes]],
    framing: Framing,
    *,
    head_request: bool,
    status: int,
    keep_alive: bool,
    peer_version: bytes,
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Set the framing and connection fields of a final response, as h11 does.

    A body of unknown length is sent chunked (RFC 9112 §7.1), or delimited
    by the close of the connection to an HTTP/1.0 peer (§6.3); a HEAD
    response has the fields a GET would get (RFC 9110 §9.3.2).

    :return: the fields to write, and whether the connection ends after
        this response.
    """
    out = list(fields)
    if framing is Framing.LENGTH and keep_alive and not head_request:
        # The common case: the fields go as they are.
        for name, _ in out:
            if name.lower() == b"connection" and b"close" in _tokens(
                out, b"connection"
            ):
                return out, True
        return out, False
    need_close = False
    unknown_length = framing is not Framing.LENGTH
    if head_request and status not in (204, 304):
        names = {name.lower() for name, _ in out}
        unknown_length = b"transfer-encoding" in names or b"content-length" not in names
    if unknown_length:
        out = [
            f
            for f in out
            if f[0].lower() not in (b"content-length", b"transfer-encoding")
        ]
        if peer_version < b"1.1":
            need_close = not head_request
        else:
            out.append((b"Transfer-Encoding", b"chunked"))
    connection = _tokens(out, b"connection")
    if not keep_alive or need_close:
        options = set(connection) - {b"keep-alive"} | {b"close"}
        out = [f for f in out if f[0].lower() != b"connection"]
        out.extend((b"Connection", option) for option in sorted(options))
        return out, True
    return out, b"close" in connection
