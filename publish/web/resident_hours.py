"""Opening hours for residents: an OSM ``opening_hours`` string turned into the coming week.

data.inclusion gives structures' and services' hours in the OpenStreetMap ``opening_hours``
syntax (https://wiki.openstreetmap.org/wiki/Key:opening_hours). The library opening-hours-py
evaluates it; we only lay its open intervals out day by day (Europe/Paris wall-clock times).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

WEEK_DAYS = 7


@dataclass
class DayHours:
    """One day of the schedule: open intervals as (start, end) wall-clock times."""

    day: dt.date
    intervals: list[tuple[dt.time, dt.time]] = field(default_factory=list)
    unknown: bool = False


@dataclass
class Schedule:
    """A week of opening hours, or only the raw text when it cannot be evaluated."""

    raw: str
    days: list[DayHours] | None  # None: the string does not parse, show ``raw`` as given
    comments: list[str] = field(default_factory=list)


def week_schedule(spec: object, first_day: dt.date) -> Schedule | None:
    """Evaluate ``spec`` (OSM opening_hours text) for the 7 days from ``first_day``.

    Returns None for an empty value; a :class:`Schedule` with ``days=None`` when the text does
    not parse (it is then shown as written, never dropped). An interval crossing midnight is
    cut at midnight.
    """
    if spec is None or not str(spec).strip():
        return None
    raw = str(spec).strip()
    try:
        import opening_hours

        evaluator = opening_hours.OpeningHours(raw)
    except Exception:  # noqa: BLE001 - any parse failure: keep the text as given
        return Schedule(raw=raw, days=None)
    start = dt.datetime.combine(first_day, dt.time(0, 0))
    end = start + dt.timedelta(days=WEEK_DAYS)
    days = {first_day + dt.timedelta(days=i): DayHours(first_day + dt.timedelta(days=i))
            for i in range(WEEK_DAYS)}
    comments: list[str] = []
    try:
        intervals = list(evaluator.intervals(start, end))
    except Exception:  # noqa: BLE001
        return Schedule(raw=raw, days=None)
    for begin, finish, state, comment in intervals:
        finish = finish or end
        name = getattr(state, "name", str(state)).upper()
        if comment and comment not in comments:
            comments.append(comment)
        cursor = begin
        while cursor < finish:
            midnight = dt.datetime.combine(cursor.date() + dt.timedelta(days=1), dt.time(0, 0))
            piece_end = min(finish, midnight)
            day = days.get(cursor.date())
            if day is not None:
                if name == "OPEN":
                    closing = piece_end.time() if piece_end < midnight else dt.time(23, 59)
                    day.intervals.append((cursor.time(), closing))
                elif name == "UNKNOWN":
                    day.unknown = True
            cursor = piece_end
    return Schedule(raw=raw, days=list(days.values()), comments=comments)
