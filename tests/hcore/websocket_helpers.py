"""Helpers for WebSocket session tests: a hand-made frame builder and a pair."""

from __future__ import annotations

import struct
import zlib

from hcore.websocket import PerMessageDeflate, WebSocketEvent, WebSocketSession

MASK = b"\x11\x22\x33\x44"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
) -> bytes:
    """One raw frame (RFC 6455 §5.2), any field settable, even wrongly.

    :param rsv: the three RSV bits as a number 0-7 (4 is RSV1).
    :param mask: the masking key, or ``None`` for an unmasked frame.
    :param length: the length to claim, if not the payload's.
    """
    size = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if size <= 125:
        head.append(mask_bit | size)
    elif size <= 0xFFFF:
        head.append(mask_bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", size)
    if mask is None:
        return bytes(head) + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + mask + masked


def deflated(data: bytes) -> bytes:
    """``data`` compressed as one permessage-deflate message (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class SessionPair:
    """A client and a server session with their bytes moved in memory."""

    def __init__(
        self,
        extensions: tuple[PerMessageDeflate, ...] = (),
        *,
        client_options: dict[str, object] | None = None,
        server_options: dict[str, object] | None = None,
    ) -> None:
        self.client = WebSocketSession(
            True,
            extensions=extensions,
            **(client_options or {}),  # type: ignore[arg-type]
        )
        self.server = WebSocketSession(
            False,
            extensions=extensions,
            **(server_options or {}),  # type: ignore[arg-type]
        )

    def flush(
        self, max_rounds: int = 100
    ) -> tuple[list[WebSocketEvent], list[WebSocketEvent]]:
        """Move bytes until quiet; return (client events, server events)."""
        at_client: list[WebSocketEvent] = []
        at_server: list[WebSocketEvent] = []
        for _ in range(max_rounds):
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if not to_server and not to_client:
                return at_client, at_server
            self.server.receive_data(to_server)
            self.client.receive_data(to_client)
            at_client.extend(self.client.events())
            at_server.extend(self.server.events())
        raise AssertionError("still talking")
