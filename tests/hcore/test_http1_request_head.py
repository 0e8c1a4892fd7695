"""The httptools client writes request heads without h11: the same as h11's.

:func:`request_head` (``hcore/protocols/http1/_httptools_writer.py``) must
accept exactly the requests h11's ``Request`` event accepts and write the
same method, target and fields; both implementations' clients are then
checked on the wire.
"""

from __future__ import annotations

import pytest

from hcore import LocalProtocolError
from hcore.protocols.http1 import H11ClientProtocol
from hcore.protocols.http1._headers import plan_request
from hcore.protocols.http1._httptools_client import HTTPToolsClientProtocol
from hcore.protocols.http1._httptools_writer import request_head

_BASE = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":authority", b"example.test"),
    (b":path", b"/upload"),
]

CASES: list[tuple[str, list[tuple[bytes, bytes]], bool]] = [
    ("plain GET", [(b":method", b"GET"), *_BASE[1:]], True),
    ("length", [*_BASE, (b"content-length", b"5")], False),
    ("repeated length", [*_BASE, (b"content-length", b"5, 5")], False),
    (
        "length twice",
        [*_BASE, (b"Content-Length", b"5"), (b"content-length", b"5")],
        False,
    ),
    ("chunked in capitals", [*_BASE, (b"Transfer-Encoding", b"Chunked")], False),
    (
        "chunked twice",
        [
            *_BASE,
            (b"transfer-encoding", b"chunked"),
            (b"transfer-encoding", b"chunked"),
        ],
        False,
    ),
    ("gzip coding", [*_BASE, (b"transfer-encoding", b"gzip")], False),
    ("bad name", [*_BASE, (b"bad name", b"x")], True),
    ("bad value", [*_BASE, (b"x-bad", b"a\x00b")], True),
    ("bad method", [(b":method", b"GE T"), *_BASE[1:]], True),
    ("bad target", [*_BASE[:3], (b":path", b"/a b")], True),
    ("target with DEL", [*_BASE[:3], (b":path", b"/a\x7f")], True),
    ("mixed-case names kept", [*_BASE, (b"X-Trace", b"1")], True),
    ("CONNECT", [(b":method", b"CONNECT"), (b":authority", b"h:443")], False),
]


_Outcome = tuple[bytes, bytes, list[tuple[bytes, bytes]]] | str


def _ours(headers: list[tuple[bytes, bytes]], end: bool) -> _Outcome:
    try:
        method, target, fields, _ = request_head(headers, end)
    except LocalProtocolError:
        return "refused"
    return method, target, list(fields)


def _h11(headers: list[tuple[bytes, bytes]], end: bool) -> _Outcome:
    try:
        request = plan_request(headers, end).request
    except LocalProtocolError:
        return "refused"
    return request.method, request.target, list(request.headers.raw_items())


@pytest.mark.parametrize(("name", "headers", "end"), CASES, ids=[c[0] for c in CASES])
def test_request_head_matches_h11(
    name: str, headers: list[tuple[bytes, bytes]], end: bool
) -> None:
    assert _ours(headers, end) == _h11(headers, end), name


def test_text_values_are_converted_as_h11_converts_them() -> None:
    headers = list(_BASE)
    headers.append((b"x-text", "yes"))  # type: ignore[arg-type]
    method, target, fields, body = request_head(headers, True)
    assert (method, target) == (b"POST", b"/upload")
    assert (b"x-text", b"yes") in list(fields)
    assert body is not None


@pytest.mark.parametrize("make", [H11ClientProtocol, HTTPToolsClientProtocol])
def test_both_clients_write_the_same_head(
    make: type[H11ClientProtocol] | type[HTTPToolsClientProtocol],
) -> None:
    client = make()
    headers = [*_BASE, (b"Content-Length", b"3, 3"), (b"X-Trace", b"1")]
    client.submit_headers(1, headers)
    client.submit_data(1, b"abc", end_stream=True)
    assert client.bytes_to_send() == (
        b"POST /upload HTTP/1.1\r\nhost: example.test\r\n"
        b"Content-Length: 3\r\nX-Trace: 1\r\n\r\nabc"
    )
