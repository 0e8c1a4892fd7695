"""Bounded fuzzing of the WebSocket session (both roles) and the SSE parser.

Random and mutated valid traffic (see :mod:`tests.fuzz.targets` for the
invariants checked); the long run is ``tests/fuzz/run.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from hcore import LocalProtocolError
from hcore.sse import ServerSentEvent, encode_comment, encode_event
from tests.fuzz.strategies import fuzz_input
from tests.fuzz.targets import run_sse, run_websocket

FAST = settings(max_examples=200, deadline=None)


@FAST
@given(data=fuzz_input("websocket"))
def test_fuzz_websocket_session(data: bytes) -> None:
    run_websocket(data)


@FAST
@given(data=fuzz_input("sse"))
def test_fuzz_sse_parser(data: bytes) -> None:
    run_sse(data)


@pytest.mark.parametrize(
    "event",
    [
        ServerSentEvent(data="\ud800"),
        ServerSentEvent(data="x", event="\udfff"),
        ServerSentEvent(data="x", id="\ud800"),
    ],
)
def test_sse_encoder_refuses_lone_surrogates(event: ServerSentEvent) -> None:
    # Found by hypothesis: a lone surrogate has no UTF-8 form, and the
    # encoder let UnicodeEncodeError escape instead of refusing the call.
    with pytest.raises(LocalProtocolError):
        encode_event(event)
    with pytest.raises(LocalProtocolError):
        encode_comment(event.data + event.event + (event.id or ""))
