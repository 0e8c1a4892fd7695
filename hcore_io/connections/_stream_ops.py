"""The operations behind :class:`HTTPStream`, on the connection's driver.

Each checks the stream's state, calls the protocol, writes, and waits as
:mod:`hcore_io.connections._driver` describes.  Releasing a stream (closing
its :class:`HTTPStream`, or cancelling its task) resets it if it is still
going and drops its queue, which also lets a connection held back by that
queue go on.
"""

from __future__ import annotations

import math

import anyio

from hcore import HCoreError, Headers, LocalProtocolError
from hcore.events import Event
from hcore_io._exceptions import NetworkError
from hcore_io.connections._driver import credit_key, stream_key
from hcore_io.connections._gathering import JOINABLE_SIZE
from hcore_io.connections._routing import Router
from hcore_io.connections._state import StreamState
from hcore_io.connections._stream import StreamReset

__all__ = ("StreamOperations",)

# How long a cancelled task may spend sending its stream's reset.
_RESET_GRACE = 1.0


class StreamOperations(Router):
    """What an :class:`HTTPStream` asks of its connection."""

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
        try:
            self._protocol.submit_headers(state.stream_id, headers, False)
            waited = await self._submit_data(state.stream_id, data, end_stream, state)
        except LocalProtocolError as exc:
            raise self._refused(state, exc) from exc
        if waited and (state.reset_code is not None or state.refused):
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

        def has_credit() -> bool:
            aborted = state is not None and (
                state.reset_code is not None or state.refused
            )
            return aborted or not protocol.pending_data_size(stream_id)

        await self._wait(credit_key(stream_id), has_credit)
        if state is not None:
            self._forget_if_done(state)
        return True

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
        if state.released or self._closed or self._paused or not state.events:
            return None
        was_full = state.events.full
        event = state.events.take()
        if was_full and not state.events.full:
            self._full_queues -= 1
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
        await self._wait(
            stream_key(state.stream_id),
            lambda: bool(state.events) or state.finished,
            deadline,
        )
        if not state.events:
            if state.lost:
                raise self._closed_error()
            raise LocalProtocolError(f"stream {state.stream_id} has no more events")
        was_full = state.events.full
        event = state.events.take()
        if was_full and not state.events.full:
            self._full_queues -= 1
        self._forget_if_done(state)
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
        if state.events.full:
            self._full_queues -= 1
        state.events.clear()
        self._forget_if_done(state)
        self._wake(stream_key(state.stream_id))

    async def _stream_close(self, state: StreamState) -> None:
        self._release(state)
        if not self._transport_closed:
            try:
                # At most a reset (small): a gathering writer may send it.
                await self._flush(joinable=True)
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
