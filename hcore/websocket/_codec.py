"""The permessage-deflate codec and the message size limit on wsproto's frame layer.

The codec is wsproto's :class:`wsproto.extensions.PerMessageDeflate`, with
three changes made in :class:`_DeflateCodec`:

- inflating is bounded: it never produces more than the message size limit
  allows, so a small compressed frame cannot expand into gigabytes;
- a control frame before or between the fragments of a compressed message
  leaves the message's decompression state alone (wsproto's resets it, and
  the next message's compressed bytes would pass through as they are);
- every fragment sent is flushed (``Z_SYNC_FLUSH``), so what a caller sends
  as a fragment goes on the wire now instead of waiting in zlib.

:class:`_MessageLimit` is an internal pseudo-extension, always last in the
frame layer's list, that counts each message's (decompressed) size and
refuses an uncompressed frame that would take it past the limit from the
frame's header, before its payload is read.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from wsproto.extensions import Extension
from wsproto.extensions import PerMessageDeflate as _WsprotoDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    RsvBits,
)

from hcore.websocket._extensions import NAME, PerMessageDeflate

__all__ = ("make_codecs",)

# RFC 7692 §7.2.1: the tail every compressed message's last fragment drops.
_TAIL = b"\x00\x00\xff\xff"


class _MessageLimit(Extension):
    """Counts each received message's size and stops it past the limit.

    Not negotiated: it rides last in the frame layer's extension list so
    that it sees every data frame's payload after decompression.
    """

    name = "hcore-message-limit"

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        #: Bytes of the current message so far (after decompression).
        self.size = 0
        self._data_frame = False
        self._compressed = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False  # pragma: no cover - never offered

    def remaining(self) -> int | None:
        """How many more bytes the current message may have."""
        return None if self.limit is None else self.limit - self.size

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        self._data_frame = not opcode.iscontrol()
        if self._data_frame and opcode is not Opcode.CONTINUATION:
            self.size = 0
            self._compressed = rsv.rsv1
        remaining = self.remaining()
        # An uncompressed frame's length is its message's growth: refuse it
        # before its payload is read (RFC 6455 §10.4).
        if (
            self._data_frame
            and not self._compressed
            and remaining is not None
            and payload_length > remaining
        ):
            return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        # Uncompressed frames were checked whole from their header, inflated
        # ones by the codec before they grew past the limit: only count.
        if self._data_frame:
            self.size += len(data)
        return data


class _DeflateCodec(_WsprotoDeflate):
    """wsproto's permessage-deflate, bounded and fixed (see the module doc)."""

    def __init__(self, agreed: PerMessageDeflate, limit: _MessageLimit) -> None:
        super().__init__(
            client_no_context_takeover=agreed.client_no_context_takeover,
            client_max_window_bits=agreed.client_max_window_bits,
            server_no_context_takeover=agreed.server_no_context_takeover,
            server_max_window_bits=agreed.server_max_window_bits,
        )
        self._limit = limit
        self.finalize(NAME)  # the agreement is made: switch the codec on

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        remaining = self._limit.remaining()
        try:
            if remaining is None:
                return self._decompressor.decompress(data)
            # One byte over the limit is enough to know it is too big.
            out = self._decompressor.decompress(data, remaining + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > remaining or self._decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            # RFC 7692 §6.1: never compressed.  Unlike wsproto, leave the
            # state of the message around it (or the next one) alone.
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        # A control frame may come between a message's fragments; it must
        # not end the message's compression state (wsproto resets it here).
        if not fin or not self._inbound_is_compressible:
            return None
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        # RFC 7692 §7.2.2: append the tail the sender dropped, then inflate.
        out = self._inflate(_TAIL)
        if isinstance(out, CloseReason):
            return out
        self._limit.size += len(out)
        no_takeover = (
            self.server_no_context_takeover
            if proto.client
            else self.client_no_context_takeover
        )
        if no_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return out

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol():
            return (rsv, data)
        # RFC 7692 §6.1: RSV1 on a message's first frame only.
        if opcode is not Opcode.CONTINUATION:
            rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        if self._compressor is None:
            bits = (
                self.client_max_window_bits
                if proto.client
                else self.server_max_window_bits
            )
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits
            )
        # Flush every fragment so it leaves now; RFC 7692 §7.2.1 drops the
        # flush's empty-block tail from the message's last fragment only.
        out = self._compressor.compress(data) + self._compressor.flush(
            zlib.Z_SYNC_FLUSH
        )
        if fin:
            out = out[: -len(_TAIL)]
            no_takeover = (
                self.client_no_context_takeover
                if proto.client
                else self.server_no_context_takeover
            )
            if no_takeover:
                self._compressor = None
        return (rsv, out)


def make_codecs(
    extensions: Sequence[PerMessageDeflate], max_message_size: int | None
) -> tuple[list[Extension], _MessageLimit]:
    """The frame layer's extension list for an agreement, limit last."""
    limit = _MessageLimit(max_message_size)
    codecs: list[Extension] = [_DeflateCodec(ext, limit) for ext in extensions]
    if len(codecs) > 1:
        raise ValueError("permessage-deflate can be agreed only once")
    codecs.append(limit)
    return codecs, limit
