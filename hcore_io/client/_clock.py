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
"""

from __future__ import annotations

from asyncio import get_running_loop

import anyio

__all__ = ("now",)


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
