"""permessage-deflate (RFC 7692): its parameters and their negotiation.

:class:`PerMessageDeflate` is the public, plain-data side: a client's offer,
a server's preferences, and the agreement the handshake ends with.  The
negotiation here turns offers and responses (the ``sec-websocket-extensions``
header) into an agreement, for all three handshake styles alike.  The codec
that runs the agreement is in :mod:`._codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = (
    "NAME",
    "ExtensionOffer",
    "PerMessageDeflate",
    "accept_deflate_offers",
    "format_extensions",
    "negotiated_from_response",
    "parse_extensions",
)

#: The extension's name in ``sec-websocket-extensions``.
NAME = "permessage-deflate"
# RFC 7692 §7.1.2: window bits range from 8 to 15, but zlib cannot make a
# raw deflate stream with a 256-byte window (it silently uses 512), so 8 is
# declined on both sides.
_MIN_BITS = 9
_MAX_BITS = 15

ExtensionOffer = tuple[str, tuple[tuple[str, str | None], ...]]


@dataclass(frozen=True)
class PerMessageDeflate:
    """The parameters of permessage-deflate (RFC 7692 §7.1).

    As a client's offer: what to ask for (``client_max_window_bits=None``
    offers the parameter without a value, telling the server it may pick
    one).  As a server's preference: what to require beyond the client's
    offer.  As the result of a handshake: what both sides agreed, with
    window bits resolved to numbers.
    """

    #: The client resets its compression context after every message.
    client_no_context_takeover: bool = False
    #: The server resets its compression context after every message.
    server_no_context_takeover: bool = False
    #: The client's LZ77 window (9-15 bits), or ``None`` for the default.
    client_max_window_bits: int | None = None
    #: The server's LZ77 window (9-15 bits), or ``None`` for the default.
    server_max_window_bits: int | None = None

    def __post_init__(self) -> None:
        for name in ("client_max_window_bits", "server_max_window_bits"):
            bits = getattr(self, name)
            if bits is not None and (
                type(bits) is not int or not _MIN_BITS <= bits <= _MAX_BITS
            ):
                raise ValueError(f"{name} must be an int from 9 to 15, not {bits!r}")

    def offer(self) -> str:
        """The ``sec-websocket-extensions`` element a client sends.

        :return: e.g. ``"permessage-deflate; client_max_window_bits"``.
        """
        params = []
        if self.client_no_context_takeover:
            params.append("client_no_context_takeover")
        if self.server_no_context_takeover:
            params.append("server_no_context_takeover")
        if self.server_max_window_bits is not None:
            params.append(f"server_max_window_bits={self.server_max_window_bits}")
        # RFC 7692 §7.1.2.2: a bare client_max_window_bits tells the server
        # that this client can limit its window if asked to.
        if self.client_max_window_bits is None:
            params.append("client_max_window_bits")
        else:
            params.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join([NAME, *params])

    def response(self) -> str:
        """The ``sec-websocket-extensions`` element of an agreement.

        :return: e.g. ``"permessage-deflate; server_no_context_takeover"``.
        """
        params = []
        if self.client_no_context_takeover:
            params.append("client_no_context_takeover")
        if self.server_no_context_takeover:
            params.append("server_no_context_takeover")
        if self.server_max_window_bits is not None:
            params.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is not None:
            params.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join([NAME, *params])


# -- the header grammar (RFC 6455 §9.1) ---------------------------------------

_SEPARATORS = set('()<>@,;:\\"/[]?={} \t')


def _is_token(text: str) -> bool:
    return bool(text) and all(
        33 <= ord(char) <= 126 and char not in _SEPARATORS for char in text
    )


def _split(text: str, separator: str) -> list[str]:
    """Split at ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_extensions(values: Sequence[bytes]) -> list[ExtensionOffer]:
    """Parse ``sec-websocket-extensions`` header values.

    :param values: every value of the header, in order (they join with commas).
    :return: ``(name, ((param, value or None), ...))`` for each element.
    :raises ValueError: if the header is malformed.
    """
    text = ", ".join(value.decode("latin-1") for value in values)
    result: list[ExtensionOffer] = []
    for element in _split(text, ","):
        if not element.strip():
            continue  # RFC 9110 §5.6.1: empty list elements are ignored
        name, *raw_params = (part.strip() for part in _split(element, ";"))
        if not _is_token(name):
            raise ValueError(f"bad extension name {name!r}")
        params: list[tuple[str, str | None]] = []
        for raw in raw_params:
            key, equals, value = raw.partition("=")
            key = key.strip()
            if not _is_token(key):
                raise ValueError(f"bad extension parameter {raw!r}")
            if not equals:
                params.append((key.lower(), None))
                continue
            # RFC 6455 §9.1: a quoted value must still be a token.
            unquoted = _unquote(value.strip())
            if not _is_token(unquoted):
                raise ValueError(f"bad extension parameter value {raw!r}")
            params.append((key.lower(), unquoted))
        result.append((name.lower(), tuple(params)))
    return result


def format_extensions(extensions: Sequence[PerMessageDeflate], offer: bool) -> bytes:
    """Render extensions as a ``sec-websocket-extensions`` value."""
    parts = [ext.offer() if offer else ext.response() for ext in extensions]
    return ", ".join(parts).encode("ascii")


def _bits(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 2:
        raise ValueError(f"bad window bits {value!r}")
    bits = int(value)
    if not _MIN_BITS <= bits <= _MAX_BITS:
        raise ValueError(f"window bits {bits} out of range")
    return bits


@dataclass
class _Params:
    client_no_context_takeover: bool = False
    server_no_context_takeover: bool = False
    client_max_window_bits: int | None = None
    # Whether client_max_window_bits appeared at all (a bare one is allowed
    # in an offer).
    client_bits_present: bool = False
    server_max_window_bits: int | None = None


def _read_params(params: Sequence[tuple[str, str | None]], offer: bool) -> _Params:
    """Check and gather one element's parameters (RFC 7692 §7.1)."""
    seen: set[str] = set()
    out = _Params()
    for key, value in params:
        # RFC 7692 §7: each parameter at most once.
        if key in seen:
            raise ValueError(f"duplicate parameter {key}")
        seen.add(key)
        if key in ("client_no_context_takeover", "server_no_context_takeover"):
            if value is not None:
                raise ValueError(f"{key} takes no value")
            setattr(out, key, True)
        elif key == "server_max_window_bits":
            out.server_max_window_bits = _bits(value)
        elif key == "client_max_window_bits":
            out.client_bits_present = True
            # RFC 7692 §7.1.2.2: only an offer may leave out the value.
            if value is not None or not offer:
                out.client_max_window_bits = _bits(value)
        else:
            raise ValueError(f"unknown parameter {key}")
    return out


def accept_deflate_offers(
    offers: Sequence[ExtensionOffer], preference: PerMessageDeflate
) -> PerMessageDeflate | None:
    """Server side: accept the first permessage-deflate offer that works.

    :param offers: the client's parsed ``sec-websocket-extensions``.
    :param preference: what this server wants on top of the offer: context
        takeover off for either side, smaller windows.
    :return: the agreement (its :meth:`~PerMessageDeflate.response` is the
        header element to send), or ``None`` if no offer was acceptable.
    """
    for name, params in offers:
        if name != NAME:
            continue
        try:
            offered = _read_params(params, offer=True)
        except ValueError:
            continue  # RFC 7692 §5: decline an offer we cannot understand
        # RFC 7692 §7.1.2.1: answer with a window no larger than offered.
        server_bits = _smaller(
            offered.server_max_window_bits, preference.server_max_window_bits
        )
        client_bits = None
        if offered.client_bits_present:
            # RFC 7692 §7.1.2.2: a bound on the client's window only if it
            # said it can take one, and never above its own value.
            client_bits = _smaller(
                offered.client_max_window_bits, preference.client_max_window_bits
            )
        elif preference.client_max_window_bits is not None:
            continue  # we need a smaller client window it cannot give
        return PerMessageDeflate(
            client_no_context_takeover=(
                offered.client_no_context_takeover
                or preference.client_no_context_takeover
            ),
            # RFC 7692 §7.1.1.1: an offered server_no_context_takeover must
            # be accepted as is.
            server_no_context_takeover=(
                offered.server_no_context_takeover
                or preference.server_no_context_takeover
            ),
            client_max_window_bits=client_bits,
            server_max_window_bits=server_bits,
        )
    return None


def _smaller(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def negotiated_from_response(
    responses: Sequence[ExtensionOffer], offers: Sequence[PerMessageDeflate]
) -> PerMessageDeflate | None:
    """Client side: check the server's answer against what was offered.

    :param responses: the server's parsed ``sec-websocket-extensions``.
    :param offers: what this client offered.
    :return: the agreement, or ``None`` if the server accepted no extension.
    :raises ValueError: if the answer is not one the offers allow.
    """
    if not responses:
        return None
    if len(responses) > 1:
        raise ValueError("the server accepted more than one extension")
    [(name, params)] = responses
    if name != NAME or not offers:
        raise ValueError(f"the server accepted an extension not offered: {name}")
    got = _read_params(params, offer=False)
    # The server answers one of the offers; accept the answer if any offer
    # allows it (RFC 7692 §7.1: the client fails the connection otherwise).
    for offer in offers:
        if offer.server_no_context_takeover and not got.server_no_context_takeover:
            continue
        if offer.server_max_window_bits is not None and (
            got.server_max_window_bits is None
            or got.server_max_window_bits > offer.server_max_window_bits
        ):
            continue
        if (
            offer.client_max_window_bits is not None
            and got.client_max_window_bits is not None
            and got.client_max_window_bits > offer.client_max_window_bits
        ):
            continue
        return PerMessageDeflate(
            client_no_context_takeover=got.client_no_context_takeover,
            server_no_context_takeover=got.server_no_context_takeover,
            client_max_window_bits=got.client_max_window_bits,
            server_max_window_bits=got.server_max_window_bits,
        )
    raise ValueError("the server's permessage-deflate answer fits no offer")
