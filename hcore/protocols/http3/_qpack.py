"""aioquic's H3Connection with bounded QPACK decoding.

aioquic advertises a 4,096-byte dynamic table and 16 blocked streams, and
decodes a field section of any size: one-byte references to a 4 KB table
entry turn a 100 KB HEADERS frame into 400 MB of fields (a QPACK bomb).
:class:`BoundedH3Connection` changes three things:

* the decoder's table capacity and blocked streams are ours (RFC 9204
  §3.2.3, §2.1.2), advertised in SETTINGS; with the default capacity of 0
  the peer cannot use the dynamic table at all, so a byte of field section
  decodes to at most one static table entry (under 100 bytes);
* SETTINGS_MAX_FIELD_SECTION_SIZE is advertised (RFC 9114 §4.2.2), and an
  encoded section longer than it is refused before it is decoded, since a
  section's encoding is never longer than its size as RFC 9114 counts it;
* a decoded section over the limit (names, values and 32 bytes per field)
  is refused too.

A refused section closes the connection with H3_EXCESSIVE_LOAD: QPACK's
state cannot be trusted to continue once a section was skipped.
"""

from __future__ import annotations

import pylsqpack
from aioquic.h3.connection import ErrorCode, H3Connection, ProtocolError, Setting
from aioquic.quic.connection import QuicConnection

__all__ = ("BoundedH3Connection", "field_section_size")

# RFC 9114 §4.2.2: each field line counts 32 bytes beyond its name and value.
_FIELD_OVERHEAD = 32


class _ExcessiveLoad(ProtocolError):
    error_code = ErrorCode.H3_EXCESSIVE_LOAD


def field_section_size(headers: list[tuple[bytes, bytes]]) -> int:
    """The size of a field section as RFC 9114 §4.2.2 counts it."""
    return sum(len(name) + len(value) + _FIELD_OVERHEAD for name, value in headers)


class BoundedH3Connection(H3Connection):
    """H3Connection with our QPACK decoder settings and field section bound.

    :param quic: the QUIC connection.
    :param max_table_capacity: QPACK dynamic table capacity we accept.
    :param blocked_streams: streams that may wait for table updates.
    :param max_field_section_size: largest field section we accept.
    """

    def __init__(
        self,
        quic: QuicConnection,
        *,
        max_table_capacity: int,
        blocked_streams: int,
        max_field_section_size: int,
    ) -> None:
        # Read by _get_local_settings, which the base __init__ calls.
        self._hcore_capacity = max_table_capacity
        self._hcore_blocked = blocked_streams
        self._hcore_max_section = max_field_section_size
        super().__init__(quic)
        # The base made a decoder with its own capacity; nothing was decoded
        # yet, so ours replaces it.
        self._max_table_capacity = max_table_capacity
        self._blocked_streams = blocked_streams
        self._decoder = pylsqpack.Decoder(max_table_capacity, blocked_streams)

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings[Setting.QPACK_MAX_TABLE_CAPACITY] = self._hcore_capacity
        settings[Setting.QPACK_BLOCKED_STREAMS] = self._hcore_blocked
        settings[Setting.MAX_FIELD_SECTION_SIZE] = self._hcore_max_section
        return settings

    def _decode_headers(
        self, stream_id: int, frame_data: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        limit = self._hcore_max_section
        if frame_data is not None and len(frame_data) > limit:
            raise _ExcessiveLoad(
                f"encoded field section of {len(frame_data)} bytes "
                f"over SETTINGS_MAX_FIELD_SECTION_SIZE {limit}"
            )
        headers = super()._decode_headers(stream_id, frame_data)
        size = field_section_size(headers)
        if size > limit:
            raise _ExcessiveLoad(
                f"field section of {size} bytes over "
                f"SETTINGS_MAX_FIELD_SECTION_SIZE {limit}"
            )
        return headers
