"""h2's incoming frame buffer, with a direct path for whole HEADERS frames.

Theory of operation: h2's :class:`~h2.frame_buffer.FrameBuffer` parses each
frame through hyperframe's generic code (a header parse that builds the
frame and walks its flag table, a body parse that looks for padding and
priority fields, copies through memoryviews) and then passes it through its
CONTINUATION bookkeeping.  The commonest frame a server gets is a request's
HEADERS frame with END_HEADERS and neither PADDED nor PRIORITY (RFC 9113
§6.2): its payload is the header block as it is.  :class:`FastFrameBuffer`
builds that frame directly, with the same attributes hyperframe's parse
gives it, when the whole frame is in the buffer, within
SETTINGS_MAX_FRAME_SIZE, on a non-zero stream and outside a header block;
everything else (and every error) is h2's own parse.  It relies on
hyperframe's frame attributes, so it is used only with the releases
:data:`FAST_PARSE` names.
"""

from __future__ import annotations

import hyperframe
from h2.frame_buffer import FrameBuffer
from hyperframe.frame import Frame, HeadersFrame

__all__ = ("FAST_PARSE", "FastFrameBuffer")

#: Whether this hyperframe release is one the direct path was checked against.
FAST_PARSE = hyperframe.__version__.split(".")[:2] in (["6", "0"], ["6", "1"])

# RFC 9113 §4.1, §6.2
_HEADERS = 0x1
_END_STREAM = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY = 0x20
_HEADER_SIZE = 9


class FastFrameBuffer(FrameBuffer):
    """h2's frame buffer, building whole plain HEADERS frames directly."""

    def __next__(self) -> Frame:
        data = self._data
        if len(data) >= _HEADER_SIZE and data[3] == _HEADERS:
            length = data[0] << 16 | data[1] << 8 | data[2]
            flags = data[4]
            stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            if (
                flags & (_END_HEADERS | _PADDED | _PRIORITY) == _END_HEADERS
                and stream_id
                and len(data) >= _HEADER_SIZE + length
                and length <= self.max_frame_size
                and not self._headers_buffer
            ):
                # As hyperframe's parse_frame_header and parse_body make it.
                frame = HeadersFrame(stream_id)
                if flags & _END_STREAM:
                    frame.flags.add("END_STREAM")
                frame.flags.add("END_HEADERS")
                frame.body_len = length
                frame.data = bytes(data[_HEADER_SIZE : _HEADER_SIZE + length])
                del data[: _HEADER_SIZE + length]
                return frame
        return super().__next__()
