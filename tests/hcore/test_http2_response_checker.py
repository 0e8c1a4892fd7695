"""ResponseChecker answers as response_to_send does, remembering only what passed.

The server protocol checks each response block through a per-connection
:class:`ResponseChecker`; these tests compare it with
:func:`response_to_send` on the same blocks, in sequence, including the
blocks the check refuses and the ones whose types a look-up could mistake.
"""

from __future__ import annotations

from collections import UserList
from collections.abc import Sequence

from hpack import HeaderTuple, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore import LocalProtocolError
from hcore.protocols.http2._headers import ResponseChecker, response_to_send


class _Name(bytes):
    """A bytes subclass: equal to, and hashed as, the plain name."""


_NAMES = st.sampled_from(
    [b":status", b"content-type", b"x-a", b"X-Bad", b"connection", b"cookie", b"te"]
)
_VALUES = st.sampled_from([b"200", b"103", b"101", b"text/plain", b"bad\n", b"1"])
_FIELD = st.one_of(
    st.tuples(_NAMES, _VALUES),
    st.tuples(_NAMES, _VALUES).map(lambda f: [f[0], f[1]]),
    st.tuples(_NAMES, _VALUES).map(lambda f: HeaderTuple(*f)),
    st.tuples(_NAMES, _VALUES).map(lambda f: NeverIndexedHeaderTuple(*f)),
    st.tuples(_NAMES, _VALUES).map(lambda f: (_Name(f[0]), f[1])),
)
_STATUS = st.sampled_from([(b":status", b"200"), (b":status", b"103")])
_BLOCK = st.tuples(_STATUS, st.lists(_FIELD, max_size=4)).map(lambda b: [b[0], *b[1]])


def _outcome(check: object, block: object) -> object:
    try:
        fields, informational = check(block)  # type: ignore[operator]
    except LocalProtocolError as exc:
        return str(exc)
    return [(type(f), tuple(f)) for f in fields], informational


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(_BLOCK, _BLOCK.map(tuple)), max_size=20))
def test_the_checker_answers_as_response_to_send(blocks: list[object]) -> None:
    checker = ResponseChecker()
    for block in blocks + blocks:  # the second time through, from memory
        assert _outcome(checker.check, block) == _outcome(response_to_send, block)


def test_a_remembered_block_is_the_callers_own() -> None:
    checker = ResponseChecker()
    block = [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert checker.check(block) == (block, False)
    again = [(b":status", b"200"), (b"content-type", b"text/plain")]
    fields, informational = checker.check(again)
    assert fields is again and not informational
    assert len(checker._memo) == 1


def test_a_rebuilt_block_is_handed_out_fresh() -> None:
    checker = ResponseChecker()
    block = [(b":status", b"200"), (b"connection", b"close"), (b"cookie", b"a=1")]
    first, _ = checker.check(block)
    second, _ = checker.check(list(block))
    assert first == second == [(b":status", b"200"), (b"cookie", b"a=1")]
    assert first is not second
    assert type(second[1]) is NeverIndexedHeaderTuple


def test_refused_blocks_and_odd_types_are_not_remembered() -> None:
    checker = ResponseChecker()
    odd: list[Sequence[tuple[bytes, bytes]]] = [
        [(b":status", b"200"), (b"X-Bad", b"1")],
        [(b":status", b"200"), (_Name(b"x-a"), b"1")],
        [(b":status", b"200"), HeaderTuple(b"x-a", b"1")],
        ((b":status", b"200"), (b"x-a", b"1"), (b"x-b", b"2"), (b"x-c", b"3"))[:1],
        [(b":status", b"200"), (b"x-big", b"v" * 2000)],
    ]
    for block in odd[:3]:
        assert _outcome(checker.check, block) == _outcome(response_to_send, block)
    # Any other sequence is checked as response_to_send does.
    fields, _ = checker.check(UserList([(b":status", b"200")]))
    assert list(fields) == [(b":status", b"200")]
    assert checker._memo == {}
    # A tuple block is remembered; a large one is not.
    checker.check(odd[3])
    checker.check(odd[4])
    assert list(checker._memo) == [((b":status", b"200"),)]


def test_the_memory_stays_bounded() -> None:
    checker = ResponseChecker()
    for n in range(3 * ResponseChecker.MAX_ENTRIES):
        checker.check([(b":status", b"200"), (b"x-n", b"%d" % n)])
        assert 0 < len(checker._memo) <= ResponseChecker.MAX_ENTRIES
