"""Helpers of the tests comparing h11's direct paths with h11's own calls."""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType
from typing import cast

import h11

from hcore.protocols.http1 import H11ClientProtocol, H11ServerProtocol

Fields = list[tuple[bytes, bytes]]
#: One step of a script: ("recv", bytes), ("eof",), ("headers", block,
#: end_stream), ("request", block, end_stream), ("data", bytes,
#: end_stream), ("close",).
Step = tuple[object, ...]


class PlainServer(H11ServerProtocol):
    """The server with every direct path turned off: h11 does it all."""

    _fast = False


def h11_state(conn: h11.Connection) -> tuple[object, ...]:
    """Everything h11's connection keeps, comparable between connections."""

    def io(obj: object) -> object:
        if obj is None or isinstance(obj, FunctionType):
            return obj
        return type(obj), vars(obj)

    cstate = conn._cstate
    buffer = conn._receive_buffer
    return (
        dict(cstate.states),
        cstate.keep_alive,
        set(cstate.pending_switch_proposals),
        conn._request_method,
        conn.their_http_version,
        conn.client_is_waiting_for_100_continue,
        io(conn._writer),
        io(conn._reader),
        bytes(buffer),
        conn._receive_buffer_closed,
        buffer._next_line_search,
        buffer._multiple_lines_search,
    )


class PlainClient(H11ClientProtocol):
    """The client with every direct path turned off: h11 does it all."""

    _fast = False


def spy(calls: list[str], name: str) -> Callable[..., object]:
    """h11.Connection's method ``name``, noting each call in ``calls``."""
    original = getattr(h11.Connection, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        calls.append(name)
        return original(*args, **kwargs)

    return cast(Callable[..., object], wrapper)
