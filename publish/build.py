"""PUBLISH: build ``tissu-open.db`` from the working store, atomically, public columns only.

The database is written to a temporary file in the target folder, then renamed over the old one
(``os.replace``), so Datasette never sees a half-written file.

Which tables and columns are published is decided by :data:`publish.columns.PUBLIC_TABLES` only.
The build is tolerant so that colleagues' tables can land one at a time: a table whose source
(working-store table, or a loader registered in :data:`LOADERS`) does not exist yet is skipped,
and so is a listed column the source does not have yet. Extending the database therefore means
adding an entry to ``PUBLIC_TABLES`` (and, for a non-store source, a loader here).

Also built: an FTS5 index ``events_fts`` folding accents (``unicode61 remove_diacritics 2``),
indexes for the common queries, the view ``upcoming``.

Left out (:class:`Withdrawal`): the events of a source retired from the registry (status
``retired``), with their occurrences, their provenance rows, the data.inclusion services
and structures of such a source, and its publisher when no other source publishes as it; every export is read from this database, so they leave the
iCalendar, JSON-LD, CSV and Atom files and data.inclusion too. A paused source's events stay
(``tissu sources pause``: no more harvest, still published). An event another, active source
also gives (a cross-source duplicate, normalize/dedupe.py) stays, with only the active
provenance.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import bindparam, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine

from publish.columns import PUBLIC_TABLES
from schemas.models import RETIRED
from tissu.settings import DATA_DIR, PROJECT_ROOT

DB_NAME = "tissu-open.db"
_INTEGER_COLUMNS = {"all_day", "uid_repaired", "floating", "sequence", "revision",
                    "consecutive_failures", "events", "occurrences", "upcoming_occurrences",
                    "new", "updated", "cancelled", "removed", "run_id", "is_canonical",
                    "gratuit", "registration_required", "coordinates_verified",
                    "opening_hours_valid", "age_min", "age_max", "events_total",
                    "events_upcoming", "items_last_run", "live"}
_REAL_COLUMNS = {"latitude", "longitude", "confidence"}
# Working-store table of each published table, when it differs from the default (singular name).
_DEFAULT_SOURCES = {"events": "event", "occurrences": "occurrence", "sources": "source",
                    "organisations": "organisation", "publish_runs": "publishrun",
                    "changes": "publishchange", "places": "place", "services": "service",
                    "event_sources": "eventsource"}
# Columns computed here rather than read from the store.
_DERIVED = {"events": {"dtstart_local"}, "occurrences": {"quartier", "live"}}
# Indexes for the common queries; an index whose columns are missing is skipped.
_INDEXES = [
    # covers the "this week" queries (by quartier): an index-only range scan on start_utc
    ("occurrences", ("start_utc", "end_utc", "live", "quartier", "event_id", "start_local")),
    ("occurrences", ("event_id",)),
    ("events", ("source_id",)),
    ("events", ("dtstart_utc",)),
    ("events", ("quartier",)),
    ("events", ("organisation_id",)),
    ("events", ("updated_at", "id")),
    ("events", ("first_seen_at",)),
    ("events", ("place_id",)),
    ("events", ("cluster_id",)),
    ("event_sources", ("event_id",)),
    ("services", ("structure_id",)),
    ("changes", ("run_id",)),
    ("changes", ("event_id",)),
]
UPCOMING_VIEW = """
CREATE VIEW upcoming AS
SELECT o.id AS occurrence_id, o.event_id, COALESCE(o.title, e.title) AS title,
       o.start_local, o.end_local, o.start_utc, o.end_utc, o.all_day,
       CASE WHEN e.status = 'cancelled' THEN 'cancelled' ELSE o.status END AS status,
       COALESCE(o.location, e.location) AS location, e.url, e.organizer, e.themes, e.quartier,
       e.source_id
FROM occurrences o JOIN events e ON e.id = o.event_id
WHERE o.end_utc >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now') AND e.removed_at_source IS NULL
ORDER BY o.start_utc
"""


def iso_utc(value: object) -> str | None:
    """Aware or UTC-naive datetime → ``YYYY-MM-DDTHH:MM:SSZ``; None stays None."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, str):
        # fast path: SQLite text of a naive UTC value, "YYYY-MM-DD HH:MM:SS[.ffffff]"
        if len(value) >= 19 and value[10] in " T" and (len(value) == 19 or value[19] == "."):
            return f"{value[:10]}T{value[11:19]}Z"
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_datetime_column(name: str) -> bool:
    return name.endswith(("_utc", "_at", "_since")) or name == "removed_at_source"


def load_themes_vocab(path: Path | None = None) -> pd.DataFrame | None:
    """The ``themes`` table from the controlled vocabulary ``data/vocab/themes.yaml``.

    Columns: code, fr, en, ar, description, datainclusion (JSON list). None when the file
    does not exist.
    """
    path = path or DATA_DIR / "vocab" / "themes.yaml"
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rows = []
    for item in data.get("themes", []):
        rows.append({
            "code": item.get("code"),
            "fr": item.get("fr"),
            "en": item.get("en"),
            "ar": item.get("ar"),
            "description": " ".join(str(item.get("description") or "").split()) or None,
            "datainclusion": json.dumps(item.get("datainclusion") or [], ensure_ascii=False),
        })
    return pd.DataFrame(rows, dtype=object)


def load_places_registry(path: Path | None = None) -> pd.DataFrame | None:
    """The ``places`` table from ``data/places.yaml`` (list ``places:`` of mappings).

    Every scalar key of an entry becomes a column; lists become JSON text. None when absent.
    """
    path = path or DATA_DIR / "places.yaml"
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = data.get("places", data if isinstance(data, list) else [])
    rows = [
        {k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
         for k, v in item.items()}
        for item in items if isinstance(item, dict)
    ]
    return pd.DataFrame(rows, dtype=object)


# Sources of published tables that are not working-store tables. Each returns a frame or None.
LOADERS: dict[str, Callable[[], pd.DataFrame | None]] = {
    "themes": load_themes_vocab,
    "places": load_places_registry,
}


def _source_table(table: str, spec: dict[str, Any]) -> str:
    return str(spec.get("source") or _DEFAULT_SOURCES.get(table) or table)


# Big tables copied store → published database inside SQLite (ATTACH + INSERT … SELECT) when the
# working store is SQLite: a million occurrences take seconds instead of minutes through pandas.
# (``events`` stays read through pandas: the publish history digests its frame.)
_STREAMED = {"occurrences", "event_sources"}
# Copied without checking each value (a million rows): datetimes taken to be SQLite's naive
# text, text columns taken to hold text. The other copies check, and publish exactly what the
# pandas path would.
_UNCHECKED = {"occurrences"}


def sqlite_store_path(engine: Engine) -> Path | None:
    """The file of a SQLite working store, None for another database."""
    if engine.url.get_backend_name() != "sqlite":
        return None
    database = engine.url.database
    return Path(database) if database and database != ":memory:" else None




@dataclass(frozen=True)
class Withdrawal:
    """What a publication leaves out because its source was retired from the registry.

    ``sources``: ids of the retired sources; ``events``: ids of their events (every one, live
    or not); ``organisations``: ids of the publishers (normalize.pipeline.upsert_organisation)
    of retired sources that no other source publishes as; ``promoted``: withdrawn canonical event id → the member of its cluster, from an
    active source, published in its place (its own values, ``is_canonical`` set and
    ``field_sources`` ``{}``; the cluster's provenance rows point to it). Chosen as
    normalize.dedupe chooses a canonical member: organiser's own source, then municipal
    aggregate, then third party; then the earliest seen; then the smallest id. Another active
    member of such a cluster keeps its match score with the withdrawn canonical. (Until
    deduplication runs again without the retired events, a canonical event of an active
    source keeps the values it had merged from a retired member.)
    """

    sources: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    promoted: dict[str, str] = field(default_factory=dict)
    organisations: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.sources)


def withdrawal(engine: Engine) -> Withdrawal:
    """The :class:`Withdrawal` of the working store now: besides the catalogue, three queries
    when a source is retired, one otherwise. Raises what the database raises."""
    tables = set(sa_inspect(engine).get_table_names())
    if not {"source", "event"} <= tables:
        return Withdrawal()
    with engine.connect() as connection:
        sources = frozenset(r[0] for r in connection.execute(
            text("SELECT id FROM source WHERE status = :retired"), {"retired": RETIRED}))
        if not sources:
            return Withdrawal()
        ids = {"ids": sorted(sources)}
        events = frozenset(r[0] for r in connection.execute(
            text("SELECT id FROM event WHERE source_id IN :ids")
            .bindparams(bindparam("ids", expanding=True)), ids))
        publishers = frozenset() if "organisation" not in tables else frozenset(
            r[0] for r in connection.execute(text(
                "SELECT o.id FROM organisation o WHERE o.source_id IS NULL "
                "AND o.name IN (SELECT publisher_name FROM source WHERE id IN :ids) "
                "AND o.name NOT IN (SELECT publisher_name FROM source WHERE id NOT IN :ids)"
            ).bindparams(bindparam("ids", expanding=True)), ids))
        members = [] if "eventsource" not in tables else connection.execute(text(
            "SELECT es.canonical_event_id, e.id, e.organizer, s.publisher_name, "
            "s.publisher_type, e.first_seen_at FROM eventsource es "
            "JOIN event c ON c.id = es.canonical_event_id "
            "JOIN event e ON e.id = es.event_id LEFT JOIN source s ON s.id = e.source_id "
            "WHERE c.source_id IN :ids AND e.source_id NOT IN :ids "
            "AND e.removed_at_source IS NULL"
        ).bindparams(bindparam("ids", expanding=True)), ids).all()
    return Withdrawal(sources, events, _successors(members), publishers)


def _successors(members: Iterable[Any]) -> dict[str, str]:
    """Withdrawn canonical id → its best remaining member, from rows (canonical id, member
    id, organizer, publisher_name, publisher_type, first_seen_at)."""
    candidates: dict[str, list[tuple[int, str, str]]] = {}
    rows = list(members)
    if not rows:
        return {}
    from normalize.dedupe import source_priority  # numpy and rapidfuzz: only when needed

    for canonical, member, organizer, publisher, kind, first_seen in rows:
        priority = source_priority({"organizer": organizer, "publisher_name": publisher,
                                    "publisher_type": kind})
        seen = iso_utc(first_seen) or "9999"  # never seen: last, as dedupe's _instant
        candidates.setdefault(canonical, []).append((priority, seen, member))
    return {canonical: min(found)[2] for canonical, found in candidates.items()}


def _withdraw_frame(table: str, frame: pd.DataFrame, left: Withdrawal) -> pd.DataFrame:
    """``frame`` (a table as read from the store) without what ``left`` withdraws."""
    if not left:
        return frame
    keep: Any = None
    if table == "events" and "id" in frame:
        keep = ~frame["id"].isin(left.events)
    elif table in ("occurrences", "event_sources") and "event_id" in frame:
        keep = ~frame["event_id"].isin(left.events)
    elif table == "services" and "source_id" in frame:
        keep = ~frame["source_id"].isin(left.sources)
    elif table == "organisations" and "source_id" in frame:
        keep = ~(frame["source_id"].isin(left.sources) | frame["id"].isin(left.organisations))
    if keep is not None:
        frame = frame[keep].reset_index(drop=True)
    if not left.promoted:
        return frame
    if table == "events" and "is_canonical" in frame:
        promoted = frame["id"].isin(set(left.promoted.values()))
        if promoted.any():
            frame = frame.copy()
            frame.loc[promoted, "is_canonical"] = 1
            if "field_sources" in frame:
                frame.loc[promoted, "field_sources"] = "{}"
    elif table == "event_sources" and "canonical_event_id" in frame:
        moved = frame["canonical_event_id"].isin(set(left.promoted))
        if moved.any():
            frame = frame.copy()
            successor = frame.loc[moved, "canonical_event_id"].map(left.promoted)
            frame.loc[moved, "canonical_event_id"] = successor
            if "id" in frame:
                frame.loc[moved, "id"] = successor + "|" + frame.loc[moved, "event_id"]
            if "confidence" in frame:
                own = moved & (frame["canonical_event_id"] == frame["event_id"])
                frame.loc[own, "confidence"] = 1.0
    return frame


def _withdraw_rows(connection: sqlite3.Connection, left: Withdrawal, tables: set[str]) -> None:
    """Apply ``left`` to the published ``tables`` copied straight from the store (the same
    rows :func:`_withdraw_frame` leaves out; nothing to do in a table already filtered)."""
    if not left:
        return
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS _withdrawn (id TEXT PRIMARY KEY)")
    connection.execute("DELETE FROM temp._withdrawn")
    connection.executemany("INSERT INTO temp._withdrawn VALUES (?)",
                           ((i,) for i in sorted(left.events)))
    columns = {table: {r[1] for r in connection.execute(f'PRAGMA main.table_info("{table}")')}
               for table in tables}
    if "id" in columns.get("events", ()):
        connection.execute("DELETE FROM events WHERE id IN (SELECT id FROM temp._withdrawn)")
        if "is_canonical" in columns["events"]:
            sets = "is_canonical = 1" + (", field_sources = '{}'"
                                         if "field_sources" in columns["events"] else "")
            connection.executemany(f"UPDATE events SET {sets} WHERE id = ?",
                                   ((i,) for i in sorted(set(left.promoted.values()))))
    for table in ("occurrences", "event_sources"):
        if "event_id" in columns.get(table, ()):
            connection.execute(f"DELETE FROM {table} WHERE event_id IN "
                               "(SELECT id FROM temp._withdrawn)")
    provenance = columns.get("event_sources", set())
    if left.promoted and {"id", "canonical_event_id", "event_id", "confidence"} <= provenance:
        # one statement (the table has no index on canonical_event_id yet)
        connection.execute("CREATE TEMP TABLE _promoted (old TEXT PRIMARY KEY, new TEXT)")
        connection.executemany("INSERT INTO temp._promoted VALUES (?, ?)",
                               sorted(left.promoted.items()))
        connection.execute(
            "UPDATE event_sources SET canonical_event_id = p.new, "
            "id = p.new || '|' || event_sources.event_id, confidence = CASE "
            "WHEN event_sources.event_id = p.new THEN 1.0 ELSE event_sources.confidence END "
            "FROM temp._promoted p WHERE event_sources.canonical_event_id = p.old")
        connection.execute("DROP TABLE temp._promoted")
    connection.execute("DROP TABLE temp._withdrawn")


def public_frames(engine: Engine, only: set[str] | None = None,
                  stream: bool = False,
                  left: Withdrawal | None = None) -> dict[str, pd.DataFrame]:
    """Read the public columns of each table from the working store, ready to write.

    Datetimes (``*_utc``, ``*_at``) become ISO 8601 UTC text; ``events.dtstart_local`` is added;
    bundled sample paths are shown relative to the project. Tables whose source does not exist
    are left out; listed columns missing at the source are left out; so are the rows ``left``
    withdraws (:func:`withdrawal` of the store when None). ``only`` restricts the tables read;
    with ``stream``, the big tables of a SQLite store are left for :func:`build_database` to
    copy directly.
    """
    left = withdrawal(engine) if left is None else left
    inspector = sa_inspect(engine)
    store_tables = set(inspector.get_table_names())
    store_path = sqlite_store_path(engine)
    frames: dict[str, pd.DataFrame] = {}
    reader: Any = sqlite3.connect(store_path) if store_path else engine
    for table, spec in PUBLIC_TABLES.items():
        if only is not None and table not in only:
            continue
        if stream and store_path and table in _STREAMED:
            continue
        wanted = list(spec["columns"])  # type: ignore[call-overload]
        derived = _DERIVED.get(table, set())
        source = _source_table(table, spec)
        frame: pd.DataFrame | None
        if source in store_tables:
            present = {c["name"] for c in inspector.get_columns(source)}
            columns = [c for c in wanted if c in present and c not in derived]
            order = "id" if "id" in present else columns[0]
            query = f"SELECT {', '.join(columns)} FROM {source} ORDER BY {order}"
            frame = pd.read_sql_query(query, reader, dtype=object)
        elif table in LOADERS:
            frame = LOADERS[table]()
            if frame is None:
                continue
            frame = frame[[c for c in wanted if c in frame.columns]]
        else:
            continue
        frame = _withdraw_frame(table, frame, left)
        for column in frame.columns:
            if _is_datetime_column(column):
                frame[column] = _objects(frame, [iso_utc(v) for v in frame[column]])
        for column in ("start_date", "end_date"):
            if column in frame:
                frame[column] = _objects(frame, [_date_text(v) for v in frame[column]])
        frames[table] = frame
    if store_path:
        reader.close()
    events = frames.get("events")
    if events is not None:
        position = events.columns.get_loc("dtend_utc") + 1 if "dtend_utc" in events else 0
        local = _Local()
        starts = (events[c] if c in events else [None] * len(events)
                  for c in ("all_day", "start_date", "dtstart_utc"))
        events.insert(position, "dtstart_local", _objects(events, [
            local(all_day, start_date, start) for all_day, start_date, start in zip(*starts)]))
    sources = frames.get("sources")
    if sources is not None and "url" in sources:
        sources["url"] = sources["url"].map(_public_url)
    return frames


def _date_text(value: object) -> str | None:
    """A date (or date-like text) → ``YYYY-MM-DD``; None, NaN and NaT → None (never "nan")."""
    if value.__class__ is str:  # the usual case: SQLite's text, no pandas call
        return value[:10]  # type: ignore[index]
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return None
    return str(value)[:10]


def _objects(frame: pd.DataFrame, values: list[Any]) -> pd.Series:
    """A column of Python objects (None stays None, never NaN) aligned with ``frame``."""
    return pd.Series(values, index=frame.index, dtype=object)


class _Local:
    """``events.dtstart_local``: the start in Europe/Paris (ISO 8601 with offset), or the first
    day of an all-day event; start times events share are converted once."""

    def __init__(self) -> None:
        from normalize.times import local_iso  # imported once, not at each of 50k calls

        self._local_iso = local_iso
        self._seen: dict[str, str] = {}

    def __call__(self, all_day: object, start_date: object, start_utc: object) -> str | None:
        if all_day:
            return str(start_date) if start_date else None
        if not start_utc:
            return None
        text = str(start_utc)
        found = self._seen.get(text)
        if found is None:
            found = self._seen[text] = self._local_iso(dt.datetime.fromisoformat(text))
        return found


def _public_url(url: str) -> str:
    if url.startswith(("http://", "https://")):
        return url
    try:
        return Path(url).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return Path(url).name


def _primary_key(table: str, frame: pd.DataFrame) -> str | None:
    spec = PUBLIC_TABLES.get(table, {})
    key = spec.get("primary_key", "id")
    return str(key) if key in frame.columns else None


def _sql_type(series: pd.Series) -> str:
    """SQLite type from the first non-null value: INTEGER for int/bool, REAL for float."""
    first = series.first_valid_index()
    if first is None:
        return "TEXT"
    value = series[first]
    if isinstance(value, bool | int):
        return "INTEGER"
    return "REAL" if isinstance(value, float) else "TEXT"


def _column_type(column: str, frame: pd.DataFrame | None = None) -> str:
    """SQLite type of a published column: INTEGER or REAL by its name, else that of its first
    value in ``frame`` (:func:`_sql_type`), TEXT without a frame."""
    if column in _INTEGER_COLUMNS:
        return "INTEGER"
    if column in _REAL_COLUMNS:
        return "REAL"
    return _sql_type(frame[column]) if frame is not None else "TEXT"


def _create_table(connection: sqlite3.Connection, table: str, frame: pd.DataFrame) -> None:
    columns = []
    primary_key = _primary_key(table, frame)
    for column in frame.columns:
        kind = _column_type(column, frame)
        suffix = " PRIMARY KEY" if column == primary_key else ""
        columns.append(f'"{column}" {kind}{suffix}')
    connection.execute(f'CREATE TABLE "{table}" ({", ".join(columns)})')
    placeholders = ", ".join("?" for _ in frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    connection.executemany(f'INSERT INTO "{table}" VALUES ({placeholders})', rows)


def _create_indexes(connection: sqlite3.Connection, frames: dict[str, pd.DataFrame]) -> None:
    for table, columns in _INDEXES:
        frame = frames.get(table)
        if frame is None or not set(columns) <= set(frame.columns):
            continue
        name = f"idx_{table}_{'_'.join(columns)}"
        quoted = ", ".join(f'"{c}"' for c in columns)
        connection.execute(f'CREATE INDEX "{name}" ON "{table}" ({quoted})')


def _sql_value(column: str, exact: bool = True) -> str:
    """SQL turning a store column (of ``s``) into its published text (datetimes → ISO 8601
    UTC ``Z``), as :func:`public_frames` does: SQLite's own text of a naive UTC value
    (``YYYY-MM-DD HH:MM:SS[.ffffff]``) is rewritten in SQL, any other value goes through
    :func:`iso_utc` (the function ``tissu_iso_utc`` of the connection). Not ``exact``: every
    datetime is taken to be SQLite's naive text (no test per value)."""
    quoted = f's."{column}"'
    if _is_datetime_column(column) and not exact:
        return (f"CASE WHEN {quoted} IS NULL THEN NULL ELSE substr({quoted}, 1, 10) || 'T' || "
                f"substr({quoted}, 12, 8) || 'Z' END")
    if _is_datetime_column(column):
        return (f"CASE WHEN {quoted} IS NULL THEN NULL "
                f"WHEN typeof({quoted}) = 'text' AND length({quoted}) >= 19 "
                f"AND substr({quoted}, 11, 1) IN (' ', 'T') "
                f"AND (length({quoted}) = 19 OR substr({quoted}, 20, 1) = '.') "
                f"THEN substr({quoted}, 1, 10) || 'T' || substr({quoted}, 12, 8) || 'Z' "
                f"ELSE tissu_iso_utc({quoted}) END")
    if column in ("start_date", "end_date"):
        return f"substr({quoted}, 1, 10)"
    return quoted


def _live_condition(connection: sqlite3.Connection) -> str | None:
    """SQL (over alias ``e`` of events) true for a published event; None without events."""
    events = {r[1] for r in connection.execute("PRAGMA main.table_info(events)")}
    if "removed_at_source" not in events:
        return None
    live = "e.removed_at_source IS NULL"
    if "is_canonical" in events:
        live += " AND (e.is_canonical IS NULL OR e.is_canonical = 1)"
    return live


def _add_occurrence_links(connection: sqlite3.Connection) -> None:
    """Copy each event's quartier and published state onto its occurrences (columns
    ``quartier`` and ``live``), so "this week, by quartier" reads one index only. (The copy
    from a SQLite store fills them while copying.)"""
    names = {r[1] for r in connection.execute("PRAGMA table_info(occurrences)")}
    live = _live_condition(connection)
    if not names or live is None or "quartier" in names:
        return
    connection.execute("ALTER TABLE occurrences ADD COLUMN quartier TEXT")
    connection.execute("ALTER TABLE occurrences ADD COLUMN live INTEGER")
    connection.execute(
        f"UPDATE occurrences SET quartier = e.quartier, live = CASE WHEN {live} THEN 1 ELSE 0 "
        "END FROM events e WHERE e.id = occurrences.event_id")


def _local_sql(present: set[str]) -> str:
    """SQL giving ``events.dtstart_local`` of a store row (alias ``s``), by :class:`_Local`."""
    def argument(column: str) -> str:
        return _sql_value(column) if column in present else "NULL"

    return (f'tissu_local({argument("all_day")}, {argument("start_date")}, '
            f'{argument("dtstart_utc")})')


def _copy_streamed(connection: sqlite3.Connection, engine: Engine, table: str,
                   frame: pd.DataFrame | None = None) -> bool:
    """Copy a big table from a SQLite store with one INSERT … SELECT; False when not possible.

    With ``frame`` (the table as :func:`public_frames` read it), the table gets the columns,
    types and values :func:`_create_table` would give it from that frame, computed in SQLite.
    """
    store_path = sqlite_store_path(engine)
    spec = PUBLIC_TABLES.get(table)
    if store_path is None or spec is None:
        return False
    source = _source_table(table, spec)
    connection.execute("ATTACH DATABASE ? AS store", (f"file:{store_path}?mode=ro",))
    try:
        present = {r[1] for r in connection.execute(f'PRAGMA store.table_info("{source}")')}
        if not present:
            return False
        derived = _DERIVED.get(table, set())
        columns = [c for c in spec["columns"]  # type: ignore[attr-defined]
                   if c in present and c not in derived]
        if frame is not None:
            if table != "events" or [c for c in frame.columns if c not in derived] != columns:
                return False
            columns = list(frame.columns)
        # a column not typed INTEGER or REAL here is typed by its first value through pandas
        # (which turns integers beside a NULL into floats): a number (or bytes) there keeps
        # the pandas path; a NULL all_day too (NaN, true for _Local)
        unsure = [f"typeof(\"{c}\") IN ('integer', 'real', 'blob')" for c in columns
                  if c in present and c not in _INTEGER_COLUMNS and c not in _REAL_COLUMNS]
        if frame is not None and "all_day" in present:
            unsure.append('"all_day" IS NULL')
        if unsure and table not in _UNCHECKED and connection.execute(
                f'SELECT 1 FROM store."{source}" WHERE {" OR ".join(unsure)} LIMIT 1'
        ).fetchone():
            return False
        connection.create_function("tissu_iso_utc", 1, iso_utc, deterministic=True)
        definitions = []
        values = []
        key = spec.get("primary_key", "id") if frame is None else _primary_key(table, frame)
        for column in columns:
            suffix = " PRIMARY KEY" if column == key else ""
            definitions.append(f'"{column}" {_column_type(column, frame)}{suffix}')
            values.append(_local_sql(present) if column in derived
                          else _sql_value(column, exact=table not in _UNCHECKED))
        if frame is not None:
            connection.create_function("tissu_local", 3, _Local(), deterministic=True)
        join = ""
        if table == "occurrences" and _live_condition(connection):
            definitions += ['"quartier" TEXT', '"live" INTEGER']
            values += ["e.quartier", f"CASE WHEN {_live_condition(connection)} THEN 1 ELSE 0 END"]
            join = " LEFT JOIN main.events e ON e.id = s.event_id"
        connection.execute(f'CREATE TABLE "{table}" ({", ".join(definitions)})')
        order = "id" if "id" in present else columns[0]
        connection.execute(
            f'INSERT INTO "{table}" SELECT {", ".join(values)} '
            f'FROM store."{source}" s{join} ORDER BY s."{order}"')
        return True
    finally:
        connection.commit()
        connection.execute("DETACH DATABASE store")


def build_database(engine: Engine, out_dir: Path,
                   frames: dict[str, pd.DataFrame] | None = None,
                   timings: dict[str, float] | None = None,
                   meanwhile: Callable[[], dict[str, pd.DataFrame]] | None = None,
                   left: Withdrawal | None = None) -> Path:
    """Write ``out_dir/tissu-open.db`` atomically and return its path.

    ``frames`` come from :func:`public_frames` (read here when None); a big table missing from
    them is copied straight from a SQLite store, or read through pandas otherwise. ``left``:
    what the publication leaves out (:func:`withdrawal` of the store when None), applied to
    the tables copied from the store as to the frames.
    ``meanwhile``, when given, runs in a thread while SQLite copies and indexes the big tables
    (C code that leaves Python's GIL free, so a second core does that work) and returns more
    frames to write (such as the publish history). ``timings``, when given, receives the
    seconds of each step (``database.<step>``). Raises what SQLite, the file system or
    ``meanwhile`` raise; the previous file then stays in place.
    """
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        if timings is not None:
            timings[f"database.{step}"] = time.perf_counter() - clock
        clock = time.perf_counter()

    out_dir.mkdir(parents=True, exist_ok=True)
    left = withdrawal(engine) if left is None else left
    frames = dict(frames) if frames is not None else public_frames(engine, stream=True,
                                                                    left=left)
    handle, temp_name = tempfile.mkstemp(prefix=".tissu-open-", suffix=".db", dir=out_dir)
    os.close(handle)
    running: Future[dict[str, pd.DataFrame]] | None = None
    try:
        connection = sqlite3.connect(temp_name)
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        # events are read through pandas (the history digests them) but written by SQLite
        # from the store: the same columns, types and values, without a row crossing Python.
        # (Like occurrences, they are read again here: a store written meanwhile publishes
        # its newer rows, and the next publication records them as updated.)
        framed = {table for table in ("events",)
                  if table in frames and _copy_streamed(connection, engine, table, frames[table])}
        with connection:
            for table, frame in frames.items():
                if table not in framed:
                    _create_table(connection, table, frame)
            # before the occurrences are copied: their ``live`` is read from the events
            _withdraw_rows(connection, left, framed)
        lap("tables")
        # started once the frames are written: the executemany above gives up Python's lock at
        # every row, and a second thread then slows both down
        pool = ThreadPoolExecutor(max_workers=1)
        running = pool.submit(meanwhile) if meanwhile is not None else None
        pool.shutdown(wait=False)
        copied: set[str] = set()
        for table in sorted(_STREAMED - set(frames)):
            if _copy_streamed(connection, engine, table):
                copied.add(table)
            else:
                extra = public_frames(engine, only={table}, left=left)
                with connection:
                    for name, frame in extra.items():
                        _create_table(connection, name, frame)
                frames.update(extra)
        with connection:
            _withdraw_rows(connection, left, copied)
        lap("occurrences")
        with connection:
            _add_occurrence_links(connection)
            for table in copied:
                columns = [r[1] for r in connection.execute(f'PRAGMA table_info("{table}")')]
                frames[table] = pd.DataFrame(columns=columns)  # for the index step only
            if "occurrences" in frames:
                frames["occurrences"] = pd.DataFrame(columns=[
                    r[1] for r in connection.execute("PRAGMA table_info(occurrences)")])
            _create_indexes(connection, frames)
            lap("indexes")
            connection.execute(
                "CREATE VIRTUAL TABLE events_fts USING fts5(title, description, location, "
                "content='events', tokenize='unicode61 remove_diacritics 2')"
            )
            connection.execute(
                "INSERT INTO events_fts(rowid, title, description, location) "
                "SELECT rowid, title, description, location FROM events"
            )
            connection.execute(UPCOMING_VIEW)
        lap("fts")
        if running is not None:
            extra = running.result()
            running = None
            lap("wait")
            with connection:
                for table, frame in extra.items():
                    _create_table(connection, table, frame)
                _create_indexes(connection, extra)
        # statistics for the query planner, sampled (bounded cost); no VACUUM: the file was
        # written in one pass and has nothing to reclaim
        connection.execute("PRAGMA analysis_limit=1000")
        connection.execute("ANALYZE")
        connection.close()
        lap("analyze")
        target = out_dir / DB_NAME
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
        return target
    except BaseException:
        if running is not None:  # never leave the thread writing alone
            wait([running])
        Path(temp_name).unlink(missing_ok=True)
        raise
