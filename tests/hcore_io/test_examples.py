"""The examples run as they are: in-process self-tests on asyncio and Trio, and CLIs.

Each example has a ``self_test()`` (also reachable as ``--self-test``); the
server and client examples are also run as programs against each other.
Examples on sockets run on both socket backends (their ``--networking``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# The examples import the packages of this checkout, however they are installed.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["1", "2", "3", "alpn", "all"])
async def test_custom_server_self_test(version: str, networking_backend: str) -> None:
    with anyio.fail_after(30):
        page = await _load("custom_server").self_test(version, networking_backend)
    expected = {"1": "HTTP/1.1", "3": "HTTP/3"}.get(version, "HTTP/2")
    assert page.startswith(f"{expected} POST /self-test: 5 bytes, sha256 2cf24dba")


@pytest.mark.anyio
async def test_custom_client_self_test() -> None:
    with anyio.fail_after(30):
        pages = await _load("custom_client").self_test()
    assert pages.splitlines() == [
        "https://localhost/ --version alpn: 200 hello over HTTP/2",
        "https://localhost/ --version 1: 200 hello over HTTP/1.1",
        "http://localhost/ --version 2: 200 hello over HTTP/2",
        "https://localhost/ --version 3: 200 hello over HTTP/3",
    ]


@pytest.mark.anyio
async def test_custom_networking_self_test(networking_backend: str) -> None:
    with anyio.fail_after(30):
        report = await _load("custom_networking").self_test(networking_backend)
    lines = report.splitlines()
    assert [line.split(":")[0] for line in lines] == ["HTTP/1.1", "HTTP/2", "HTTP/3"]
    assert all("body 100000 bytes" in line for line in lines)


@pytest.mark.anyio
async def test_custom_protocol_self_test() -> None:
    with anyio.fail_after(30):
        log = await _load("custom_protocol").self_test()
    for version in ("HTTP/1.1", "HTTP/2"):
        assert f"{version} event  HeadersReceived(stream_id=1" in log
        assert f"{version} submit 5 bytes on 1" in log


@pytest.fixture
def server_process(
    tmp_path: Path, networking_backend: str
) -> Iterator[tuple[int, Path]]:
    """``custom_server.py --version all`` on a free port, and its CA file."""
    ca_file = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "custom_server.py"),
            "--version",
            "all",
            "--ca-out",
            str(ca_file),
            "--backend",
            "trio",
            "--networking",
            networking_backend,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on https://127.0.0.1:"), line
        port = int(line.split(":")[2].split("/")[0])
        yield port, ca_file
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize("version", ["1", "2", "3", "alpn"])
def test_custom_client_fetches_from_custom_server(
    server_process: tuple[int, Path], version: str, networking_backend: str
) -> None:
    port, ca_file = server_process
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "custom_client.py"),
            f"https://localhost:{port}/cli",
            "--version",
            version,
            "--cacert",
            str(ca_file),
            "--data",
            "hello",
            "--networking",
            networking_backend,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    expected = {"1": "HTTP/1.1", "3": "HTTP/3"}.get(version, "HTTP/2")
    assert result.stdout.startswith(f"{expected} POST /cli: 5 bytes, sha256 2cf24dba")
    assert "content-type: text/plain" in result.stderr


@pytest.mark.parametrize(
    ("example", "options"),
    [
        ("custom_client", []),
        ("custom_networking", ["--networking", "system"]),
        ("custom_networking", ["--networking", "epoll"]),
        ("custom_protocol", []),
        ("custom_server", ["--networking", "epoll", "--version", "2"]),
    ],
)
def test_self_test_flag_on_trio(example: str, options: list[str]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / f"{example}.py"),
            "--self-test",
            "--backend",
            "trio",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    assert "HTTP/2" in result.stdout
