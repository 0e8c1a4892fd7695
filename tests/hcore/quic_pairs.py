"""Two sans-IO QUIC protocols joined by a simulated network, for tests.

:class:`QUICPair` is a small discrete-event simulation: datagrams travel with a
fixed one-way delay, may be dropped or delayed further (reordering) by a
seeded random generator, and time jumps straight to the next delivery or to
the earlier of the two protocols' timers.  Nothing waits for real time, and
every loop is bounded by a step count and a simulated deadline.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.events import Event
from hcore.protocols import (
    HTTPOverQUICClientFactory,
    HTTPOverQUICProtocol,
    HTTPOverQUICServerFactory,
)

_TICK = 1e-6

CLIENT_ADDRESS: Address = ("192.0.2.1", 50000)
SERVER_ADDRESS: Address = ("198.51.100.7", 443)


@dataclass
class LinkStats:
    """What the simulated network carried."""

    #: Datagrams handed to the network, by direction ("c>s", "s>c").
    sent: dict[str, int] = field(default_factory=lambda: {"c>s": 0, "s>c": 0})
    #: Datagrams the network dropped.
    dropped: int = 0
    #: Datagrams delayed beyond the normal delay (so possibly reordered).
    reordered: int = 0
    #: Bytes delivered, both directions.
    delivered_bytes: int = 0
    #: When a datagram was last sent, by direction.
    last_sent: dict[str, float] = field(default_factory=dict)
    #: When a datagram was last delivered, by direction.
    last_delivered: dict[str, float] = field(default_factory=dict)


class QUICPair:
    """A client and a server protocol over a simulated datagram network."""

    def __init__(
        self,
        client_factory: HTTPOverQUICClientFactory,
        server_factory: HTTPOverQUICServerFactory,
        *,
        client_tls: ClientTLSConfig,
        server_tls: ServerTLSConfig,
        server_name: str = "example.test",
        delay: float = 0.005,
        loss: float = 0.0,
        reorder: float = 0.0,
        seed: int = 0,
        start: float = 1000.0,
    ) -> None:
        self.now = start
        self.delay = delay
        self.loss = loss
        self.reorder = reorder
        self.random = random.Random(seed)
        self.stats = LinkStats()
        #: Whether the network drops every datagram (a cut cable).
        self.partitioned = False
        self.client: HTTPOverQUICProtocol = client_factory(
            remote_address=SERVER_ADDRESS,
            server_name=server_name,
            tls_config=client_tls,
        )
        self.server: HTTPOverQUICProtocol = server_factory(tls_config=server_tls)
        self._in_flight: list[tuple[float, int, str, bytes]] = []
        self._sequence = 0
        self.client.clock(self.now)
        self.server.clock(self.now)

    # -- moving datagrams ------------------------------------------------------

    def _post(self, direction: str, datagram: Datagram) -> None:
        expected = SERVER_ADDRESS if direction == "c>s" else CLIENT_ADDRESS
        assert datagram.address == expected, (direction, datagram.address)
        self.stats.sent[direction] += 1
        self.stats.last_sent[direction] = self.now
        if self.partitioned or self.random.random() < self.loss:
            self.stats.dropped += 1
            return
        delay = self.delay
        if self.reorder and self.random.random() < self.reorder:
            delay += self.random.uniform(0.0, 3 * self.delay)
            self.stats.reordered += 1
        self._sequence += 1
        heapq.heappush(
            self._in_flight,
            (self.now + delay, self._sequence, direction, datagram.data),
        )

    def collect(self) -> int:
        """Put what both sides have to send on the network.

        :return: how many datagrams were collected.
        """
        count = 0
        for direction, protocol in (("c>s", self.client), ("s>c", self.server)):
            for datagram in protocol.datagrams_to_send():
                self._post(direction, datagram)
                count += 1
        return count

    def next_time(self) -> float | None:
        """When something happens next: a delivery or a timer."""
        timers = (self.client.get_timer(), self.server.get_timer())
        times = [t for t in timers if t is not None]
        if self._in_flight:
            times.append(self._in_flight[0][0])
        return min(times) if times else None

    def advance(self, when: float) -> None:
        """Move time to ``when``, fire due timers and deliver due datagrams.

        Time always moves on, by a microsecond at least, as a real clock would
        between two wake-ups: aioquic may leave a timer at the time it just
        handled (floating-point rounding of its loss-detection deadline), and
        a simulation that stood still would spin on it.
        """
        self.now = max(self.now + _TICK, when)
        self.client.clock(self.now)
        self.server.clock(self.now)
        while self._in_flight and self._in_flight[0][0] <= self.now:
            _, _, direction, data = heapq.heappop(self._in_flight)
            self.stats.delivered_bytes += len(data)
            self.stats.last_delivered[direction] = self.now
            if direction == "c>s":
                self.server.datagram_received(Datagram(data, CLIENT_ADDRESS))
            else:
                self.client.datagram_received(Datagram(data, SERVER_ADDRESS))

    def step(self) -> bool:
        """Collect, then move to the next delivery or timer.

        :return: false when nothing is in flight and no timer is set.
        """
        self.collect()
        when = self.next_time()
        if when is None:
            return False
        self.advance(when)
        return True

    @property
    def in_flight(self) -> int:
        """Datagrams on the network."""
        return len(self._in_flight)

    # -- running ---------------------------------------------------------------

    def pump(self, *, horizon: float = 0.5, max_steps: int = 200_000) -> None:
        """Run until the network is quiet.

        Quiet means nothing in flight, nothing to send, and no timer due within
        ``horizon`` seconds (idle timers are much further away).

        :raises AssertionError: if still busy after ``max_steps`` steps.
        """
        for _ in range(max_steps):
            if self.collect() == 0 and not self._in_flight:
                when = self.next_time()
                if when is None or when > self.now + horizon:
                    return
            when = self.next_time()
            if when is None:
                return
            self.advance(when)
        raise AssertionError(f"network still busy after {max_steps} steps")

    def run_until(
        self,
        done: Callable[[], bool],
        *,
        max_time: float = 60.0,
        max_steps: int = 200_000,
    ) -> None:
        """Run until ``done()`` is true, checking it after every step.

        :raises AssertionError: if not done within ``max_time`` simulated
            seconds or ``max_steps`` steps, or when nothing is left to happen.
        """
        deadline = self.now + max_time
        for _ in range(max_steps):
            if done():
                return
            if not self.step():
                raise AssertionError("nothing left to happen and not done")
            if self.now > deadline:
                raise AssertionError(f"not done after {max_time} simulated seconds")
        raise AssertionError(f"not done after {max_steps} steps")


def stream_of(event: Event) -> int:
    """The stream id of an event that has one."""
    stream_id = getattr(event, "stream_id", None)
    assert isinstance(stream_id, int), event
    return stream_id


def drain(protocol: HTTPOverQUICProtocol, limit: int = 100_000) -> list[Event]:
    """Take every pending event of a protocol (bounded)."""
    events: list[Event] = []
    for _ in range(limit):
        event = protocol.next_event()
        if event is None:
            return events
        events.append(event)
    raise AssertionError(f"protocol still emitting after {limit} events")


@dataclass(frozen=True)
class TLSFiles:
    """A test CA and certificates it issued, as PEM files."""

    #: The CA certificate.
    ca_file: str
    #: The server's chain (for ``example.test`` and ``127.0.0.1``).
    server_cert: str
    #: The server's key.
    server_key: str
    #: A client certificate chain and key in one file (key first).
    client_combined: str
    #: Another CA, which issued nothing here.
    other_ca_file: str

    def server(self, **changes: Any) -> ServerTLSConfig:
        """A server config presenting the server certificate."""
        config = ServerTLSConfig(certfile=self.server_cert, keyfile=self.server_key)
        return dataclasses.replace(config, **changes)

    def client(self, **changes: Any) -> ClientTLSConfig:
        """A client config trusting the test CA."""
        return dataclasses.replace(ClientTLSConfig(cafile=self.ca_file), **changes)


def make_tls_files(directory: Path) -> TLSFiles:
    """Make a CA, a server and a client certificate in ``directory``."""
    ca = trustme.CA()
    server = ca.issue_cert("example.test", "127.0.0.1")
    client = ca.issue_cert("client@example.test")
    other = trustme.CA()
    paths = {
        name: str(directory / f"{name}.pem")
        for name in ("ca", "cert", "key", "client", "other")
    }
    ca.cert_pem.write_to_path(paths["ca"])
    other.cert_pem.write_to_path(paths["other"])
    with open(paths["cert"], "wb") as file:
        for blob in server.cert_chain_pems:
            file.write(blob.bytes())
    server.private_key_pem.write_to_path(paths["key"])
    client.private_key_and_cert_chain_pem.write_to_path(paths["client"])
    return TLSFiles(
        ca_file=paths["ca"],
        server_cert=paths["cert"],
        server_key=paths["key"],
        client_combined=paths["client"],
        other_ca_file=paths["other"],
    )
