"""One publish of a meter, as plain frozen data: the window's telegrams in, a snapshot out.

Pure: no Home Assistant here (a test parses the imports). `SnapshotBuilder.add` takes each
telegram as it arrives and keeps the window as running figures (the latest telegram, sums,
minimum and maximum of the averaged fields, the flows), so nothing grows with the number of
telegrams in a window; `SnapshotBuilder.build` turns the window and the previous snapshot into
the next one and starts a new window:

- `readings`: every field the entities show (by entity key), converted once: a number is a
  float in the unit its line carries (`unit`, as sent), with every decimal the meter sent (or
  rounded to the user's `precision`); a number that is not finite as a float (`Infinity`,
  `NaN`, `1E1000000`) or a value that cannot be read is unreadable, so its field is absent (as
  is a line the telegram does not carry), and every other field is read as usual.
- `spreads`: for averaged fields of a window of more than one telegram, the mean, minimum and
  maximum over the window (as precise as the meter's own values) and the number of samples.
- `mbus`: per M-Bus channel its type, identifier, reading, unit and the reading's timestamp.
- `unknown_lines`: the OBIS lines no specification names (code -> the rest of the line).
- the meter's timestamp, its equipment identifier, and the statistics-period facts: which
  5-minute period the publish belongs to (meter's clock, else the receiving time) and whether
  the next publish, as far apart as the last two, falls in the next period (`closes_period`).
- `number` (1 for the first) and `changed`: the keys whose reading is not the previous
  snapshot's (`MBUS_CHANGED`: the M-Bus readings), so an entity that showed the previous
  snapshot needs one look to know that a publish brings it nothing.

Cheap at one publish per telegram: a reading whose line's object is the previous snapshot's
is reused, and of a telegram the parser built from the previous one (`changed_since`) only
the values that moved are read. The meter is identified on a connection's first publish.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
import math
from types import MappingProxyType
from typing import Any, Final

from .derived import FORECAST, NOTHING_DERIVED, Derived, Deriver, device_type
from .parser import changed_since, unknown_lines

# Home Assistant's short-term statistics period, in seconds: long-term statistics take a
# register's last state of each such period.
STATISTICS_PERIOD: Final = 300
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
#: In `Snapshot.changed`: the M-Bus readings are not the previous snapshot's.
MBUS_CHANGED: Final = "<mbus>"


@dataclass(frozen=True, slots=True)
class Field:
    """A value to read from each telegram: `convert` turns the line's object into the value.

    `derive` computes the value from the whole telegram instead (the unit is then `name`'s).
    `average`: the window's mean, minimum and maximum are kept too.
    """

    key: str
    name: str
    convert: Callable[[Any], Any] | None = None
    derive: Callable[[Any], Any] | None = None
    average: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """One field of the published telegram."""

    value: Any  # float for a number, else what `convert` gave (text, int, datetime, None)
    unit: str | None  # the unit on the line, as sent (None: none)
    obj: Any = None  # the line's dsmr_parser object (None for a derived value)


@dataclass(frozen=True, slots=True)
class Spread:
    """An averaged field over the window's telegrams."""

    mean: float
    min: float
    max: float
    samples: int

    def attributes(self) -> dict[str, float | int]:
        """What an entity that shows the mean tells beside it: min, max, samples."""
        return {"min": self.min, "max": self.max, "samples": self.samples}


@dataclass(frozen=True, slots=True)
class MbusReading:
    """One M-Bus channel of the published telegram."""

    channel: int
    device_type: int | None
    identifier: str | None
    value: float | None  # the reading (None: none sent, or unreadable)
    unit: str | None
    at: datetime | None  # the sub-meter's timestamp of the reading
    has_reading: bool  # whether the channel carries a reading line at all
    # The telegram's M-Bus line objects this was read from (all channels'): reused when same.
    lines: tuple[Any, ...] = dataclasses.field(default=(), compare=False, repr=False)
    # The reading as a field's (None: no reading): one object for as long as this is reused,
    # so an entity sees at a glance that a push brought nothing new (see `Snapshot.mbus_value`).
    reading: Reading | None = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        reading = None
        if self.has_reading and self.value is not None:
            reading = Reading(self.value, self.unit)
        object.__setattr__(self, "reading", reading)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one publish says about the meter."""

    telegram: Any  # the published telegram (dsmr_parser's), the window's latest
    readings: Mapping[str, Reading]
    spreads: Mapping[str, Spread]
    mbus: tuple[MbusReading, ...]
    unknown_lines: Mapping[str, str]
    timestamp: datetime | None  # the meter's clock (aware), if it sends one
    equipment_id: str | None
    period: int  # the statistics period: seconds // STATISTICS_PERIOD
    closes_period: bool
    at: float  # the time the period was placed by (meter's clock or reception)
    samples: int  # telegrams in the window
    number: int  # publishes so far, this one included
    changed: frozenset[str]  # see the module docstring
    # The quarter-hour forecast, the new-peak decision and the flows (derived.py).
    derived: Derived = NOTHING_DERIVED

    def value(self, key: str) -> Any:
        """A field's value (None when the telegram did not carry it)."""
        reading = self.readings.get(key)
        return None if reading is None else reading.value

    def mbus_value(self, channel: int, identifier: str | None) -> Reading | None:
        """The reading of the M-Bus device with this identifier (without one: on this channel).

        As a field's reading; None: no such device, or no reading.
        """
        for found in self.mbus:
            if found.identifier == identifier if identifier else found.channel == channel:
                return found.reading
        return None


def number(raw: Any, precision: int | None = None) -> Any:
    """A Decimal as a float (rounded to `precision` if given); None if not finite as a float."""
    if not isinstance(raw, Decimal):
        return raw
    if not raw.is_finite():
        return None
    value = float(raw)
    if not math.isfinite(value):
        return None
    return value if precision is None else round(value, precision)


class _Sum:
    """An averaged field over a window: running sum, minimum, maximum, count and decimals."""

    __slots__ = ("digits", "high", "low", "samples", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.samples = 0
        self.digits = 0

    def add(self, raw: Decimal) -> None:
        value = float(raw)
        if not math.isfinite(value):
            return
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        self.samples += 1
        exponent = raw.as_tuple().exponent
        if isinstance(exponent, int):
            self.digits = max(self.digits, -exponent)

    def spread(self, precision: int | None) -> Spread | None:
        if not self.samples:
            return None
        digits = self.digits if precision is None else precision  # as precise as the meter
        return Spread(
            mean=round(self.total / self.samples, digits),
            min=round(self.low, digits),
            max=round(self.high, digits),
            samples=self.samples,
        )


def _same(before: tuple[Any, ...], now: tuple[Any, ...]) -> bool:
    """Whether two telegrams' M-Bus lines are the very same objects."""
    return len(before) == len(now) and all(
        a[0] == b[0] and all(x is y for x, y in zip(a[1:], b[1:], strict=True))
        for a, b in zip(before, now, strict=True)
    )


def _unit(obj: Any) -> str | None:
    if isinstance(obj, list):  # the Belgian 13-month peak history: one unit for all
        obj = next(iter(obj), None)
    unit = getattr(obj, "unit", None)
    return unit if isinstance(unit, str) and unit else None


class SnapshotBuilder:
    """Turns windows of telegrams into snapshots, for one meter's fields."""

    def __init__(
        self,
        fields: Sequence[Field],
        *,
        precision: int | None = None,
        identify: Callable[[Any], str | None] | None = None,
        deriver: Deriver | None = None,
    ) -> None:
        """Read `fields`; round numbers to `precision` decimals if set; `identify` the meter.

        `deriver` adds the forecast and the flows (none without it).
        """
        self.fields = tuple(fields)
        self.precision = precision
        self.identify = identify
        self.deriver = deriver
        self._by_name: dict[str, tuple[Field, ...]] = {}  # of those, the ones read from a line
        self._derived: tuple[Field, ...] = ()  # of those, the ones computed from the telegram
        # The window: telegrams since the last build, as running figures (see `add`).
        self.pending = 0
        self._latest: Any = None
        self._first: Any = None  # read only once a second telegram comes (no spread of one)
        self._sums: dict[str, _Sum] = {}
        self._flows: Mapping[str, Any] = _EMPTY
        self.select(None)

    def select(self, keys: Collection[str] | None) -> None:
        """Read only the fields of these keys from now on (None: all of them): what entities show.

        Reading all 33 fields of a DSMR 5 telegram when nine are shown would triple the cost.
        """
        selected = self.fields if keys is None else tuple(f for f in self.fields if f.key in keys)
        by_name: dict[str, tuple[Field, ...]] = {}
        for field in selected:
            if field.derive is None:
                by_name[field.name] = (*by_name.get(field.name, ()), field)
        self._selected, self._by_name = selected, by_name
        self._derived = tuple(field for field in selected if field.derive is not None)
        self._averaged = tuple(field for field in selected if field.average)
        self._reselected = True  # the previous snapshot may lack a field now read
        if self.deriver is not None:  # the forecast too: only while an entity shows it
            self.deriver.forecasting = keys is None or FORECAST in keys

    def add(self, telegram: Any) -> None:
        """Take one telegram of the window; it is kept as running figures, not as itself."""
        self.pending += 1
        if self.pending == 2:
            self._accumulate(self._first)
        if self.pending >= 2:
            self._accumulate(telegram)
        else:
            self._first = telegram
        self._latest = telegram
        if self.deriver is not None:
            self._flows = self.deriver.flows_after(telegram, self._flows)

    def discard(self) -> None:
        """Forget the window's telegrams (the connection was lost); the flows go on."""
        self.pending = 0
        self._latest = self._first = None
        self._sums = {}

    def _accumulate(self, telegram: Any) -> None:
        for field in self._averaged:
            try:
                if field.derive is not None:
                    raw = field.derive(telegram)
                elif (obj := getattr(telegram, field.name, None)) is None:
                    continue
                else:
                    raw = obj.value if field.convert is None else field.convert(obj)
                if isinstance(raw, Decimal) and raw.is_finite():
                    self._sums.setdefault(field.key, _Sum()).add(raw)
            except ArithmeticError, ValueError, TypeError:  # unreadable: not a sample
                continue

    def build(
        self, previous: Snapshot | None, received_at: float, *, fresh: bool = True
    ) -> Snapshot:
        """The snapshot of the window (at least one telegram added), following `previous`.

        `fresh`: the window starts a connection, so the meter is identified again.
        """
        telegram, count, sums = self._latest, self.pending, self._sums
        self.discard()
        moved = None
        if previous is not None and count == 1 and not self._reselected:
            moved = changed_since(telegram, previous.telegram)
        self._reselected = False
        before = previous.readings if previous is not None else _EMPTY
        if moved is None:  # every field, against the previous readings
            readings: dict[str, Reading] = {}
            changed = self._read_fields(self._selected, telegram, before, readings)
            changed.update(before.keys() - readings.keys())
        else:  # the previous readings, and the fields whose line moved
            readings = dict(before)
            by_name = self._by_name
            fields = [field for name in moved for field in by_name.get(name, ())]
            changed = self._read_fields((*fields, *self._derived), telegram, before, readings)
        spreads: dict[str, Spread] = {}
        for key, running in sums.items():
            if key in readings and (spread := running.spread(self.precision)) is not None:
                spreads[key] = spread
                changed.add(key)
        stamp = getattr(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None), "value", None)
        if not isinstance(stamp, datetime):
            stamp = None
        at = stamp.timestamp() if stamp is not None else received_at
        step = at - previous.at if previous is not None and previous.at < at else 0.0
        period = int(at // STATISTICS_PERIOD)
        ident = previous.equipment_id if previous is not None else None
        if (fresh or previous is None) and self.identify is not None:
            ident = self.identify(telegram)
        derived = NOTHING_DERIVED
        if self.deriver is not None:
            derived = self.deriver.publish(
                telegram, previous.derived if previous else None, self._flows
            )
        if moved is not None and previous is not None:
            mbus = previous.mbus  # M-Bus lines that move take the parser's long way
        else:
            mbus = self._mbus(telegram, previous, self.precision)
            if previous is None or mbus is not previous.mbus:
                changed.add(MBUS_CHANGED)
        return Snapshot(
            telegram=telegram,
            readings=MappingProxyType(readings),
            spreads=MappingProxyType(spreads) if spreads else _EMPTY,
            mbus=mbus,
            unknown_lines=unknown_lines(telegram),
            timestamp=stamp,
            equipment_id=ident,
            period=period,
            closes_period=int((at + step) // STATISTICS_PERIOD) != period,
            at=at,
            samples=count,
            number=previous.number + 1 if previous is not None else 1,
            changed=frozenset(changed),
            derived=derived,
        )

    def _read_fields(
        self,
        fields: Iterable[Field],
        telegram: Any,
        before: Mapping[str, Reading],
        readings: dict[str, Reading],
    ) -> set[str]:
        """Read `fields` of the window's latest telegram into `readings`; the keys that changed.

        A field whose line's object is the one `before` read keeps that reading; a field that
        cannot be read is absent, and costs no other field its reading.
        """
        precision = self.precision
        changed: set[str] = set()
        for field in fields:
            key = field.key
            old = before.get(key)
            obj = getattr(telegram, field.name, None)
            if obj is None:
                reading = None
            elif old is not None and old.obj is obj and field.derive is None:
                reading = old  # the parser's object for an unchanged line: read already
            elif field.convert is None and field.derive is None:  # the line's value as it is
                raw = obj.value
                if type(raw) is not Decimal:
                    reading = Reading(raw, None, obj)
                elif (value := number(raw, precision)) is not None:
                    reading = Reading(value, _unit(obj), obj)
                else:
                    reading = None  # not finite: unreadable
            else:
                try:
                    reading = self._read(field, telegram, obj, old, precision)
                except ArithmeticError, ValueError, TypeError, AttributeError:
                    reading = None  # e.g. sNaN in a peak history: this field only
            if reading is None:
                readings.pop(key, None)
                if old is not None:
                    changed.add(key)
                continue
            readings[key] = reading
            if reading is not old:
                changed.add(key)
        return changed

    @staticmethod
    def _read(
        field: Field, telegram: Any, obj: Any, before: Reading | None, precision: int | None
    ) -> Reading | None:
        """A computed field's reading, or a converted one's."""
        if field.derive is not None:
            value = number(field.derive(telegram), precision)
            if value is None:
                return None
            if before is not None and before.value == value and before.unit == _unit(obj):
                return before
            return Reading(value, _unit(obj))
        raw = obj.value if field.convert is None else field.convert(obj)
        value = number(raw, precision)
        if value is None and raw is not None:
            return None  # not finite: unreadable
        return Reading(value, _unit(obj) if isinstance(raw, Decimal) else None, obj)

    @staticmethod
    def _mbus(
        telegram: Any, previous: Snapshot | None, precision: int | None
    ) -> tuple[MbusReading, ...]:
        devices = getattr(telegram, "MBUS_DEVICES", None)
        if not devices:
            return ()
        lines = tuple(
            (
                device.channel_id,
                getattr(device, "MBUS_DEVICE_TYPE", None),
                getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None),
                getattr(device, "MBUS_METER_READING", None),
            )
            for device in devices
        )
        if previous is not None and previous.mbus and _same(previous.mbus[0].lines, lines):
            return previous.mbus  # the parser's objects for unchanged lines: read already
        found = []
        for channel, kind_obj, ident_obj, reading in lines:
            ident = getattr(ident_obj, "value", None)
            try:
                value = None if reading is None else number(reading.value, precision)
            except ArithmeticError, ValueError, TypeError:
                value = None  # unreadable: this sub-meter's reading only
            at = getattr(reading, "datetime", None)
            found.append(
                MbusReading(
                    channel=channel,
                    device_type=device_type(getattr(kind_obj, "value", None)),
                    identifier=str(ident) if ident else None,
                    value=value,
                    unit=_unit(reading),
                    at=at if isinstance(at, datetime) else None,
                    has_reading=reading is not None,
                    lines=lines,
                )
            )
        return tuple(found)
