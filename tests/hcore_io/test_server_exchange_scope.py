"""The ASGI scope an exchange builds does not depend on the order of the fields.

Every hcore protocol puts ``:method``, ``:scheme``, ``:authority`` and
``:path`` first, in that order, and the exchange takes them at once; a peer's
own order (HTTP/2 and HTTP/3 clients choose theirs), a missing pseudo-header
or an extra one (``:protocol``) takes the general path, with the same result.
No network: the exchange is made over a stream it never touches.
"""

from __future__ import annotations

import itertools
from typing import cast

import pytest

from hcore import Headers
from hcore_io.connections import HTTPStream
from hcore_io.server._exchange import ConnectionInfo, Exchange

_INFO = ConnectionInfo(
    http_version="2",
    client=("127.0.0.1", 50000),
    server=("127.0.0.1", 8080),
    extra_headers=(),
    max_body_size=1000,
    root_path="/root",
    state={"counter": 1},
)
_PSEUDO = (
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/a%20b?x=1"),
)
_FIELDS = (
    (b"content-type", b"text/plain"),
    (b"content-length", b"5"),
    (b"expect", b"100-continue"),
)


def _exchange(headers: Headers, end_stream: bool = False) -> Exchange:
    return Exchange(cast(HTTPStream, object()), headers, end_stream, _INFO)


def _scope(headers: Headers) -> dict[str, object]:
    scope = _exchange(headers).scope
    assert scope is not None
    return dict(scope)


def test_canonical_order_gives_the_full_scope() -> None:
    scope = _scope(_PSEUDO + _FIELDS)
    assert scope["method"] == "POST"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["root_path"] == "/root"
    assert scope["http_version"] == "2"
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["server"] == ("127.0.0.1", 8080)
    assert scope["state"] == {"counter": 1}
    assert scope["state"] is not _INFO.state
    # The authority becomes the Host field, first.
    assert scope["headers"] == [(b"host", b"example.com"), *_FIELDS]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[1:])
def test_any_order_of_the_pseudo_headers_gives_the_same_scope(
    order: tuple[int, ...],
) -> None:
    shuffled = tuple(_PSEUDO[index] for index in order)
    assert _scope(shuffled + _FIELDS) == _scope(_PSEUDO + _FIELDS)


def test_the_exchange_state_is_the_same_on_both_paths() -> None:
    fast = _exchange(_PSEUDO + _FIELDS)
    general = _exchange(tuple(reversed(_PSEUDO)) + _FIELDS)
    for exchange in (fast, general):
        assert exchange._method == "POST"
        assert exchange._target == "/a%20b?x=1"
        assert exchange._expect_continue
        assert not exchange._head
        assert not exchange.may_be_websocket


def test_a_missing_authority_leaves_the_host_field_alone() -> None:
    headers = (
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b"host", b"example.org"),
    )
    scope = _scope(headers)
    assert scope["path"] == "/"
    assert scope["headers"] == [(b"host", b"example.org")]


def test_a_protocol_pseudo_header_after_the_first_four_is_seen() -> None:
    headers = (
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"example.com"),
        (b":path", b"/chat"),
        (b":protocol", b"websocket"),
    )
    exchange = _exchange(headers)
    assert exchange.may_be_websocket
    # CONNECT is not an http request: it gets no scope (a 405 or a WebSocket).
    assert exchange.scope is None


def test_a_head_request_with_a_body_end_expects_no_continue() -> None:
    headers = (
        (b":method", b"HEAD"),
        (b":scheme", b"http"),
        (b":authority", b"example.com"),
        (b":path", b"/"),
        (b"expect", b"100-continue"),
    )
    exchange = _exchange(headers, end_stream=True)
    assert exchange._head
    assert not exchange._expect_continue
