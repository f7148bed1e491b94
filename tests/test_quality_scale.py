"""quality_scale.yaml answers every rule of the newest Home Assistant's quality scale.

The rules are those of https://developers.home-assistant.io/docs/core/integration-quality-scale/
(each with its page under rules/); hassfest checks a core integration's quality_scale.yaml
against its own list, which is not shipped in the homeassistant package. So the list is read from
what 2026.11.0 ships: the quality_scale.yaml of its integrations, which hassfest made answer every
rule (docs-conditions and docs-triggers are the newest). Each rule is `done`, or a mapping with
`status` done / todo / exempt, and a `comment` that says why for todo and exempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
OURS: dict[str, Any] = yaml.safe_load(
    (ROOT / "custom_components" / "dsmr" / "quality_scale.yaml").read_text()
)["rules"]
STATUSES = {"done", "todo", "exempt"}


@pytest.fixture(scope="module")
def newest_rules(newest_ha: Path) -> set[str]:
    rules: set[str] = set()
    for path in (newest_ha / "components").glob("*/quality_scale.yaml"):
        rules |= set(yaml.safe_load(path.read_text())["rules"])
    assert {"docs-conditions", "docs-triggers", "test-before-setup"} <= rules
    return rules


def test_every_rule_is_answered(newest_rules: set[str]) -> None:
    assert sorted(newest_rules - OURS.keys()) == [], "rules quality_scale.yaml does not answer"
    assert sorted(OURS.keys() - newest_rules) == [], "rules Home Assistant does not have"


def test_answers_are_well_formed() -> None:
    for rule, answer in OURS.items():
        if isinstance(answer, str):
            assert answer == "done", f"{rule}: {answer}"
            continue
        assert answer["status"] in STATUSES, rule
        if answer["status"] != "done":
            assert answer.get("comment", "").strip(), f"{rule}: {answer['status']} needs a reason"


def test_test_before_setup_is_not_exempt() -> None:
    """The rule has no exceptions (its page says so): an integration meets it or it is todo."""
    answer = OURS["test-before-setup"]
    assert answer == "done" or answer["status"] != "exempt"
