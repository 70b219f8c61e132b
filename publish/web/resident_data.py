"""Read the published database ``tissu-open.db`` for the resident pages.

Plain synchronous functions over a ``sqlite3.Connection`` (run by Datasette's
``Database.execute_fn`` in its own thread, and callable directly in tests). The published schema
grows while colleagues add columns (themes, publics, price, quartier, is_canonical, services), so
every query first looks at which columns and tables exist and only uses those.

Times: ``*_utc`` columns are ISO 8601 UTC text (``…Z``); ``start_local`` is Europe/Paris with its
offset, or a date for an all-day occurrence. A "week" is seven days from a given day, Europe/Paris.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from zoneinfo import ZoneInfo

import yaml

from normalize.fold import fold
from tissu.settings import DATA_DIR

PARIS = ZoneInfo("Europe/Paris")
VOCAB_DIR = DATA_DIR / "vocab"
WEEK_DAYS = 7
MAX_ROWS = 400
#: Columns that, when present on ``events``, say an event is free (first match wins).
_FREE_FLAG_COLUMNS = ("is_free", "free", "gratuit")
#: Text columns whose value may say "free" when no flag column exists.
_PRICE_COLUMNS = ("price", "prix")
_FREE_WORDS = ("gratuit", "gratuite", "free", "0", "0 €", "0€", "entrée libre", "entree libre")
_PUBLICS_COLUMNS = ("publics", "audiences")
_OPENING_HOURS_COLUMNS = ("opening_hours", "horaires_accueil", "horaires_ouverture", "hours")


def table_columns(connection: sqlite3.Connection, table: str) -> list[str]:
    """Column names of ``table`` (or view) in order; empty when it does not exist."""
    return [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    """True when a table or view called ``name`` exists."""
    row = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE name = ? AND type IN ('table', 'view')", (name,)
    ).fetchone()
    return row is not None


def _first(columns: Iterable[str], candidates: Iterable[str]) -> str | None:
    present = set(columns)
    return next((c for c in candidates if c in present), None)


def json_list(value: object) -> list[str]:
    """A JSON list stored as text (``'["a","b"]'``) → list of strings; junk → []."""
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return [str(value)]
    if isinstance(parsed, list):
        return [str(v) for v in parsed if v not in (None, "")]
    return [str(parsed)]


def paris_midnight_utc(day: dt.date) -> str:
    """Midnight Europe/Paris on ``day`` as ISO 8601 UTC text (``…Z``)."""
    local = dt.datetime.combine(day, dt.time(0, 0), tzinfo=PARIS)
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(moment: dt.datetime) -> str:
    """Aware datetime → ISO 8601 UTC text (``…Z``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> dt.datetime | None:
    """ISO 8601 UTC text as published (``…Z`` or ``+00:00``) → aware UTC datetime; junk → None."""
    try:
        moment = dt.datetime.fromisoformat(str(text))  # Python 3.11 reads a final Z
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class Filters:
    """What a resident filtered the agenda by. Empty strings mean "all".

    ``start`` is the first day (Europe/Paris) of the seven days shown; None means today.
    ``date_problem`` says why a ``date`` given was not used: ``"invalid"`` (not a date written
    AAAA-MM-JJ) or ``"out_of_range"`` (before 2000 or after 2100); ``date_text`` is that date
    as given (at most 40 characters), for the page to say so.
    """

    theme: str = ""
    quartier: str = ""
    public: str = ""
    free: bool = False
    start: dt.date | None = None
    date_problem: str = ""
    date_text: str = ""

    @classmethod
    def from_args(cls, args: object) -> Filters:
        """Read ``theme``, ``quartier``, ``public``, ``gratuit`` and ``date`` (AAAA-MM-JJ).

        ``args`` is a mapping with ``get`` (Datasette's ``request.args``). A malformed or far
        date is not used (today is), never an error; ``date_problem`` says which.
        """
        get = args.get  # type: ignore[attr-defined]
        start = None
        problem = ""
        raw_date = (get("date") or "").strip()
        if raw_date:
            try:
                start = dt.date.fromisoformat(raw_date)
            except ValueError:
                start, problem = None, "invalid"
            if start is not None and not 2000 <= start.year <= 2100:
                # far dates overflow week arithmetic and mean nothing here
                start, problem = None, "out_of_range"
        return cls(
            theme=(get("theme") or "").strip()[:80],
            quartier=(get("quartier") or "").strip()[:120],
            public=(get("public") or "").strip()[:80],
            free=(get("gratuit") or "") in ("1", "on", "oui", "true"),
            start=start,
            date_problem=problem,
            date_text=raw_date[:40] if problem else "",
        )

    def params(self, with_date: bool = True) -> list[tuple[str, str]]:
        """The non-empty filters as query-string pairs, in a stable order."""
        pairs = [("theme", self.theme), ("quartier", self.quartier), ("public", self.public)]
        items = [(k, v) for k, v in pairs if v]
        if self.free:
            items.append(("gratuit", "1"))
        if with_date and self.start is not None:
            items.append(("date", self.start.isoformat()))
        return items

    def active(self) -> bool:
        """True when at least one filter other than the date is set."""
        return bool(self.theme or self.quartier or self.public or self.free)

    def shifted(self, days: int, today: dt.date) -> Filters:
        """The same filters ``days`` later (or earlier) than the first day shown."""
        return replace(self, start=(self.start or today) + dt.timedelta(days=days),
                       date_problem="", date_text="")


@dataclass
class Occurrence:
    """One session of an event, ready to show."""

    occurrence_id: str
    event_id: str
    title: str
    all_day: bool
    start: dt.datetime | None  # aware, Europe/Paris (None for all-day)
    end: dt.datetime | None
    start_date: dt.date
    end_date: dt.date | None  # last day (inclusive) for all-day occurrences
    cancelled: bool
    location: str
    organizer: str
    themes: list[str] = field(default_factory=list)
    quartier: str = ""
    free: bool | None = None
    language: str = ""  # ISO 639-1 of the event's text when known (events.language)
    end_utc: str = ""  # ISO 8601 UTC text of the end as published (when it stops being shown)

    @property
    def local_day(self) -> dt.date:
        """The Europe/Paris day it starts on."""
        return self.start.date() if self.start is not None else self.start_date


def _occurrence(row: sqlite3.Row, free_known: bool) -> Occurrence:
    all_day = bool(row["all_day"])
    start = end = None
    end_date = None
    if all_day:
        start_date = dt.date.fromisoformat(str(row["start_date"] or row["start_local"])[:10])
        if row["end_date"]:
            end_date = dt.date.fromisoformat(str(row["end_date"])[:10]) - dt.timedelta(days=1)
    else:
        start = dt.datetime.fromisoformat(str(row["start_utc"]))
        start = start.astimezone(PARIS)
        start_date = start.date()
        if row["end_utc"]:
            end = dt.datetime.fromisoformat(str(row["end_utc"]))
            end = end.astimezone(PARIS)
            if end <= start:
                end = None
    return Occurrence(
        occurrence_id=row["occurrence_id"],
        event_id=row["event_id"],
        title=row["title"] or "",
        all_day=all_day,
        start=start,
        end=end,
        start_date=start_date,
        end_date=end_date if end_date and end_date > start_date else None,
        cancelled=row["status"] == "cancelled",
        location=row["location"] or "",
        organizer=row["organizer"] or "",
        themes=json_list(row["themes"]),
        quartier=row["quartier"] or "",
        free=bool(row["is_free_"]) if free_known else None,
        language=row["language"] or "",
        end_utc=str(row["end_utc"] or ""),
    )


def _free_expression(event_columns: list[str]) -> str | None:
    flag = _first(event_columns, _FREE_FLAG_COLUMNS)
    if flag:
        return f"(e.{flag} = 1)"
    price = _first(event_columns, _PRICE_COLUMNS)
    if price:
        words = ", ".join(f"'{w}'" for w in _FREE_WORDS)
        return f"(lower(trim(COALESCE(e.{price}, ''))) IN ({words}))"
    return None


_PLAIN_CODE = re.compile(r"[A-Za-z0-9-]+")


def _json_member(column: str, name: str, code: str, params: dict[str, object]) -> list[str]:
    """SQL terms: the JSON list in ``column`` holds ``code`` (bound as ``:<name>``).

    ``json_each`` decides; for a plain code (letters, digits, dashes: written as is inside the
    JSON text), a ``LIKE '%"code"%'`` test comes first and spares it on most rows.
    """
    params[name] = code
    terms = []
    if _PLAIN_CODE.fullmatch(code):
        params[f"{name}_like"] = f'%"{code}"%'
        terms.append(f"{column} LIKE :{name}_like")
    terms.append(f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = :{name})")
    return terms


def filter_where(filters: Filters, event_columns: list[str], occurrence_columns: list[str],
                  extra_where: list[str],
                  params: dict[str, object]) -> tuple[list[str], bool, str | None]:
    """WHERE terms for ``filters`` over ``occurrences o JOIN events e``, adding their values to
    ``params``; also whether they need ``events`` and the "free" SQL expression.

    When ``occurrences`` carries ``live`` and ``quartier`` (publish/build.py copies them from
    the event), the published state and the quartier are read there, so "this week, by
    quartier" stays inside the occurrences index; otherwise from ``events`` (alias ``e``).
    """
    on_occurrences = "live" in occurrence_columns and "quartier" in occurrence_columns
    needs_events = not on_occurrences
    if on_occurrences:
        where = ["o.live = 1", *extra_where]
    else:
        where = ["e.removed_at_source IS NULL", *extra_where]
        if "is_canonical" in event_columns:
            where.append("COALESCE(e.is_canonical, 1) = 1")
    if filters.theme and "themes" in event_columns:
        where.extend(_json_member("e.themes", "theme", filters.theme, params))
        needs_events = True
    if filters.quartier and "quartier" in event_columns:
        where.append(("o" if on_occurrences else "e") + ".quartier = :quartier")
        params["quartier"] = filters.quartier
    publics = _first(event_columns, _PUBLICS_COLUMNS)
    if filters.public and publics:
        where.extend(_json_member(f"e.{publics}", "public", filters.public, params))
        needs_events = True
    free = _free_expression(event_columns)
    if filters.free and free:
        where.append(free)
        needs_events = True
    return where, needs_events, free


def _occurrence_query(connection: sqlite3.Connection, filters: Filters,
                      extra_where: list[str], params: dict[str, object],
                      limit: int = MAX_ROWS, offset: int = 0,
                      columns: tuple[list[str], list[str]] | None = None) -> list[Occurrence]:
    event_columns, occurrence_columns = columns or (table_columns(connection, "events"),
                                                    table_columns(connection, "occurrences"))
    where, _, free = filter_where(filters, event_columns, occurrence_columns, extra_where,
                                   params)
    themes = "e.themes" if "themes" in event_columns else "'[]'"
    quartier = "e.quartier" if "quartier" in event_columns else "NULL"
    language = "e.language" if "language" in event_columns else "NULL"
    sql = f"""
        SELECT o.id AS occurrence_id, o.event_id, COALESCE(o.title, e.title) AS title,
               o.all_day, o.start_utc, o.end_utc, o.start_local, o.start_date, o.end_date,
               CASE WHEN e.status = 'cancelled' OR o.status = 'cancelled' THEN 'cancelled'
                    ELSE COALESCE(o.status, 'confirmed') END AS status,
               COALESCE(o.location, e.location) AS location, e.organizer,
               {themes} AS themes, {quartier} AS quartier, {free or 'NULL'} AS is_free_,
               {language} AS language
        FROM occurrences o JOIN events e ON e.id = o.event_id
        WHERE {' AND '.join(where)}
        ORDER BY o.start_utc, o.id
        LIMIT {int(limit)} OFFSET {max(0, int(offset))}
    """
    connection.row_factory = sqlite3.Row
    rows = connection.execute(sql, params).fetchall()
    return [_occurrence(row, free is not None) for row in rows]


@dataclass
class DatabaseFacts:
    """What the resident pages read once per published file rather than on every request.

    ``event_columns`` and ``occurrence_columns`` are the column names; ``longest_days`` the
    longest occurrence in whole days, rounded up, plus one (None when unknown), which bounds the
    start of the sessions still running at a moment so that "this week" scans only that much
    of the ``start_utc`` index; ``choice_ends`` maps ``theme``/``quartier``/``public`` to
    {code: last end (ISO 8601 UTC text) of an occurrence of a published event with that code},
    for the events not over at ``computed_at`` (aware UTC). A code is offered at ``now`` when
    its last end is after ``now`` — the same answer as asking the database then, as long as
    ``now >= computed_at``.
    """

    event_columns: list[str]
    occurrence_columns: list[str]
    longest_days: int | None
    choice_ends: dict[str, dict[str, str]]
    computed_at: dt.datetime
    _ends: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def next_choice_change(self, now: dt.datetime) -> dt.datetime | None:
        """The first moment after ``now`` (aware) when a filter option runs out of coming
        events (aware UTC), or None when none will. Options only disappear with time."""
        if self._ends is None:
            self._ends = sorted({last for ends in self.choice_ends.values()
                                 for last in ends.values()})
        index = bisect.bisect_right(self._ends, utc_text(now))
        return parse_utc(self._ends[index]) if index < len(self._ends) else None


def database_facts(connection: sqlite3.Connection, now: dt.datetime) -> DatabaseFacts:
    """Read :class:`DatabaseFacts` of the published database at ``now`` (aware).

    Two passes over the occurrences (the longest one; the last end of each coming event),
    meant to run once per published file (publish/web/resident.py caches the result).
    """
    event_columns = table_columns(connection, "events")
    occurrence_columns = table_columns(connection, "occurrences")
    longest = None
    if {"start_utc", "end_utc"} <= set(occurrence_columns):
        days = connection.execute(
            "SELECT max(julianday(end_utc) - julianday(start_utc)) FROM occurrences"
        ).fetchone()[0]
        longest = math.ceil(days) + 1 if days is not None else None
    choice_ends: dict[str, dict[str, str]] = {"theme": {}, "quartier": {}, "public": {}}
    publics = _first(event_columns, _PUBLICS_COLUMNS)
    picked = [("theme", "themes" if "themes" in event_columns else None),
              ("quartier", "quartier" if "quartier" in event_columns else None),
              ("public", publics)]
    picked = [(kind, column) for kind, column in picked if column]
    if picked and occurrence_columns:
        names = ", ".join(f"e.{column}" for _, column in picked)
        params: dict[str, object] = {"now": utc_text(now)}
        bound = ""
        if longest is not None:
            bound = " AND start_utc >= :lower"
            params["lower"] = utc_text(now - dt.timedelta(days=longest))
        rows = connection.execute(
            f"SELECT {names}, m.last FROM (SELECT event_id, max(end_utc) AS last "
            f"FROM occurrences WHERE end_utc > :now{bound} GROUP BY event_id) m "
            "JOIN events e ON e.id = m.event_id WHERE e.removed_at_source IS NULL", params)
        for row in rows:
            last = str(row[-1])
            for (kind, column), value in zip(picked, row[:-1], strict=True):
                if kind == "quartier":
                    codes = [str(value)] if value not in (None, "") else []
                else:
                    codes = _json_codes(value)
                ends = choice_ends[kind]
                for code in codes:
                    if code and (code not in ends or ends[code] < last):
                        ends[code] = last
    return DatabaseFacts(event_columns, occurrence_columns, longest, choice_ends, now)


def _json_codes(value: object) -> list[str]:
    """The codes of a JSON list column as ``json_each`` would give them (invalid JSON → [])."""
    if value in (None, ""):
        return []
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return []
    items = parsed if isinstance(parsed, list) else [parsed]
    return [str(v) for v in items if v not in (None, "") and not isinstance(v, (list, dict))]


def _week_window(filters: Filters, now: dt.datetime) -> tuple[str, str]:
    today = now.astimezone(PARIS).date()
    first = filters.start or today
    window_start = paris_midnight_utc(first)
    if first <= today:
        window_start = max(window_start, utc_text(now))
    window_end = paris_midnight_utc(first + dt.timedelta(days=WEEK_DAYS))
    return window_start, window_end


def week_occurrences(connection: sqlite3.Connection, filters: Filters,
                     now: dt.datetime) -> list[Occurrence]:
    """Occurrences of the seven days from ``filters.start`` (default: today, Europe/Paris).

    On the current day, sessions that already ended at ``now`` (aware) are left out. Ordered by
    start; at most ``MAX_ROWS``.
    """
    return week_page(connection, filters, now, 0, MAX_ROWS, count=False)[0]


@dataclass
class WeekListing:
    """One page of a week: its rows, the number of sessions in the whole week, and the first
    moment (aware UTC) one of those sessions ends — when the week shown at ``now`` changes
    (None when unknown or when none ends)."""

    rows: list[Occurrence]
    total: int
    changes_at: dt.datetime | None


def week_page(connection: sqlite3.Connection, filters: Filters, now: dt.datetime,
              offset: int, limit: int, facts: DatabaseFacts | None = None,
              count: bool = True) -> tuple[list[Occurrence], int]:
    """One page of the week's occurrences (see :func:`week_occurrences`) and how many in all.

    Rows ``offset`` to ``offset + limit`` in (start, id) order, paged by SQLite; the total is
    one COUNT with the same filters (0 when ``count`` is False). With ``facts``, the start of
    the scan is bounded by the longest occurrence, so both read one index range of about a
    week (publish/build.py's covering index on occurrences).
    """
    listing = week_listing(connection, filters, now, offset, limit, facts, count)
    return listing.rows, listing.total


def week_listing(connection: sqlite3.Connection, filters: Filters, now: dt.datetime,
                 offset: int, limit: int, facts: DatabaseFacts | None = None,
                 count: bool = True) -> WeekListing:
    """:func:`week_page` with the moment its answer changes (:class:`WeekListing`).

    The COUNT also reads the earliest end of the week's sessions: until then (and until the
    next midnight in Europe/Paris, which moves "today"), the same rows and total are shown.
    """
    window_start, window_end = _week_window(filters, now)
    if facts is None:
        facts = DatabaseFacts(table_columns(connection, "events"),
                              table_columns(connection, "occurrences"), None, {}, now)
    extra = ["o.end_utc > :from_utc", "o.start_utc < :to_utc"]
    params: dict[str, object] = {"from_utc": window_start, "to_utc": window_end}
    if facts.longest_days is not None:
        extra.append("o.start_utc >= :lower_utc")
        lower = dt.datetime.fromisoformat(window_start) - dt.timedelta(days=facts.longest_days)
        params["lower_utc"] = utc_text(lower)
    columns = (facts.event_columns, facts.occurrence_columns)
    rows = _occurrence_query(connection, filters, list(extra), dict(params), limit=limit,
                             offset=offset, columns=columns)
    total = 0
    first_end = min((o.end_utc for o in rows if o.end_utc), default=None)
    if count:
        where, needs_events, _ = filter_where(filters, *columns, extra, params)
        join = " JOIN events e ON e.id = o.event_id" if needs_events else ""
        total, first_end = connection.execute(
            f"SELECT count(*), min(o.end_utc) FROM occurrences o{join} "
            f"WHERE {' AND '.join(where)}", params
        ).fetchone()
    changes_at = parse_utc(first_end) if first_end else None
    return WeekListing(rows, int(total), changes_at)


def group_by_day(occurrences: list[Occurrence], first: dt.date) -> list[tuple[dt.date,
                                                                              list[Occurrence]]]:
    """Group occurrences by their Europe/Paris day; ones begun before ``first`` go on ``first``."""
    days: dict[dt.date, list[Occurrence]] = {}
    for occurrence in occurrences:
        days.setdefault(max(occurrence.local_day, first), []).append(occurrence)
    return sorted(days.items())


def event_occurrences(connection: sqlite3.Connection, event_id: str, now: dt.datetime,
                      limit: int = 12) -> list[Occurrence]:
    """The next sessions of one event (not ended at ``now``), at most ``limit``."""
    return _occurrence_query(
        connection, Filters(), ["o.event_id = :event_id", "o.end_utc > :from_utc"],
        {"event_id": event_id, "from_utc": utc_text(now)}, limit=limit,
    )


def event_record(connection: sqlite3.Connection, event_id: str) -> dict[str, object] | None:
    """The ``events`` row of ``event_id`` with its organisation's name and website, or None."""
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        return None
    record = dict(row)
    organisation_id = record.get("organisation_id")
    if organisation_id and has_table(connection, "organisations"):
        org = connection.execute(
            "SELECT * FROM organisations WHERE id = ?", (organisation_id,)
        ).fetchone()
        if org is not None:
            record["organisation"] = dict(org)
    return record


def event_calendar(connection: sqlite3.Connection, event_id: str) -> bytes | None:
    """One event as an RFC 5545 VCALENDAR (``publish.ics`` writer), or None when unknown.

    A series keeps its RRULE/RDATE/EXDATE and its overrides (RECURRENCE-ID), so a calendar
    application shows every coming session from one download; VTIMEZONE included.
    """
    from publish import ics

    connection.row_factory = sqlite3.Row
    found = connection.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    if found is None:
        return None
    row = dict(found)
    if row.get("latitude") is not None and row.get("longitude") is not None:
        row["geo"] = (float(row["latitude"]), float(row["longitude"]))  # type: ignore[arg-type]
    labels = theme_labels(connection, "fr")
    series = bool(row.get("rrule")) or json_list(row.get("rdate"))
    overrides = ics._overrides(connection, [event_id]).get(event_id, []) if series else []
    data, zone = ics.vevent_bytes(row, overrides, labels)
    feed_event = ics.FeedEvent(id=event_id, data=data, zone=zone)
    return ics.calendar_bytes([feed_event], name=str(row.get("title") or ics.CALENDAR_NAME))


@cache
def _vocab(kind: str) -> tuple[tuple[str, dict[str, str]], ...]:
    path = VOCAB_DIR / f"{kind}.yaml"
    if not path.exists():
        return ()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return ()
    entries = []
    for item in document.get(kind, []) or []:
        if isinstance(item, dict) and item.get("code"):
            entries.append((str(item["code"]), {k: str(v) for k, v in item.items()
                                                if k in ("fr", "en", "ar") and v}))
    return tuple(entries)


def vocab_labels(kind: str, lang: str) -> dict[str, str]:
    """Code → label in ``lang`` (French when missing) from ``data/vocab/<kind>.yaml``.

    ``kind`` is ``themes`` or ``publics``; {} when the vocabulary file does not exist.
    """
    return {code: labels.get(lang) or labels.get("fr") or code for code, labels in _vocab(kind)}


@dataclass
class Choice:
    """One option of a filter: its code and the label to show."""

    value: str
    label: str


def theme_labels(connection: sqlite3.Connection, lang: str) -> dict[str, str]:
    """Theme code → label in ``lang`` from the ``themes`` table, when it exists.

    Accepts label columns named ``label_<lang>``, ``<lang>`` or ``label`` (French).
    """
    if not has_table(connection, "themes"):
        return vocab_labels("themes", lang)
    columns = table_columns(connection, "themes")
    key = _first(columns, ("code", "id", "slug"))
    label = _first(columns, (f"label_{lang}", f"name_{lang}", lang, "label_fr", "label", "name"))
    if key is None or label is None:
        return {}
    fallback = _first(columns, ("label_fr", "label", "name")) or label
    rows = connection.execute(
        f'SELECT "{key}", COALESCE(NULLIF("{label}", \'\'), "{fallback}") FROM themes'
    ).fetchall()
    return {str(code): str(text) for code, text in rows if code}


def filter_choices(connection: sqlite3.Connection, lang: str, now: dt.datetime,
                   facts: DatabaseFacts | None = None) -> dict[str, list[Choice]]:
    """Options for the theme, quartier and public filters, from events still to come at
    ``now`` (aware): each code of a published event with an occurrence ending after ``now``.

    ``facts`` (from :func:`database_facts`, computed at or before ``now``) saves the scan.
    """
    if facts is None or facts.computed_at > now:
        facts = database_facts(connection, now)
    moment = utc_text(now)
    live = {kind: [code for code, last in ends.items() if last > moment]
            for kind, ends in facts.choice_ends.items()}
    event_columns = facts.event_columns
    choices: dict[str, list[Choice]] = {"theme": [], "quartier": [], "public": []}
    if "themes" in event_columns:
        labels = theme_labels(connection, lang)
        choices["theme"] = sorted(
            (Choice(c, labels.get(c, c)) for c in live["theme"]),
            key=lambda c: c.label.casefold())
    if "quartier" in event_columns:
        choices["quartier"] = sorted((Choice(n, n) for n in live["quartier"]),
                                     key=lambda c: c.label)
    if _first(event_columns, _PUBLICS_COLUMNS):
        public_labels = vocab_labels("publics", lang)
        choices["public"] = sorted(
            (Choice(c, public_labels.get(c, c)) for c in live["public"]),
            key=lambda c: c.label.casefold())
    return choices


def supports_free(connection: sqlite3.Connection) -> bool:
    """True when the published events say which ones are free."""
    return _free_expression(table_columns(connection, "events")) is not None


def organisations(connection: sqlite3.Connection) -> list[dict[str, object]]:
    """Every organisation, by name, with its number of coming events when events link to it."""
    if not has_table(connection, "organisations"):
        return []
    connection.row_factory = sqlite3.Row
    rows = connection.execute("SELECT * FROM organisations").fetchall()
    # accent-folded order: « Épicerie » files under E, not after Z as SQLite's NOCASE puts it
    return sorted((dict(r) for r in rows), key=lambda r: (fold(str(r["name"] or "")), r["id"]))


def organisation(connection: sqlite3.Connection, org_id: str) -> dict[str, object] | None:
    """One organisation row as a dict, or None."""
    if not has_table(connection, "organisations"):
        return None
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT * FROM organisations WHERE id = ?", (org_id,)).fetchone()
    return dict(row) if row else None


def organisation_events(connection: sqlite3.Connection, org_id: str,
                        now: dt.datetime, limit: int = 20) -> list[Occurrence]:
    """Coming sessions of the events an organisation publishes or organises."""
    if "organisation_id" not in table_columns(connection, "events"):
        return []
    return _occurrence_query(
        connection, Filters(), ["e.organisation_id = :org", "o.end_utc > :from_utc"],
        {"org": org_id, "from_utc": utc_text(now)}, limit=limit,
    )


def _service_org_column(columns: list[str]) -> str | None:
    return _first(columns, ("organisation_id", "structure_id"))


def services(connection: sqlite3.Connection,
             org_id: str | None = None) -> list[dict[str, object]]:
    """Services of the directory (table ``services``), by name; [] while it does not exist."""
    if not has_table(connection, "services"):
        return []
    columns = table_columns(connection, "services")
    name = _first(columns, ("name", "nom")) or "id"
    connection.row_factory = sqlite3.Row
    sql = "SELECT * FROM services"
    params: tuple[object, ...] = ()
    link = _service_org_column(columns)
    if org_id is not None:
        if link is None:
            return []
        sql += f' WHERE "{link}" = ?'
        params = (org_id,)
    rows = sorted((dict(r) for r in connection.execute(sql, params).fetchall()),
                  key=lambda r: (fold(str(r.get(name) or "")), str(r.get("id"))))
    return [normalise_service(row) for row in rows]


def service(connection: sqlite3.Connection, service_id: str) -> dict[str, object] | None:
    """One service as a dict (see :func:`normalise_service`), or None."""
    if not has_table(connection, "services"):
        return None
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT * FROM services WHERE id = ?", (service_id,)).fetchone()
    return normalise_service(dict(row)) if row else None


def normalise_service(row: dict[str, object]) -> dict[str, object]:
    """Give a services row the keys the templates read, whatever the column names.

    Keys added: ``_name``, ``_description``, ``_opening_hours``, ``_organisation_id``,
    ``_address``, ``_phone``, ``_email``, ``_website``, ``_themes`` (list), ``_free``.
    data.inclusion names (``nom``, ``presentation_resume``, ``horaires_accueil``, ``adresse``,
    ``telephone``, ``courriel``, ``thematiques``) are read as well as English ones.
    """
    def pick(*names: str) -> object:
        for name in names:
            value = row.get(name)
            if value not in (None, ""):
                return value
        return None

    address_parts = [pick("address", "adresse"), pick("postal_code", "code_postal"),
                     pick("city", "commune")]
    row["_name"] = pick("name", "nom") or row.get("id")
    row["_description"] = pick("description", "presentation_resume", "presentation_detail",
                               "summary")
    row["_opening_hours"] = pick(*_OPENING_HOURS_COLUMNS)
    row["_organisation_id"] = pick("organisation_id", "structure_id")
    row["_address"] = " ".join(str(p) for p in address_parts if p) or None
    row["_phone"] = pick("phone", "telephone")
    row["_email"] = pick("email", "courriel")
    row["_website"] = pick("website", "url", "source_link", "lien_source", "page_web")
    row["_themes"] = json_list(pick("themes", "thematiques"))
    row["_free"] = pick("free", "is_free", "gratuit", "frais")
    return row


#: Words of a search kept for the full-text query (letters and digits, any script).
_WORD = re.compile(r"\w+", re.UNICODE)
SEARCH_MAX_WORDS = 8
#: Up to this many matching events, their next sessions are read event by event; beyond,
#: the coming sessions are read in time order and kept when their event matches.
_FEW_MATCHES = 2000
#: While walking, matching is checked in the index for each chunk of sessions (~25 µs an
#: event on 100k events) as long as at least this share of the events checked match; below
#: it, and with at most ``_MANY_MATCHES`` matching events, every match is read at once
#: (~0.3 µs a match) and the walk goes on without the index.
_CHECK_RATE = 0.5
_MANY_MATCHES = 20_000
#: The walk's first chunk of sessions (about the page's length: a common word matches most of
#: the first sessions), then chunks double up to ``_WALK_CHUNK``, at most ``_WALK_CHUNKS`` of them.
_WALK_FIRST = 24
_WALK_CHUNK = 400
_WALK_CHUNKS = 60


def fts_query(text: str) -> str:
    """A resident's words as an FTS5 query: each word a quoted string, all required.

    ``"aide  alimentaire!"`` → ``'"aide" "alimentaire"'``; punctuation and FTS5 operators are
    dropped (no syntax error can reach SQLite); at most ``SEARCH_MAX_WORDS`` words; ``""`` when
    no word is left. Accents are folded by the index's tokenizer (``remove_diacritics 2``).
    """
    words = _WORD.findall(text or "")[:SEARCH_MAX_WORDS]
    return " ".join(f'"{word}"' for word in words)


@dataclass
class SearchResult:
    """Events matching a search, each shown by its next session (``rows``, in time order),
    whether more matched than shown (``more``), and the first moment (aware UTC) the answer
    changes (a shown session ends), or None."""

    rows: list[Occurrence]
    more: bool
    changes_at: dt.datetime | None


def search_upcoming(connection: sqlite3.Connection, text: str, now: dt.datetime,
                    limit: int = 20, facts: DatabaseFacts | None = None) -> SearchResult:
    """Published events whose title, description or place match ``text`` (full-text index
    ``events_fts``, FTS5), with a session not ended at ``now`` (aware): the ``limit`` whose
    next session comes first, each with that session.

    No count and no ranking over all matches: up to ``_FEW_MATCHES`` matches (counted that far
    only) are read one by one through the ``occurrences(event_id)`` index; more are found by
    reading the coming sessions in time order (the ``start_utc`` index) until ``limit`` + 1
    events are found (:func:`_walk_coming`). Returns an empty result
    when the database has no ``events_fts`` table or ``text`` has no word.
    """
    query = fts_query(text)
    if not query or not has_table(connection, "events_fts"):
        return SearchResult([], False, None)
    if facts is None or facts.computed_at > now:
        facts = database_facts(connection, now)
    event_columns, occurrence_columns = facts.event_columns, facts.occurrence_columns
    params: dict[str, object] = {"from_utc": utc_text(now)}
    where, _, _ = filter_where(Filters(), event_columns, occurrence_columns,
                                ["o.end_utc > :from_utc"], params)
    how_many = _count_matches(connection, query, _FEW_MATCHES)
    picked: list[str] = []  # occurrence ids, one per event, in time order
    more = False
    if how_many <= _FEW_MATCHES:
        matches = _match_rowids(connection, query)
        picked, more = _next_by_event(connection, matches, where, params, limit)
    else:
        picked, more = _walk_coming(connection, query, where, params, facts, limit)
    if not picked:
        return SearchResult([], more, None)
    chosen = "o.id IN (SELECT value FROM json_each(:picked))"
    shown = _occurrence_query(connection, Filters(), [chosen], {"picked": json.dumps(picked)},
                              limit=limit,
                              columns=(event_columns, occurrence_columns))
    first_end = min((o.end_utc for o in shown if o.end_utc), default=None)
    return SearchResult(shown, more, parse_utc(first_end) if first_end else None)


def _count_matches(connection: sqlite3.Connection, query: str, cap: int) -> int:
    """How many events match the FTS5 ``query``, counted up to ``cap`` + 1 only."""
    return int(connection.execute(
        "SELECT count(*) FROM (SELECT rowid FROM events_fts WHERE events_fts MATCH ? LIMIT ?)",
        (query, cap + 1)).fetchone()[0])


def _match_rowids(connection: sqlite3.Connection, query: str) -> list[int]:
    """The ``events`` rowids of every event matching the FTS5 ``query``, in the index's order."""
    return [row[0] for row in connection.execute(
        "SELECT rowid FROM events_fts WHERE events_fts MATCH ?", (query,))]


def _next_by_event(connection: sqlite3.Connection, matches: list[int], where: list[str],
                   params: dict[str, object], limit: int) -> tuple[list[str], bool]:
    """The next session of each event of ``matches`` (``events`` rowids), read event by event
    through the ``occurrences(event_id)`` index: (the ``limit`` first occurrence ids in time
    order, whether more events have one)."""
    if not matches:
        return [], False
    rows = connection.execute(
        f"SELECT e.id, (SELECT o.id FROM occurrences o WHERE o.event_id = e.id AND "
        f"{' AND '.join(where)} ORDER BY o.start_utc, o.id LIMIT 1) AS next_id, "
        f"(SELECT min(o.start_utc) FROM occurrences o WHERE o.event_id = e.id AND "
        f"{' AND '.join(where)}) AS next_start "
        "FROM events e WHERE e.rowid IN (SELECT value FROM json_each(:ids))",
        {**params, "ids": json.dumps(matches)}).fetchall()
    found = sorted((str(start), str(event_id), str(next_id))
                   for event_id, next_id, start in rows if next_id)
    return [next_id for _, _, next_id in found[:limit]], len(found) > limit


def _walk_coming(connection: sqlite3.Connection, query: str, where: list[str],
                 params: dict[str, object], facts: DatabaseFacts,
                 limit: int) -> tuple[list[str], bool]:
    """Many events match ``query``: read the coming sessions in time order (index-only on
    ``start_utc``) and keep each matching event's first one, until ``limit`` + 1 are found.

    Matching is checked in the full-text index for each chunk of sessions (FTS5 ``rowid IN``;
    chunks grow from ``_WALK_FIRST`` sessions). When fewer than ``_CHECK_RATE`` of the events
    checked so far match and at most ``_MANY_MATCHES`` events match, every match is read
    once instead and the walk goes on without the index. Returns (occurrence ids in time
    order, whether more than ``limit`` were found).
    """
    wanted: set[int] | None = None
    checked = matched = 0
    many: bool | None = None
    walk = dict(params)
    bound = ""
    if facts.longest_days is not None:
        bound = " AND o.start_utc >= :lower_utc"
        walk["lower_utc"] = utc_text(dt.datetime.fromisoformat(str(params["from_utc"]))
                                     - dt.timedelta(days=facts.longest_days))
    seen: set[str] = set()
    rejected: set[int] = set()  # events checked in the index that do not match
    found: list[tuple[str, str]] = []  # (start_utc, event_id)
    walk["after"] = ""
    strict = False
    size = _WALK_FIRST
    for _ in range(_WALK_CHUNKS):
        chunk = connection.execute(
            "SELECT o.start_utc, o.event_id, e.rowid FROM occurrences o "
            f"JOIN events e ON e.id = o.event_id WHERE {' AND '.join(where)}{bound} "
            f"AND o.start_utc {'>' if strict else '>='} :after ORDER BY o.start_utc "
            f"LIMIT {size}", walk).fetchall()
        fresh = [(str(row[0]), str(row[1]), int(row[2])) for row in chunk
                 if row[1] not in seen and row[2] not in rejected]
        if wanted is None and fresh and checked and matched < _CHECK_RATE * checked:
            if many is None:  # counted once, when first needed
                many = _count_matches(connection, query, _MANY_MATCHES) > _MANY_MATCHES
            if not many:
                wanted = set(_match_rowids(connection, query))
        if wanted is None and fresh:
            rowids = sorted({row[2] for row in fresh})
            hits = {row[0] for row in connection.execute(
                "SELECT rowid FROM events_fts WHERE events_fts MATCH ? AND rowid IN "
                f"({', '.join(str(int(r)) for r in rowids)})", (query,))}
            checked += len(rowids)
            matched += len(hits)
            rejected.update(set(rowids) - hits)
        else:
            hits = wanted or set()
        for start, event_id, rowid in sorted(fresh):
            if rowid in hits and event_id not in seen:
                seen.add(event_id)
                found.append((start, event_id))
        if len(found) > limit or len(chunk) < size:
            break
        size = _WALK_CHUNK if wanted is not None else min(2 * size, _WALK_CHUNK)
        # sessions starting at the chunk's last moment may go on in the next chunk; when a
        # whole chunk starts at one moment, step past it
        strict = chunk[0][0] == chunk[-1][0]
        walk["after"] = chunk[-1][0]
    else:
        # _WALK_CHUNKS chunks without limit + 1 matching events: the matches are far ahead.
        # With every match known, read them event by event (exact); else show the first
        # ones found (in time order, right) and say that more may come.
        if wanted is not None:
            return _next_by_event(connection, sorted(wanted), where, params, limit)
        found.sort()
        return _pair_ids(connection, found[:limit]), True
    found.sort()
    more = len(found) > limit
    return _pair_ids(connection, found[:limit]), more


def _pair_ids(connection: sqlite3.Connection, found: list[tuple[str, str]]) -> list[str]:
    """The occurrence id of each (start_utc, event_id) of ``found``, in the same order (the
    smallest id when an event has two sessions starting at the same moment)."""
    if not found:
        return []
    pairs = json.dumps([[event_id, start] for start, event_id in found])
    ids = {str(row[0]): str(row[1]) for row in connection.execute(
        "SELECT o.event_id, o.id FROM occurrences o WHERE (o.event_id, o.start_utc) IN "
        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
        "FROM json_each(?)) ORDER BY o.id DESC", (pairs,))}
    return [ids[event_id] for _, event_id in found if event_id in ids]
