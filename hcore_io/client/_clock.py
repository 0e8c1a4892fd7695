"""The pool's clock (``time.monotonic``), and the running asyncio loop.

The pool only compares times it read itself (idle times, keep-alive,
``Alt-Svc`` lifetimes, request durations) and turns its pool timeout into
a relative wait, so any one clock read consistently serves it.  It reads
``time.monotonic`` on every event loop: AnyIO's clock would find the
running loop's library on every call (sniffio, then
``asyncio.current_task()``), and even the running asyncio loop's own
clock must first find that loop, which costs a ``getpid`` system call on
Python 3.11 (CPython checks for a fork on every look-up).  A pool reads
the clock a few times per request; ``time.monotonic`` needs no system call.

A task that has to wait for a connection finds the running loop
(:func:`running_loop`) to make its waiter.  The pool keeps the loop it
found last and asks whether that loop runs the current task (a look-up
in its table of tasks, with no system call) before it looks again.
"""

from __future__ import annotations

from asyncio import AbstractEventLoop, current_task, get_running_loop
from time import monotonic as now

__all__ = ("now", "running_loop")


def running_loop(known: AbstractEventLoop | None = None) -> AbstractEventLoop | None:
    """The running asyncio loop, or ``None`` elsewhere (Trio).

    :param known: the loop found last: returned if it runs the current task,
        which ``current_task(known)`` tells without finding the running loop.
        (Only a loop running in another thread, whose task is current
        there, could mislead it: a pool serves one thread.)
    """
    if known is not None and current_task(known) is not None:
        return known
    try:
        return get_running_loop()
    except RuntimeError:
        return None
