"""The tunables an HTTP/3 factory hands each protocol it makes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Limits",)


@dataclass(frozen=True)
class Limits:
    """The tunables a factory passes on to each protocol it makes.

    They are checked, and documented, where the factories take them.
    """

    idle_timeout: float
    max_datagram_size: int
    stream_receive_window: int
    connection_receive_window: int
    stream_send_buffer: int
    connection_id_length: int
    supported_versions: tuple[int, ...]
    qpack_max_table_capacity: int = 0
    qpack_blocked_streams: int = 16
    max_field_section_size: int = 65_536
