"""The layering rules of DESIGN.md, checked on the source tree."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import hcore
import hcore_io

ROOT = Path(__file__).resolve().parent.parent
BANNED_IN_CORE = {
    "asyncio",
    "anyio",
    "trio",
    "socket",
    "select",
    "selectors",
    "threading",
    "time",
    "hcore_io",
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "hcore").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_core_imports_no_io_module(path: Path) -> None:
    bad = {
        name for name in _imported_modules(path) if name.split(".")[0] in BANNED_IN_CORE
    }
    assert not bad, f"{path} imports {sorted(bad)}"


def test_importing_core_with_every_protocol_loads_no_event_loop() -> None:
    code = (
        "import sys, hcore, hcore.protocols.http1, hcore.protocols.http2, "
        "hcore.protocols.http3;"
        "print(sorted(m for m in ('asyncio', 'anyio', 'trio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _public_modules(package: object) -> list[str]:
    path = package.__path__  # type: ignore[attr-defined]
    prefix = package.__name__ + "."  # type: ignore[attr-defined]
    names = [package.__name__]  # type: ignore[attr-defined]
    for info in pkgutil.walk_packages(path, prefix):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _public_modules(hcore) + _public_modules(hcore_io))
def test_public_modules_declare_all_and_export_what_they_list(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, tuple), f"{name} has no tuple __all__"
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.__all__ names missing {attribute}"
        value = getattr(module, attribute)
        # Type aliases cannot carry a docstring; they get a ``#:`` comment.
        if typing.get_origin(value) is not None:
            continue
        if isinstance(value, type) or inspect.isfunction(value):
            assert getattr(value, "__doc__", None), f"{name}.{attribute} has no doc"


def test_packages_ship_py_typed() -> None:
    assert (ROOT / "hcore" / "py.typed").exists()
    assert (ROOT / "hcore_io" / "py.typed").exists()
