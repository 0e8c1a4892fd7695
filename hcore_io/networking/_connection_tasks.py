"""Starts one task per accepted connection, lighter on asyncio than AnyIO's.

Theory of operation
-------------------
A server holds a task per connection for as long as the connection lives,
idle or not, so what a task costs is paid once per open connection.  On
asyncio, AnyIO's ``TaskGroup.start_soon`` gives every task a task handle
with a cancel scope of its own, an ``Event`` (whose ``asyncio.Event`` holds
a ``collections.deque``), a wrapper coroutine and a done-callback closure:
about 2.9 KB before the connection has done anything.

:class:`ConnectionTasks` starts each connection as a plain asyncio task
instead, whose coroutine runs the handler inside one AnyIO cancel scope (so
the connection's own scopes, shields included, nest under it as in any
AnyIO task), and keeps them all with one AnyIO task of the caller's task
group, the *keeper*:

* the keeper lives while any connection task does, so the task group does
  not end before its connections (it is started with the first connection
  and ends when the last one has, and started again with the next);
* when the keeper is cancelled (the task group is), it cancels every
  connection's scope, which honours their shields as a cancellation of the
  task group would, and waits for them, shielded, before ending;
* a connection task that fails (an exception a handler let out) hands its
  exception to the keeper, which cancels the other connections, waits for
  them and raises it into the task group, as a failed task of the group
  would.

The task's coroutine is a :class:`_Run`, an object written to the
coroutine protocol (``send``/``throw``/``close``) rather than an ``async
def``: it enters the root scope at the task's first step, passes every
step on to the handler's coroutine and, when that ends, leaves the scope
and does the bookkeeping above.  A coroutine of our own would keep a
frame (~260 bytes) for as long as the connection lives; the object keeps
four references.

On Trio (and any other backend) connections are started with
``start_soon``, unchanged: Trio's tasks are already light.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import anyio
from anyio.abc import TaskGroup

__all__ = ("ConnectionTasks",)

_T = TypeVar("_T")


class ConnectionTasks:
    """Starts connection tasks whose lifetime is bound to a task group.

    :param task_group: the AnyIO task group the tasks belong to: cancelling
        it cancels them, and it does not end before they have.
    """

    __slots__ = ("_error", "_group", "_hosted", "_keeper_done", "_scopes", "_stopping")

    def __init__(self, task_group: TaskGroup) -> None:
        self._group = task_group
        # Whether the loop is asyncio's (None: not known before the first
        # start).
        self._hosted: bool | None = None
        # The root scope of each connection task, from its start to its
        # end (once entered, a scope holds its task: asyncio keeps only
        # weak references to tasks).
        self._scopes: set[anyio.CancelScope] = set()
        # Set by the last task to end, or by a failed one; None while no
        # keeper runs.
        self._keeper_done: anyio.Event | None = None
        self._error: Exception | None = None
        # The keeper is ending the tasks: a task started now ends at once.
        self._stopping = False

    def start_soon(
        self, function: Callable[[_T], Coroutine[Any, Any, Any]], arg: _T
    ) -> None:
        """Run ``await function(arg)`` in a new task of the task group.

        :param function: the connection handler.
        :param arg: its argument (the accepted stream).
        :raises RuntimeError: if the task group is no longer active.
        """
        if self._hosted is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                self._hosted = False
            else:
                self._hosted = True
        if not self._hosted:
            self._group.start_soon(function, arg)
            return
        if self._keeper_done is None:
            self._keeper_done = anyio.Event()
            try:
                self._group.start_soon(self._keep)
            except BaseException:
                self._keeper_done = None
                raise
        # Counted from now, not from when the task first runs: the keeper
        # must not see no task and end before this one began.
        scope = anyio.CancelScope()
        if self._stopping:
            scope.cancel()
        self._scopes.add(scope)
        asyncio.get_running_loop().create_task(_Run(self, scope, function(arg)))

    def _ended(self, scope: anyio.CancelScope, error: Exception | None) -> None:
        """A connection task ended (with the exception its handler let out)."""
        if error is not None and self._error is None:
            # The keeper raises it into the task group.
            self._error = error
        self._scopes.discard(scope)
        done = self._keeper_done
        if done is not None and (not self._scopes or self._error is not None):
            done.set()

    async def _keep(self) -> None:
        done = self._keeper_done
        assert done is not None
        try:
            # Bounded: each round ends when the last task ended or one failed.
            while self._scopes and self._error is None:
                await done.wait()
                if self._scopes and self._error is None:
                    # New tasks began after the last one ended: keep them.
                    done = self._keeper_done = anyio.Event()
        finally:
            # Cancelled (with the task group), or a task failed: end the others.
            self._stopping = True
            for scope in list(self._scopes):
                scope.cancel()
            with anyio.CancelScope(shield=True):
                # Bounded: each round waits for a task to end.
                while self._scopes:
                    done = self._keeper_done = anyio.Event()
                    await done.wait()
            self._keeper_done = None
            self._stopping = False
            error, self._error = self._error, None
            if error is not None:
                # (Even over the keeper's own cancellation: a task group
                # reports a task's failure however it ends.)
                raise error


class _Run(Coroutine[Any, Any, None]):
    """A connection task's coroutine: the handler's, inside the task's root scope.

    What ``with scope: await coroutine`` in an ``async def`` would do, with
    an exception the handler lets out handed to
    :meth:`ConnectionTasks._ended` instead of raised (see the module's doc).
    """

    __slots__ = ("__qualname__", "_coroutine", "_entered", "_scope", "_tasks")

    def __init__(
        self,
        tasks: ConnectionTasks,
        scope: anyio.CancelScope,
        coroutine: Coroutine[Any, Any, Any],
    ) -> None:
        self._tasks = tasks
        self._scope = scope
        self._coroutine = coroutine
        self._entered = False
        # As a coroutine names itself (a task's repr shows it).
        self.__qualname__ = "ConnectionTasks._run"

    def send(self, value: Any) -> Any:
        """Run the handler's coroutine to its next wait (a task's step)."""
        if not self._entered:
            self._enter()
        try:
            return self._coroutine.send(value)
        except BaseException as exc:
            self._end(exc)

    def throw(
        self, typ: Any, val: Any = None, tb: TracebackType | None = None, /
    ) -> Any:
        """Raise an exception (a cancellation) in the handler's coroutine."""
        if not self._entered:
            self._enter()
        try:
            if val is None and tb is None:
                return self._coroutine.throw(typ)
            return self._coroutine.throw(typ, val, tb)
        except BaseException as exc:
            self._end(exc)

    def close(self) -> None:
        """Close the handler's coroutine (a task that never ran)."""
        if self._entered:
            super().close()
            return
        self._coroutine.close()
        self._tasks._ended(self._scope, None)

    def __await__(self) -> Generator[Any, None, None]:
        # Only a task runs it; never awaited.
        raise TypeError("a connection task's coroutine is not awaitable")

    def _enter(self) -> None:
        # In the task's first step: the scope's host is the task.
        self._entered = True
        self._scope.__enter__()

    def _end(self, exc: BaseException) -> NoReturn:
        """Leave the scope as ``with`` would, then end the task (or raise)."""
        error: Exception | None = None
        try:
            if isinstance(exc, StopIteration):
                self._scope.__exit__(None, None, None)
            elif not self._scope.__exit__(type(exc), exc, exc.__traceback__):
                raise exc
        except Exception as failure:
            error = failure
        finally:
            self._tasks._ended(self._scope, error)
        # The task's result: None.
        raise StopIteration
