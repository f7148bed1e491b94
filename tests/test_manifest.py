"""manifest.json, hacs.json and the repository layout, as hassfest and HACS check them.

The rules, and where they are written down:

* Integration manifest, https://developers.home-assistant.io/docs/creating_integration_manifest/
  (the `domain` matches the directory; `version` is required for custom integrations and must be
  a version AwesomeVersion recognizes, like CalVer or SemVer; USB matchers are made of `vid`,
  `pid`, `serial_number`, `manufacturer` and `description`, and a VID/PID pair that many unrelated
  devices share, like Silicon Labs' CP2102 10C4:EA60, must also match on `description`).
* Home Assistant's manifest JSON schema, script/json_schemas/manifest_schema.json in
  home-assistant/core (linked from that page): `vid`/`pid` are four upper-case hex digits, the
  matcher allows no other keys, `codeowners` are `@` handles, `iot_class` and `integration_type`
  come from fixed lists.
* hassfest, the check every custom integration's CI runs (its errors are its documentation):
  "[MANIFEST] Manifest keys are not sorted correctly: domain, name, then alphabetical order";
  "[CONFIG_SCHEMA] Integrations which implement 'async_setup' or 'setup' must define either
  'CONFIG_SCHEMA', 'PLATFORM_SCHEMA' or 'PLATFORM_SCHEMA_BASE'" (helpers:
  cv.empty_config_schema, cv.platform_only_config_schema, cv.config_entry_only_config_schema);
  a custom integration's `documentation` is https and not home-assistant.io/integrations;
  requirements have no spaces.
* HACS, https://hacs.xyz/docs/publish/integration/ (manifest.json must define domain,
  documentation, issue_tracker, codeowners, name and version; one directory in
  custom_components/; brand assets: a brand/ directory with at least icon.png) and
  https://hacs.xyz/docs/publish/start/ (a README; hacs.json in the root, `name` required).

Every key is checked against what 2026.11.0 itself ships: its loader's Manifest keys.
`categories` and `connectivity` are not in our manifest: 2026.11's loader reads them (core's
dsmr has them), but hassfest rejects them in a custom integration's manifest. hacs.json is
checked against the keys 2026.11's Marketplace reads (REPOSITORY_MANIFEST_VALUES in
components/marketplace/utils/validate.py).
"""

from __future__ import annotations

import ast
from importlib.metadata import version as package_version
import json
from pathlib import Path
import re
import tomllib
from typing import Any
from urllib.parse import urlparse

from awesomeversion import AwesomeVersion, AwesomeVersionException, AwesomeVersionStrategy
import homeassistant
from homeassistant.const import __version__ as HARNESS_HA_VERSION
from packaging.specifiers import SpecifierSet
from packaging.version import Version
import pytest

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "dsmr"
MANIFEST: dict[str, Any] = json.loads((INTEGRATION / "manifest.json").read_text())
HACS: dict[str, Any] = json.loads((ROOT / "hacs.json").read_text())

# manifest_schema.json
IOT_CLASSES = {
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}
USB_MATCHER_KEYS = {"vid", "pid", "description", "manufacturer", "serial_number", "known_devices"}
# hassfest's and HA's loader's version check
VERSION_STRATEGIES = [
    AwesomeVersionStrategy.CALVER,
    AwesomeVersionStrategy.SEMVER,
    AwesomeVersionStrategy.SIMPLEVER,
    AwesomeVersionStrategy.BUILDVER,
    AwesomeVersionStrategy.PEP440,
]
# hacs.xyz/docs/publish/integration
HACS_REQUIRED_KEYS = {"domain", "documentation", "issue_tracker", "codeowners", "name", "version"}
CONFIG_SCHEMA_NAMES = {"CONFIG_SCHEMA", "PLATFORM_SCHEMA", "PLATFORM_SCHEMA_BASE"}


def test_keys_are_domain_name_then_alphabetical() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])


def test_domain_is_the_directory() -> None:
    assert MANIFEST["domain"] == INTEGRATION.name
    assert re.fullmatch(r"[0-9a-z_]+", MANIFEST["domain"])


def test_version_is_required_and_valid() -> None:
    version = MANIFEST["version"]
    try:
        AwesomeVersion(version, ensure_strategy=VERSION_STRATEGIES)
    except AwesomeVersionException as err:
        pytest.fail(f"manifest version {version!r} is not a valid version: {err}")
    # One version for the release: the manifest's (what HACS and the Marketplace show).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version == project["version"]


def test_keys_hacs_requires() -> None:
    assert MANIFEST.keys() >= HACS_REQUIRED_KEYS


def test_every_key_is_one_home_assistant_knows(newest_ha: Path) -> None:
    """Each key is one of the newest loader's Manifest keys (a typo would be ignored silently)."""
    tree = ast.parse((newest_ha / "loader.py").read_text())
    manifest_class = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Manifest"
    )
    known = {
        node.target.id
        for node in manifest_class.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert {"version", "usb", "iot_class"} <= known  # the right class
    assert set(MANIFEST) <= known


def test_values_from_the_schema() -> None:
    assert MANIFEST["iot_class"] in IOT_CLASSES
    assert MANIFEST["integration_type"] in INTEGRATION_TYPES
    assert MANIFEST["codeowners"]
    assert all(re.fullmatch(r"@.+", owner) for owner in MANIFEST["codeowners"])
    assert MANIFEST["config_flow"] is True
    assert (INTEGRATION / "config_flow.py").is_file()
    for key in ("dependencies", "loggers", "requirements", "codeowners"):
        assert len(set(MANIFEST[key])) == len(MANIFEST[key]), f"{key} has duplicates"


def test_links_are_https_and_not_core_documentation() -> None:
    for key in ("documentation", "issue_tracker"):
        url = urlparse(MANIFEST[key])
        assert url.scheme == "https" and url.netloc, f"{key}: {MANIFEST[key]}"
    assert not MANIFEST["documentation"].startswith("https://www.home-assistant.io/integrations")


def test_requirements_format() -> None:
    for requirement in MANIFEST["requirements"]:
        assert " " not in requirement
        assert re.fullmatch(
            r"[A-Za-z0-9][-_.A-Za-z0-9]*((==|>=|<=|~=|!=|<|>)[^,;\s]+,?)+", requirement
        )


def test_dsmr_parser_range_is_the_tested_one_and_holds_core_pins(newest_ha: Path) -> None:
    """The reader is held to the installed dsmr_parser's own parser: the requirement admits
    that minor release only (a newer one may change the specifications the reader reads by),
    and both Home Assistant releases we test on (harness and newest) pin a version inside it,
    so installing this integration never fights core's own requirement."""
    (requirement,) = (r for r in MANIFEST["requirements"] if r.startswith("dsmr-parser"))
    specifier = SpecifierSet(requirement.removeprefix("dsmr-parser"))
    installed = Version(package_version("dsmr-parser"))
    assert installed in specifier
    assert Version(f"{installed.major}.{installed.minor + 1}") not in specifier
    harness = Path(homeassistant.__file__).parent
    for ha in (harness, newest_ha):
        core = json.loads((ha / "components" / "dsmr" / "manifest.json").read_text())
        (pin,) = (r for r in core["requirements"] if r.startswith("dsmr-parser=="))
        assert Version(pin.removeprefix("dsmr-parser==")) in specifier, ha


def test_usb_matchers() -> None:
    matchers = MANIFEST["usb"]
    assert matchers
    assert len({json.dumps(m, sort_keys=True) for m in matchers}) == len(matchers)
    for matcher in matchers:
        assert matcher.keys() <= USB_MATCHER_KEYS, matcher
        assert re.fullmatch(r"[0-9A-F]{4}", matcher["vid"]), matcher
        assert re.fullmatch(r"[0-9A-F]{4}", matcher["pid"]), matcher
        # Every adapter matched here (FTDI, Prolific, CP2102, CH340) is a generic USB-serial
        # chip: only the description tells a P1 cable from anything else built on it.
        assert "*" in matcher.get("description", ""), matcher
        assert matcher["description"] == matcher["description"].lower(), matcher


def test_config_schema_next_to_async_setup() -> None:
    tree = ast.parse((INTEGRATION / "__init__.py").read_text())
    functions = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert functions & {"setup", "async_setup"}  # the rule applies to us
    assert assigned & CONFIG_SCHEMA_NAMES


def test_no_categories_or_connectivity(newest_ha: Path) -> None:
    """Core's keys for its own integrations are left out: hassfest rejects them in ours."""
    core = json.loads((newest_ha / "components" / "dsmr" / "manifest.json").read_text())
    assert {"categories", "connectivity"} <= core.keys()  # the keys of that name, still core's
    assert not {"categories", "connectivity"} & MANIFEST.keys()


def test_hacs_json_has_only_keys_the_marketplace_reads(newest_ha: Path) -> None:
    source = newest_ha / "components" / "marketplace" / "utils" / "validate.py"
    tree = ast.parse(source.read_text())
    values = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", None) == "REPOSITORY_MANIFEST_VALUES" for t in node.targets)
    )
    assert isinstance(values, ast.Dict)
    read = {key.value for key in values.keys if isinstance(key, ast.Constant)}
    assert {"name", "homeassistant", "zip_release"} <= read  # the right dict
    assert set(HACS) <= read
    assert isinstance(HACS["name"], str) and HACS["name"]


def test_hacs_minimum_is_the_oldest_tested_release() -> None:
    """hacs.json's `homeassistant` is the year.month of the release the unit tests run on."""
    minimum = AwesomeVersion(HACS["homeassistant"])
    tested = AwesomeVersion(HARNESS_HA_VERSION)
    assert minimum.valid
    assert (minimum.section(0), minimum.section(1)) == (tested.section(0), tested.section(1))
    assert minimum <= tested


def test_repository_layout_for_hacs() -> None:
    packages = [p.name for p in (ROOT / "custom_components").iterdir() if p.is_dir()]
    assert [name for name in packages if name != "__pycache__"] == ["dsmr"]
    assert (ROOT / "README.md").is_file()
    assert (INTEGRATION / "brand" / "icon.png").is_file()
    assert not (ROOT / "custom_components" / "dsmr" / "hacs.json").exists()
