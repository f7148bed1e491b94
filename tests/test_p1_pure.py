"""The meter side, custom_components/dsmr/p1, is free of Home Assistant.

Its modules import each other and libraries, never Home Assistant, nor the integration's modules
outside the package (which do). Checked twice: on the source (every import statement, followed
through the package), and by importing every module with the integration's own package left
out, in a fresh interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import pytest

P1 = Path(__file__).parents[1] / "custom_components" / "dsmr" / "p1"
PACKAGE = "custom_components.dsmr.p1"
MODULES = sorted(path.stem for path in P1.glob("*.py"))


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance here."""


def imports_of(source: str, package: str) -> set[str]:
    """The absolute names a module of `package` imports (relative ones resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                found.add(str(node.module))
                continue
            base = package.rsplit(".", node.level - 1)[0]
            name = f"{base}.{node.module}" if node.module else base
            found.add(name)
            if not node.module:  # `from . import x`: x may be a module
                found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def imports(name: str) -> set[str]:
    """What the p1 module `name` (dotted, absolute) imports."""
    module = name.removeprefix(PACKAGE).removeprefix(".") or "__init__"
    return imports_of((P1 / f"{module}.py").read_text(encoding="utf-8"), PACKAGE)


def reachable() -> dict[str, set[str]]:
    """Every p1 module reached from the package's modules, and what each imports."""
    graph: dict[str, set[str]] = {}
    todo = [PACKAGE if name == "__init__" else f"{PACKAGE}.{name}" for name in MODULES]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        graph[name] = imports(name)
        todo += [
            i
            for i in graph[name]
            if i.startswith(f"{PACKAGE}.") and (P1 / f"{i.rsplit('.', 1)[1]}.py").exists()
        ]
    return graph


def problems(graph: dict[str, set[str]]) -> list[str]:
    """Imports of Home Assistant, or of the integration outside p1 (which imports it)."""
    found = []
    for name, imported in sorted(graph.items()):
        for i in sorted(imported):
            if i.split(".")[0] == "homeassistant":
                found.append(f"{name} imports {i}")
            elif i.startswith("custom_components") and not (
                i == PACKAGE or i.startswith(f"{PACKAGE}.")
            ):
                found.append(f"{name} imports {i}, outside the package")
    return found


def test_the_modules_are_found() -> None:
    assert {"framing", "telegram", "snapshot", "values", "demand", "flow_rate"} <= set(MODULES)
    assert "rebroadcast" in MODULES


def test_no_module_imports_home_assistant() -> None:
    """Followed through the package: libraries and p1's own modules only."""
    graph = reachable()
    assert len(graph) == len(MODULES)
    assert problems(graph) == []


def test_the_check_is_not_vacuous() -> None:
    """A relative import out of p1 and an import of Home Assistant are both found."""
    source = (
        "from ..coordinator import DsmrCoordinator\n"
        "from homeassistant.core import HomeAssistant\n"
        "from . import telegram\n"
        "from .snapshot import Window\n"
    )
    imported = imports_of(source, PACKAGE)
    assert f"{PACKAGE}.telegram" in imported
    assert f"{PACKAGE}.snapshot" in imported
    assert problems({f"{PACKAGE}.bad": imported}) == [
        f"{PACKAGE}.bad imports custom_components.dsmr.coordinator, outside the package",
        f"{PACKAGE}.bad imports homeassistant.core",
    ]


CHECK = f"""
import importlib, sys, types
# The integration's package imports Home Assistant: stand-ins for it and its parent, so that
# only p1's own files are executed.
for name, path in (("custom_components", {str(P1.parents[1])!r}),
                   ("custom_components.dsmr", {str(P1.parent)!r})):
    stand_in = types.ModuleType(name)
    stand_in.__path__ = [path]
    sys.modules[name] = stand_in
for module in {[m for m in MODULES if m != "__init__"]!r}:
    importlib.import_module("{PACKAGE}." + module)
loaded = sorted(n for n in sys.modules if n.split(".")[0] == "homeassistant")
print("loaded:", loaded)
"""


def test_the_modules_import_without_home_assistant() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "loaded: []", done.stdout + done.stderr
