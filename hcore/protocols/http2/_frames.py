"""A look at frame headers as bytes arrive, before h2 buffers the frames.

Theory of operation: h2 collects a whole frame before it looks at the
frame's length, so a peer that announces a 16 MiB frame makes it hold up to
16 MiB before the frame is refused; a peer that never reads makes it queue
a PING or SETTINGS acknowledgement for every frame it sends.  The
:class:`FrameGate` walks the same byte stream and reads only the 9-byte
frame headers (RFC 9113 §4.1), skipping payloads by their announced length,
so it sees every frame as soon as its header is complete and stores at most
8 bytes of an incomplete header.  It reports:

* a frame longer than our SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2:
  FRAME_SIZE_ERROR), before any of its payload is buffered;
* a header block spread over too many CONTINUATION frames or too many
  bytes (the CONTINUATION flood, CVE-2024-27316 and relatives);
* more acknowledgements owed (PING and SETTINGS without ACK, RFC 9113
  §6.7, §6.5.3) than may be queued since the application last took the
  bytes to send.

The client's connection preface (RFC 9113 §3.4) precedes the first frame
a server sees; if it does not match, the gate stands aside and h2 reports
the bad preface.
"""

from __future__ import annotations

from hcore._error_codes import HTTP2_ERROR_CODES

__all__ = ("MAX_CONTINUATIONS", "MAX_OWED_ACKS", "FrameGate")

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADER = 9
# RFC 9113 §6: frame types and flags the gate looks at.
_HEADERS = 0x1
_SETTINGS = 0x4
_PUSH_PROMISE = 0x5
_PING = 0x6
_CONTINUATION = 0x9
_ACK = 0x1
#: h2 itself gives up after 64 CONTINUATION frames; a legitimate header
#: block needs a handful.
MAX_CONTINUATIONS = 48
#: Go's server queues at most 10,000 control frames; an acknowledgement is
#: 9 to 17 bytes, so this bounds them to about 170 KB.
MAX_OWED_ACKS = 10_000
# RFC 9113 §7
_FRAME_SIZE_ERROR = 0x6
_END_HEADERS = 0x4


class FrameGate:
    """Reads frame headers from the incoming stream and enforces bounds.

    :param server: whether the stream starts with the client preface.
    :param max_frame_size: our SETTINGS_MAX_FRAME_SIZE.
    :param max_header_list_size: our SETTINGS_MAX_HEADER_LIST_SIZE; an
        encoded header block may take 4 times that (HPACK's Huffman code
        spends up to 30 bits per octet), no more.
    :param max_continuations: most CONTINUATION frames in one header block.
    :param max_owed_acks: most PING/SETTINGS acknowledgements queued.
    """

    __slots__ = (
        "_block_bytes",
        "_block_frames",
        "_in_block",
        "_max_block",
        "_max_continuations",
        "_max_frame",
        "_max_owed",
        "_partial",
        "_preface",
        "_skip",
        "owed_acks",
    )

    def __init__(
        self,
        *,
        server: bool,
        max_frame_size: int,
        max_header_list_size: int,
        max_continuations: int = MAX_CONTINUATIONS,
        max_owed_acks: int = MAX_OWED_ACKS,
    ) -> None:
        self._max_frame = max_frame_size
        self._max_block = 4 * max_header_list_size
        self._max_continuations = max_continuations
        self._max_owed = max_owed_acks
        # Preface bytes still expected; None once the gate stood aside.
        self._preface: bytes | None = _PREFACE if server else b""
        # Payload bytes of the current frame still to skip.
        self._skip = 0
        # The start of a frame header cut by the end of a read.
        self._partial = b""
        self._in_block = False
        self._block_bytes = 0
        self._block_frames = 0
        #: Acknowledgements the peer asked for since :meth:`sent` was called.
        self.owed_acks = 0

    def sent(self) -> None:
        """The queued bytes were taken: the acknowledgements are on their way."""
        self.owed_acks = 0

    def feed(self, data: bytes) -> tuple[int, str] | None:
        """Look at the next bytes of the stream.

        :param data: the bytes, in order, as they arrived.
        :return: ``(error_code, reason)`` when the peer broke a bound (the
            connection must end), else ``None``.
        """
        preface = self._preface
        if preface is None:
            return None
        pos = 0
        if preface:
            take = data[: len(preface)]
            if not preface.startswith(take):
                self._preface = None
                return None
            self._preface = preface[len(take) :]
            pos = len(take)
        end = len(data)
        skip = self._skip
        while True:
            if skip >= end - pos:
                self._skip = skip - (end - pos)
                return None
            pos += skip
            skip = 0
            partial = self._partial
            if partial:
                need = _HEADER - len(partial)
                header = partial + data[pos : pos + need]
                pos += need
                if len(header) < _HEADER:
                    self._partial = header
                    self._skip = 0
                    return None
                self._partial = b""
            elif end - pos < _HEADER:
                self._partial = data[pos:]
                self._skip = 0
                return None
            else:
                header = data[pos : pos + _HEADER]
                pos += _HEADER
            skip = int.from_bytes(header[:3], "big")
            complaint = self._frame(skip, header[3], header[4])
            if complaint is not None:
                return complaint

    def _frame(self, length: int, kind: int, flags: int) -> tuple[int, str] | None:
        if length > self._max_frame:
            # RFC 9113 §4.2: a frame over SETTINGS_MAX_FRAME_SIZE.
            return (
                _FRAME_SIZE_ERROR,
                f"frame of {length} bytes over the {self._max_frame} allowed",
            )
        if kind in (_HEADERS, _PUSH_PROMISE):
            self._in_block = not flags & _END_HEADERS
            self._block_bytes = length
            self._block_frames = 0
        elif kind == _CONTINUATION and self._in_block:
            self._block_bytes += length
            self._block_frames += 1
            self._in_block = not flags & _END_HEADERS
            if (
                self._block_frames > self._max_continuations
                or self._block_bytes > self._max_block
            ):
                return (
                    HTTP2_ERROR_CODES.enhance_your_calm,
                    f"header block of {self._block_frames} CONTINUATION frames "
                    f"and {self._block_bytes} bytes (CONTINUATION flood)",
                )
        elif kind in (_PING, _SETTINGS) and not flags & _ACK:
            self.owed_acks += 1
            if self.owed_acks > self._max_owed:
                return (
                    HTTP2_ERROR_CODES.enhance_your_calm,
                    f"more than {self._max_owed} PING/SETTINGS to acknowledge "
                    "while our bytes were not taken (flood)",
                )
        else:
            # RFC 9113 §6.10: anything else ends a block; h2 reports that.
            self._in_block = False
        return None
