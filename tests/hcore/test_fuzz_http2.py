"""Bounded fuzzing of HTTP/2, both roles.

Random and mutated valid traffic (see :mod:`tests.fuzz.targets` for the
invariants checked); the long run is ``tests/fuzz/run.py``.
"""

from __future__ import annotations

from hypothesis import given, settings

from tests.fuzz.strategies import fuzz_input
from tests.fuzz.targets import run_h2_client, run_h2_server

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(data=fuzz_input("h2-server", max_size=4096))
def test_fuzz_http2_server(data: bytes) -> None:
    run_h2_server(data)


@FAST
@given(data=fuzz_input("h2-client", max_size=4096))
def test_fuzz_http2_client(data: bytes) -> None:
    run_h2_client(data)
