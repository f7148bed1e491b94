"""Translations: every language has every string of strings.json, and Home Assistant uses them.

strings.json is the English source; translations/en.json is generated from it
(`python -m dsmr_dev.translations`). A string added to strings.json fails
`test_every_language_has_every_key` with the key and the languages that lack it, until each
translations/<language>.json has it too.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
import json
from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations
import pytest

from custom_components.dsmr.config_flow import VERSION_SELECTOR
from custom_components.dsmr.const import (
    DOMAIN,
    DSMR_VERSIONS,
    VERSION_AUTO,
    VERSION_BY_OPTION,
    version_option,
)
from dsmr_dev.translations import (
    HA_COMPONENTS,
    STRINGS,
    TRANSLATIONS,
    english,
    flatten,
    load,
    placeholders,
    references,
    resolve,
)
from dsmr_sim import Meter, TcpServer

from .helpers import send, setup_meter

LANGUAGES = ("nl", "fr", "de", "sv")
CORE_TRANSLATIONS = HA_COMPONENTS / DOMAIN / "translations"
# hassfest's rule for translation keys (selector options among them).
TRANSLATION_KEY = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")
# Where a reference to Home Assistant's common strings is deliberately worded otherwise.
DELIBERATE = {
    # The tariffs as Dutch, French and German bills name them (HA's common "Laag"/"Faible"/...).
    ("nl", "entity.sensor.electricity_active_tariff.state.low"): "Dal",
    ("fr", "entity.sensor.electricity_active_tariff.state.low"): "Heures creuses",
    ("fr", "entity.sensor.electricity_active_tariff.state.normal"): "Heures pleines",
    ("de", "entity.sensor.electricity_active_tariff.state.low"): "Niedertarif",
    ("de", "entity.sensor.electricity_active_tariff.state.normal"): "Hochtarif",
}


def english_strings() -> dict[str, str]:
    return flatten(resolve(load(STRINGS)))


def translated(language: str) -> dict[str, str]:
    return flatten(load(TRANSLATIONS / f"{language}.json"))


@cache
def core_wording(language: str, reference: str) -> str | None:
    """How Home Assistant's own integrations translate a common string (the most used form)."""
    seen: Counter[str] = Counter()
    for strings_file in HA_COMPONENTS.glob("*/strings.json"):
        keys = [k for k, v in flatten(load(strings_file)).items() if v == f"[%key:{reference}%]"]
        translation_file = strings_file.parent / "translations" / f"{language}.json"
        if not keys or not translation_file.exists():
            continue
        translation = flatten(load(translation_file))
        seen.update(translation[key] for key in keys if key in translation)
    return seen.most_common(1)[0][0] if seen else None


def test_english_is_generated_from_strings() -> None:
    assert (TRANSLATIONS / "en.json").read_text(encoding="utf-8") == english(), (
        "translations/en.json is out of date: run `scripts/run python -m dsmr_dev.translations`"
    )


def test_the_languages_are_there() -> None:
    assert {path.stem for path in TRANSLATIONS.glob("*.json")} >= {"en", *LANGUAGES}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_key(language: str) -> None:
    wanted, have = english_strings(), translated(language)
    missing = sorted(set(wanted) - set(have))
    extra = sorted(set(have) - set(wanted))
    assert not missing, f"translations/{language}.json lacks (English text to translate):\n" + (
        "\n".join(f"  {key}: {wanted[key]!r}" for key in missing)
    )
    assert not extra, f"translations/{language}.json has keys strings.json does not: {extra}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_keeps_its_placeholders(language: str) -> None:
    wanted, have = english_strings(), translated(language)
    wrong = {
        key: (sorted(placeholders(text)), sorted(placeholders(wanted[key])))
        for key, text in have.items()
        if key in wanted and placeholders(text) != placeholders(wanted[key])
    }
    assert not wrong, f"{language}: placeholders (translation, English) differ: {wrong}"


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_translations_are_plain_resolved_text(language: str) -> None:
    for key, text in translated(language).items():
        assert text.strip(), f"{language} {key} is empty"
        assert not references(text), f"{language} {key} has an unresolved reference: {text}"
        assert not re.search(r"<[a-z/][^>]*>", text), f"{language} {key} has HTML: {text}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_entity_names_are_cores_where_core_has_them(language: str) -> None:
    """A user switching from core keeps the names (and, for new entities, the entity ids)."""
    core = flatten(load(CORE_TRANSLATIONS / f"{language}.json"))
    ours = translated(language)
    shared = [k for k in core if k.startswith("entity.") and k.endswith(".name") and k in ours]
    assert len(shared) >= 20
    assert {k: ours[k] for k in shared} == {k: core[k] for k in shared}


# Words our own strings must not use, and what the grid operators, regulators and Home
# Assistant say instead (core's entity names stay core's, so they are not checked).
WRONG_WORDS = {
    "en": {r"recognis|unless you know better": "US spelling, no condescension"},
    "fr": {r"\b[Pp]ics?\b": "pointe", r"Électricité réactive .*\(tarif": "énergie réactive"},
    "sv": {r"nätoperatör|nätägare": "elnätsbolag", r"(?<!effekt)topp": "effekttopp"},
}


@pytest.mark.parametrize("language", sorted(WRONG_WORDS))
def test_our_strings_use_the_operators_words(language: str) -> None:
    core = flatten(load(CORE_TRANSLATIONS / f"{language}.json"))
    wrong = [
        f"{key}: {text!r} (say {word})"
        for key, text in translated(language).items()
        if core.get(key) != text
        for pattern, word in WRONG_WORDS[language].items()
        if re.search(pattern, text)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_the_reconfigure_port_is_a_port(language: str) -> None:
    """The field holds a serial path or a bridge's TCP port: labelled as the network step's."""
    strings = translated(language)
    reconfigure = strings["config.step.reconfigure.data.port"]
    assert reconfigure == strings["config.step.network.data.port"]
    assert reconfigure != strings["config.step.serial.data.port"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_common_strings_are_worded_as_home_assistant_does(language: str) -> None:
    ours = translated(language)
    checked = 0
    for key, text in flatten(load(STRINGS)).items():
        for reference in references(text):
            if not reference.startswith("common::"):
                continue
            if (deliberate := DELIBERATE.get((language, key))) is not None:
                assert ours[key] == deliberate
                continue
            if (wording := core_wording(language, reference)) is not None:
                assert ours[key] == wording, f"{language} {key}: HA says {wording!r}"
                checked += 1
    assert checked >= 5


def test_the_selector_offers_every_version_with_a_label_in_every_language() -> None:
    options = VERSION_SELECTOR.config["options"]
    assert options == [version_option(v) for v in (VERSION_AUTO, *DSMR_VERSIONS)]
    assert VERSION_SELECTOR.config["translation_key"] == "dsmr_version"
    assert {VERSION_BY_OPTION[option] for option in options} == {VERSION_AUTO, *DSMR_VERSIONS}
    for option in options:
        assert TRANSLATION_KEY.match(option), option
    for language in ("en", *LANGUAGES):
        labels = load(TRANSLATIONS / f"{language}.json")["selector"]["dsmr_version"]["options"]
        assert list(labels) == options, language
    assert len(set(labels.values())) == len(options)  # no two meter types look alike


def test_iskra_ie_is_labelled_belgian() -> None:
    """dsmr_parser's ISKRA_IE is Iskra's IE.5 / IE.7 as rolled out in Belgium, not Ireland."""
    for language, country in {"en": "Belgium", "nl": "België", "fr": "Belgique"}.items():
        labels = load(TRANSLATIONS / f"{language}.json")["selector"]["dsmr_version"]["options"]
        assert country in labels["iskra_ie"]


async def test_home_assistant_loads_the_dutch_text(hass: HomeAssistant) -> None:
    dutch: dict[str, Any] = load(TRANSLATIONS / "nl.json")
    config = await async_get_translations(hass, "nl", "config", {DOMAIN})
    title = config[f"component.{DOMAIN}.config.step.user.title"]
    assert title == dutch["config"]["step"]["user"]["title"] == "Je slimme meter koppelen"
    selector = await async_get_translations(hass, "nl", "selector", {DOMAIN})
    key = f"component.{DOMAIN}.selector.dsmr_version.options.auto"
    assert selector[key] == "Automatisch herkennen"


async def test_a_dutch_home_assistant_names_the_entities_in_dutch(hass: HomeAssistant) -> None:
    hass.config.language = "nl"
    server = TcpServer(Meter("5", seed=3, mbus=("gas",)))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        await send(entry, server)  # the gas meter: named by two telegrams in a row
        registry = er.async_get(hass)
        names = {
            e.translation_key: hass.states.get(e.entity_id).name  # type: ignore[union-attr]
            for e in er.async_entries_for_config_entry(registry, entry.entry_id)
            if hass.states.get(e.entity_id) is not None
        }
        assert names["electricity_used_tariff_1"] == "Electricity Meter Energieverbruik (tarief 1)"
        assert names["gas_meter_reading"] == "Gas Meter Gasverbruik"
        tariff = next(
            e.entity_id
            for e in er.async_entries_for_config_entry(registry, entry.entry_id)
            if e.translation_key == "electricity_active_tariff"
        )
        assert tariff.startswith("sensor.electricity_meter_actief_tarief")
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_the_detected_meter_is_named_in_home_assistants_language(
    hass: HomeAssistant,
) -> None:
    hass.config.language = "fr"
    server = TcpServer(Meter("5B", seed=5), interval=0.05)
    await server.start()
    try:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "network"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": server.host, "port": server.port, "dsmr_version": "auto"}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "detected"
        assert result["description_placeholders"]["meter"] == "DSMR 5B (Belgique, Fluvius e-MUCS)"
        hass.config_entries.flow.async_abort(result["flow_id"])
    finally:
        await server.stop()


def test_resolve_follows_nested_references_and_reports_bad_ones() -> None:
    common = {"common": {"a": "A", "b": "[%key:common::a%] and B"}}
    strings = {"x": {"y": "[%key:common::b%]", "z": "see [%key:component::dsmr::x::y%]"}}
    assert resolve(strings, common) == {"x": {"y": "A and B", "z": "see A and B"}}
    with pytest.raises(ValueError, match="unknown reference"):
        resolve({"x": "[%key:common::nope%]"}, common)
    with pytest.raises(ValueError, match="reference loop"):
        resolve({"x": "[%key:component::dsmr::x%]"}, common)


def test_translation_files_are_written_alike() -> None:
    """2-space JSON, UTF-8 (no \\u escapes), a final newline: diffs stay readable."""
    for path in TRANSLATIONS.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n", path
    assert Path(STRINGS).read_text(encoding="utf-8").endswith("}\n")
