"""The ASGI ``lifespan`` scope: startup before serving, shutdown after.

The application runs in a task of its own for the server's whole life.  It
receives ``lifespan.startup`` at once and ``lifespan.shutdown`` when the
server stops, and answers each with ``.complete`` or ``.failed``.  An
application that raises before answering the startup does not speak
lifespan; in ``"auto"`` mode the server then carries on without it.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskGroup

from hcore_io.server._types import ASGIApp, Message

__all__ = ("Lifespan", "LifespanFailure")

logger = logging.getLogger("hcore.server")

_ASGI_VERSION = {"version": "3.0", "spec_version": "2.0"}


class LifespanFailure(Exception):
    """The application reported (or raised) a failure of its startup or shutdown."""


class Lifespan:
    """Drives an application's lifespan scope.

    :param app: the application.
    :param mode: ``"auto"`` (use it if the application speaks it), ``"on"``
        (a failure to speak it is an error) or ``"off"``.
    :param timeout: seconds the startup and the shutdown may each take.
    """

    def __init__(self, app: ASGIApp, mode: str = "auto", timeout: float = 60.0) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode must be auto, on or off, not {mode!r}")
        self._app = app
        self._mode = mode
        self._timeout = timeout
        #: The scope's ``state``, copied into each request's scope.
        self.state: dict[str, object] = {}
        self._supported = False
        self._channels_open = False

    @property
    def supported(self) -> bool:
        """Whether the application answered the startup."""
        return self._supported

    async def startup(self, task_group: TaskGroup) -> None:
        """Start the application's lifespan task and wait for its startup answer.

        :raises LifespanFailure: if the startup failed (or the application
            does not speak lifespan in ``"on"`` mode).
        """
        if self._mode == "off":
            return
        # Made here, not in __init__: unclosed channels warn when collected.
        self._to_app_send, self._to_app_receive = anyio.create_memory_object_stream[
            Message
        ](2)
        self._from_app_send, self._from_app_receive = anyio.create_memory_object_stream[
            Message | BaseException
        ](2)
        self._channels_open = True
        task_group.start_soon(self._run)
        await self._to_app_send.send({"type": "lifespan.startup"})
        with anyio.fail_after(self._timeout):
            answer = await self._from_app_receive.receive()
        if isinstance(answer, BaseException):
            if self._mode == "on":
                raise LifespanFailure(f"lifespan startup raised {answer!r}") from answer
            logger.info("the application does not speak lifespan: %r", answer)
            return
        if answer.get("type") == "lifespan.startup.complete":
            self._supported = True
            return
        raise LifespanFailure(f"lifespan startup failed: {answer.get('message', '')}")

    async def shutdown(self) -> None:
        """Tell the application the server stops, and wait for its answer.

        :raises LifespanFailure: if it reports a failure.
        """
        if not self._supported:
            return
        await self._to_app_send.send({"type": "lifespan.shutdown"})
        with anyio.move_on_after(self._timeout):
            answer = await self._from_app_receive.receive()
            if isinstance(answer, BaseException):
                raise LifespanFailure(f"lifespan shutdown raised {answer!r}")
            if answer.get("type") != "lifespan.shutdown.complete":
                raise LifespanFailure(
                    f"lifespan shutdown failed: {answer.get('message', '')}"
                )
            return
        logger.warning("lifespan shutdown took longer than %s s", self._timeout)

    def close(self) -> None:
        """Release the channels to the application's task."""
        if not self._channels_open:
            return
        self._channels_open = False
        for stream in (
            self._to_app_send,
            self._to_app_receive,
            self._from_app_send,
            self._from_app_receive,
        ):
            stream.close()

    async def _run(self) -> None:
        scope: dict[str, object] = {
            "type": "lifespan",
            "asgi": _ASGI_VERSION,
            "state": self.state,
        }
        outcome: BaseException
        try:
            await self._app(scope, self._receive, self._send)
        except Exception as exc:
            if self._supported:
                logger.exception("the application's lifespan task failed")
            outcome = exc
        else:
            # Tells a startup still waiting that no answer will come.
            outcome = LifespanFailure("the application returned from lifespan")
        try:
            self._from_app_send.send_nowait(outcome)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _receive(self) -> Message:
        return await self._to_app_receive.receive()

    async def _send(self, message: Message) -> None:
        await self._from_app_send.send(message)
