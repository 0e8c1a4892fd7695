"""Bounded fuzzing of HTTP/3, both roles, after a real QUIC handshake.

The fuzz bytes are stream payload (HTTP/3 frames, QPACK) from the peer, plus
undecryptable datagrams (see :mod:`tests.fuzz.targets`); each example costs
a handshake, so there are fewer of them.  The long run is
``tests/fuzz/run.py``.
"""

from __future__ import annotations

from hypothesis import given, settings

from tests.fuzz.strategies import fuzz_input
from tests.fuzz.targets import run_h3

FAST = settings(max_examples=25, deadline=None)


@FAST
@given(data=fuzz_input("h3-server", max_size=1024))
def test_fuzz_http3_server(data: bytes) -> None:
    run_h3(data, server=True)


@FAST
@given(data=fuzz_input("h3-client", max_size=1024))
def test_fuzz_http3_client(data: bytes) -> None:
    run_h3(data, server=False)
