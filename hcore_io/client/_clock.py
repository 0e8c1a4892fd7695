"""The pool's clock: AnyIO's, read without finding the event loop's library.

``anyio.current_time()`` asks which async library runs on every call
(sniffio, then ``asyncio.current_task()``: a ``getpid`` system call each,
since CPython checks for a fork on every ``get_running_loop()``), which
costs about ten times the clock's own read.  A pool reads the clock a few
times per request (acquiring, releasing, booking the request's time), so
it reads the running asyncio loop's clock directly, which is what AnyIO's
asyncio backend returns, and falls back to AnyIO elsewhere (Trio).

The pool only compares times it read itself (idle times, keep-alive,
``Alt-Svc`` lifetimes, request durations) and turns its pool timeout into
a relative wait, so one source read consistently is all it needs.

Finding the running loop costs that ``getpid`` too (CPython checks for a
fork on every look-up).  A pooled connection lives on the event loop that
opened it (its socket is that loop's), so its entry keeps that loop's
clock, found once (:func:`loop_clock`), for the times read while one of
its requests runs: the same clock :func:`now` would find.
"""

from __future__ import annotations

from asyncio import get_running_loop
from collections.abc import Callable

import anyio

__all__ = ("loop_clock", "now")


def now() -> float:
    """The current time on the running event loop's clock (AnyIO's clock).

    :return: seconds, on an arbitrary origin.
    """
    try:
        loop = get_running_loop()
    except RuntimeError:
        # Not asyncio (Trio): its clock, found the usual way.
        return anyio.current_time()
    return loop.time()


def loop_clock() -> Callable[[], float]:
    """The running event loop's clock, as a function: what :func:`now` reads.

    :return: the asyncio loop's ``time`` method, or AnyIO's clock (Trio).
    """
    try:
        loop = get_running_loop()
    except RuntimeError:
        return anyio.current_time
    return loop.time
