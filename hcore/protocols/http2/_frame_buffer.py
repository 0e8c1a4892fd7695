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

A server's connection goes one step further (``requests=True``): such a
frame on an odd stream -- the shape of every request that opens a stream --
is yielded as a :class:`RequestBlock`, which holds only what h2's handling
of it reads (the stream, END_STREAM and the block), and which the
connection's direct receive path takes without building a hyperframe frame
at all.  Anything the direct path does not take is turned back into the
frame hyperframe would have built (:meth:`RequestBlock.as_frame`).
"""

from __future__ import annotations

import struct

import hyperframe
from h2.frame_buffer import FrameBuffer
from hyperframe.frame import Frame, HeadersFrame

__all__ = ("FAST_PARSE", "FastFrameBuffer", "RequestBlock")

#: Whether this hyperframe release is one the direct path was checked against.
FAST_PARSE = hyperframe.__version__.split(".")[:2] in (["6", "0"], ["6", "1"])

# RFC 9113 §4.1, §6.2
_HEADERS = 0x1
_END_STREAM = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY = 0x20
_HEADER_SIZE = 9
# RFC 9113 §4.1: length (24 bits, as 16 + 8), type, flags, stream id.
_FRAME_HEADER = struct.Struct(">HBBBL").unpack_from


class RequestBlock(Frame):
    """A whole plain HEADERS frame on an odd stream, as a server gets it.

    A :class:`~hyperframe.frame.Frame` only by type (so that h2's frame loop
    and dispatch take it); it holds just its stream, END_STREAM and header
    block, and :meth:`as_frame` builds the frame hyperframe would have.
    """

    __slots__ = ("data", "end_stream", "stream_id")

    def __init__(self, stream_id: int, end_stream: bool, data: bytes) -> None:
        # Frame.__init__ (flags, a type check) is what this class avoids.
        self.stream_id = stream_id
        self.end_stream = end_stream
        self.data = data

    def as_frame(self) -> HeadersFrame:
        """The :class:`~hyperframe.frame.HeadersFrame` hyperframe parses.

        :return: the frame, as hyperframe's parse_frame_header and
            parse_body make it.
        """
        frame = HeadersFrame(self.stream_id)
        if self.end_stream:
            frame.flags.add("END_STREAM")
        frame.flags.add("END_HEADERS")
        frame.body_len = len(self.data)
        frame.data = self.data
        return frame

    def __repr__(self) -> str:
        return repr(self.as_frame())


class FastFrameBuffer(FrameBuffer):
    """h2's frame buffer, building whole plain HEADERS frames directly.

    :param server: whether the stream starts with the client preface.
    :param requests: yield plain HEADERS frames on odd streams as
        :class:`RequestBlock` (only for a connection that takes them).
    """

    def __init__(self, server: bool = False, *, requests: bool = False) -> None:
        super().__init__(server=server)
        self._requests = requests

    def __next__(self) -> Frame:
        data = self._data
        if len(data) < _HEADER_SIZE:
            raise StopIteration
        high, low, kind, flags, stream_id = _FRAME_HEADER(data)
        if kind == _HEADERS:
            length = high << 8 | low
            stream_id &= 0x7FFFFFFF
            end = _HEADER_SIZE + length
            if (
                flags & (_END_HEADERS | _PADDED | _PRIORITY) == _END_HEADERS
                and stream_id
                and len(data) >= end
                and length <= self.max_frame_size
                and not self._headers_buffer
            ):
                if self._requests and stream_id & 1:
                    block = bytes(data[_HEADER_SIZE:end])
                    del data[:end]
                    return RequestBlock(stream_id, bool(flags & _END_STREAM), block)
                # As hyperframe's parse_frame_header and parse_body make it.
                frame = HeadersFrame(stream_id)
                if flags & _END_STREAM:
                    frame.flags.add("END_STREAM")
                frame.flags.add("END_HEADERS")
                frame.body_len = length
                frame.data = bytes(data[_HEADER_SIZE:end])
                del data[:end]
                return frame
        return super().__next__()
