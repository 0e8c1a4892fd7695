"""Alt-Svc: remembering that an origin also speaks HTTP/3 (RFC 7838).

A response's ``Alt-Svc`` field lists alternative services; the pool keeps
the ``h3`` ones on the same host, each for its ``ma`` (max-age, 24 hours by
default, RFC 7838 §3.1), and forgets them on ``clear``.  When a connection
to an alternative fails it is marked broken for a while, so the next
requests go straight to TCP (RFC 7838 §2.4 lets a client fall back).
"""

from __future__ import annotations

from dataclasses import dataclass

from hcore_io.client._models import Origin

__all__ = ("AltSvcCache", "parse_alt_svc")

# RFC 7838 §3.1: "ma" defaults to 24 hours.
_DEFAULT_MAX_AGE = 86400.0
# How long an alternative that failed is not tried again.
_BROKEN_FOR = 300.0
_H3 = "h3"


def _split(value: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def parse_alt_svc(value: str) -> list[tuple[str, str, int, float]] | None:
    """Parse an ``Alt-Svc`` value (RFC 7838 §3).

    :return: ``(protocol id, host, port, max-age)`` for each alternative
        (host empty when it is the origin's), or ``None`` for ``clear``.
        Entries that cannot be parsed are skipped.
    """
    if value.strip() == "clear":
        return None
    services: list[tuple[str, str, int, float]] = []
    for entry in _split(value, ","):
        fields = _split(entry, ";")
        protocol, _, authority = fields[0].partition("=")
        authority = authority.strip().strip('"')
        host, _, port_text = authority.rpartition(":")
        max_age = _DEFAULT_MAX_AGE
        for parameter in fields[1:]:
            name, _, text = parameter.partition("=")
            if name.strip().lower() == "ma":
                try:
                    max_age = float(text.strip().strip('"'))
                except ValueError:
                    continue
        try:
            port = int(port_text)
        except ValueError:
            continue
        if not 0 < port < 65536:
            continue
        services.append((protocol.strip(), host.strip("[]"), port, max_age))
    return services


@dataclass
class _Alternative:
    port: int
    expires: float
    broken_until: float = 0.0


class AltSvcCache:
    """HTTP/3 alternatives of origins, each until its max-age passes."""

    def __init__(self) -> None:
        self._entries: dict[Origin, _Alternative] = {}

    def update(self, origin: Origin, value: str, now: float) -> None:
        """Record what an ``Alt-Svc`` field of a response from ``origin`` says.

        :param origin: where the response came from.
        :param value: the field value.
        :param now: the current time, on the pool's clock (``time.monotonic``).
        """
        services = parse_alt_svc(value)
        if services is None:
            self._entries.pop(origin, None)
            return
        for protocol, host, port, max_age in services:
            # Only h3 on the same host: another host would need its own
            # certificate checks (RFC 7838 §2.1) that we do not do.
            if protocol == _H3 and host in ("", origin.host):
                previous = self._entries.get(origin)
                broken = previous.broken_until if previous else 0.0
                self._entries[origin] = _Alternative(port, now + max_age, broken)
                return

    def lookup(self, origin: Origin, now: float) -> int | None:
        """Return the UDP port of ``origin``'s usable HTTP/3 alternative, if any."""
        entry = self._entries.get(origin)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[origin]
            return None
        if entry.broken_until > now:
            return None
        return entry.port

    def mark_broken(self, origin: Origin, now: float) -> None:
        """Stop using ``origin``'s alternative for a while: it failed."""
        entry = self._entries.get(origin)
        if entry is not None:
            entry.broken_until = now + _BROKEN_FOR
