"""Counters a pool keeps about itself and each of its connections."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

__all__ = ("ConnectionMetrics", "ConnectionState", "PoolMetrics")


class ConnectionState(enum.Enum):
    """Where a pooled connection is in its life."""

    #: Being opened.
    CONNECTING = "connecting"
    #: Open, no request running.
    IDLE = "idle"
    #: Open, running at least one request.
    ACTIVE = "active"
    #: Closed (by either side, or after a failure).
    CLOSED = "closed"


@dataclass
class ConnectionMetrics:
    """What one pooled connection did."""

    #: ``scheme://host:port`` of the origin it serves.
    origin: str
    #: ``"1.1"``, ``"2"`` or ``"3"``; empty while connecting.
    http_version: str = ""
    #: Its state now.
    state: ConnectionState = ConnectionState.CONNECTING
    #: Requests started on it.
    requests: int = 0
    #: Requests that failed (network errors, resets, timeouts).
    errors: int = 0
    #: Bytes written to the network stream (TLS plaintext; QUIC datagrams).
    bytes_sent: int = 0
    #: Bytes read from the network stream.
    bytes_received: int = 0
    #: Seconds from each request's start to the end of its response, summed.
    total_request_time: float = 0.0
    #: Requests whose response was read to its end (or failed).
    completed: int = 0

    @property
    def average_request_time(self) -> float:
        """Mean seconds per finished request (0 before any)."""
        return self.total_request_time / self.completed if self.completed else 0.0

    @property
    def error_rate(self) -> float:
        """Failed requests over requests started (0 before any)."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class PoolMetrics:
    """What a pool did, and a view of its connections."""

    #: Connections opened (successfully) over the pool's life.
    created: int = 0
    #: Connections closed over the pool's life.
    closed: int = 0
    #: Requests handled (started) over the pool's life.
    requests: int = 0
    #: Metrics of the connections open (or opening) now.
    connections: list[ConnectionMetrics] = field(default_factory=list)

    @property
    def total_connections(self) -> int:
        """Connections open or opening now."""
        return len(self.connections)

    @property
    def connections_per_host(self) -> dict[str, int]:
        """Connections open or opening now, by origin."""
        return dict(Counter(metrics.origin for metrics in self.connections))
