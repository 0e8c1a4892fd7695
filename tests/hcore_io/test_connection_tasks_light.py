"""The light per-connection machinery of issue 11's memory work.

:class:`ConnectionTasks` (plain asyncio tasks kept by one AnyIO task) must
behave as the task group's own tasks would: cancelling the group cancels
them (shields honoured), the group waits for them, a handler's exception
reaches the group.  :class:`TaskScope` (a read's cancel scope on asyncio)
must cancel only its own wait, never lose a result, and leave other
cancellations alone.
"""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from hcore_io.connections._read_timer import TaskScope
from hcore_io.networking._connection_tasks import ConnectionTasks

pytestmark = pytest.mark.anyio


async def test_group_waits_for_connection_tasks(anyio_backend: str) -> None:
    finished: list[int] = []

    async def handler(number: int) -> None:
        await anyio.sleep(0.05)
        finished.append(number)

    async with anyio.create_task_group() as group:
        tasks = ConnectionTasks(group)
        for number in range(5):
            tasks.start_soon(handler, number)
    assert sorted(finished) == [0, 1, 2, 3, 4]


async def test_cancelling_the_group_cancels_them_but_honours_shields(
    anyio_backend: str,
) -> None:
    events: list[str] = []
    started = anyio.Event()

    async def handler(name: str) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                # A cleanup that must run to its end despite the cancellation.
                await anyio.sleep(0.05)
                events.append(f"{name} cleaned up")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            tasks = ConnectionTasks(group)
            tasks.start_soon(handler, "a")
            tasks.start_soon(handler, "b")
            await started.wait()
            group.cancel_scope.cancel()
    assert sorted(events) == ["a cleaned up", "b cleaned up"]


async def test_keeper_ends_and_restarts_with_new_tasks(anyio_backend: str) -> None:
    done: list[int] = []

    async def handler(number: int) -> None:
        await anyio.lowlevel.checkpoint()
        done.append(number)

    async with anyio.create_task_group() as group:
        tasks = ConnectionTasks(group)
        tasks.start_soon(handler, 1)
        await anyio.sleep(0.05)
        # The first keeper is gone (nothing left to keep); a new one comes.
        tasks.start_soon(handler, 2)
    assert done == [1, 2]


async def test_handler_exception_reaches_the_group(anyio_backend: str) -> None:
    cancelled: list[bool] = []
    started = anyio.Event()

    async def failing(_: None) -> None:
        await started.wait()
        raise LookupError("boom")

    async def waiting(_: None) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    with anyio.fail_after(5), pytest.RaisesGroup(LookupError, flatten_subgroups=True):
        async with anyio.create_task_group() as group:
            tasks = ConnectionTasks(group)
            tasks.start_soon(waiting, None)
            tasks.start_soon(failing, None)
    assert cancelled == [True]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_on_asyncio_connection_tasks_are_plain_tasks(anyio_backend: str) -> None:
    release = anyio.Event()
    names: list[str] = []

    async def handler(_: None) -> None:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_coro().__qualname__)  # type: ignore[union-attr]
        await release.wait()

    async with anyio.create_task_group() as group:
        tasks = ConnectionTasks(group)
        for _ in range(3):
            tasks.start_soon(handler, None)
        await anyio.sleep(0.05)
        # Our own coroutine, not AnyIO's task wrapper.
        assert names == ["ConnectionTasks._run"] * 3
        release.set()


# -- TaskScope ------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_task_scope_cancels_its_wait(anyio_backend: str) -> None:
    scope = TaskScope()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, scope.cancel)
    with anyio.fail_after(5):
        with scope:
            await asyncio.sleep(10)
    assert scope.cancel_called and scope.cancelled_caught
    # The task is not left cancelling: the next wait works.
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0
    await asyncio.sleep(0)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_task_scope_never_loses_a_result(anyio_backend: str) -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    scope = TaskScope()

    def resolve_then_cancel() -> None:
        # The task is about to resume with the result: the cancellation
        # must wait rather than throw it away.
        future.set_result("data")
        scope.cancel()

    asyncio.get_running_loop().call_soon(resolve_then_cancel)
    with scope:
        result = await future
    assert result == "data"
    assert scope.cancel_called and not scope.cancelled_caught


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_task_scope_leaves_an_outer_cancellation_alone(
    anyio_backend: str,
) -> None:
    reached: list[str] = []
    with anyio.CancelScope() as outer:
        scope = TaskScope()

        def cancel_both() -> None:
            outer.cancel()
            scope.cancel()

        asyncio.get_running_loop().call_soon(cancel_both)
        with scope:
            await asyncio.sleep(10)
        reached.append("after the inner scope")
    # The outer cancellation went on past the inner scope.
    assert outer.cancelled_caught
    assert reached == []
    assert not scope.cancelled_caught
