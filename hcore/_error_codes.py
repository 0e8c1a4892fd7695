"""Error codes that differ between HTTP versions, gathered under one name."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = (
    "HTTP1_ERROR_CODES",
    "HTTP2_ERROR_CODES",
    "HTTP3_ERROR_CODES",
    "HTTPErrorCodes",
)


@dataclass(frozen=True)
class HTTPErrorCodes:
    """The codes one HTTP version uses to reset a stream or close a connection.

    Code written for every version resets a stream with
    ``protocol.submit_stream_reset(stream_id, protocol.error_codes.cancel)``
    instead of a number that only means something in one version.
    HTTP/1.1 has no such codes on the wire; its values are the status codes
    that the same situations answer with, and are used only locally.
    """

    #: Graceful close, no error.
    no_error: int
    #: The peer broke the protocol.
    protocol_error: int
    #: The endpoint failed on its own.
    internal_error: int
    #: A flow-control limit was broken.
    flow_control_error: int
    #: The stream was refused before any processing; safe to retry.
    refused_stream: int
    #: The stream is no longer needed.
    cancel: int
    #: A CONNECT tunnel failed.
    connect_error: int
    #: The peer behaves in a way that may be abusive.
    enhance_your_calm: int


HTTP1_ERROR_CODES = HTTPErrorCodes(
    no_error=0,
    protocol_error=400,
    internal_error=500,
    flow_control_error=400,
    refused_stream=503,
    cancel=499,
    connect_error=502,
    enhance_your_calm=429,
)

# RFC 9113 §7
HTTP2_ERROR_CODES = HTTPErrorCodes(
    no_error=0x0,
    protocol_error=0x1,
    internal_error=0x2,
    flow_control_error=0x3,
    refused_stream=0x7,
    cancel=0x8,
    connect_error=0xA,
    enhance_your_calm=0xB,
)

# RFC 9114 §8.1
HTTP3_ERROR_CODES = HTTPErrorCodes(
    no_error=0x100,
    protocol_error=0x101,
    internal_error=0x102,
    flow_control_error=0x101,
    refused_stream=0x10B,
    cancel=0x10C,
    connect_error=0x10F,
    enhance_your_calm=0x107,
)
