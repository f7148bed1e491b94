"""The integration's translations: translations/en.json made from strings.json, and checks.

    scripts/run python -m dsmr_dev.translations           rewrite translations/en.json
    scripts/run python -m dsmr_dev.translations --check   exit 1 when en.json is out of date

strings.json is the source of the English text. It may reference Home Assistant's common
strings (``[%key:common::config_flow::data::host%]``) and its own keys
(``[%key:component::dsmr::config::error::cannot_connect%]``). Home Assistant loads a custom
integration's translations/<language>.json as they are, so, as Home Assistant's own build does
for core integrations, en.json is strings.json with every reference replaced by its text (the
common strings come from the installed homeassistant package's strings.json). The other
languages (nl.json, fr.json, ...) are written by hand with the same keys, already resolved.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import string
import sys
from typing import Any

import homeassistant

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "dsmr"
INTEGRATION = ROOT / "custom_components" / DOMAIN
STRINGS = INTEGRATION / "strings.json"
TRANSLATIONS = INTEGRATION / "translations"
HA_STRINGS = Path(homeassistant.__file__).parent / "strings.json"
HA_COMPONENTS = Path(homeassistant.__file__).parent / "components"

_REFERENCE = re.compile(r"\[%key:([a-z0-9_:\-]+)%\]")

type Tree = dict[str, Any]


def load(path: Path) -> Tree:
    """A JSON object from a file."""
    data: Tree = json.loads(path.read_text(encoding="utf-8"))
    return data


def dump(data: Tree) -> str:
    """JSON as this repository writes translation files: 2 spaces, UTF-8, final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def flatten(tree: Tree, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": "text"}}`` -> ``{"a.b": "text"}`` (keys are translation keys: no dots)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def placeholders(text: str) -> set[str]:
    """The ``{placeholders}`` of a string, parsed as Home Assistant does (string.Formatter)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def references(text: str) -> list[str]:
    """The ``[%key:...%]`` references in a string, e.g. ``["common::state::low"]``."""
    return _REFERENCE.findall(text)


def _lookup(sources: dict[str, Tree], reference: str) -> str:
    root, *path = reference.split("::")
    node: Any = sources[root]
    for part in path:
        node = node[part]
    if not isinstance(node, str):
        raise KeyError(reference)
    return node


def resolve(strings: Tree, common: Tree | None = None) -> Tree:
    """``strings`` with every reference replaced by the text it names (references may nest)."""
    sources: dict[str, Tree] = {
        "common": (common if common is not None else load(HA_STRINGS))["common"],
        "component": {DOMAIN: strings},
    }

    def text(value: str, seen: tuple[str, ...]) -> str:
        for reference in references(value):
            if reference in seen:
                raise ValueError(f"reference loop: {' -> '.join((*seen, reference))}")
            try:
                target = _lookup(sources, reference)
            except KeyError:
                raise ValueError(f"unknown reference [%key:{reference}%]") from None
            value = value.replace(f"[%key:{reference}%]", text(target, (*seen, reference)))
        return value

    def walk(tree: Tree) -> Tree:
        return {
            key: walk(value) if isinstance(value, dict) else text(value, ())
            for key, value in tree.items()
        }

    return walk(strings)


def english() -> str:
    """The text en.json must have."""
    return dump(resolve(load(STRINGS)))


def languages() -> list[str]:
    """The languages with a translation file, English first."""
    found = sorted(path.stem for path in TRANSLATIONS.glob("*.json"))
    return sorted(found, key=lambda language: language != "en")


def main(argv: list[str]) -> int:
    """Rewrite en.json, or with ``--check`` only say whether it is up to date."""
    target = TRANSLATIONS / "en.json"
    wanted = english()
    if "--check" in argv:
        if target.read_text(encoding="utf-8") != wanted:
            print(f"{target} is out of date: run python -m dsmr_dev.translations", file=sys.stderr)
            return 1
        return 0
    target.write_text(wanted, encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
