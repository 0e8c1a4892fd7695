"""URLs, requests, Alt-Svc parsing and the Alt-Svc cache (no I/O)."""

from __future__ import annotations

import pytest

from hcore import LocalProtocolError
from hcore_io.client import URL, AltSvcCache, Origin, Request, parse_alt_svc


def test_url_parts() -> None:
    url = URL("HTTPS://Example.com/a/b?c=d#frag")
    assert url.origin == Origin("https", "example.com", 443)
    assert (url.scheme, url.host, url.port, url.target) == (
        "https",
        "example.com",
        443,
        "/a/b?c=d",
    )
    assert URL("http://[::1]:8080").origin.authority == "[::1]:8080"
    assert URL("http://h").target == "/"
    assert str(URL("http://h:80/x").origin) == "http://h"
    assert url.join("../x").origin == url.origin
    assert url.join("../x").target == "/x"
    assert str(url.join("http://other:81/y")) == "http://other:81/y"


@pytest.mark.parametrize(
    "raw", ["ftp://example.com/", "/relative", "http:///nohost", "http://h:99999/"]
)
def test_invalid_urls(raw: str) -> None:
    with pytest.raises(ValueError):
        URL(raw)


def test_request_header_block() -> None:
    request = Request(
        "POST", URL("http://h:8080/p"), [(b"host", b"ignored"), (b"x", b"1")], b"ab"
    )
    assert request.header_block() == (
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"h:8080"),
        (b":path", b"/p"),
        (b"x", b"1"),
        (b"content-length", b"2"),
    )
    assert request.replayable
    get = Request("GET", URL("http://h/"))
    assert (b"content-length", b"0") not in get.header_block()
    with pytest.raises(LocalProtocolError):
        Request("GET", URL("http://h/"), [(b"X-Upper", b"1")]).header_block()


def test_parse_alt_svc() -> None:
    assert parse_alt_svc("clear") is None
    assert parse_alt_svc('h3=":443"; ma=3600, h3-29="alt.example:8443"') == [
        ("h3", "", 443, 3600.0),
        ("h3-29", "alt.example", 8443, 86400.0),
    ]
    # Unparseable entries are skipped, bad max-ages ignored.
    assert parse_alt_svc('h3=":x", h3=":0", h3=":443"; ma=oops') == [
        ("h3", "", 443, 86400.0)
    ]


def test_alt_svc_cache() -> None:
    cache = AltSvcCache()
    origin = Origin("https", "example.com", 443)
    cache.update(origin, 'h2=":444", h3="other.example:1"', now=0.0)
    assert cache.lookup(origin, 0.0) is None
    cache.update(origin, 'h3=":8443"; ma=10', now=0.0)
    assert cache.lookup(origin, 5.0) == 8443
    cache.mark_broken(origin, 5.0)
    assert cache.lookup(origin, 6.0) is None
    cache.update(origin, 'h3=":8443"; ma=1000', now=7.0)
    assert cache.lookup(origin, 8.0) is None  # still broken
    assert cache.lookup(origin, 400.0) == 8443
    assert cache.lookup(origin, 2000.0) is None  # expired
    cache.update(origin, 'h3=":8443"', now=0.0)
    cache.update(origin, "clear", now=1.0)
    assert cache.lookup(origin, 1.0) is None
    cache.mark_broken(origin, 1.0)
