"""The documentation: it builds without warnings, its reference covers every
public name, and every code sample in it runs.

Code samples live in ``docs/examples/`` and the pages include them, so the
code the reader sees is the code these tests run; a Python block written
inline in a page would escape the tests, so there are none.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import posixpath
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sphinx.util.inventory import InventoryFile

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"

#: Samples that are a server and a client: the server prints
#: ``serving on URL`` and runs until stopped; the client is run with URLs.
PAIRS = {"quickstart_server.py": "quickstart_client.py"}


def public_modules() -> list[ModuleType]:
    """Every public module of both packages (no part of its name private)."""
    modules = []
    for name in ("hcore", "hcore_io"):
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                modules.append(importlib.import_module(info.name))
    return modules


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML site once, warnings being errors."""
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going"),
            *("-q", "-d", str(out / "doctrees"), str(DOCS), str(out / "html")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out / "html"


def test_docs_build_without_warnings(built_docs: Path) -> None:
    assert (built_docs / "index.html").is_file()


def test_every_public_name_is_in_the_reference(built_docs: Path) -> None:
    with (built_docs / "objects.inv").open("rb") as file:
        inventory = InventoryFile.load(file, "", posixpath.join)
    documented = {
        name
        for kind, items in inventory.items()
        if kind.startswith("py:")
        for name in items
    }
    homes: dict[int, str] = {}
    for module in public_modules():
        for name in module.__all__:
            qualified = f"{module.__name__}.{name}"
            if qualified in documented:
                homes[id(getattr(module, name))] = qualified
    missing = []
    for module in public_modules():
        for name in module.__all__:
            # A re-export counts where the object it names is documented.
            qualified = f"{module.__name__}.{name}"
            if qualified not in documented and id(getattr(module, name)) not in homes:
                missing.append(qualified)
    assert missing == []


def test_every_public_class_and_function_has_a_docstring() -> None:
    undocumented = [
        f"{module.__name__}.{name}"
        for module in public_modules()
        for name in module.__all__
        if (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
        and not inspect.getdoc(obj)
    ]
    assert undocumented == []


def test_pages_include_their_python_samples_from_files() -> None:
    pages = sorted(DOCS.rglob("*.md"))
    assert pages
    inline = [str(p.relative_to(DOCS)) for p in pages if "```python" in p.read_text()]
    assert inline == [], "put Python samples in docs/examples and include them"
    included = set()
    for page in pages:
        for target in re.findall(r"literalinclude\}\s+(\S+)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} includes a missing {target}"
            included.add(path.name)
    samples = {p.name for p in EXAMPLES.glob("*.py")}
    assert samples - included == set(), "samples no page shows"


def run_sample(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in EXAMPLES.glob("*.py")
        if p.name not in PAIRS and p.name not in PAIRS.values()
    ),
)
def test_sample_runs(name: str) -> None:
    assert run_sample(name)


@pytest.mark.parametrize("server_name", sorted(PAIRS))
def test_server_sample_serves_its_client_sample(server_name: str) -> None:
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / server_name), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert line.startswith("serving on "), line
            url = line.split()[-1]
            out = run_sample(PAIRS[server_name], f"{url}/a", f"{url}/b")
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert out.count("200 HTTP/1.1 hello over HTTP/1.1") == 2
