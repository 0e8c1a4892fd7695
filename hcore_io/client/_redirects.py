"""Redirects a :class:`~hcore_io.client.Client` follows (RFC 9110 §15.4).

303 (and 301/302 after a POST) become a GET without body; 307 and 308
repeat the method and body; the ``authorization`` and ``cookie`` fields
are dropped when the redirect leaves the origin.  A redirect's own body is
read a little (so that an HTTP/1.1 connection can be reused), then closed.
"""

from __future__ import annotations

from hcore_io.client._models import Request, Response

__all__ = ("drain", "redirected")

# RFC 9110 §15.4: the redirections followed.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Fields that carry credentials, dropped on a cross-origin redirect.
_CREDENTIALS = frozenset({b"authorization", b"cookie", b"proxy-authorization"})
# Fields that describe a body, dropped when a redirect drops the body.
_BODY_FIELDS = frozenset({b"content-length", b"content-type", b"transfer-encoding"})
# The body of a redirect response read (to keep an HTTP/1.1 connection).
_DRAIN_LIMIT = 65536


def redirected(request: Request, response: Response) -> Request | None:
    """The request a redirect response asks for, or ``None`` if it is not one.

    ``None`` too when the ``location`` is missing or not an http(s) URL,
    or when the request's streamed body would have to be sent again.
    """
    if response.status not in _REDIRECTS:
        return None
    location = response.get_header(b"location")
    if location is None:
        return None
    try:
        url = request.url.join(location.decode("latin-1"))
    except ValueError:
        return None
    method, body = request.method, request.body
    fields = list(request.headers)
    # RFC 9110 §15.4.4: 303 means GET; §15.4.2-3: user agents turn a
    # POST into a GET on 301 and 302.
    if (response.status == 303 and method != "HEAD") or (
        response.status in (301, 302) and method == "POST"
    ):
        method, body = "GET", b""
        fields = [(n, v) for n, v in fields if n not in _BODY_FIELDS]
    elif not isinstance(body, bytes):
        # A streamed body cannot be sent again.
        return None
    if url.origin != request.url.origin:
        fields = [(n, v) for n, v in fields if n not in _CREDENTIALS]
    return Request(method, url, fields, body, request.timeouts)


async def drain(response: Response) -> None:
    """Read a little of a redirect's body, then close it."""
    read = 0
    async for chunk in response.stream:
        read += len(chunk)
        if read > _DRAIN_LIMIT:
            break
    await response.aclose()
