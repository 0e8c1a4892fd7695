"""The h2 connection object, configured and adjusted for hcore's protocol.

Three things about h2 are changed here, each with the least reach we found:

- Received GOAWAY.  h2 closes its connection state machine when a GOAWAY
  arrives and drops the frames it had queued for sending, so the streams at
  or below the GOAWAY's last stream id could not finish.  RFC 9113 §6.8 says
  they may.  :class:`H2Connection` reports the frame as
  :class:`GoawayFrameReceived` and leaves the state alone; the protocol
  stops opening streams itself.
- Concurrency.  h2 enforces its advertised SETTINGS_MAX_CONCURRENT_STREAMS
  by closing the connection.  A client may legitimately open more streams
  before our SETTINGS reach it, and RFC 9113 §5.1.2 allows refusing just the
  extra streams, so the protocol refuses them with REFUSED_STREAM and h2
  only enforces a higher ceiling (:class:`_LocalSettings`), which bounds
  the streams one read can create.
- Header checks.  h2's own validation treats a malformed header block as a
  connection error and changes stream state before it validates what we
  send; both are switched off and done in :mod:`._headers` instead.

One thing is only made cheaper: h2 formats every frame it receives for a
trace log (``repr(frame)``, several microseconds) before its logger can say
that nothing is logged; :meth:`H2Connection._receive_frame` handles frames
the same way without that.
"""

from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection as _BaseConnection
from h2.errors import ErrorCodes
from h2.events import Event as H2Event
from h2.exceptions import StreamClosedError, StreamIDTooLowError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

from hcore.protocols.http2._options import DEFAULT_WINDOW, Options

__all__ = ("GoawayFrameReceived", "H2Connection", "open_connection")


class GoawayFrameReceived(H2Event):
    """A GOAWAY frame arrived (in place of h2's ``ConnectionTerminated``)."""

    def __init__(self, last_stream_id: int, error_code: int) -> None:
        self.last_stream_id = last_stream_id
        self.error_code = error_code


class H2Connection(_BaseConnection):
    """h2's connection with a received GOAWAY reported, not acted on."""

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[H2Event]]:
        # RFC 9113 §6.8: streams up to last_stream_id may still complete, so
        # neither close the state machine nor drop queued frames as h2 does.
        return [], [GoawayFrameReceived(frame.last_stream_id, frame.error_code)]

    def _receive_frame(self, frame: Frame) -> list[H2Event]:
        # h2's own version starts by formatting the frame for its trace log,
        # which our configuration never writes; the handling is the same.
        events: list[H2Event]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as exc:
            # RFC 9113 §5.4.2: a frame on a stream we reset earns another
            # RST_STREAM; on a stream closed otherwise it is a connection
            # error, which h2's caller turns into GOAWAY.
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise
            self._send_reset(exc.stream_id, exc.error_code)
            return list(exc._events)
        except StreamIDTooLowError as exc:
            # A stream id below ones already seen: the stream is closed.
            # After our reset that is a stream error (RFC 9113 §5.4.2);
            # after END_STREAM, STREAM_CLOSED for the connection (§5.1);
            # implicitly closed, h2's PROTOCOL_ERROR.
            if self._stream_is_closed_by_reset(exc.stream_id):
                self._send_reset(exc.stream_id, ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise StreamClosedError(exc.stream_id) from exc
            raise
        self._prepare_for_sending(frames)
        return events

    def _send_reset(self, stream_id: int, error_code: int) -> None:
        reset = RstStreamFrame(stream_id)
        reset.error_code = error_code
        self._prepare_for_sending([reset])


class _LocalSettings(Settings):
    """Our settings, with a concurrency ceiling for h2 above the one we advertise."""

    def __init__(
        self, *, client: bool, initial_values: dict[SettingCodes, int], ceiling: int
    ) -> None:
        super().__init__(client=client, initial_values=initial_values)
        self._ceiling = ceiling

    # Read-only on purpose: only h2's admission check reads it, and nothing
    # may lower the ceiling behind the protocol's back.
    @property  # type: ignore[misc]
    def max_concurrent_streams(self) -> int:
        """The limit h2 checks new inbound streams against (the ceiling)."""
        return self._ceiling


def open_connection(options: Options, *, client_side: bool) -> H2Connection:
    """Make an h2 connection with our settings and queue its preface.

    :param options: the limits.
    :param client_side: whether this is the client's end.
    :return: the connection; its ``data_to_send()`` holds the preface (client),
        the SETTINGS frame and, for a larger connection window, a
        WINDOW_UPDATE.
    """
    config = H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    conn = H2Connection(config=config)
    values = {
        SettingCodes.INITIAL_WINDOW_SIZE: options.initial_window_size,
        SettingCodes.MAX_HEADER_LIST_SIZE: options.max_header_list_size,
    }
    limit = options.max_concurrent_streams
    if client_side:
        # RFC 9113 §6.5.2: we never accept server push.
        values[SettingCodes.ENABLE_PUSH] = 0
    else:
        values[SettingCodes.MAX_CONCURRENT_STREAMS] = limit
        if options.enable_connect_protocol:
            # RFC 8441 §3
            values[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
    # h2 also runs this check for HEADERS on streams it has forgotten, which
    # must reach its stream-closed handling, so the ceiling is never small.
    ceiling = limit + max(limit, 1000)
    # Initial values, not an update: they are what our first SETTINGS frame
    # says, so there is nothing for the peer's ACK to change later.
    conn.local_settings = _LocalSettings(
        client=client_side, initial_values=values, ceiling=ceiling
    )
    # The HPACK decoder cannot resume after giving up on a block, so its cap
    # is the connection-killing one; the advertised size is checked per
    # stream by the protocol.
    conn.decoder.max_header_list_size = 2 * options.max_header_list_size
    conn.initiate_connection()
    if options.connection_window_size > DEFAULT_WINDOW:
        # RFC 9113 §6.9.2: SETTINGS never change the connection window.
        conn.increment_flow_control_window(
            options.connection_window_size - DEFAULT_WINDOW
        )
    return conn
