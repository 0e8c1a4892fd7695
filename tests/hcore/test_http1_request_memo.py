"""A client protocol's memo of its last request head gives what planning gives.

Each HTTP/1.1 client protocol (h11 with and without its direct paths,
httptools) keeps the head its last request planned to, and takes it again
when the next request passes the same header block object (a tuple of
``(bytes, bytes)`` tuples) with the same ``end_stream``.  These tests send
the same requests through a protocol that keeps memos and through fresh
ones given a copy of the block as a list (which is never kept), and compare
the bytes written and the refusals; they check that any change of the
block (a field, the method, the URL, ``end_stream``) plans afresh, that
only unchangeable blocks are kept, and that a refused block is not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.protocols.http1 import H11ClientProtocol
from hcore.protocols.http1._client import H11ClientProtocol as _H11Client
from hcore.protocols.http1._httptools_client import HTTPToolsClientProtocol
from hcore.protocols.http1._request_memo import RequestMemo, repeatable
from tests.hcore.h11_fast_helpers import PlainClient
from tests.hcore.pairs import drain

Client = H11ClientProtocol | HTTPToolsClientProtocol
MAKERS: dict[str, Callable[[], Client]] = {
    "h11": H11ClientProtocol,
    "h11-plain": PlainClient,
    "httptools": HTTPToolsClientProtocol,
}
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def block(
    method: bytes = b"GET",
    path: bytes = b"/a",
    authority: bytes = b"example.com",
    *fields: tuple[bytes, bytes],
) -> tuple[tuple[bytes, bytes], ...]:
    """A request block, as a tuple (the kind a memo keeps)."""
    return (
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", path),
        *fields,
    )


def send(
    client: Client, headers: Headers, end_stream: bool, body: bytes = b""
) -> tuple[object, bytes]:
    """Send one request (and its body, if open); answer it; return what came."""
    error: object = None
    try:
        client.submit_headers(client.get_available_stream_id(), headers, end_stream)
        if not end_stream:
            client.submit_data(client._stream_id, body, end_stream=True)
    except LocalProtocolError as exc:
        error = str(exc)
    written = client.bytes_to_send()
    if error is None:
        client.bytes_received(RESPONSE)
        drain(client)
    return error, written


def fresh(make: Callable[[], Client], headers: Headers, end_stream: bool) -> object:
    """What a new protocol, given the block as a list, does with the request."""
    return send(make(), list(headers), end_stream, b"xyz")


#: Requests in a row on one connection: repeats, and every kind of change.
SERIES: list[tuple[Headers, bool]] = [
    (block(), True),
    (block(), True),
    (block(b"GET", b"/a", b"example.com", (b"x-a", b"1")), True),
    (block(b"GET", b"/a", b"example.com", (b"x-a", b"2")), True),
    (block(b"OPTIONS"), True),
    (block(b"GET", b"/b"), True),
    (block(b"GET", b"/a", b"other.example:8080"), True),
    (block(b"POST", b"/a", b"example.com", (b"content-length", b"3")), False),
    (block(b"POST"), False),
    (block(b"POST"), True),
    (block(b"GET", b"/a", b"example.com", (b"Connection", b"keep-alive")), True),
]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_memos_give_the_bytes_planning_gives(name: str) -> None:
    make = MAKERS[name]
    client = make()
    for headers, end_stream in SERIES:
        # The same object twice: the second is taken from the memo.
        for _ in range(2):
            assert send(client, headers, end_stream, b"xyz") == fresh(
                make, headers, end_stream
            )
            assert client._memo is not None
            assert client._memo.headers is headers


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_an_equal_block_of_another_identity_plans_afresh(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MAKERS[name]()
    first, second = block(), block()
    assert first == second and first is not second
    send(client, first, True)
    memo = client._memo
    send(client, second, True)
    assert client._memo is not memo
    assert client._memo is not None and client._memo.headers is second
    send(client, second, True)
    # end_stream is part of what is known.
    send(client, second, False, b"abc")
    assert client._memo is not None and client._memo.end_stream is False


def test_a_repeated_block_is_not_planned_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned: list[Headers] = []
    original = _H11Client._plan

    def spying(self: _H11Client, headers: Headers, end_stream: bool) -> RequestMemo:
        planned.append(headers)
        return original(self, headers, end_stream)

    monkeypatch.setattr(_H11Client, "_plan", spying)
    client = H11ClientProtocol()
    headers = block()
    for _ in range(3):
        send(client, headers, True)
    changed = block(b"GET", b"/other")
    send(client, changed, True)
    send(client, headers, True)
    assert planned == [headers, changed, headers]


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize(
    "headers",
    [
        list(block()),
        (*block()[:3], [b":path", b"/a"]),
        (*block(), (b"x-a", bytearray(b"1"))),
        (*block(), (b"x-a", "1")),
        (*block(), (b"x-a", b"1", b"2")),
    ],
    ids=["list", "list field", "bytearray", "text", "three items"],
)
def test_only_unchangeable_blocks_are_kept(name: str, headers: object) -> None:
    assert not repeatable(headers)  # type: ignore[arg-type]
    client = MAKERS[name]()
    try:
        send(client, headers, True)  # type: ignore[arg-type]
    except (LocalProtocolError, TypeError, ValueError, AttributeError):
        pass
    assert client._memo is None


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_refused_block_is_not_kept(name: str) -> None:
    client = MAKERS[name]()
    good = block()
    send(client, good, True)
    bad = block(b"GET", b"/a", b"example.com", (b"bad name", b"v"))
    for _ in range(2):
        error, written = send(client, bad, True)
        assert error is not None and written == b""
        assert client._memo is not None and client._memo.headers is good
    assert send(client, good, True) == fresh(MAKERS[name], good, True)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_block_short_of_its_length_is_refused_each_time(name: str) -> None:
    # Content-Length 3 with end_stream: refused after planning, every time.
    client = MAKERS[name]()
    headers = block(b"POST", b"/a", b"example.com", (b"content-length", b"3"))
    for _ in range(2):
        error, written = send(client, headers, True)
        assert error == "stream ended 3 bytes short of Content-Length"
        assert written == b""
        assert client.is_available()
    assert send(client, headers, False, b"xyz") == fresh(MAKERS[name], headers, False)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_kept_tunnels_propose_again(name: str) -> None:
    # CONNECT and Upgrade: the memo keeps "no body" and the proposal.
    for headers in (
        ((b":method", b"CONNECT"), (b":authority", b"h:1")),
        block(b"GET", b"/", b"h", (b"upgrade", b"ws")),
    ):
        client = MAKERS[name]()
        written = []
        for _ in range(2):
            client.submit_headers(client.get_available_stream_id(), headers, True)
            written.append(client.bytes_to_send())
            # Refused: the connection goes on.
            client.bytes_received(b"HTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\n")
            drain(client)
            assert client.is_available()
        assert written[0] == written[1] != b""
        assert client._memo is not None and client._memo.framing is None
