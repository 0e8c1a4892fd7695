"""A connection task's coroutine on asyncio is a small object, not a frame.

:class:`~hcore_io.networking._connection_tasks.ConnectionTasks` runs each
handler's coroutine through ``_Run``, written to the coroutine protocol so
that an idle connection keeps no frame of it.  It must end the task as
``with scope: await handler(arg)`` in an ``async def`` would, however the
task ends: a result, the handler's exception, a cancellation of the task
itself (even before its first step), a close without ever running.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings

import anyio
import anyio.lowlevel
import pytest

from hcore_io.networking._connection_tasks import ConnectionTasks, _Run

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
]


async def test_task_is_named_and_small(anyio_backend: str) -> None:
    release = anyio.Event()
    seen: list[asyncio.Task[object]] = []

    async def handler(_: None) -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append(task)
        await release.wait()

    async with anyio.create_task_group() as group:
        tasks = ConnectionTasks(group)
        tasks.start_soon(handler, None)
        await anyio.sleep(0.05)
        (task,) = seen
        coroutine = task.get_coro()
        assert isinstance(coroutine, _Run)
        # The repr names it as a coroutine would be named.
        assert "ConnectionTasks._run" in repr(task)
        # No instance dictionary, a few references: far below a frame.
        assert not hasattr(coroutine, "__dict__")
        assert sys.getsizeof(coroutine) < 100
        release.set()


async def test_task_cancelled_before_its_first_step(anyio_backend: str) -> None:
    ran: list[bool] = []

    async def handler(_: None) -> None:
        ran.append(True)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            tasks = ConnectionTasks(group)
            tasks.start_soon(handler, None)
            # Cancelled at once: its first step is the cancellation.
            (task,) = [t for t in asyncio.all_tasks() if isinstance(t.get_coro(), _Run)]
            task.cancel()
        # The group ended: the task's scope was let go of.
    assert task.cancelled()
    assert ran == []
    assert not tasks._scopes


async def test_results_and_cancellations_end_the_task_as_with_would(
    anyio_backend: str,
) -> None:
    async def returns(_: None) -> int:
        await anyio.lowlevel.checkpoint()
        return 5

    async def cancelled_inside(_: None) -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await anyio.sleep(1)
        # The scope took its own cancellation: the handler goes on.
        await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            tasks = ConnectionTasks(group)
            tasks.start_soon(returns, None)
            tasks.start_soon(cancelled_inside, None)
    assert not tasks._scopes


async def test_close_without_running(anyio_backend: str) -> None:
    async def handler(_: None) -> None:
        await anyio.lowlevel.checkpoint()

    group = anyio.create_task_group()
    tasks = ConnectionTasks(group)
    scope = anyio.CancelScope()
    tasks._scopes.add(scope)
    run = _Run(tasks, scope, handler(None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.close()
        del run
        gc.collect()
    # The handler's coroutine was closed (no "never awaited" warning) and
    # the scope let go of.
    assert not tasks._scopes


async def test_not_awaitable(anyio_backend: str) -> None:
    async def handler(_: None) -> None:
        await anyio.lowlevel.checkpoint()

    group = anyio.create_task_group()
    tasks = ConnectionTasks(group)
    scope = anyio.CancelScope()
    tasks._scopes.add(scope)
    run = _Run(tasks, scope, handler(None))
    with pytest.raises(TypeError):
        run.__await__()
    run.close()
