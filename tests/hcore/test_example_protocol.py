"""examples/protocol.py runs as it is and completes an exchange on each version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "protocol.py"


def test_protocol_example_runs_every_version() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    for heading in ("=== HTTP/1.1", "=== HTTP/2", "=== HTTP/3"):
        assert heading in out
    # Each version's client received the echoed body with the end of stream.
    finished = "client event: DataReceived(stream_id=1, data=b'Hello, world!'"
    assert out.count(finished) == 3
    assert "POST /echo HTTP/1.1" in out
