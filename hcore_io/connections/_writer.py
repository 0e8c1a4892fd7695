"""The write side of a connection: one writer at a time sends what is queued.

Theory of operation
-------------------
One lock; its holder writes until the protocol has nothing left to
send, so bytes queued by other tasks while a write was blocked leave with
it, and each ``send_*`` returns once its bytes were handed to the transport.
``send_data`` then waits while the protocol holds data for lack of credit
(``pending_data_size()``).  A task waiting for input never waits for the
write lock (the writer may be blocked on a peer that is itself blocked
writing to us, and only reading frees both), and a sender takes the lock
right after collecting its bytes, without yielding, so that its bulk data
is never left for a reader to write.  The bytes the protocol produced
belong to the connection, not to the task that writes them: a write that
has begun is finished even if its task is cancelled (a client request's
timeout while the peer was slow to read), since part of a frame or of a
TLS record would corrupt the stream for every other stream of it.  The
rest is written shielded from the cancellation, within a grace time
(``_WRITE_GRACE`` of the TCP transport); only if it cannot finish in time is
the connection broken.  Then the cancellation goes on to the task, and the
tasks that left their bytes to it are woken to write what is still queued.
Where the stream tells what an interrupted send left unsent (epoll's plain
TCP sockets), nothing costs a cancel scope until a cancellation comes.
AnyIO's streams, and TLS over any stream, cannot tell, so there the send
is shielded from the start, bounded by the deadline that would cancel it
(a timeout) plus the grace; a task under no deadline is not shielded, since
nothing would bound its wait once cancelled, and its write, if interrupted,
still breaks the connection.

Concurrent streams' messages leave in one send where they can (a server
answering many requests of one read): see ``_gathering``.
"""

from __future__ import annotations

import math

import anyio

from hcore_io._exceptions import NetworkError, WriteError
from hcore_io.connections._driver import Driver
from hcore_io.connections._gathering import Gathering
from hcore_io.connections._state import DeadlinePassed

__all__ = ("Writer",)


class Writer(Driver):
    """Writes what the protocol has to send (see the module's doc)."""

    async def _flush_within(self, deadline: float) -> None:
        """:meth:`_flush_if_free`, bounded by a waiting task's deadline.

        :raises DeadlinePassed: if the write was still blocked at the deadline.
        """
        if deadline == math.inf or not self._transport.collect():
            await self._flush_if_free()
            return
        with anyio.CancelScope(deadline=deadline) as scope:
            await self._flush_if_free()
        if scope.cancelled_caught:
            raise DeadlinePassed

    async def _flush_if_free(self) -> None:
        """Write what the protocol has to send, unless a task is writing already.

        A task waiting for the network never waits for the write lock: the
        writer may be blocked on a peer that is itself blocked writing to us,
        and only reading unblocks both.  The writer sends these bytes too,
        since it writes until the protocol has nothing left.
        """
        if self._write_lock.locked():
            self._transport.collect()
            self._check_waiters()
            return
        try:
            await self._flush(wait_for_writer=False)
        except NetworkError:
            # The connection broke (and is closed now); this task only
            # wanted to read, so it learns that from the connection's state.
            pass

    async def _flush(
        self, *, wait_for_writer: bool = True, joinable: bool = False
    ) -> None:
        """Write everything the protocol has to send, then close if it is all over.

        :param wait_for_writer: whether to wait while another task writes;
            if not, that task writes these bytes too (see _flush_if_free).
        :param joinable: whether these bytes are few enough to leave to a
            writer that gathers (see ``_gathering``) instead of waiting.
        """
        if self._output_failed or self._linger_deadline is not None:
            # Nothing can be written any more (a write failed, or we
            # half-closed); reading goes on until the end.
            self._transport.discard()
        elif self._transport.collect():
            # No checkpoint between collecting and taking the lock (which a
            # free lock grants at once): a sender's bytes are never left for
            # a reader to write, which could block the only reading task.
            # Nor a check for a cancellation: the first send_backlog()
            # raises a pending one before it writes anything, leaving the
            # bytes queued, as the lock's own check would have.
            lock = self._write_lock
            transport = self._transport
            pending = True
            if not lock.take_unchecked():
                if not wait_for_writer:
                    self._check_waiters()
                    return
                gathering = self._gathering
                if (
                    joinable
                    and gathering is not None
                    and gathering.open
                    and gathering.join()
                ):
                    # The holder sends these bytes before anything else,
                    # as part of its own write (see _gathering).
                    return
                await lock.acquire()
                # The holder may have written everything meanwhile.
                pending = transport.collect()
            joined = False
            try:
                gathering = self._gathering
                if gathering is not None and gathering.unanswered and pending:
                    joined = await gathering.gather()
                    transport.collect()
                while pending:
                    try:
                        await transport.send_backlog()
                    except WriteError as exc:
                        if transport.interrupted_error is not None:
                            await self._break(transport.interrupted_error)
                        else:
                            await self._write_failed(exc)
                        raise
                    except BaseException:
                        if joined and transport.interrupted_error is None:
                            # Cancelled before it began: finish it anyway
                            # for the streams whose bytes joined it.
                            await Gathering.finish(transport)
                        # Cancelled: the write was finished (see "Writes."),
                        # or not begun.  The bytes other tasks left to this
                        # one stay queued; wake them to write them.
                        if transport.interrupted_error is not None:
                            await self._break(transport.interrupted_error)
                        else:
                            self._wake_all()
                        raise
                    joined = False
                    pending = transport.collect()
            finally:
                lock.release()
        # (_check_waiters' and _is_over's first tests asked here: every
        # write's path, and mostly nobody waits and nothing is over.)
        if self._waiters.parked or self._read_scope is not None or self._draining:
            self._check_waiters()
        if not self._transport_closed and self._protocol.has_expired():
            await self._close_if_over()

    async def _break(self, exc: NetworkError) -> None:
        if self._broken is None:
            self._broken = exc
        await self._close_transport()

    async def _write_failed(self, exc: WriteError) -> None:
        """Stop writing; keep reading what the peer sent before it went away.

        A peer that closed after its last message (or a reader that reset
        the connection) must not cost us the data already in our receive
        buffer: the transport closes when input ends, or at once if no more
        input can come.
        """
        if self._broken is None:
            self._broken = exc
        self._output_failed = True
        self._transport.discard()
        if self._input_done:
            await self._close_transport()
        else:
            self._wake_all()
