"""The package's shape, read from its source: who imports whom, and who touches what.

p1 (the meter side, free of Home Assistant) <- connection <- coordinator <- entities: no import
cycles (imports under TYPE_CHECKING count: they are a cycle in disguise); the p1 package imports
nothing from Home Assistant, not even through other modules, and nothing from the Home Assistant
side (nothing is imported upward); entity modules never import the connection module nor reach
`runtime_data.connection`; the connection never imports what sits on it; no module uses
dsmr_parser's private names; one module opens ports.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from functools import cache
from pathlib import Path

import dsmr_parser
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "custom_components" / "dsmr"
PREFIX = "custom_components.dsmr"
P1 = "p1"  # the meter side: a package of its own

# Modules with entity classes, and their platforms.
ENTITY_MODULES = ["sensor", "binary_sensor", "entity", "submeters", "generic"]
CONNECTION = "connection"
# The connection and what recognizes a meter through it: below the coordinator.
CONNECTION_SIDE = [CONNECTION, "detect"]
# What sits on the connection: the connection side never imports these (not even through others).
ABOVE_CONNECTION = {
    "__init__",
    "coordinator",
    "repairs",
    "diagnostics",
    "config_flow",
    "migration",
    "policy",
    "sharing",
    "yaml_import",
    *ENTITY_MODULES,
}
# Below the connection: what every side may import.
BELOW_CONNECTION = {"const"}
# dsmr_parser's undocumented attribute of its parser (the compiled expressions).
DSMR_PARSER_UNDOCUMENTED = {"telegram_specification_regexes"}


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_path(module).read_text(), str(_path(module)))


def _path(module: str) -> Path:
    """A module's file: '__init__' is the package, 'p1' its p1 package, 'p1.x' a module of it."""
    if module == "__init__":
        return PACKAGE / "__init__.py"
    if (PACKAGE / module.replace(".", "/")).is_dir():
        return PACKAGE / module.replace(".", "/") / "__init__.py"
    return PACKAGE / f"{module.replace('.', '/')}.py"


@cache
def _modules() -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            found.append("__init__")
        elif parts[-1] == "__init__":
            found.append(".".join(parts[:-1]))
        else:
            found.append(".".join(parts))
    return sorted(found)


def _is_package(module: str) -> bool:
    return module == "__init__" or _path(module).name == "__init__.py"


def _named(dotted: str) -> str | None:
    """Our module for a dotted name relative to the package ('' is the package); None if none."""
    if not dotted:
        return "__init__"
    return dotted if dotted in _modules() else None


def _resolve(module: str, level: int, name: str) -> str:
    """The dotted name (relative to the package) of `from <level dots><name>` in `module`."""
    if module == "__init__":
        base: list[str] = []
    else:
        base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def _imported(module: str) -> Iterator[tuple[str, bool]]:
    """(name, is ours) of everything a module imports, anywhere in it (TYPE_CHECKING too)."""
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _absolute(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                dotted = _resolve(module, node.level, node.module or "")
            elif node.module == PREFIX or (node.module or "").startswith(PREFIX + "."):
                dotted = (node.module or "").removeprefix(PREFIX).removeprefix(".")
            else:
                yield node.module or "", False
                continue
            # from .p1 import values: the module p1.values, else the package p1
            for alias in node.names:
                inner = f"{dotted}.{alias.name}" if dotted else alias.name
                ours = _named(inner) or _named(dotted)
                assert ours is not None, f"{module} imports {dotted} ({alias.name}): not ours"
                yield ours, True


def _absolute(name: str) -> tuple[str, bool]:
    if name == PREFIX or name.startswith(PREFIX + "."):
        ours = _named(name.removeprefix(PREFIX).removeprefix("."))
        assert ours is not None, name
        return ours, True
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


def _p1_modules() -> list[str]:
    return [m for m in _modules() if m == P1 or m.startswith(P1 + ".")]


def test_the_graph_sees_the_package() -> None:
    graph = _graph()
    assert {"__init__", CONNECTION, "coordinator", "sensor", "p1", "p1.telegram"} <= set(graph)
    assert {"p1.framing", "p1.snapshot", "p1.values", "p1.rebroadcast"} <= set(graph)
    assert "coordinator" in graph["__init__"]
    assert "p1.values" in graph["sensor"]  # from .p1 import values
    assert {"p1.framing", "p1.telegram"} <= graph[CONNECTION]
    assert {"p1.telegram", "p1.demand"} <= graph["p1.snapshot"]  # relative inside p1
    assert CONNECTION in graph["coordinator"]  # TYPE_CHECKING: Connection
    assert "coordinator" in graph["entity"]  # DsmrConfigEntry, DsmrCoordinator


def test_every_module_has_a_side() -> None:
    """A new module is placed: below, the connection side, or above it (or in p1)."""
    sides = {*_p1_modules(), *BELOW_CONNECTION, *CONNECTION_SIDE, *ABOVE_CONNECTION}
    assert set(_modules()) == sides


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("module", _p1_modules())
def test_p1_imports_nothing_from_home_assistant(module: str) -> None:
    reached = {
        f"{ours_module} imports {name}"
        for ours_module in _closure(module)
        for name, ours in _imported(ours_module)
        if not ours and name.split(".")[0] == "homeassistant"
    }
    assert reached == set()


@pytest.mark.parametrize("module", _p1_modules())
def test_p1_imports_nothing_upward(module: str) -> None:
    """The meter side never imports the Home Assistant side (not even its constants)."""
    assert _closure(module) <= set(_p1_modules())


@pytest.mark.parametrize("module", ENTITY_MODULES)
def test_entity_modules_do_not_import_the_connection(module: str) -> None:
    assert CONNECTION not in _graph()[module]


@pytest.mark.parametrize("module", ENTITY_MODULES)
def test_entity_modules_do_not_reach_the_connection(module: str) -> None:
    reached = {
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Attribute) and node.attr == CONNECTION
    }
    assert reached == set()


@pytest.mark.parametrize("module", CONNECTION_SIDE)
def test_the_connection_does_not_import_what_sits_on_it(module: str) -> None:
    assert _closure(module) & ABOVE_CONNECTION == set()


@cache
def _dsmr_parser_private() -> frozenset[str]:
    """The private names dsmr_parser defines: functions, classes, attributes, module names."""
    names: set[str] = set()
    for path in Path(dsmr_parser.__file__).parent.rglob("*.py"):
        names.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


@cache
def _defined_by_us() -> frozenset[str]:
    """Names our package defines itself (its own `_closed` is not dsmr_parser's)."""
    names: set[str] = set()
    for module in _modules():
        for node in ast.walk(_tree(module)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return frozenset(names)


def _dsmr_parser_names_used(tree: ast.Module) -> set[str]:
    """dsmr_parser's private and undocumented names a module touches."""
    touched: set[str] = set()
    watched = _dsmr_parser_private() - _defined_by_us() | DSMR_PARSER_UNDOCUMENTED
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dsmr_parser"):
            parts = (node.module or "").split(".")
            touched |= {p for p in parts if p.startswith("_")}
            touched |= {a.name for a in node.names if a.name.startswith("_")}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dsmr_parser"):
                    touched |= {p for p in alias.name.split(".") if p.startswith("_")}
        elif isinstance(node, ast.Attribute) and node.attr in watched:
            touched.add(node.attr)
        elif isinstance(node, ast.Constant) and node.value in watched:
            touched.add(str(node.value))  # getattr(obj, "_name"): as good as the attribute
    return touched


def test_the_private_names_are_known() -> None:
    """The check below knows what it looks for (names the old adapter used)."""
    private = _dsmr_parser_private()
    assert {"_create_dsmr_protocol", "_item_names", "_mbus_devices", "_add_mbus"} <= private


@pytest.mark.parametrize("module", _modules())
def test_no_dsmr_parser_private_names(module: str) -> None:
    assert _dsmr_parser_names_used(_tree(module)) == set()


def test_private_names_would_be_seen() -> None:
    """The check sees an import, a getattr, an attribute, the undocumented regexes."""
    source = (
        "from dsmr_parser.clients.protocol import _create_dsmr_protocol\n"
        "x = telegram._mbus_devices\n"
        "y = getattr(telegram, '_item_names')\n"
        "z = parser.telegram_specification_regexes\n"
    )
    assert _dsmr_parser_names_used(ast.parse(source)) == {
        "_create_dsmr_protocol",
        "_mbus_devices",
        "_item_names",
        "telegram_specification_regexes",
    }


@pytest.mark.parametrize("module", _modules())
def test_only_the_connection_opens_a_port(module: str) -> None:
    opens = {
        name
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("serialx")
        for name in (alias.name for alias in node.names)
        if name.startswith("create_") or name in {"open_serial_connection", "Serial"}
    }
    assert opens == (set() if module != CONNECTION else {"create_serial_connection"})


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
