"""Inside a worker: Home Assistant's recorder on a SQLite file, the file's size, its statistics.

Size: SQLite's `dbstat` gives, for each table and each of its indexes, the bytes in use on
their pages (page size less unused bytes) and the pages themselves. What a span of meter time
added to a table is its share of the table's rows, stamped in that span, times the table's
bytes: rows of a table are of one size give or take a few bytes, and counting rows by their own
timestamps needs no snapshot at a precise moment, which a recorder running behind (it commits
and compiles in its own thread) would make hard. Tables without a timestamp (entity and
statistics metadata, schema, runs) grow only when something new appears; `state_attributes`
and `event_data` rows count for the span in which a state or event first used them.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
import sqlite3

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, recorder as recorder_helper
from homeassistant.setup import async_setup_component

# The report's groups; every other table (events, runs, metadata, schema) is "other".
GROUPS: dict[str, tuple[str, ...]] = {
    "states": ("states", "states_meta"),
    "attributes": ("state_attributes",),
    "short_term": ("statistics_short_term",),
    "hourly": ("statistics",),
}
STATISTIC_TYPES = {"state", "sum", "mean", "min", "max"}


async def setup_recorder(hass: HomeAssistant, path: Path) -> None:
    """Set up the recorder on a SQLite file, as Home Assistant's bootstrap does.

    Default settings (commit interval, statistics), except that the nightly purge is off: it
    would find nothing older than the ten days it keeps, but on some Sundays it repacks
    (VACUUMs) the file, which would land in the middle of a measurement.
    """
    recorder_helper.async_initialize_recorder(hass)
    config = {"db_url": f"sqlite:///{path}", "auto_purge": False}
    if not await async_setup_component(hass, "recorder", {"recorder": config}):
        raise RuntimeError("cannot set up the recorder")
    if not await recorder_helper.get_instance(hass).async_db_ready:
        raise RuntimeError("the recorder's database did not get ready")


# For the tables that grow with time: how many of their rows belong to the span [:start, :end).
_IN_SPAN = {
    "states": (
        "SELECT count(*) FROM states WHERE last_updated_ts >= :start AND last_updated_ts < :end"
    ),
    "state_attributes": (
        "SELECT count(*) FROM (SELECT min(last_updated_ts) AS first FROM states"
        " WHERE attributes_id IS NOT NULL GROUP BY attributes_id)"
        " WHERE first >= :start AND first < :end"
    ),
    "statistics_short_term": (
        "SELECT count(*) FROM statistics_short_term WHERE start_ts >= :start AND start_ts < :end"
    ),
    "statistics": "SELECT count(*) FROM statistics WHERE start_ts >= :start AND start_ts < :end",
    "statistics_runs": (
        "SELECT count(*) FROM statistics_runs WHERE start >= :start_text AND start < :end_text"
    ),
    "events": "SELECT count(*) FROM events WHERE time_fired_ts >= :start AND time_fired_ts < :end",
    "event_data": (
        "SELECT count(*) FROM (SELECT min(time_fired_ts) AS first FROM events"
        " WHERE data_id IS NOT NULL GROUP BY data_id) WHERE first >= :start AND first < :end"
    ),
}


@dataclass(frozen=True)
class Tables:
    """What `table_sizes` read from a database."""

    # table: bytes in use, bytes of pages (with its indexes), rows, rows of the span
    sizes: dict[str, dict[str, int]]
    compiled: float | None  # start of the newest 5-minute statistics period
    states_by_entity: dict[str, int]  # state rows of the span, by entity id


def table_sizes(path: Path | str, start: float, end: float) -> Tables:
    """Every table of a SQLite file, and what the span [start, end) added to it.

    All read in one transaction, so from the same committed state of the file.
    """
    span = {
        "start": start,
        "end": end,
        # statistics_runs keeps its start as SQLAlchemy writes a naive UTC datetime.
        "start_text": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "end_text": datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, autocommit=False)) as db:
        schema = db.execute("SELECT name, tbl_name, type FROM sqlite_schema").fetchall()
        owner = {name: table for name, table, _ in schema}
        sizes: dict[str, dict[str, int]] = {}
        for name, pages, unused in db.execute(
            "SELECT name, pgsize, unused FROM dbstat WHERE aggregate = TRUE"
        ):
            entry = sizes.setdefault(
                owner.get(name, name), {"bytes": 0, "pages": 0, "rows": 0, "in_span": 0}
            )
            entry["bytes"] += pages - unused
            entry["pages"] += pages
        for name, _, kind in schema:
            if kind == "table" and name in sizes:
                (sizes[name]["rows"],) = db.execute(f'SELECT count(*) FROM "{name}"').fetchone()
                if name in _IN_SPAN:
                    (sizes[name]["in_span"],) = db.execute(_IN_SPAN[name], span).fetchone()
        by_entity: dict[str, int] = {}
        if "states_meta" in sizes:
            by_entity = dict(
                db.execute(
                    "SELECT states_meta.entity_id, count(*) FROM states"
                    " JOIN states_meta USING (metadata_id)"
                    " WHERE last_updated_ts >= :start AND last_updated_ts < :end"
                    " GROUP BY states_meta.entity_id",
                    span,
                ).fetchall()
            )
        compiled = None
        if "statistics_short_term" in sizes:
            (compiled,) = db.execute("SELECT max(start_ts) FROM statistics_short_term").fetchone()
    return Tables(sizes, compiled, by_entity)


def span_share(sizes: dict[str, dict[str, int]], field: str = "bytes") -> dict[str, float]:
    """Per table: its rows of the span's share of `field` (bytes in use, or pages)."""
    return {
        table: entry[field] * entry["in_span"] / entry["rows"]
        for table, entry in sizes.items()
        if entry["rows"]
    }


def grouped(tables: dict[str, float]) -> dict[str, float]:
    """One figure per report group (see `GROUPS`) and in total."""
    groups = dict.fromkeys((*GROUPS, "other"), 0.0)
    for table, value in tables.items():
        group = next((g for g, names in GROUPS.items() if table in names), "other")
        groups[group] += value
    groups["total"] = sum(groups.values())
    return groups


async def hourly_statistics(
    hass: HomeAssistant, entry_id: str, start: float, end: float
) -> dict[str, list[dict[str, float]]]:
    """The entry's hourly long-term statistics from `start` to `end`, by unique id.

    Read with the recorder's own `statistics_during_period`, as the Energy dashboard and
    history graphs read them.
    """
    from homeassistant.components.recorder.statistics import statistics_during_period

    entries = er.async_entries_for_config_entry(er.async_get(hass), entry_id)
    unique_ids = {reg.entity_id: reg.unique_id for reg in entries}
    rows = await recorder_helper.get_instance(hass).async_add_executor_job(
        statistics_during_period,
        hass,
        datetime.fromtimestamp(start, UTC),
        datetime.fromtimestamp(end, UTC),
        set(unique_ids),
        "hour",
        None,
        STATISTIC_TYPES,
    )
    return {
        unique_ids[statistic_id]: [
            {key: float(value) for key, value in row.items() if isinstance(value, int | float)}
            for row in statistic_rows
        ]
        for statistic_id, statistic_rows in rows.items()
    }
