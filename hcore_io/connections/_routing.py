"""Routing: taking the protocol's events and handing each to its queue.

Events of a stream that has an :class:`HTTPStream` go to that stream's
queue; on a server that accepts streams, the request headers of a new stream
make its :class:`HTTPStream`; the rest go to the connection's own queue
(capped, oldest dropped, once per-stream use began: then only
connection-wide events go there).  ``ConnectionTerminated`` marks every
stream still going as lost; ``GoawayReceived`` marks the streams the peer
did not process as refused and is their last event.  Taking stops while any
queue is over its bound (see the driver's "Bounded memory").
"""

from __future__ import annotations

from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    SendBufferDrained,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)
from hcore_io.connections._driver import (
    ACCEPT,
    AVAILABLE,
    CONNECTION,
    credit_key,
    stream_key,
)
from hcore_io.connections._gathering import Gathering
from hcore_io.connections._state import StreamState
from hcore_io.connections._writer import Writer

__all__ = ("Router",)

# Connection-wide events kept once per-stream use began (oldest dropped).
_KEPT_CONNECTION_EVENTS = 16
# (Tuples, not unions: ``A | B`` builds an object at every call.)
_MAY_END = (HeadersReceived, DataReceived)


class Router(Writer):
    """Routes the protocol's events to the queues of streams and connection."""

    def _dispatch(self) -> None:
        """Take events from the protocol while no queue is full.

        Once no more input can come, everything is taken: the protocol holds
        no more than the flow-control windows let in, and the waiting tasks
        must learn how the connection ended.
        """
        while not self._full_queues or self._input_done:
            event = self._protocol.next_event()
            if event is None:
                self._paused = False
                return
            # Taking an event may queue output (a WINDOW_UPDATE).
            self._transport.dirty = True
            self._route(event)
        self._paused = True

    def _route(self, event: Event) -> None:
        kind = type(event)
        if kind is HeadersReceived or kind is DataReceived:
            # The common events, routed as below with fewer questions:
            # neither resets a stream nor drains a send buffer.
            self._route_message(event)  # type: ignore[arg-type]
            return
        if isinstance(event, ConnectionTerminated):
            self._terminated = event
            self._input_done = True
            for lost in self._streams.values():
                if not lost.finished:
                    lost.lost = True
            self._put_connection_event(event)
            self._wake_all()
            return
        if isinstance(event, GoawayReceived):
            for refused_id in event.unprocessed_stream_ids:
                refused = self._streams.get(refused_id)
                if refused is not None and not refused.finished:
                    refused.refused = True
                    if refused.has_handle:
                        self._put(refused, event)
                    self._wake(credit_key(refused_id))
            self._put_connection_event(event)
            self._wake(AVAILABLE)
            return
        stream_id = getattr(event, "stream_id", None)
        if not isinstance(stream_id, int):
            self._put_connection_event(event)
            return
        state = self._streams.get(stream_id)
        if state is None and isinstance(event, HeadersReceived):
            state = self._new_incoming(stream_id)
        if state is not None:
            self._update_state(state, event)
        if isinstance(event, SendBufferDrained):
            self._wake(credit_key(stream_id))
            if state is not None and state.has_handle:
                return
        if state is not None and state.has_handle:
            self._put(state, event)
        elif not self._stream_mode:
            self._put_connection_event(event)
        # Otherwise nobody follows the stream any more: the event is dropped
        # (taking it has returned its flow-control credit).
        if state is not None:
            self._forget_if_done(state)

    def _new_incoming(self, stream_id: int) -> StreamState | None:
        """The state of a stream the peer opened, if anybody will follow it.

        An accepting server gets its :class:`HTTPStream` made and queued.
        """
        if not self._accepting and self._stream_mode:
            return None
        state = self._streams[stream_id] = StreamState(stream_id, self._limit)
        state.incoming = True
        if self._accepting:
            state.has_handle = True
            if self._protocol.multiplexed:
                gathering = self._gathering
                if gathering is None:
                    gathering = self._gathering = Gathering()
                state.unanswered = True
                gathering.unanswered += 1
            self._accepted.append(self._make_stream(state))
            if self._waiters.parked or self._read_scope is not None:
                # (Asked here: a task reading its own request has nobody
                # to wake, and this is every request's path.)
                self._wake(ACCEPT)
        return state

    def _route_message(self, event: HeadersReceived | DataReceived) -> None:
        """Route a request's or response's headers or data (see :meth:`_route`)."""
        stream_id = event.stream_id
        state = self._streams.get(stream_id)
        if state is None and type(event) is HeadersReceived:
            state = self._new_incoming(stream_id)
        if state is None:
            if not self._stream_mode:
                self._put_connection_event(event)
            return
        if event.end_stream:
            state.remote_ended = True
        if state.has_handle:
            # Queued: the stream is not done before its queue is read.
            self._put(state, event)
            return
        if not self._stream_mode:
            self._put_connection_event(event)
        self._forget_if_done(state)

    def _update_state(self, state: StreamState, event: Event) -> None:
        if isinstance(event, StreamResetReceived):
            state.reset_by_peer = True
            self._mark_reset(state, event.error_code)
        elif isinstance(event, StreamResetSent):
            self._mark_reset(state, event.error_code)
        elif isinstance(event, TrailersReceived) or (
            isinstance(event, _MAY_END) and event.end_stream
        ):
            state.remote_ended = True

    def _mark_reset(self, state: StreamState, code: int) -> None:
        if state.reset_code is None:
            state.reset_code = code
        self._wake(credit_key(state.stream_id))
        self._wake(stream_key(state.stream_id))
        self._forget_if_done(state)

    def _put(self, state: StreamState, event: Event) -> None:
        if state.events.put(event):
            self._full_queues += 1
        if self._waiters.parked or self._read_scope is not None:
            self._wake(stream_key(state.stream_id))

    def _put_connection_event(self, event: Event) -> None:
        if self._stream_mode:
            if len(self._events) >= _KEPT_CONNECTION_EVENTS:
                self._events.take()
            self._events.put(event)
        elif self._events.put(event):
            self._full_queues += 1
        self._wake(CONNECTION)

    def _forget_if_done(self, state: StreamState) -> None:
        """Drop a finished stream from the books once its queue was read."""
        # (StreamState.finished written out: asked several times per
        # request, mostly of a stream still going.)
        if (
            state.reset_code is None
            and not state.refused
            and not state.lost
            and not (state.local_ended and state.remote_ended)
        ) or state.events.cost:
            return
        if state.unanswered:
            self._answered(state)
        if self._streams.get(state.stream_id) is state:
            del self._streams[state.stream_id]
            if not state.aborted and self._protocol.pending_data_size(state.stream_id):
                # Its last bytes still wait for credit; keep the transport open.
                if self._draining is None:
                    self._draining = set()
                self._draining.add(state)

    def _enter_stream_mode(self) -> None:
        if not self._stream_mode:
            self._stream_mode = True
            if self._events.full:
                self._full_queues -= 1

    def _answered(self, state: StreamState) -> None:
        """Count a stream as answered: it sent, or it no longer will."""
        if state.unanswered and self._gathering is not None:
            state.unanswered = False
            self._gathering.unanswered -= 1
