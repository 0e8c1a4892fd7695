"""Two sans-IO TCP protocols joined by an in-memory link, for tests.

The link moves bytes between a client and a server protocol until both are
quiet.  A ``split`` function may cut every transfer into pieces, so the same
conversation can be replayed with the bytes arriving at arbitrary boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hcore.events import Event
from hcore.protocols import HTTPOverTCPProtocol

Splitter = Callable[[bytes], Sequence[bytes]]


def whole(data: bytes) -> Sequence[bytes]:
    """Deliver every transfer in one piece."""
    return [data]


class TCPPair:
    """A client and a server protocol over a lossless in-memory byte link."""

    def __init__(
        self,
        client: HTTPOverTCPProtocol,
        server: HTTPOverTCPProtocol,
        split: Splitter = whole,
    ) -> None:
        self.client = client
        self.server = server
        self.split = split
        #: Every transfer, as (``"c>s"`` or ``"s>c"``, bytes), in order.
        self.wire: list[tuple[str, bytes]] = []

    def pump(self, max_rounds: int = 10_000) -> int:
        """Move bytes both ways until neither side has anything to send.

        :return: the number of bytes moved.
        :raises AssertionError: if the sides are still talking after
            ``max_rounds`` rounds.
        """
        moved = 0
        for _ in range(max_rounds):
            to_server = self.client.bytes_to_send()
            to_client = self.server.bytes_to_send()
            if not to_server and not to_client:
                return moved
            if to_server:
                self.wire.append(("c>s", to_server))
                for piece in self.split(to_server):
                    self.server.bytes_received(piece)
            if to_client:
                self.wire.append(("s>c", to_client))
                for piece in self.split(to_client):
                    self.client.bytes_received(piece)
            moved += len(to_server) + len(to_client)
        raise AssertionError(f"link still busy after {max_rounds} rounds")

    def client_events(self) -> list[Event]:
        """Take every event the client has now."""
        return drain(self.client)

    def server_events(self) -> list[Event]:
        """Take every event the server has now."""
        return drain(self.server)


def drain(protocol: HTTPOverTCPProtocol, limit: int = 100_000) -> list[Event]:
    """Take every pending event of a protocol (bounded)."""
    events: list[Event] = []
    for _ in range(limit):
        event = protocol.next_event()
        if event is None:
            return events
        events.append(event)
    raise AssertionError(f"protocol still emitting after {limit} events")
