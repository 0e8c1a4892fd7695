"""The limits an HTTP/2 connection runs with, their defaults and their checks.

Every limit is a keyword argument of the factories (and of the protocol
classes), gathered here once so that both validate them the same way.

Defaults and why:

- ``initial_window_size`` (65,535): the per-stream receive window, the RFC
  9113 §6.5.2 default.  A stream's received-but-untaken data never exceeds
  it, so a reader that stops taking events holds at most 64 KiB per stream.
  Raise it for bulk transfers over links with a large bandwidth-delay
  product.
- ``connection_window_size`` (1 MiB): the connection receive window.  It is
  larger than one stream's window so that one stalled stream cannot starve
  the others, and it bounds what all streams together may hold.
- ``max_header_list_size`` (64 KiB): advertised as
  SETTINGS_MAX_HEADER_LIST_SIZE.  A received header block over it resets its
  stream (PROTOCOL_ERROR); one over twice that is cut off by the HPACK
  decoder, which cannot resume, so the connection is closed with
  ENHANCE_YOUR_CALM.
- ``max_concurrent_streams`` (100, server): advertised as
  SETTINGS_MAX_CONCURRENT_STREAMS; streams over it are refused with
  REFUSED_STREAM (RFC 9113 §5.1.2).
- ``enable_connect_protocol`` (False, server): advertise RFC 8441 extended
  CONNECT (``:protocol``), used by WebSockets over HTTP/2.
- ``max_rapid_resets`` / ``rapid_reset_window`` (100 / 200, server): the
  rapid-reset guard (CVE-2023-44487), see :mod:`._guard`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

__all__ = ("DEFAULT_WINDOW", "ClientSettings", "Options", "ServerSettings")

#: RFC 9113 §6.9.2: the initial window of streams and of the connection.
DEFAULT_WINDOW = 65_535
# RFC 9113 §6.9.1: no window may exceed this.
_MAX_WINDOW = 2**31 - 1
# RFC 9113 §6.5.2: settings values are 32-bit.
_MAX_SETTING = 2**32 - 1


@dataclass(frozen=True)
class Options:
    """The validated limits of one HTTP/2 connection (see the module doc)."""

    initial_window_size: int = DEFAULT_WINDOW
    connection_window_size: int = 1_048_576
    max_header_list_size: int = 65_536
    max_concurrent_streams: int = 100
    enable_connect_protocol: bool = False
    max_rapid_resets: int = 100
    rapid_reset_window: int = 200

    def __post_init__(self) -> None:
        # Windows below the RFC default would be broken by a peer that sends
        # before our SETTINGS arrive; h2 would call that a flow-control error.
        _check(
            "initial_window_size", self.initial_window_size, DEFAULT_WINDOW, _MAX_WINDOW
        )
        _check(
            "connection_window_size",
            self.connection_window_size,
            DEFAULT_WINDOW,
            _MAX_WINDOW,
        )
        # The HPACK decoder's hard cap is twice this, and must fit a setting.
        _check("max_header_list_size", self.max_header_list_size, 1, _MAX_SETTING // 2)
        _check("max_concurrent_streams", self.max_concurrent_streams, 1, _MAX_SETTING)
        _check("max_rapid_resets", self.max_rapid_resets, 0, _MAX_SETTING)
        _check("rapid_reset_window", self.rapid_reset_window, 1, _MAX_SETTING)
        if type(self.enable_connect_protocol) is not bool:
            raise ValueError("enable_connect_protocol must be a bool")


class ClientSettings(TypedDict, total=False):
    """The limits a client factory takes as keywords (defaults: :class:`Options`)."""

    initial_window_size: int
    connection_window_size: int
    max_header_list_size: int


class ServerSettings(ClientSettings, total=False):
    """The limits a server factory takes: a client's and the server's own."""

    max_concurrent_streams: int
    enable_connect_protocol: bool
    max_rapid_resets: int
    rapid_reset_window: int


def _check(name: str, value: int, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}, not {value!r}")
