"""Bounded fuzzing of HTTP/1.1, both roles, every implementation.

Random and mutated valid traffic (see :mod:`tests.fuzz.targets` for the
invariants checked); the long run is ``tests/fuzz/run.py``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.fuzz.strategies import fuzz_input
from tests.fuzz.targets import run_h1_client, run_h1_server
from tests.hcore.conftest import HTTP1FactoryMaker

# The factory fixtures are classes, the same for every example.
FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FAST
@given(data=fuzz_input("h1-server"))
def test_fuzz_http1_server(
    http1_server_factory: HTTP1FactoryMaker, data: bytes
) -> None:
    run_h1_server(http1_server_factory(), data)


@FAST
@given(data=fuzz_input("h1-client"))
def test_fuzz_http1_client(
    http1_client_factory: HTTP1FactoryMaker, data: bytes
) -> None:
    run_h1_client(http1_client_factory(), data)
