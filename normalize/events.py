"""Source records → Event (the series) and Occurrence rows.

iCalendar records of one UID (master plus RECURRENCE-ID overrides) are put back into one
calendar and expanded over the horizon with recurring-ical-events, which honours RRULE, RDATE,
EXDATE and RECURRENCE-ID (RFC 5545 §3.8.5). Feed records (JSON) are single events.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Self
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from recurring_ical_events.util import time_span_contains_event

from normalize.text import html_to_text, one_line, organizer_name
from normalize.times import PARIS, UTC, local_iso, make_aware, paris_midnight_utc, resolve_tzid

_STATUS = {"CANCELLED": "cancelled", "TENTATIVE": "tentative", "CONFIRMED": "confirmed"}
#: Most occurrences kept for one event in the horizon. A weekly or daily series stays far
#: below (a year of daily sessions is 366); ``FREQ=SECONDLY`` without an end would otherwise
#: be 34 million rows from a 200-byte file.
MAX_OCCURRENCES = 2000
# Frequencies that repeat more than once an hour (RFC 5545 §3.3.10).
_VERY_DENSE_FREQS = frozenset({"SECONDLY", "MINUTELY"})
TOO_DENSE = ("{uid} : série trop dense : seules {n} séances sont gardées, les premières à "
             "partir d'aujourd'hui")

# Codes of normalisation warnings (:class:`NormalizeWarning`): stable, for programs; the text
# is for people and may be reworded.
#: A series has more sessions in the horizon than :data:`MAX_OCCURRENCES`: the first are kept.
TOO_DENSE_CODE = "too-dense"
#: A COUNT series repeating by the second, minute or hour from long ago: not expanded at all.
TOO_LONG_CODE = "too-long"
#: DTEND before DTSTART (RFC 5545 §3.8.2.2): the end is ignored.
END_BEFORE_START_CODE = "end-before-start"
#: A TZID that is no known zone and that no VTIMEZONE of the file defines: read at Paris time;
#: the warning's :attr:`NormalizeWarning.tzid` is that TZID.
UNKNOWN_TIMEZONE_CODE = "unknown-timezone"
#: A floating time (RFC 5545 §3.3.5 form 1, or a naive JSON time): read at Paris time.
FLOATING_TIME_CODE = "floating-time"
#: A TZID that is no known zone but that a VTIMEZONE of the file defines: converted with it;
#: :attr:`NormalizeWarning.tzid` is that TZID.
CUSTOM_TIMEZONE_CODE = "custom-timezone"
#: Several RRULE properties in one VEVENT (deprecated by RFC 5545): all are expanded.
SEVERAL_RRULES_CODE = "several-rrules"
#: The recurrence could not be expanded: the event keeps no session.
BAD_RECURRENCE_CODE = "bad-recurrence"
#: A JSON ``timings`` item without a readable start: skipped.
BAD_TIMING_CODE = "bad-timing"
#: The source has more sessions than ``normalize.pipeline.MAX_SOURCE_OCCURRENCES``: the
#: events after that keep no session (a warning of the source, not of one event).
SOURCE_BUDGET_CODE = "source-budget"


class NormalizeWarning(str):
    """One normalisation warning: the plain-French text (the string itself, « uid : … »), its
    stable :attr:`code` (one of the ``*_CODE`` constants of this module), the event's
    :attr:`uid` and, for zone warnings, the :attr:`tzid` the file gave.

    A ``str``, so that formatting (``f"{source_id} : {w}"``), comparing, slicing and JSON give
    exactly the text; such derived strings are plain ``str`` and lose the code (keep it with
    :meth:`prefixed`). Pickling keeps the code and data (the warnings of events normalised in a
    parsing child come back to the parent pickled).
    """

    code: str
    uid: str
    tzid: str | None

    def __new__(cls, text: str, code: str, uid: str = "",
                tzid: str | None = None) -> Self:
        warning = super().__new__(cls, text)
        warning.code, warning.uid, warning.tzid = code, uid, tzid
        return warning

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.code, self.uid, self.tzid))

    def prefixed(self, source_id: str) -> NormalizeWarning:
        """The text ``f"{source_id} : {self}"`` (how a source's outcome lists its warnings)
        with the same code and data."""
        return NormalizeWarning(f"{source_id} : {self}", self.code, self.uid, self.tzid)


def _warning(code: str, uid: str, text: str, tzid: str | None = None) -> NormalizeWarning:
    """The warning « ``uid`` : ``text`` » with its code."""
    return NormalizeWarning(f"{uid} : {text}", code, uid, tzid)


@dataclass(frozen=True)
class Horizon:
    """The expansion window, aware UTC datetimes (start inclusive, end exclusive), and the
    moment it was drawn around (``now``, None when unknown): a series too dense to keep whole
    keeps its sessions from then on."""

    start: dt.datetime
    end: dt.datetime
    now: dt.datetime | None = None

    @property
    def keep_from(self) -> dt.datetime:
        """Where a capped series starts keeping sessions: ``now`` within the window, else its
        start."""
        if self.now is not None and self.start <= self.now < self.end:
            return self.now
        return self.start

    @classmethod
    def around(cls, now: dt.datetime, past_days: int, future_days: int) -> Horizon:
        """``past_days`` before ``now`` to ``future_days`` after it."""
        return cls(now - dt.timedelta(days=past_days), now + dt.timedelta(days=future_days),
                   now)


@dataclass
class NormalizedEvent:
    """The columns of one Event and of its occurrences, plus warnings (French text, each a
    :class:`NormalizeWarning` with its code)."""

    event: dict[str, Any]
    occurrences: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class RecordView:
    """What normalisation needs of a SourceRecord."""

    uid: str
    recurrence_id: str
    payload_format: str
    payload: str
    content_hash: str
    uid_repaired: bool = False
    #: iCalendar only: ``(VEVENT, [VTIMEZONE, …])`` as the connector parsed them in this run
    #: (connectors.ical), used instead of parsing ``payload`` again; None to parse ``payload``.
    parsed: Any = None


def _text(component: icalendar.Component, name: str) -> str | None:
    value = component.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0]
    return str(value)


def _categories(component: icalendar.Component) -> list[str]:
    values = component.get("CATEGORIES")
    if values is None:
        return []
    values = values if isinstance(values, list) else [values]
    found: list[str] = []
    for value in values:
        cats = getattr(value, "cats", None)
        for cat in cats if cats is not None else [value]:
            label = one_line(str(cat))
            if label and label not in found:
                found.append(label)
    return found


def _organizer(component: icalendar.Component) -> str | None:
    """The organiser's name (CN); an e-mail address alone is never published."""
    value = component.get("ORGANIZER")
    if value is None:
        return None
    name = getattr(value, "params", {}).get("CN")
    return one_line(str(name)) if name else None


def _status(component: icalendar.Component) -> str:
    return _STATUS.get(str(component.get("STATUS", "")).strip().upper(), "confirmed")


def _bounds(
    component: icalendar.Component,
) -> tuple[dt.date | dt.datetime, dt.date | dt.datetime | None, str | None]:
    start_prop = component["DTSTART"]
    start: dt.date | dt.datetime = start_prop.dt  # type: ignore[assignment]  # DATE or DATE-TIME
    tzid: str | None = start_prop.params.get("TZID") if hasattr(start_prop, "params") else None
    end: dt.date | dt.datetime | None = None
    if component.get("DTEND") is not None:
        end = component["DTEND"].dt  # type: ignore[assignment]  # DATE or DATE-TIME
    elif component.get("DURATION") is not None:
        end = start + component["DURATION"].dt
    return start, end, tzid


def _time_columns(
    start: dt.date | dt.datetime, end: dt.date | dt.datetime | None, tzid: str | None
) -> dict[str, Any]:
    """Columns for a start/end pair (RFC 5545 §3.6.1 defaults when end is missing)."""
    if not isinstance(start, dt.datetime):
        end_date = end if isinstance(end, dt.date) and not isinstance(end, dt.datetime) else None
        if end_date is None or end_date <= start:
            end_date = start + dt.timedelta(days=1)
        return {
            "all_day": True,
            "start_date": start,
            "end_date": end_date,
            "start_utc": paris_midnight_utc(start),
            "end_utc": paris_midnight_utc(end_date),
            "tzid": None,
            "floating": False,
        }
    aware_start, zone, floating = make_aware(start, tzid)
    if isinstance(end, dt.datetime):
        aware_end, _zone, _floating = make_aware(end, tzid)
    elif isinstance(end, dt.date):  # DATE end with DATE-TIME start: end of that day
        aware_end = dt.datetime.combine(end, dt.time(0), tzinfo=aware_start.tzinfo)
    else:
        aware_end = aware_start
    aware_end = max(aware_end, aware_start)
    return {
        "all_day": False,
        "start_date": None,
        "end_date": None,
        "start_utc": aware_start.astimezone(UTC),
        "end_utc": aware_end.astimezone(UTC),
        "tzid": zone,
        "floating": floating,
    }


def _occurrence_key(columns: dict[str, Any]) -> str:
    if columns["all_day"]:
        return columns["start_date"].strftime("%Y%m%d")
    return columns["start_utc"].strftime("%Y%m%dT%H%M%SZ")


def _occurrence_row(event_id: str, columns: dict[str, Any], recurrence_key: str,
                    status: str, title: str | None, location: str | None) -> dict[str, Any]:
    return {
        "id": f"{event_id}--{recurrence_key}",
        "event_id": event_id,
        "recurrence_id": recurrence_key,
        "all_day": columns["all_day"],
        "start_utc": columns["start_utc"],
        "end_utc": columns["end_utc"],
        "start_local": columns["start_date"].isoformat() if columns["all_day"]
        else local_iso(columns["start_utc"]),
        "end_local": columns["end_date"].isoformat() if columns["all_day"]
        else local_iso(columns["end_utc"]),
        "start_date": columns["start_date"],
        "end_date": columns["end_date"],
        "status": status,
        "title": title,
        "location": location,
    }


def group_hash(records: list[RecordView]) -> str:
    """SHA-256 over the sorted content hashes of a group of records."""
    joined = "\n".join(sorted(r.content_hash for r in records))
    return hashlib.sha256(joined.encode()).hexdigest()


def normalize_ical_group(
    source_id: str, uid: str, records: list[RecordView], horizon: Horizon
) -> NormalizedEvent:
    """Normalise the VEVENTs sharing one UID (master and overrides).

    Returns the event's columns and its occurrences within ``horizon``.

    Raises:
        ValueError: when no record holds a usable VEVENT.
    """
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//Tissu//normalize//FR")
    calendar.add("VERSION", "2.0")
    timezones: set[str] = set()
    master: icalendar.Component | None = None
    overrides: list[icalendar.Component] = []
    end_warnings: list[str] = []
    for record in sorted(records, key=lambda r: r.recurrence_id):
        if record.parsed is not None:  # parsed once by the connector in this run
            vevent, zones = record.parsed
            part_timezones, part_events = list(zones), [vevent]
        else:
            part = icalendar.Calendar.from_ical(record.payload)
            part_timezones, part_events = part.walk("VTIMEZONE"), part.walk("VEVENT")
        for timezone in part_timezones:
            zone_id = str(timezone.get("TZID"))
            if zone_id not in timezones:
                timezones.add(zone_id)
                calendar.add_component(timezone)
        for vevent in part_events:
            vevent = _without_backward_end(vevent, uid, end_warnings)
            calendar.add_component(vevent)
            if vevent.get("RECURRENCE-ID") is None:
                master = vevent
            else:
                overrides.append(vevent)
    base = master if master is not None else (overrides[0] if overrides else None)
    if base is None:
        raise ValueError(f"{source_id}: UID {uid} sans VEVENT")
    warnings: list[str] = end_warnings
    event_id = f"{source_id}--{uid}"
    start, end, tzid = _bounds(base)
    columns = _time_columns(start, end, tzid)
    warnings.extend(_zone_warnings(uid, tzid, columns))
    title = one_line(_text(base, "SUMMARY")) or "(sans titre)"
    location = one_line(_text(base, "LOCATION"))
    rrule = base.get("RRULE")
    if isinstance(rrule, list):  # several RRULEs (deprecated by RFC 5545): all are expanded
        warnings.append(_warning(SEVERAL_RRULES_CODE, uid,
                                 f"{len(rrule)} règles RRULE ; la première est publiée comme "
                                 "règle de la série, les séances de toutes sont calculées"))
        rrule = rrule[0]
    event = {
        "id": event_id,
        "source_id": source_id,
        "source_uid": uid,
        "uid_repaired": any(r.uid_repaired for r in records),
        "title": title,
        "description": html_to_text(_text(base, "DESCRIPTION")),
        "all_day": columns["all_day"],
        "dtstart_utc": None if columns["all_day"] else columns["start_utc"],
        "dtend_utc": None if columns["all_day"] else columns["end_utc"],
        "start_date": columns["start_date"],
        "end_date": columns["end_date"],
        "tzid": columns["tzid"],
        "floating": columns["floating"],
        "rrule": rrule.to_ical().decode() if rrule is not None and master is not None else None,
        "status": _status(base),
        "sequence": _int(base.get("SEQUENCE")),
        "location": location,
        "url": _text(base, "URL"),
        "organizer": organizer_name(_organizer(base)),
        "categories": json.dumps(_categories(base), ensure_ascii=False),
        "content_hash": group_hash(records),
        "rdate": json.dumps(_date_list(base, "RDATE", tzid) if master is not None else []),
        "exdate": json.dumps(_date_list(base, "EXDATE", tzid) if master is not None else []),
    }
    result = NormalizedEvent(event=event, warnings=warnings)
    single = _single_in_horizon(base, master, overrides, start, end, horizon)
    if single is not None:  # one VEVENT, no recurrence: it is its only instance, or none
        instances = [base] if single else []
    else:
        try:
            instances = expand_in_horizon(calendar, horizon, uid, result.warnings,
                                          skip_bad_series=True)
        except Exception as exc:  # noqa: BLE001 - a broken series costs its occurrences only
            result.warnings.append(_warning(BAD_RECURRENCE_CODE, uid,
                                            f"récurrence impossible à calculer ({exc})"))
            instances = []
    seen: set[str] = set()
    for instance in instances:
        i_start, i_end, i_tzid = _bounds(instance)
        if i_end is None and end is None and not isinstance(i_start, dt.datetime):
            i_end = None
        i_columns = _time_columns(i_start, i_end, i_tzid or tzid)
        recurrence = instance.get("RECURRENCE-ID")
        if recurrence is not None:
            r_value = recurrence.dt
            if columns["all_day"] and isinstance(r_value, dt.datetime):
                # Exchange writes RECURRENCE-ID;TZID=…:20200416T000000 for an all-day series:
                # the occurrence it replaces is that local date.
                r_value = r_value.date()
            r_columns = _time_columns(r_value, None, recurrence.params.get("TZID") or tzid)
            key = _occurrence_key(r_columns)
        else:
            key = _occurrence_key(i_columns)
        if key in seen:
            continue
        seen.add(key)
        i_title = one_line(_text(instance, "SUMMARY"))
        i_location = one_line(_text(instance, "LOCATION"))
        result.occurrences.append(
            _occurrence_row(
                event_id, i_columns, key,
                "cancelled" if event["status"] == "cancelled" else _status(instance),
                i_title if i_title != title else None,
                i_location if i_location != location else None,
            )
        )
    result.occurrences.sort(key=lambda row: row["start_utc"])
    return result


def _without_backward_end(vevent: icalendar.Component, uid: str,
                          warnings: list[str]) -> icalendar.Component:
    """``vevent``, or a copy without its DTEND when that end comes before DTSTART (RFC 5545
    §3.8.2.2 wants it later): the RFC's default end applies, the same for the event and every
    occurrence (recurring-ical-events would swap them), with a French warning."""
    start, end = vevent.get("DTSTART"), vevent.get("DTEND")
    if start is None or end is None:
        return vevent
    first, last = start.dt, end.dt
    if isinstance(first, dt.datetime) and isinstance(last, dt.datetime):
        if (first.tzinfo is None) != (last.tzinfo is None):
            first, last = first.replace(tzinfo=None), last.replace(tzinfo=None)
    elif isinstance(first, dt.datetime) or isinstance(last, dt.datetime):
        first = first.date() if isinstance(first, dt.datetime) else first
        last = last.date() if isinstance(last, dt.datetime) else last
    try:
        backward = last < first
    except TypeError:
        return vevent
    if not backward:
        return vevent
    fixed = vevent.copy()
    del fixed["DTEND"]
    warnings.append(_warning(END_BEFORE_START_CODE, uid,
                             f"DTEND ({last}) avant DTSTART ({first}) : fin ignorée"))
    return fixed


def _density(calendar: icalendar.Calendar) -> int:
    """How often ``calendar``'s VEVENTs may repeat: 2 when more than once an hour (RRULE
    ``FREQ`` SECONDLY/MINUTELY, or several BYMINUTE/BYSECOND values), 1 when more than once a
    day (``FREQ=HOURLY``, several BYHOUR values, or more RDATE values than
    :data:`MAX_OCCURRENCES`), else 0 (RFC 5545 §3.3.10)."""
    density = 0
    for vevent in calendar.walk("VEVENT"):
        rules = vevent.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
            freq = str((rule.get("FREQ") or [""])[0]).upper()
            if freq in _VERY_DENSE_FREQS or any(len(rule.get(part) or []) > 1
                                                for part in ("BYMINUTE", "BYSECOND")):
                return 2
            if freq == "HOURLY" or len(rule.get("BYHOUR") or []) > 1:
                density = 1
        rdates = vevent.get("RDATE")
        groups = rdates if isinstance(rdates, list) else [rdates] if rdates is not None else []
        if sum(len(getattr(group, "dts", [])) for group in groups) > MAX_OCCURRENCES:
            density = 1
    return density


def _earliest_start(calendar: icalendar.Calendar) -> dt.datetime | None:
    """The earliest DTSTART or RDATE of ``calendar``'s VEVENTs as aware UTC (floating and
    DATE values read in Europe/Paris), or None when there is none."""
    values: list[dt.date] = []
    for vevent in calendar.walk("VEVENT"):
        start = vevent.get("DTSTART")
        if start is not None:
            values.append(start.dt)
        rdates = vevent.get("RDATE")
        for group in rdates if isinstance(rdates, list) else [rdates] if rdates else []:
            values.extend(value.dt for value in getattr(group, "dts", []))
    instants = [_instant(value[0] if isinstance(value, tuple) else value)  # PERIOD: its start
                for value in values]
    return min(instants) if instants else None


def expand_in_horizon(calendar: icalendar.Calendar, horizon: Horizon, uid: str,
                      warnings: list[str], skip_bad_series: bool = False
                      ) -> list[icalendar.Component]:
    """The occurrences of ``calendar``'s VEVENTs within ``horizon`` (recurring-ical-events,
    RFC 5545 §3.8.5), at most :data:`MAX_OCCURRENCES`.

    A series repeating at most hourly is expanded with ``between`` at once (then cut). One
    repeating more often (minutes, seconds) is read in short windows from its first start or
    :attr:`Horizon.keep_from`, whichever is later (one hour, doubled while empty, at most a
    day). Either way the occurrences kept are the first from ``keep_from`` (the run's now) and
    a French warning is appended to ``warnings`` when some are dropped — so a 200-byte
    ``FREQ=SECONDLY`` file costs a fraction of a second, not gigabytes. A dense series that
    started long before the horizon is first moved next to it (:func:`_started_near`).
    Raises what recurring-ical-events raises.
    """
    density = _density(calendar)
    if density:
        calendar = _started_near(calendar, horizon, uid, warnings)
    query = recurring_ical_events.of(calendar, skip_bad_series=skip_bad_series)
    if density < 2:
        whole = list(query.between(horizon.start, horizon.end))
        if len(whole) <= MAX_OCCURRENCES:
            return whole
        # at most 24 a day: a year of them is still cheap to compute, then cut
        keys = sorted(_sort_key(c.get("DTSTART")) for c in whole)
        whole.sort(key=lambda c: _sort_key(c.get("DTSTART")))
        first = min(bisect.bisect_left(keys, horizon.keep_from), len(whole) - MAX_OCCURRENCES)
        warnings.append(_too_dense(uid))
        return whole[first:first + MAX_OCCURRENCES]
    earliest = _earliest_start(calendar)
    cursor = max(horizon.keep_from, earliest) if earliest is not None else horizon.keep_from
    window = dt.timedelta(hours=1)
    found: list[icalendar.Component] = []
    seen: set[tuple[str, str]] = set()
    while cursor < horizon.end:
        stop = min(cursor + window, horizon.end)
        batch = query.between(cursor, stop)
        batch.sort(key=lambda c: _sort_key(c.get("DTSTART")))
        for instance in batch:
            key = (str(instance.get("RECURRENCE-ID", "")), str(_sort_key(instance.get("DTSTART"))))
            if key in seen:  # an occurrence spanning two windows
                continue
            if len(found) == MAX_OCCURRENCES:
                warnings.append(_too_dense(uid))
                return found
            seen.add(key)
            found.append(instance)
        if not batch:
            window = min(window * 2, dt.timedelta(days=1))
        cursor = stop
    return found


def _too_dense(uid: str) -> NormalizeWarning:
    return NormalizeWarning(TOO_DENSE.format(uid=uid, n=MAX_OCCURRENCES), TOO_DENSE_CODE, uid)


_UNITS = {"SECONDLY": dt.timedelta(seconds=1), "MINUTELY": dt.timedelta(minutes=1),
          "HOURLY": dt.timedelta(hours=1)}
_UNIT_NAMES = {"SECONDLY": "seconde", "MINUTELY": "minute", "HOURLY": "heure"}
#: Past steps a COUNT series may need before the horizon (an hourly series of 20 years).
_MAX_STEPS_BEFORE = 200_000


def _started_near(calendar: icalendar.Calendar, horizon: Horizon, uid: str,
                  warnings: list[str]) -> icalendar.Calendar:
    """``calendar`` with each SECONDLY/MINUTELY/HOURLY series that has no COUNT and started
    more than a day before ``horizon`` moved forward by a whole number of its intervals, to
    just before the horizon (DTEND moved alike). Its occurrences in the horizon are the same
    (RFC 5545 §3.3.10: the rule's BY parts filter times, UNTIL is absolute), but
    recurring-ical-events no longer counts millions of them from a start years ago. The moved
    DTSTART itself stays before the horizon. A series *with* COUNT that would need more than
    :data:`_MAX_STEPS_BEFORE` steps to reach the horizon is not expanded at all (its RRULE
    dropped from the copy, a French warning appended to ``warnings``). Other components are
    shared, not copied."""
    moved = icalendar.Calendar()
    for name, value in calendar.property_items(recursive=False)[1:-1]:
        moved.add(name, value)
    changed = False
    for component in calendar.subcomponents:
        rule = component.get("RRULE") if component.name == "VEVENT" else None
        start = component.get("DTSTART")
        freq = str((rule.get("FREQ") or [""])[0]).upper() if isinstance(rule, dict) else ""
        value = start.dt if start is not None else None
        if (freq in _UNITS and isinstance(value, dt.datetime)
                and component.get("RECURRENCE-ID") is None):
            step = _UNITS[freq] * max(int((rule.get("INTERVAL") or [1])[0]), 1)
            gap = horizon.keep_from - dt.timedelta(days=1) - _instant(value)
            if rule.get("COUNT") and gap // step > _MAX_STEPS_BEFORE:
                # a COUNT series cannot be moved (its count runs from DTSTART): reading it
                # would mean counting millions of past sessions — it is not expanded
                component = component.copy()
                del component["RRULE"]
                warnings.append(_warning(TOO_LONG_CODE, uid,
                                         "série trop longue à calculer (une séance chaque "
                                         f"{_UNIT_NAMES[freq]} depuis le {value:%d/%m/%Y}) : "
                                         "ses séances ne sont pas publiées"))
                changed = True
            elif not rule.get("COUNT") and gap > step:
                shift = step * (gap // step)
                component = component.copy()
                end = component.get("DTEND")
                del component["DTSTART"]
                component.add("DTSTART", value + shift)
                if end is not None and isinstance(end.dt, dt.datetime):
                    del component["DTEND"]
                    component.add("DTEND", end.dt + shift)
                changed = True
        moved.add_component(component)
    return moved if changed else calendar


def _instant(value: dt.date) -> dt.datetime:
    """A DATE or DATE-TIME value as aware UTC: a date at Paris midnight, a floating time read
    in Europe/Paris."""
    if not isinstance(value, dt.datetime):
        return paris_midnight_utc(value)
    return (value.replace(tzinfo=PARIS) if value.tzinfo is None else value).astimezone(UTC)


def _sort_key(start: Any) -> dt.datetime:
    """An aware UTC datetime to order occurrences by their DTSTART (:func:`_instant`); the
    earliest instant for a missing one."""
    if start is None or start.dt is None:
        return dt.datetime.min.replace(tzinfo=UTC)
    return _instant(start.dt)


def _single_in_horizon(base: icalendar.Component, master: icalendar.Component | None,
                       overrides: list[icalendar.Component], start: dt.date | dt.datetime,
                       end: dt.date | dt.datetime | None, horizon: Horizon) -> bool | None:
    """For a lone VEVENT without recurrence: whether it falls in ``horizon``; else None.

    The answer recurring-ical-events would give (its own ``time_span_contains_event``, with
    its default end: one day after a DATE start, the start itself for a DATE-TIME), without
    building its query for one event. None (ask recurring-ical-events) for a series, an
    override, mixed DATE / DATE-TIME bounds, or anything it would refuse.
    """
    if master is None or overrides or any(
            base.get(name) is not None for name in ("RRULE", "RDATE", "EXDATE", "EXRULE")):
        return None
    if end is None:
        end = start if isinstance(start, dt.datetime) else start + dt.timedelta(days=1)
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        return None
    try:
        return bool(time_span_contains_event(horizon.start, horizon.end, start, end))
    except Exception:  # noqa: BLE001 - e.g. an end before the start: let the library decide
        return None


def _zone_warnings(uid: str, tzid: str | None,
                   columns: dict[str, Any]) -> list[NormalizeWarning]:
    """Plain-French warnings about how a start time's zone was read (RFC 5545 §3.2.19):
    :data:`UNKNOWN_TIMEZONE_CODE` and :data:`CUSTOM_TIMEZONE_CODE` carry the TZID."""
    if columns["all_day"]:
        return []
    if columns["floating"]:
        if tzid:
            return [_warning(UNKNOWN_TIMEZONE_CODE, uid,
                             f"fuseau « {tzid} » inconnu et non défini dans le fichier : "
                             "heure lue à l'heure de Paris", tzid=str(tzid))]
        return [_warning(FLOATING_TIME_CODE, uid, "heure sans fuseau, lue à l'heure de Paris")]
    if tzid and resolve_tzid(tzid) is None:
        label = columns["tzid"] or "aucun nom IANA"
        return [_warning(CUSTOM_TIMEZONE_CODE, uid,
                         f"fuseau « {tzid} » défini par le fichier (VTIMEZONE) : heures "
                         f"converties avec cette définition ({label})", tzid=str(tzid))]
    return []


def _date_list(component: icalendar.Component, name: str, tzid: str | None) -> list[str]:
    """RDATE or EXDATE values (RFC 5545 §3.8.5.1-2) as sorted ISO text: UTC ``...Z`` or dates.

    Floating values are read in the series' zone (``tzid``), as for DTSTART. PERIOD values of
    RDATE keep their start.
    """
    props = component.get(name)
    if props is None:
        return []
    found: set[str] = set()
    for prop in props if isinstance(props, list) else [props]:
        for item in getattr(prop, "dts", []):
            value = item.dt
            if isinstance(value, tuple):  # RDATE;VALUE=PERIOD
                value = value[0]
            if isinstance(value, dt.datetime):
                aware, _zone, _floating = make_aware(value, item.params.get("TZID") or tzid)
                found.add(aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            elif isinstance(value, dt.date):
                found.add(value.isoformat())
    return sorted(found)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _parse_iso(value: str | None) -> dt.date | dt.datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def normalize_json_record(source_id: str, record: RecordView, horizon: Horizon) -> NormalizedEvent:
    """Normalise a feed item carrying event dates (JSON payload from connectors.feeds).

    A ``timings`` list (connectors.openagenda: ``[{"dtstart", "dtend"}]``, ISO 8601 with offset)
    gives one occurrence per pair inside ``horizon``; otherwise ``dtstart``/``dtend`` give one.

    Raises:
        ValueError: when ``dtstart`` is missing or not ISO 8601.
    """
    data = json.loads(record.payload)
    start = _parse_iso(data.get("dtstart"))
    if start is None:
        raise ValueError(f"{record.uid} : date de début illisible {data.get('dtstart')!r}")
    end = _parse_iso(data.get("dtend"))
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        end = None
    columns = _time_columns(start, end, data.get("tzid"))
    event_id = f"{source_id}--{record.uid}"
    title = one_line(data.get("title")) or "(sans titre)"
    event = {
        "id": event_id,
        "source_id": source_id,
        "source_uid": record.uid,
        "uid_repaired": record.uid_repaired,
        "title": title,
        "description": html_to_text(data.get("description")),
        "all_day": columns["all_day"],
        "dtstart_utc": None if columns["all_day"] else columns["start_utc"],
        "dtend_utc": None if columns["all_day"] else columns["end_utc"],
        "start_date": columns["start_date"],
        "end_date": columns["end_date"],
        "tzid": columns["tzid"],
        "floating": columns["floating"],
        "rrule": data.get("rrule") or None,
        "status": data.get("status") or "confirmed",
        "sequence": 0,
        "location": one_line(data.get("location")),
        "url": data.get("url"),
        "organizer": organizer_name(data.get("organizer")),
        "categories": json.dumps(data.get("categories") or [], ensure_ascii=False),
        "content_hash": record.content_hash,
    }
    # Optional details (OpenAgenda, schema.org): copied only when the payload has them.
    for key in ("address", "postal_code", "city", "latitude", "longitude", "registration_url",
                "age_min", "age_max", "attendance_mode"):
        if data.get(key) is not None:
            event[key] = data[key]
    if data.get("accessibility"):
        event["accessibility"] = json.dumps(data["accessibility"], ensure_ascii=False)
    result = NormalizedEvent(event=event)
    if columns["floating"]:
        result.warnings.append(_warning(FLOATING_TIME_CODE, record.uid,
                                        "heure sans fuseau, lue à l'heure de Paris"))
    # ``timings`` (OpenAgenda): each {dtstart, dtend} pair is one occurrence of the series.
    instances = [columns]
    if isinstance(data.get("timings"), list) and data["timings"]:
        instances = []
        for timing in data["timings"]:
            t_start = _parse_iso(timing.get("dtstart"))
            t_end = _parse_iso(timing.get("dtend"))
            if t_start is None:
                result.warnings.append(_warning(BAD_TIMING_CODE, record.uid,
                                                f"horaire illisible {timing!r}"))
                continue
            if isinstance(t_start, dt.datetime) != isinstance(t_end, dt.datetime):
                t_end = None
            instances.append(_time_columns(t_start, t_end, data.get("tzid")))
    if data.get("rrule"):  # schema.org eventSchedule, site spiders (connectors.html)
        instances = _json_rrule_instances(record.uid, data, start, end, horizon, result.warnings)
    seen: set[str] = set()
    for instance in instances:
        key = _occurrence_key(instance)
        if key in seen or not (instance["end_utc"] > horizon.start
                               and instance["start_utc"] < horizon.end):
            continue
        seen.add(key)
        result.occurrences.append(
            _occurrence_row(event_id, instance, key, event["status"], None, None)
        )
    result.occurrences.sort(key=lambda row: row["start_utc"])
    return result


def _json_rrule_instances(uid: str, data: dict[str, Any], start: dt.date | dt.datetime,
                          end: dt.date | dt.datetime | None, horizon: Horizon,
                          warnings: list[str]) -> list[dict[str, Any]]:
    """Occurrence columns of a JSON record's ``rrule`` (RFC 5545 §3.3.10) and ``exdates`` inside
    ``horizon``, expanded by recurring-ical-events on a VEVENT built from the record.

    Naive times are local to ``tzid`` (IANA), or to Europe/Paris when there is none.
    """
    zone_name = resolve_tzid(data.get("tzid"))
    zone = ZoneInfo(zone_name) if zone_name else PARIS

    def aware(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=zone)
        return value

    vevent = icalendar.Event()
    vevent.add("UID", uid)
    vevent.add("DTSTART", aware(start))
    if end is not None:
        vevent.add("DTEND", aware(end))
    try:
        vevent.add("RRULE", icalendar.vRecur.from_ical(str(data["rrule"])))
        for text in data.get("exdates") or []:
            excluded = _parse_iso(text)
            if excluded is not None:
                vevent.add("EXDATE", aware(excluded))
        calendar = icalendar.Calendar()
        calendar.add_component(vevent)
        found = expand_in_horizon(calendar, horizon, uid, warnings)
    except Exception as exc:  # noqa: BLE001 - a broken rule costs its occurrences only
        warnings.append(_warning(BAD_RECURRENCE_CODE, uid,
                                 f"récurrence impossible à calculer ({exc})"))
        return []
    instances = []
    for instance in found:
        i_start, i_end, _tzid = _bounds(instance)
        instances.append(_time_columns(i_start, i_end, zone_name))
    return instances
