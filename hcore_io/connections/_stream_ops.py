"""The operations behind :class:`HTTPStream`, on the connection's driver.

Each checks the stream's state, calls the protocol, writes, and waits as
:mod:`hcore_io.connections._driver` describes.  Releasing a stream (closing
its :class:`HTTPStream`, or cancelling its task) resets it if it is still
going and drops its queue, which also lets a connection held back by that
queue go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio

from hcore import HCoreError, Headers, LocalProtocolError
from hcore.events import Event
from hcore_io._exceptions import NetworkError
from hcore_io.connections._driver import credit_key, stream_key
from hcore_io.connections._gathering import JOINABLE_SIZE
from hcore_io.connections._routing import Router
from hcore_io.connections._state import StreamState
from hcore_io.connections._stream import HTTPStream, StreamReset
from hcore_io.connections._tcp_transport import TCPTransport

__all__ = ("StreamOperations",)

# How long a cancelled task may spend sending its stream's reset.
_RESET_GRACE = 1.0


class StreamOperations(Router):
    """What an :class:`HTTPStream` asks of its connection."""

    def open_stream_nowait(
        self,
        headers: Headers,
        *,
        end_stream: bool = False,
        on_submitted: Callable[[], object] | None = None,
    ) -> HTTPStream | None:
        """Start a request on a new stream if nothing has to wait for it.

        :meth:`HTTPConnection.open_stream` without a wait, a checkpoint or a
        cancel scope, where the network stream can write at once
        (:class:`~hcore_io.networking.EpollNetworking`'s plain TCP): the
        headers are handed to the protocol and written in the same call.
        Nothing is done (``None``: call ``open_stream``) while a wait or an
        error would come first: no free stream slot, a task writing, bytes
        already queued (an HTTP/2 preface), a closed connection, or a
        stream that cannot write without waiting.  If the socket takes only
        part of the headers, the stream is returned and the rest stays
        queued (:attr:`write_pending`) for :meth:`flush`.

        :param headers: the request headers, pseudo-headers first.
        :param end_stream: whether the request has no body.
        :param on_submitted: called once the stream took its slot, as in
            ``open_stream``.
        :return: the stream, or ``None`` if nothing was done.
        :raises hcore.LocalProtocolError: if the headers are malformed.
        """
        transport = self._transport
        protocol = self._protocol
        if (
            self._write_lock.held
            or self._gathering is not None
            or not isinstance(transport, TCPTransport)
            or self._closed
            or self._transport_closed
            or self._terminated is not None
            or self._output_failed
            or self._linger_deadline is not None
            or protocol.has_expired()
            or not protocol.is_available()
            or not hasattr(transport.stream_to_read(), "send_nowait")
            or transport.collect()
        ):
            return None
        self._enter_stream_mode()
        state = self._submit_new_stream(headers, end_stream, on_submitted)
        if (
            transport.collect()
            and transport.send_backlog_nowait()
            and (self._waiters.parked or self._read_scope is not None or self._draining)
        ):
            # Written whole: what _flush does after a write (the new stream
            # is in flight, so the connection cannot be over), when
            # somebody may be woken (_check_waiters' first test).
            self._check_waiters()
        return self._make_stream(state)

    @property
    def write_pending(self) -> bool:
        """Whether bytes wait to be written (see :meth:`open_stream_nowait`)."""
        return self._transport.collect()

    async def flush(self) -> None:
        """Write what waits to be written; return once it all left.

        If another task is writing, wait for it: it writes these bytes too.

        :raises hcore_io.ConnectionClosed: if the connection is closed.
        :raises hcore_io.WriteError: if writing failed.
        """
        self._check_usable()
        await self._flush()

    def _submit_new_stream(
        self,
        headers: Headers,
        end_stream: bool,
        on_submitted: Callable[[], object] | None,
    ) -> StreamState:
        """Hand a new stream's headers to the protocol and book the stream."""
        protocol = self._protocol
        stream_id = protocol.get_available_stream_id()
        protocol.submit_headers(stream_id, headers, end_stream)
        self._transport.dirty = True
        state = StreamState(stream_id, self._limit)
        state.has_handle = True
        state.local_ended = end_stream
        self._streams[stream_id] = state
        if on_submitted is not None:
            on_submitted()
        return state

    def _check_stream(self, state: StreamState) -> None:
        if state.reset_code is not None or state.refused:
            raise StreamReset(
                state.stream_id, state.reset_code, by_peer=state.reset_by_peer
            )
        self._check_usable()
        if state.released:
            raise LocalProtocolError(f"stream {state.stream_id} was closed")

    def _refused(self, state: StreamState, exc: LocalProtocolError) -> HCoreError:
        """What a send the protocol refused means for the stream's user.

        While events are held back (a queue is full, see ``_driver``), the
        peer's reset of a stream may be among them: the protocol knows the
        stream is closed, our state does not yet.  A send refused on a
        stream not ended on our side is then that reset, not a misuse.
        """
        if self._paused and not state.local_ended:
            return StreamReset(state.stream_id, None, by_peer=True)
        return exc

    async def _stream_send_headers(
        self, state: StreamState, headers: Headers, end_stream: bool
    ) -> None:
        self._check_stream(state)
        try:
            self._protocol.submit_headers(state.stream_id, headers, end_stream)
        except LocalProtocolError as exc:
            raise self._refused(state, exc) from exc
        self._transport.dirty = True
        state.local_ended = state.local_ended or end_stream
        if state.unanswered:
            self._answered(state)
        await self._flush(joinable=True)
        self._forget_if_done(state)

    async def _stream_send_data(
        self, state: StreamState, data: bytes, end_stream: bool
    ) -> None:
        self._check_stream(state)
        try:
            waited = await self._submit_data(state.stream_id, data, end_stream, state)
        except LocalProtocolError as exc:
            raise self._refused(state, exc) from exc
        if waited and (state.reset_code is not None or state.refused):
            # Reset while its data waited for credit: the data was dropped.
            raise StreamReset(
                state.stream_id, state.reset_code, by_peer=state.reset_by_peer
            )

    async def _stream_send_headers_and_data(
        self, state: StreamState, headers: Headers, data: bytes, end_stream: bool
    ) -> None:
        self._check_stream(state)
        # Submitted together and flushed once: the protocol's bytes_to_send()
        # then hands the head and the body to the transport in one piece.
        # (_submit_data written out: every response's path, a frame less.)
        protocol = self._protocol
        stream_id = state.stream_id
        try:
            protocol.submit_headers(stream_id, headers, False)
            protocol.submit_data(stream_id, data, end_stream)
            self._transport.dirty = True
            state.local_ended = state.local_ended or end_stream
            if state.unanswered:
                self._answered(state)
            await self._flush(joinable=len(data) <= JOINABLE_SIZE)
            if not protocol.pending_data_size(stream_id):
                self._forget_if_done(state)
                return
            await self._wait_for_credit(stream_id, state)
        except LocalProtocolError as exc:
            raise self._refused(state, exc) from exc
        if state.reset_code is not None or state.refused:
            raise StreamReset(
                state.stream_id, state.reset_code, by_peer=state.reset_by_peer
            )

    async def _submit_data(
        self, stream_id: int, data: bytes, end_stream: bool, state: StreamState | None
    ) -> bool:
        """Submit, write, wait for credit; return whether there was a wait."""
        protocol = self._protocol
        protocol.submit_data(stream_id, data, end_stream)
        self._transport.dirty = True
        if state is not None:
            state.local_ended = state.local_ended or end_stream
            if state.unanswered:
                self._answered(state)
        await self._flush(joinable=len(data) <= JOINABLE_SIZE)
        if not protocol.pending_data_size(stream_id):
            if state is not None:
                self._forget_if_done(state)
            return False
        await self._wait_for_credit(stream_id, state)
        return True

    async def _wait_for_credit(self, stream_id: int, state: StreamState | None) -> None:
        """Wait while the protocol holds the stream's data for lack of credit."""
        protocol = self._protocol

        def has_credit() -> bool:
            aborted = state is not None and (
                state.reset_code is not None or state.refused
            )
            return aborted or not protocol.pending_data_size(stream_id)

        await self._wait(credit_key(stream_id), has_credit)
        if state is not None:
            self._forget_if_done(state)

    async def _stream_reset(self, state: StreamState, error_code: int | None) -> None:
        if state.finished:
            return
        self._check_usable()
        code = self._protocol.error_codes.cancel if error_code is None else error_code
        self._protocol.submit_stream_reset(state.stream_id, code)
        self._transport.dirty = True
        self._mark_reset(state, code)
        self._answered(state)
        await self._flush(joinable=True)

    def _stream_take(self, state: StreamState) -> Event | None:
        """Take the stream's next event if one is queued and nothing else is due.

        The fast path of :meth:`HTTPStream.receive_event`: no wait, no
        timeout scope.  ``None`` sends the caller down the full path (to
        wait, or to raise, or to resume a connection held back).
        """
        events = state.events
        if state.released or self._closed or self._paused or not events.cost:
            return None
        event, relieved = events.pop()
        if relieved:
            self._full_queues -= 1
        if not events.cost:
            self._forget_if_done(state)
        return event

    async def _stream_receive(
        self, state: StreamState, deadline: float = math.inf
    ) -> Event:
        if state.released:
            raise LocalProtocolError(f"stream {state.stream_id} was closed")
        if self._closed:
            raise self._closed_error()
        # Until the stream is over both ways: a reset may still come after
        # the peer's last message (a client cancelling a slow response).
        events = state.events
        await self._wait(stream_key(state.stream_id), state.receive_ready, deadline)
        if not events.cost:
            if state.lost:
                raise self._closed_error()
            raise LocalProtocolError(f"stream {state.stream_id} has no more events")
        event, relieved = events.pop()
        if relieved:
            self._full_queues -= 1
        if not events.cost:
            self._forget_if_done(state)
        if self._paused:
            await self._resume(deadline)
        return event

    def _release(self, state: StreamState) -> None:
        """Stop following a stream; reset it if it is still going."""
        if state.released:
            return
        state.released = True
        if state.unanswered:
            self._answered(state)
        if not state.finished and not self._transport_closed:
            codes = self._protocol.error_codes
            # RFC 9113 §8.1: a server whose response is complete may end the
            # request with NO_ERROR; anything else is a cancellation.
            code = (
                codes.no_error if state.local_ended and state.incoming else codes.cancel
            )
            try:
                self._protocol.submit_stream_reset(state.stream_id, code)
                self._transport.dirty = True
            except HCoreError:
                pass
            self._mark_reset(state, code)
        events = state.events
        if events.cost:
            # (Mostly read to its end already: nothing to drop.)
            if events.full:
                self._full_queues -= 1
            events.clear()
        self._forget_if_done(state)
        if self._waiters.parked or self._read_scope is not None:
            self._wake(stream_key(state.stream_id))

    async def _stream_close(self, state: StreamState) -> None:
        self._release(state)
        if not self._transport_closed:
            try:
                if self._transport.collect():
                    # At most a reset (small): a gathering writer may send it.
                    await self._flush(joinable=True)
                else:
                    # Nothing to write (a stream over both ways): the end of
                    # _flush, without its call.
                    self._check_waiters()
                    if self._is_over():
                        await self._close_if_over()
            except NetworkError:
                pass
        if self._paused:
            await self._resume()

    async def _abandon(self, state: StreamState) -> None:
        """Release a stream whose task is being cancelled, and try to send the reset."""
        self._release(state)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_RESET_GRACE):
            # A task already writing will send the reset with its own bytes.
            if not self._write_lock.locked() and not self._transport_closed:
                try:
                    await self._flush()
                except NetworkError:
                    pass
