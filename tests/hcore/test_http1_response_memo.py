"""A server protocol's memo of the heads it wrote gives what planning gives.

Each HTTP/1.1 server implementation (h11 with its direct paths, httptools)
keeps the final response heads it wrote for plain exchanges, by header
block, and writes them again when an equal block answers a plain request.
These tests answer a series of requests on one connection (the memo in use)
and each on a fresh server with an empty memo, and compare the bytes
written, the events and the refusals; they check that only plain exchanges
(not HEAD or CONNECT, not HTTP/1.0, not closing) are answered from the
memo, that only blocks of ``(bytes, bytes)`` tuples are kept, that a
refused block is not, and that the memo stays bounded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.protocols.http1 import H11ServerProtocol, _httptools_server, _server
from hcore.protocols.http1._headers import Framing, OutgoingBody
from hcore.protocols.http1._httptools_server import HTTPToolsServerProtocol
from hcore.protocols.http1._response_memo import KnownHead, ResponseMemo
from tests.hcore.h11_fast_helpers import PlainServer
from tests.hcore.pairs import drain

Server = H11ServerProtocol | HTTPToolsServerProtocol
MAKERS: dict[str, Callable[[], Server]] = {
    "h11": H11ServerProtocol,
    "httptools": HTTPToolsServerProtocol,
}
MODULES = {"h11": _server, "httptools": _httptools_server}
GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"
OLD = b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"


def block(status: bytes = b"200", *fields: tuple[bytes, bytes]) -> Headers:
    """A response block, built anew (as an application builds it)."""
    return [(b":status", status), *fields]


LENGTH_2 = (b"content-length", b"2")
PLAIN = (b"content-type", b"text/plain")


@pytest.fixture(autouse=True)
def empty_memos(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with empty memos (and leaves the shared ones alone)."""
    for module in MODULES.values():
        monkeypatch.setattr(module, "_MEMO", ResponseMemo())
    yield


def memo_of(name: str) -> ResponseMemo:
    memo = MODULES[name]._MEMO
    assert isinstance(memo, ResponseMemo)
    return memo


def answer(
    server: Server, request: bytes, headers: Headers, end_stream: bool, body: bytes
) -> tuple[object, bytes, list[object]]:
    """Feed one request and answer it; return the refusal, bytes and events."""
    server.bytes_received(request)
    events = drain(server)
    error: object = None
    try:
        server.submit_headers(server._stream_id, headers, end_stream)
        if not end_stream:
            server.submit_data(server._stream_id, body, end_stream=True)
    except LocalProtocolError as exc:
        error = str(exc)
    # Stream ids count the connection's exchanges: left out.
    shapes: list[object] = []
    for event in events + drain(server):
        if hasattr(event, "stream_id"):
            shapes.append(dataclasses.replace(event, stream_id=0))  # type: ignore[call-arg]
        else:
            shapes.append(event)
    return error, server.bytes_to_send(), shapes


def fresh(
    name: str, request: bytes, headers: Headers, end_stream: bool, body: bytes
) -> tuple[object, bytes, list[object]]:
    """What a new server with an empty memo does with the exchange."""
    kept = MODULES[name]._MEMO
    MODULES[name]._MEMO = ResponseMemo()  # type: ignore[attr-defined]
    try:
        return answer(MAKERS[name](), request, headers, end_stream, body)
    finally:
        MODULES[name]._MEMO = kept  # type: ignore[attr-defined]


#: Exchanges in a row: repeats, and every kind of change.
SERIES: list[tuple[bytes, Headers, bool, bytes]] = [
    (GET, block(b"200", PLAIN, LENGTH_2), False, b"ok"),
    (GET, block(b"200", PLAIN, LENGTH_2), False, b"ok"),
    (POST, block(b"200", PLAIN, LENGTH_2), False, b"ok"),
    (GET, block(b"200", (b"content-type", b"text/html"), LENGTH_2), False, b"ok"),
    (GET, block(b"201", PLAIN, LENGTH_2), False, b"ok"),
    (GET, block(b"200", PLAIN), False, b"chunked"),
    (GET, block(b"200", PLAIN), False, b"chunked"),
    (GET, block(b"200", PLAIN), True, b""),
    (GET, block(b"200", PLAIN), True, b""),
    (GET, block(b"204"), True, b""),
    (GET, block(b"304", (b"etag", b'"a"')), True, b""),
    (GET, block(b"200", (b"Content-Type", b"text/plain"), LENGTH_2), False, b"ok"),
    (GET, block(b"200", (b"connection", b"keep-alive"), LENGTH_2), False, b"ok"),
    (HEAD, block(b"200", PLAIN, LENGTH_2), True, b""),
    (GET, block(b"200", PLAIN, LENGTH_2), False, b"ok"),
]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_memos_give_what_planning_gives(name: str) -> None:
    server = MAKERS[name]()
    for request, headers, end_stream, body in SERIES:
        got = answer(server, request, list(headers), end_stream, body)
        assert got == fresh(name, request, list(headers), end_stream, body)
        assert got[0] is None
    # Every distinct plain block was kept, and nothing for HEAD.
    assert len(memo_of(name)) == 9


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_an_equal_block_is_not_planned_again(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned: list[Headers] = []
    module = MODULES[name]
    original = module.plan_response_head

    def spying(headers: Headers, *args: object, **kwargs: object) -> object:
        planned.append(headers)
        return original(headers, *args, **kwargs)

    monkeypatch.setattr(module, "plan_response_head", spying)
    server = MAKERS[name]()
    for _ in range(3):
        answer(server, GET, block(b"200", LENGTH_2), False, b"ok")
    answer(server, GET, block(b"200", LENGTH_2), True, b"")
    assert len(planned) == 2
    # end_stream is part of what is known: the second kept apart.
    assert len(memo_of(name)) == 1


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize(
    "request_bytes", [HEAD, OLD, CLOSE], ids=["head", "http/1.0", "close"]
)
def test_exchanges_that_are_not_plain_are_planned(
    name: str, request_bytes: bytes
) -> None:
    server = MAKERS[name]()
    headers = block(b"200", PLAIN, LENGTH_2)
    answer(server, GET, list(headers), False, b"ok")
    assert len(memo_of(name)) == 1
    end_stream = request_bytes == HEAD
    got = answer(server, request_bytes, list(headers), end_stream, b"ok")
    assert got == fresh(name, request_bytes, list(headers), end_stream, b"ok")
    if request_bytes != HEAD:
        assert b"connection: close" in got[1].lower()
    else:
        assert got[1].endswith(b"\r\n\r\n")


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_closing_connection_is_not_answered_from_the_memo(name: str) -> None:
    server = MAKERS[name]()
    headers = block(b"200", PLAIN, LENGTH_2)
    answer(server, GET, list(headers), False, b"ok")
    server.bytes_received(GET)
    drain(server)
    server.submit_close()
    server.submit_headers(server._stream_id, list(headers))
    server.submit_data(server._stream_id, b"ok", end_stream=True)
    assert b"connection: close\r\n" in server.bytes_to_send().lower()


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize(
    "headers",
    [
        block(b"200", LENGTH_2, (b"x-a", bytearray(b"1"))),  # type: ignore[arg-type]
        [(b":status", b"200"), [b"content-length", b"2"]],
        (*block(b"200"), LENGTH_2),
    ],
    ids=["bytearray", "list field", "tuple block"],
)
def test_only_blocks_of_byte_pairs_are_kept(name: str, headers: Headers) -> None:
    server = MAKERS[name]()
    for _ in range(2):
        got = answer(server, GET, headers, False, b"ok")
        assert got[0] is None and got[1].endswith(b"\r\n\r\nok")
    # A tuple block of byte pairs is as good as a list.
    assert len(memo_of(name)) == (1 if type(headers) is tuple else 0)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_refused_block_is_not_kept(name: str) -> None:
    server = MAKERS[name]()
    bad = block(b"200", (b"bad name", b"v"), LENGTH_2)
    error, written, _ = answer(server, GET, bad, False, b"ok")
    assert error is not None and written == b""
    assert len(memo_of(name)) == 0
    short = block(b"200", (b"content-length", b"3"))
    for _ in range(2):
        server = MAKERS[name]()
        error, written, _ = answer(server, GET, list(short), True, b"")
        assert error == "stream ended 3 bytes short of Content-Length"
        assert written == b""
    assert len(memo_of(name)) == 0


def test_the_memo_is_bounded() -> None:
    memo = ResponseMemo(max_size=3)
    body = OutgoingBody(Framing.LENGTH, 1)
    for count in range(10):
        headers = block(b"200", (b"x-count", b"%d" % count))
        memo.keep(headers, False, KnownHead(b"head %d" % count, body))
        memo.keep(headers, True, KnownHead(b"end %d" % count, body))
        assert len(memo) <= 6
        known = memo.recall(list(headers), True)
        assert known is not None and known.head == b"end %d" % count
    assert memo.recall(block(b"200", (b"x-count", b"0")), False) is None


def test_the_plain_h11_server_keeps_nothing() -> None:
    # Without the direct paths h11 writes every head itself.
    server = PlainServer()
    answer(server, GET, block(b"200", LENGTH_2), False, b"ok")
    assert len(memo_of("h11")) == 0
