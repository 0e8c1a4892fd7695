"""Hypothesis strategies for the fuzz targets: random bytes and mutated seeds."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz.targets import mutate, seed_inputs


def fuzz_input(target: str, max_size: int = 2048) -> st.SearchStrategy[bytes]:
    """Random bytes, or a valid input of ``target`` with a few edits."""
    edits = st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
    return st.one_of(
        st.binary(max_size=max_size),
        st.builds(mutate, st.sampled_from(list(seed_inputs(target))), edits),
        st.sampled_from(list(seed_inputs(target))),
    )
