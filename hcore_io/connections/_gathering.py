"""Gathering: concurrent streams' writes leave a connection in one send.

Theory of operation
-------------------
On an HTTP/2 or HTTP/3 connection, one read often brings several requests
(a client with many streams in flight), and each is answered by a task of its
own.  Written one by one, the answers cost a send each.  So a writer that
takes the connection's write lock while streams accepted earlier have not
answered yet (their tasks are likely runnable in this very turn of the event
loop) first *gathers*: it yields once, holding the lock, shielded from
cancellation, so that those tasks run.  A task that submits a small message
(at most ``JOINABLE_SIZE`` bytes of data) meanwhile *joins*: it leaves its
bytes in the protocol and returns at once, without waiting for the lock;
the gathering writer then collects everything and sends it in one piece.

What a joiner gives up is only the wait: its bytes are on their way within
this turn of the loop, by a task that holds the lock and has nothing to do
but send them.  The guarantees of the connection's writes (see
``_driver``) hold:

- Bounded: at most ``MAX_JOINED`` tasks join one gathering, each with a small
  message, so no task piles up unsent bytes by sending again and again;
  everything else waits for the lock as before.
- Nothing waits for a timer: the gathering is one yield, and happens only
  while some accepted stream has not answered (a lone response goes out at
  once).
- Cancellation: the writer's yield is shielded, so a cancellation of the
  writer comes when its send begins.  If streams joined, their bytes are
  already promised, so the writer finishes that send within the write grace
  (``_WRITE_GRACE``, as for a write cancelled half way) before its
  cancellation goes on; if it cannot, the connection is broken, as it is
  when the rest of an interrupted write cannot be sent.  If nobody joined,
  the cancellation is raised before anything is written, as without
  gathering.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from hcore_io._exceptions import WriteError
from hcore_io.connections._transport_base import _WRITE_GRACE, Transport

__all__ = ("JOINABLE_SIZE", "MAX_JOINED", "Gathering")

#: The most data a send may leave to a gathering writer instead of waiting.
JOINABLE_SIZE = 8192

#: The most tasks that join one gathering; bounds its unsent bytes.
MAX_JOINED = 64


class Gathering:
    """The state of a connection's gathering writer (see the module's doc)."""

    __slots__ = ("_joined", "open", "unanswered")

    def __init__(self) -> None:
        #: Streams accepted that have sent nothing yet (a writer gathers
        #: only while there are some).
        self.unanswered = 0
        #: Whether a writer is gathering now: a small send may join.
        self.open = False
        self._joined = 0

    def join(self) -> bool:
        """Leave a small message to the gathering writer.

        :return: whether it was taken (``False``: enough joined, wait for
            the lock instead).
        """
        if self._joined >= MAX_JOINED:
            return False
        self._joined += 1
        return True

    async def gather(self) -> bool:
        """Yield once, shielded, for other streams' messages to join.

        :return: whether any joined (their bytes must be sent, see
            :meth:`finish`).
        """
        self.open = True
        self._joined = 0
        try:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self.open = False
        return self._joined > 0

    @staticmethod
    async def finish(transport: Transport) -> None:
        """Send the backlog a cancelled writer owes to the tasks that joined it.

        Shielded, within the write grace; if that fails or is not enough,
        the transport's ``interrupted_error`` says so (the connection is
        then broken by the caller).
        """
        deadline = anyio.current_time() + _WRITE_GRACE
        with anyio.CancelScope(shield=True, deadline=deadline) as scope:
            try:
                while transport.collect():
                    await transport.send_backlog()
            except WriteError as exc:
                if transport.interrupted_error is None:
                    transport.interrupted_error = exc
        if scope.cancelled_caught and transport.interrupted_error is None:
            transport.interrupted_error = WriteError(
                f"a write owed to other streams was not sent within {_WRITE_GRACE} s"
            )
