"""Request checks a server makes beyond what its HTTP/1.1 parser enforces.

Request smuggling lives in the gaps between two parsers that frame or route
the same bytes differently.  The parsers hcore runs on accept some inputs
that RFC 9112 lets a server accept only with conditions, or that another
hop may read another way; :func:`check_request_head` closes those gaps by
refusing them, the same way whichever parser produced the head:

* both ``Content-Length`` and ``Transfer-Encoding`` (RFC 9112 §6.1: may be
  rejected, and the connection must close anyway);
* ``Transfer-Encoding`` in an HTTP/1.0 request (RFC 9112 §6.1: the framing
  is faulty);
* a ``Host`` that is not ``uri-host [ ":" port ]``, and an absolute-form
  target whose authority is not, or carries userinfo (RFC 9112 §3.2,
  RFC 9110 §4.2.4);
* control characters other than HTAB, and DEL, in field values (RFC 9110
  §5.5: not ``field-vchar``; NUL, CR and LF the parsers refuse already);
* an HTTP version other than 1.x (RFC 9110 §2.5, §15.6.6: answered 505).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ("check_request_head",)

# RFC 3986 §3.2.2: IP-literal, or reg-name (unreserved, pct-encoded and
# sub-delims); then RFC 3986 §3.2.3 port.
_HOST = re.compile(
    rb"^(?:\[[0-9A-Fa-f:.vV]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$"
)
# RFC 3986 §3.1 scheme "://" authority
_ABSOLUTE_AUTHORITY = re.compile(rb"^[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)")
# RFC 9110 §5.5: field-vchar is VCHAR / obs-text, with SP and HTAB between.
_BAD_VALUE_CHAR = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def check_request_head(
    target: bytes, http_version: bytes, fields: Sequence[tuple[bytes, bytes]]
) -> tuple[int, str] | None:
    """Decide whether a parsed request head must be refused.

    :param target: the request target as received.
    :param http_version: the version from the request line, e.g. ``b"1.1"``.
    :param fields: the fields, names lower-case, in order.
    :return: ``(status, reason)`` to answer with and close, or ``None``
        when the head is acceptable.
    """
    if not http_version.startswith(b"1."):
        # RFC 9110 §2.5: only major version 1 is spoken in this syntax;
        # HTTP/1.2 and later minors are read as 1.1.
        return 505, f"HTTP version {http_version.decode('latin-1')} not supported"
    has_length = False
    has_coding = False
    for name, value in fields:
        if _BAD_VALUE_CHAR.search(value):
            return 400, f"control character in the value of {name!r}"
        if name == b"content-length":
            has_length = True
        elif name == b"transfer-encoding":
            has_coding = True
        elif name == b"host" and not _HOST.match(value):
            # RFC 9112 §3.2: a Host with an invalid value gets 400.
            return 400, f"invalid Host {value!r}"
    if has_coding and has_length:
        # RFC 9112 §6.1: a server may reject such a request, and must close
        # the connection after it in any case.
        return 400, "both Content-Length and Transfer-Encoding"
    if has_coding and http_version == b"1.0":
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        return 400, "Transfer-Encoding in an HTTP/1.0 request"
    # No scheme starts with "/", so origin-form targets skip the match.
    absolute = None if target[:1] == b"/" else _ABSOLUTE_AUTHORITY.match(target)
    if absolute is not None:
        authority = absolute.group(1)
        # RFC 9110 §4.2.4: userinfo in an http(s) URI is an error.
        if b"@" in authority or not _HOST.match(authority):
            return 400, f"invalid authority in {target!r}"
    return None
