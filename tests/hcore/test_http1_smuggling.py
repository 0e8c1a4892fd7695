"""Request smuggling: every HTTP/1.1 server implementation frames alike.

Each test feeds one crafted request to a server made by the
``http1_server_factory`` fixture (every registered HTTP/1.1 implementation)
and checks the answer RFC 9112 requires, cited in the test: either the
request is refused with 400 (or 505) and the connection ends with that
status, or it is read exactly one way.  Where a request hides a second one,
the hidden request must never appear as its own ``HeadersReceived``.
"""

from __future__ import annotations

import pytest

from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
    TrailersReceived,
)
from hcore.protocols import HTTPOverTCPProtocol
from tests.hcore.conftest import HTTP1FactoryMaker
from tests.hcore.pairs import drain

HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


def serve(
    factory: HTTP1FactoryMaker, raw: bytes, *, eof: bool = False
) -> tuple[HTTPOverTCPProtocol, list[Event], bytes]:
    """Feed raw bytes (and maybe EOF) to a new server; return its answer."""
    server = factory()()
    server.bytes_received(raw)
    if eof:
        server.eof_received()
    return server, drain(server), server.bytes_to_send()


def paths(events: list[Event]) -> list[bytes]:
    """The ``:path`` of every request the server handed out."""
    return [
        value
        for event in events
        if isinstance(event, HeadersReceived)
        for name, value in event.headers
        if name == b":path"
    ]


def body(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived))


def assert_refused(
    server: HTTPOverTCPProtocol, events: list[Event], out: bytes, status: int = 400
) -> None:
    """The request was answered with ``status`` and the connection ended."""
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:40]
    head = out.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nconnection: close" in head
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == status
    assert b"/smuggled" not in paths(events)
    assert server.has_expired()
    # Nothing more comes out of a dead connection.
    server.bytes_received(HIDDEN)
    assert drain(server) == [] and server.bytes_to_send() == b""


def answer(server: HTTPOverTCPProtocol, stream_id: int = 1) -> bytes:
    """Send a 200 with a short body; return the bytes it produced."""
    server.submit_headers(stream_id, [(b":status", b"200"), (b"content-length", b"2")])
    server.submit_data(stream_id, b"ok", end_stream=True)
    return server.bytes_to_send()


# -- Content-Length and Transfer-Encoding (RFC 9112 §6) --------------------------


def test_content_length_and_transfer_encoding(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9112 §6.1: a server MAY reject a request with both, and MUST close
    # the connection after it regardless; hcore rejects.  The classic CL.TE
    # attack hides a second request behind the chunked terminator.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN
    )
    assert_refused(*serve(http1_server_factory, raw))


def test_transfer_encoding_and_content_length(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9112 §6.1, in the other order (TE.CL).
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 40\r\n\r\n0\r\n\r\n" + HIDDEN
    )
    assert_refused(*serve(http1_server_factory, raw))


def test_transfer_encoding_in_http10(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty
    # framing (HTTP/1.0 has no chunked coding).
    raw = b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"chunked, gzip", b"chunked, chunked", b"xchunked", b"chunked\x0bx"],
)
def test_chunked_not_final(
    http1_server_factory: HTTP1FactoryMaker, coding: bytes
) -> None:
    # RFC 9112 §6.3 (4): Transfer-Encoding whose final coding is not
    # chunked: 400, then close.  (\x0b is not whitespace to HTTP.)
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw + b"0\r\n\r\n" + HIDDEN))


def test_transfer_encoding_field_repeated(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9112 §6.3 (4) and §7.1: two Transfer-Encoding lines combine to
    # "chunked, chunked"; chunked applied twice is refused.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert_refused(*serve(http1_server_factory, raw))


def test_transfer_coding_name_is_case_insensitive(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9112 §7: transfer-coding names are case-insensitive, so CHUNKED
    # frames the body exactly like chunked.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    _server, events, out = serve(http1_server_factory, raw)
    assert out == b"" and paths(events) == [b"/"] and body(events) == b"abc"
    assert isinstance(events[-1], DataReceived) and events[-1].end_stream


@pytest.mark.parametrize(
    "fields",
    [
        b"Content-Length: 3\r\nContent-Length: 4\r\n",
        b"Content-Length: 3, 4\r\n",
        b"Content-Length: 3\r\nContent-Length: 3, 5\r\n",
    ],
)
def test_conflicting_content_length(
    http1_server_factory: HTTP1FactoryMaker, fields: bytes
) -> None:
    # RFC 9112 §6.3 (5): an invalid Content-Length (differing values) is an
    # unrecoverable framing error: 400, then close.
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\nabcd" + HIDDEN
    assert_refused(*serve(http1_server_factory, raw))


@pytest.mark.parametrize(
    "fields",
    [b"Content-Length: 3\r\nContent-Length: 3\r\n", b"Content-Length: 3, 3\r\n"],
)
def test_duplicate_identical_content_length(
    http1_server_factory: HTTP1FactoryMaker, fields: bytes
) -> None:
    # RFC 9110 §8.6: identical values may be rejected, or read as the one
    # value.  Either way the body is exactly 3 bytes and what follows is the
    # next request, never part of this one.
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\nabc" + HIDDEN
    server, events, out = serve(http1_server_factory, raw)
    if out:
        assert_refused(server, events, out)
        return
    assert paths(events) == [b"/"] and body(events) == b"abc"
    answer(server)
    assert paths(drain(server)) == [b"/smuggled"]


@pytest.mark.parametrize("value", [b"+3", b"0x3", b"3 3", b"-1", b"3.0", b"9" * 30])
def test_malformed_content_length(
    http1_server_factory: HTTP1FactoryMaker, value: bytes
) -> None:
    # RFC 9110 §8.6: Content-Length = 1*DIGIT; RFC 9112 §6.3 (5): anything
    # else is unrecoverable: 400.  (30 digits: overflow must not wrap.)
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + value + b"\r\n\r\nabc"
    assert_refused(*serve(http1_server_factory, raw + HIDDEN))


# -- field syntax (RFC 9112 §5, RFC 9110 §5) --------------------------------------


def test_obs_fold(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §5.2: a server MUST either reject obs-fold with 400 or replace
    # each obs-fold with SP before interpreting the field.
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n"
    server, events, out = serve(http1_server_factory, raw)
    if out:
        assert_refused(server, events, out)
        return
    [headers] = [e for e in events if isinstance(e, HeadersReceived)]
    [value] = [v for n, v in headers.headers if n == b"x-a"]
    assert value.split() == [b"one", b"two"] and b"\r" not in value
    assert b"\n" not in value


def test_obs_fold_hiding_transfer_encoding(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9112 §5.2: folded, "Transfer-Encoding: \r\n chunked" is one field;
    # with Content-Length it is refused like any CL+TE request (RFC 9112
    # §6.1), so the chunked body cannot be read two ways.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n"
        b" chunked\r\n\r\n0\r\n\r\n" + HIDDEN
    )
    assert_refused(*serve(http1_server_factory, raw))


def test_obs_fold_before_first_field(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §2.2: whitespace between the start-line and the first field
    # line: the server MUST reject it (or ignore the line); it is never
    # folded into the request line.
    raw = b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


def test_bare_lf_line_endings(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §2.2: a recipient MAY recognize a single LF as a line
    # terminator in the start-line and fields; if it does not, it refuses.
    raw = b"GET /a HTTP/1.1\nHost: h\nX: y\n\n"
    server, events, out = serve(http1_server_factory, raw)
    if out:
        assert_refused(server, events, out)
        return
    assert paths(events) == [b"/a"]
    [headers] = [e for e in events if isinstance(e, HeadersReceived)]
    assert (b"x", b"y") in headers.headers


def test_bare_lf_in_chunk_line(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §7.1: chunk lines end in CRLF (§2.2's leniency covers the
    # start-line and fields only), so "3\nabc" is no chunk header.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\nabc\r\n0\r\n\r\n" + HIDDEN
    )
    server, events, out = serve(http1_server_factory, raw)
    assert body(events) == b""
    assert_refused(server, events, out)


def test_bare_cr(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §2.2: a bare CR outside content: reject, or replace with SP.
    # Here it would hide a field ("X: y") inside Host's line.
    raw = b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"
    server, events, out = serve(http1_server_factory, raw)
    if out:
        assert_refused(server, events, out)
        return
    [headers] = [e for e in events if isinstance(e, HeadersReceived)]
    assert all(name != b"x" for name, _ in headers.headers)


@pytest.mark.parametrize("name", [b"Host", b"Transfer-Encoding", b"Content-Length"])
def test_whitespace_before_colon(
    http1_server_factory: HTTP1FactoryMaker, name: bytes
) -> None:
    # RFC 9112 §5.1: whitespace between a field name and the colon: a server
    # MUST reject the request with 400.
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + name + b" : 3\r\n\r\nabc"
    assert_refused(*serve(http1_server_factory, raw + HIDDEN))


@pytest.mark.parametrize(
    "name", [b"X@Y", b"X Y", b"X\xe9", b"", b"X\x00", b"X(Y)", b"X/Y", b'"X"']
)
def test_invalid_field_name(
    http1_server_factory: HTTP1FactoryMaker, name: bytes
) -> None:
    # RFC 9110 §5.1: field-name = token; RFC 9112 §5: a field line that does
    # not parse is a bad request.
    raw = b"GET / HTTP/1.1\r\nHost: h\r\n" + name + b": v\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


@pytest.mark.parametrize("char", [b"\x00", b"\x01", b"\x0b", b"\x1f", b"\x7f"])
def test_invalid_field_value(
    http1_server_factory: HTTP1FactoryMaker, char: bytes
) -> None:
    # RFC 9110 §5.5: field values are field-vchar (VCHAR / obs-text) with SP
    # and HTAB; NUL MUST be rejected, other controls are invalid too.
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX: a" + char + b"b\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


def test_obs_text_and_tab_in_value_kept(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9110 §5.5: obs-text (0x80-0xFF) and HTAB are allowed in values,
    # and kept as they are (the surrounding whitespace is not).
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX: \ta\xe9\tb \r\n\r\n"
    _, events, out = serve(http1_server_factory, raw)
    assert out == b""
    [headers] = [e for e in events if isinstance(e, HeadersReceived)]
    assert (b"x", b"a\xe9\tb") in headers.headers


# -- chunked framing (RFC 9112 §7.1) -----------------------------------------------


@pytest.mark.parametrize("digits", [17, 20, 40])
def test_chunk_size_overflow(
    http1_server_factory: HTTP1FactoryMaker, digits: int
) -> None:
    # RFC 9112 §7.1: recipients MUST anticipate large hexadecimal numerals and
    # prevent integer conversion overflow.  A size that wraps to 1 in 64 bits
    # must not let "X" end the chunk and expose the hidden request: refused,
    # or every following byte stays content of this request.
    size = b"1" + b"0" * (digits - 2) + b"1"
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size
        + b"\r\nX\r\n0\r\n\r\n"
        + HIDDEN
    )
    server, events, out = serve(http1_server_factory, raw)
    assert paths(events) == [b"/"]
    if out:
        assert_refused(server, events, out)
        return
    assert not server.has_expired()
    assert body(events) == raw.split(size + b"\r\n", 1)[1]
    assert not any(isinstance(e, DataReceived) and e.end_stream for e in events)


def test_chunk_extensions_ignored(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §7.1.1: a recipient MUST ignore unrecognized chunk extensions,
    # quoted strings included; the data is framed by the size alone.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3;name=value\r\nabc\r\n2;q="x;y\\"z"\r\nde\r\n0;last\r\n\r\n' + HIDDEN
    )
    server, events, out = serve(http1_server_factory, raw)
    assert out == b"" and body(events) == b"abcde"
    assert paths(events) == [b"/"]
    answer(server)
    assert paths(drain(server)) == [b"/smuggled"]


@pytest.mark.parametrize("extension", [b" ;x=1", b";\x00", b";x=\x01"])
def test_chunk_extension_lenient_or_refused(
    http1_server_factory: HTTP1FactoryMaker, extension: bytes
) -> None:
    # RFC 9112 §7.1.1: BWS around ";" is allowed; a control character is no
    # token or quoted-string.  Parsers differ (h11 ignores the extension
    # whatever it holds, and refuses BWS); the RFC's requirement is that
    # extensions never change the framing: the data is refused or framed by
    # the size alone.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3"
        + extension
        + b"\r\nabc\r\n0\r\n\r\n"
        + HIDDEN
    )
    server, events, out = serve(http1_server_factory, raw)
    if out:
        assert body(events) == b""
        assert_refused(server, events, out)
        return
    assert body(events) == b"abc"
    answer(server)
    assert paths(drain(server)) == [b"/smuggled"]


@pytest.mark.parametrize(
    "chunk",
    [b"-3\r\nabc", b"3\r\nabcXX", b"g\r\nabc", b"\r\nabc", b"0x3\r\nabc"],
)
def test_malformed_chunk(http1_server_factory: HTTP1FactoryMaker, chunk: bytes) -> None:
    # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF,
    # chunk-size = 1*HEXDIG; anything else breaks the framing: 400.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk
        + b"\r\n0\r\n\r\n"
        + HIDDEN
    )
    server, events, out = serve(http1_server_factory, raw)
    assert paths(events) == [b"/"]
    assert_refused(server, events, out)


def test_trailer_cannot_smuggle_framing(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9110 §6.5.1: trailer fields cannot change framing; a
    # Content-Length sent as a trailer is handed on as a trailer (or the
    # request refused) and never frames anything.
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nContent-Length: 40\r\n\r\n" + HIDDEN
    )
    server, events, out = serve(http1_server_factory, raw)
    if out:
        assert_refused(server, events, out)
        return
    assert body(events) == b"abc"
    assert isinstance(events[-1], TrailersReceived)
    answer(server)
    assert paths(drain(server)) == [b"/smuggled"]


# -- Host and the request target (RFC 9112 §3) ---------------------------------------


@pytest.mark.parametrize("second", [b"b", b"a"])
def test_multiple_host(http1_server_factory: HTTP1FactoryMaker, second: bytes) -> None:
    # RFC 9112 §3.2: more than one Host field line: 400.
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nHost: " + second + b"\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


@pytest.mark.parametrize(
    "host", [b"a, b", b"a b", b"a/b", b"user@a", b"a:80x", b"[::1"]
)
def test_invalid_host(http1_server_factory: HTTP1FactoryMaker, host: bytes) -> None:
    # RFC 9112 §3.2: a Host field with an invalid value (not uri-host
    # [":" port]): 400.
    raw = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


def test_missing_host(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §3.2: an HTTP/1.1 request without Host: 400.
    assert_refused(*serve(http1_server_factory, b"GET / HTTP/1.1\r\n\r\n"))


def test_empty_host_accepted(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §3.2: an empty Host is what a client sends when the target
    # URI has no authority; it is valid.
    _, events, out = serve(http1_server_factory, b"GET / HTTP/1.1\r\nHost:\r\n\r\n")
    assert out == b"" and paths(events) == [b"/"]


def test_absolute_form_overrides_host(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §3.2.2: with an absolute-form target the server MUST ignore
    # Host and use the target's authority.
    raw = b"GET http://a.example:8080/p?q HTTP/1.1\r\nHost: b.example\r\n\r\n"
    _, events, out = serve(http1_server_factory, raw)
    assert out == b""
    [headers] = [e for e in events if isinstance(e, HeadersReceived)]
    pseudo = [(n, v) for n, v in headers.headers if n.startswith(b":")]
    assert pseudo == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"a.example:8080"),
        (b":path", b"/p?q"),
    ]


def test_absolute_form_still_needs_host(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9112 §3.2: Host is required in every HTTP/1.1 request, absolute
    # form included.
    raw = b"GET http://a.example/p HTTP/1.1\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


@pytest.mark.parametrize(
    "target",
    [b"http://user@a.example/", b"http://a b/", b"http://a,b c/", b"http:///x"],
)
def test_absolute_form_bad_authority(
    http1_server_factory: HTTP1FactoryMaker, target: bytes
) -> None:
    # RFC 9110 §4.2.4: userinfo in an http URI is an error; RFC 9112 §3.2.2:
    # the authority must be a valid host (the request line has no spaces).
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw))


# -- versions (RFC 9112 §2.3, RFC 9110 §2.5) -------------------------------------------


def test_http09_request(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §2.3, Appendix C.1: HTTP/0.9's "GET /" has no version and no
    # fields; hcore does not speak it: never a request, refused by 400.
    server, events, out = serve(http1_server_factory, b"GET /\r\n\r\n")
    assert_refused(server, events, out)


def test_http09_request_then_eof(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9112 §2.3: "GET /" and EOF is no complete HTTP/1.x request.
    server, events, out = serve(http1_server_factory, b"GET /\r\n", eof=True)
    assert paths(events) == []
    assert_refused(server, events, out)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0"])
def test_unsupported_version(
    http1_server_factory: HTTP1FactoryMaker, version: bytes
) -> None:
    # RFC 9110 §2.5, §15.6.6: a major version the server does not speak in
    # this syntax is answered with 505 (HTTP Version Not Supported).
    raw = b"GET / " + version + b"\r\nHost: h\r\n\r\n"
    assert_refused(*serve(http1_server_factory, raw), status=505)


def test_higher_minor_version(http1_server_factory: HTTP1FactoryMaker) -> None:
    # RFC 9110 §2.5: a higher minor version of a major version we speak is
    # processed as the highest minor version we implement (1.1).
    _, events, out = serve(http1_server_factory, b"GET / HTTP/1.7\r\nHost: h\r\n\r\n")
    assert out == b"" and paths(events) == [b"/"]


@pytest.mark.parametrize(
    "line", [b"GET / HTTP/3", b"GET / http/1.1", b"GET / HTTP/1.1 x", b"GET / HTTP/11"]
)
def test_malformed_version(
    http1_server_factory: HTTP1FactoryMaker, line: bytes
) -> None:
    # RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive.
    assert_refused(*serve(http1_server_factory, line + b"\r\nHost: h\r\n\r\n"))


def test_prior_knowledge_preface_on_http1(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    # RFC 9113 §3.4: the HTTP/2 preface reaching an HTTP/1.1 server is not an
    # HTTP/1.1 request ("PRI * HTTP/2.0"); it is refused, never served.
    raw = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    server, events, out = serve(http1_server_factory, raw)
    assert paths(events) == []
    assert out.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 505 "))
    assert isinstance(events[-1], ConnectionTerminated) and server.has_expired()


@pytest.mark.parametrize(
    "raw",
    [
        b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"HEAD foo HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: \x01\r\n\r\n",
    ],
)
def test_refused_head_request(
    http1_server_factory: HTTP1FactoryMaker, raw: bytes
) -> None:
    # RFC 9112 §3: a HEAD refused after its head was parsed gets its 400 too
    # (found by the fuzzer: h11 refused to send the error page's content for
    # HEAD, RFC 9110 §9.3.2, and the error escaped bytes_received).  The
    # connection closes after it, so content there or not cannot desync.
    server = http1_server_factory()()
    server.bytes_received(raw)
    events = drain(server)
    out = b""
    if events and isinstance(events[0], HeadersReceived):
        out = answer(server)
        events = drain(server)
    out += server.bytes_to_send()
    assert b"HTTP/1.1 400 " in out and b"\r\nconnection: close\r\n" in out
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == 400 and server.has_expired()
