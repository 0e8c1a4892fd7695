"""The epoll streams' cancellation check without a look-up of the running loop.

A send or receive that completes at once still raises a pending
cancellation first (AnyIO's ``checkpoint_if_cancelled``).  On asyncio the
hosted poller first answers whether there can be one, from the task of its
own loop and AnyIO's chain of cancel scopes, so the common case skips
AnyIO's look-up of the running loop (a ``getpid`` on Python 3.11).  These
tests hold the answer to AnyIO's: a cancelled scope, a shield, none.
"""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest

from hcore_io.networking import _epoll_hosted
from hcore_io.networking._epoll_hosted import current_poller
from hcore_io.networking._epoll_streams import EpollSocketStream

pytestmark = pytest.mark.anyio


async def test_the_answer_follows_the_scopes() -> None:
    poller = current_poller()
    if not isinstance(poller, _epoll_hosted.HostedPoller):
        # Trio's polling poller always says "check": AnyIO's check runs.
        assert poller.cancel_pending()
        return
    assert not poller.cancel_pending()
    check = anyio.lowlevel.checkpoint_if_cancelled
    # Each answer is followed by AnyIO's own check, which agrees.
    with anyio.CancelScope() as outer:
        assert not poller.cancel_pending()
        await check()
        outer.cancel()
        assert poller.cancel_pending()
        with anyio.CancelScope(shield=True):
            # A shield hides the outer cancellation.
            assert not poller.cancel_pending()
            await check()
            with anyio.CancelScope() as inner:
                inner.cancel()
                assert poller.cancel_pending()
                await check()
            assert inner.cancelled_caught
        assert poller.cancel_pending()
        await check()
    assert outer.cancelled_caught


async def test_without_anyio_state_the_answer_is_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller = current_poller()
    monkeypatch.setattr(_epoll_hosted, "_task_states", None)
    assert poller.cancel_pending()


async def test_an_unknown_layout_of_anyio_state_reads_as_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller = current_poller()
    if not isinstance(poller, _epoll_hosted.HostedPoller):
        assert poller.cancel_pending()
        return

    class Changed:
        """A task state whose scope attribute has another name."""

    task = asyncio.current_task()
    assert task is not None
    monkeypatch.setattr(_epoll_hosted, "_task_states", {task: Changed()})
    assert poller.cancel_pending()


async def test_a_send_and_a_receive_that_need_no_wait_raise_a_cancellation() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = EpollSocketStream(ours.dup(), current_poller())
        try:
            sent = 0
            # Bounded: every other operation yields; after one that did,
            # the next only checks (the path under test).
            for _ in range(3):
                if stream._yielded:
                    break
                await stream.send(b"a")
                sent += 1
            assert stream._yielded
            with anyio.CancelScope() as scope:
                scope.cancel()
                await stream.send(b"never")
            assert scope.cancelled_caught
            theirs.sendall(b"de")
            await anyio.sleep(0.05)  # the poller sees the edge
            assert stream._yielded and stream._registration.readable
            with anyio.CancelScope() as scope:
                scope.cancel()
                await stream.receive()
            assert scope.cancelled_caught
            theirs.setblocking(False)
            # Nothing of the cancelled send was written; the bytes the
            # cancelled receive did not take are still there.
            assert theirs.recv(100) == b"a" * sent
            assert await stream.receive() == b"de"
        finally:
            await stream.aclose()
