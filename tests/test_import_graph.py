"""The package's shape, read from its source: who imports whom, and who touches what.

connection (ports, dsmr_parser adapter, parser, protocol, reader, counters) -> coordinator ->
entities: no import cycles (imports under TYPE_CHECKING count: they are a cycle in disguise), pure modules
that import nothing from Home Assistant (tested without it), entity modules that never import
the connection or reach into the reader, connection modules that never import what sits on top
of them, one module that opens ports and one that touches dsmr_parser's private names.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "custom_components" / "dsmr"
PREFIX = "custom_components.dsmr"

# Modules that must import nothing from homeassistant, not even through other modules of ours.
# (units.py is Home Assistant's view of a line's unit, its constants and device classes, by
# role: the snapshot carries the unit as the line sends it, and entities map it.)
PURE = ["snapshot", "policy", "derived", "demand", "flow"]
# Modules with entity classes, and their platforms.
ENTITY_MODULES = [
    "sensor",
    "binary_sensor",
    "entity",
    "health",
    "generic",
    "mbus",
]
# The connection: what an entity must never import (it reads the coordinator's data).
CONNECTION = {
    "reader",
    "protocol",
    "counters",
    "ports",
    "dsmr_library",
    "parser",
    "decryption",
    "values",
    "checksum",
}
CONNECTION_SIDE = sorted(CONNECTION | {"detect", "identify"})
# What sits on top of the connection: the connection never imports these.
ABOVE_CONNECTION = {
    "__init__",
    "coordinator",
    "issues",
    "diagnostics",
    "config_flow",
    "descriptions",
    "derived_descriptions",
    *ENTITY_MODULES,
}
# Attributes through which an entity would reach the connection or its counters.
READER_ATTRIBUTES = {"reader", "stats"}
# dsmr_parser's private names (and its undocumented ones) we rely on: dsmr_library.py only.
DSMR_PARSER_PRIVATE = {
    "_create_dsmr_protocol",
    "_item_names",
    "_mbus_devices",
    "_add_mbus",
    "_SYSTEM_TZ",
    "_encrypted",
    "_encryption_key",
    "_authentication_key",
    "_closed",
    "_take_frame",
    "telegram_specification_regexes",
}

ISSUE_16 = "issue 16 (redesign branch) removes this"
# Rules the code broke when the test was written, each removed by the redesign (issue 16):
# strict, so the mark has to go when that work lands. (All gone with it.)
KNOWN: dict[tuple[str, str], str] = {}


def _known(rule: str, module: str = "") -> pytest.MarkDecorator | tuple[()]:
    if (rule, module) in KNOWN:
        return pytest.mark.xfail(strict=True, reason=f"{ISSUE_16}: {KNOWN[rule, module]}")
    return ()


def _cases(rule: str, modules: list[str]) -> list[object]:
    return [pytest.param(module, marks=_known(rule, module)) for module in modules]


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text(), f"{module}.py")


def _modules() -> list[str]:
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def _imported(module: str) -> Iterator[tuple[str, bool]]:
    """(name, is ours) of everything a module imports, anywhere in it."""
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _ours(alias.name, 0, module)
        elif isinstance(node, ast.ImportFrom):
            if node.level and not node.module:  # from . import X: the package, or its module X
                for alias in node.names:
                    ours = alias.name if (PACKAGE / f"{alias.name}.py").exists() else "__init__"
                    yield ours, True
            else:
                yield _ours(node.module or "", node.level, module)


def _ours(name: str, level: int, module: str) -> tuple[str, bool]:
    if level:
        return name.split(".", maxsplit=1)[0], True
    if name == PREFIX:
        return "__init__", True
    if name.startswith(PREFIX + "."):
        return name.removeprefix(PREFIX + ".").split(".")[0], True
    return name, False


@cache
def _graph() -> dict[str, frozenset[str]]:
    return {
        module: frozenset(name for name, ours in _imported(module) if ours and name != module)
        for module in _modules()
    }


def _closure(module: str) -> set[str]:
    seen = {module}
    todo = [module]
    while todo:
        for other in _graph()[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _cycles(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """Import cycles: from each module the shortest way back to it, once per cycle."""
    found: list[list[str]] = []
    for start in graph:
        paths = [[start]]
        seen = {start}
        while paths:
            path = paths.pop(0)
            for other in sorted(graph[path[-1]]):
                if other == start:
                    cycle = [*path, start]
                    if min(path) == start:
                        found.append(cycle)
                    paths.clear()
                    break
                if other not in seen:
                    seen.add(other)
                    paths.append([*path, other])
    return found


def test_the_graph_sees_the_package() -> None:
    graph = _graph()
    assert {"reader", "coordinator", "sensor", "dsmr_library", "__init__"} <= set(graph)
    assert "coordinator" in graph["__init__"]
    assert "ports" in graph["reader"]
    assert "coordinator" in graph["entity"]  # DsmrConfigEntry, DsmrCoordinator


@pytest.mark.parametrize("_", [pytest.param("all", marks=_known("cycles"), id="package")])
def test_no_import_cycles(_: str) -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("module", _cases("pure", PURE))
def test_pure_modules_import_nothing_from_home_assistant(module: str) -> None:
    reached = {
        f"{ours_module} imports {name}"
        for ours_module in _closure(module)
        for name, ours in _imported(ours_module)
        if not ours and name.split(".")[0] == "homeassistant"
    }
    assert reached == set()


@pytest.mark.parametrize("module", _cases("imports", ENTITY_MODULES))
def test_entity_modules_do_not_import_the_connection(module: str) -> None:
    assert _graph()[module] & CONNECTION == set()


@pytest.mark.parametrize("module", _cases("reach", ENTITY_MODULES))
def test_entity_modules_do_not_reach_into_the_reader(module: str) -> None:
    reached = {
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Attribute) and node.attr in READER_ATTRIBUTES
    }
    assert reached == set()


@pytest.mark.parametrize("module", CONNECTION_SIDE)
def test_the_connection_does_not_import_what_sits_on_it(module: str) -> None:
    assert _graph()[module] & ABOVE_CONNECTION == set()


@pytest.mark.parametrize("module", _modules())
def test_dsmr_parser_private_names_only_in_the_adapter(module: str) -> None:
    names: set[str] = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dsmr_parser"):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
    own = {  # a module's own function of the same name is not dsmr_parser's
        node.name for node in ast.walk(_tree(module)) if isinstance(node, ast.FunctionDef)
    }
    touched = names & DSMR_PARSER_PRIVATE - own
    if module == "dsmr_library":
        assert touched  # the adapter is where they are (so this test sees them)
    else:
        assert touched == set()


@pytest.mark.parametrize("module", _modules())
def test_only_ports_opens_a_port(module: str) -> None:
    opens = {
        name
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("serialx")
        for name in (alias.name for alias in node.names)
        if name.startswith("create_") or name in {"open_serial_connection", "Serial"}
    }
    assert opens == (set() if module != "ports" else {"create_serial_connection"})


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
