"""HPACK coders that remember the header blocks they coded without side effects.

Theory of operation: an HPACK coder's output is a function of its input and
of its dynamic table (RFC 7541 §2.3); a block that neither adds to nor
resizes the table (every field found in a table, or sent without indexing)
leaves the coder as it was.  Peers that repeat themselves -- a client
sending the same request headers, a server the same response headers --
therefore code the same bytes again and again once the first such block
has filled the table.

Each coder here owns a :class:`CountingTable`, which counts the changes made
to the dynamic table.  After a block is coded, if the count did not move,
the result is remembered under the block (encoder: the fields; decoder: the
bytes) for as long as the count stays the same; the first change forgets
everything.  A remembered result is exactly what the coder would produce
again, so using it changes nothing but the CPU spent.  The memory is
bounded by :data:`MAX_ENTRIES` entries of at most :data:`MAX_KEY` bytes of
input (decoder) or fields (encoder).

This relies on hpack changing a table only through ``HeaderTable.add`` and
the ``maxsize`` setter, which was checked for the releases :data:`MEMO`
names; with others the connection keeps hpack's own coders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import hpack
from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

__all__ = (
    "MAX_ENTRIES",
    "MAX_KEY",
    "MEMO",
    "CountingTable",
    "MemoDecoder",
    "MemoEncoder",
    "RememberedBlock",
)

#: Whether this hpack release is one the memo was checked against.
MEMO = hpack.__version__.split(".")[:2] == ["4", "2"]

#: How many blocks each coder remembers at most.
MAX_ENTRIES = 32
#: The largest block remembered: encoded bytes (decoder) or fields (encoder).
MAX_KEY = 512


class CountingTable(HeaderTable):
    """An HPACK header table that counts the changes made to it."""

    def __init__(self) -> None:
        #: Bumped on every add and every resize.
        self.changes = 0
        super().__init__()

    def add(self, name: bytes, value: bytes) -> None:
        """Add an entry (RFC 7541 §4.4), counting the change."""
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        """The table's size limit; setting it counts as a change."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class RememberedBlock:
    """Where a caller keeps one block's encoding, for :class:`MemoEncoder`.

    A caller that remembers blocks of its own (the server's response check)
    keeps their encodings here, so that a block it knows again is not
    looked up a second time by the encoder.
    """

    __slots__ = ("at", "block")

    def __init__(self) -> None:
        #: The encoding, valid while the table's change count is ``at``.
        self.block = b""
        self.at = -1


class MemoEncoder(Encoder):
    """hpack's encoder, remembering blocks that did not change its table."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: CountingTable = CountingTable()
        self._memo: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}
        self._memo_at = 0

    def encode(  # type: ignore[override]
        self, headers: Sequence[tuple[bytes, bytes]], huffman: bool = True
    ) -> bytes:
        """Encode a block of ``(name, value)`` fields, as hpack does.

        Only plain tuples are remembered: hpack's header tuple types carry
        the never-index mark, which tuple equality does not see.

        :param headers: the fields.
        :param huffman: whether literals are Huffman-coded.
        :return: the encoded block.
        """
        table = self.header_table
        if (
            not huffman
            or table.resized
            or not isinstance(headers, list | tuple)
            or len(headers) > 64
        ):
            return super().encode(headers, huffman)
        key = tuple(headers)
        size = 0
        for field in key:
            if type(field) is not tuple:
                return super().encode(headers, huffman)
            size += len(field[0]) + len(field[1])
        memo = self._memo
        changes = table.changes
        if self._memo_at != changes:
            memo.clear()
            self._memo_at = changes
        else:
            block = memo.get(key)
            if block is not None:
                return block
        block = super().encode(key, huffman)
        if table.changes == changes and size <= MAX_KEY:
            if len(memo) >= MAX_ENTRIES:
                memo.clear()
            memo[key] = block
        return block

    def encode_remembered(
        self, headers: Sequence[tuple[bytes, bytes]], place: RememberedBlock
    ) -> bytes:
        """:meth:`encode`, reusing or keeping the encoding in ``place``.

        ``place`` must belong to this very block of fields (the caller
        keeps one per block).  Its encoding is used while the table has not
        changed since it was made; a fresh encoding that left the table as
        it was is kept there.

        :param headers: the fields.
        :param place: the block's place.
        :return: the encoded block.
        """
        table = self.header_table
        changes = table.changes
        if place.at == changes and not table.resized:
            return place.block
        block = self.encode(headers)
        if table.changes == changes and not table.resized:
            place.block = block
            place.at = changes
        return block


class MemoDecoder(Decoder):
    """hpack's decoder, remembering blocks that did not change its table."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        self.header_table: CountingTable = CountingTable()
        self._memo: dict[bytes, tuple[HeaderTuple, ...]] = {}
        # The table's change count and the limits the memo holds for.
        self._memo_at: tuple[int, int, int] = (0, 0, 0)

    def remembered(self, data: bytes) -> tuple[HeaderTuple, ...] | None:
        """The fields of a block decoded before, if the memo still holds it.

        The same tuple is given to every caller: it must not be changed
        (a tuple cannot be).  ``None`` means the block must be decoded.

        :param data: the encoded block.
        :return: the fields, or ``None``.
        """
        if (
            self._memo_at[0] != self.header_table.changes
            or self._memo_at[1] != self.max_header_list_size
            or self._memo_at[2] != self.max_allowed_table_size
        ):
            return None
        return self._memo.get(data)

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        """Decode a block, as hpack does (a fresh list each time).

        :param data: the encoded block.
        :param raw: whether to return bytes rather than text.
        :return: the fields.
        :raises hpack.HPACKError: as hpack does.
        """
        if not raw or len(data) > MAX_KEY:
            return super().decode(data, raw)
        data = bytes(data)
        memo = self._memo
        state = (
            self.header_table.changes,
            self.max_header_list_size,
            self.max_allowed_table_size,
        )
        if self._memo_at != state:
            memo.clear()
            self._memo_at = state
        else:
            fields = memo.get(data)
            if fields is not None:
                return list(fields)
        decoded = list(super().decode(data, raw))
        if self.header_table.changes == state[0]:
            if len(memo) >= MAX_ENTRIES:
                memo.clear()
            memo[data] = tuple(decoded)
        return decoded
