"""PUBLISH: build ``tissu-open.db`` from the working store, atomically, public columns only.

The database is written to a temporary file in the target folder, then renamed over the old one
(``os.replace``), so Datasette never sees a half-written file. Tables: ``events``,
``occurrences``, ``sources``, ``organisations``; an FTS5 index ``events_fts`` that folds accents
(``unicode61 remove_diacritics 2``); a view ``upcoming``.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from publish.columns import PUBLIC_TABLES
from tissu.settings import PROJECT_ROOT

DB_NAME = "tissu-open.db"
_DATETIME_COLUMNS = {
    "events": ["dtstart_utc", "dtend_utc", "first_seen_at", "updated_at", "removed_at_source"],
    "occurrences": ["start_utc", "end_utc"],
    "sources": ["last_attempt_at", "last_success_at"],
    "organisations": [],
}
_PRIMARY_KEYS = {"events": "id", "occurrences": "id", "sources": "id", "organisations": "id"}
_INDEXES = [
    "CREATE INDEX idx_occurrences_start ON occurrences(start_utc)",
    "CREATE INDEX idx_occurrences_event ON occurrences(event_id)",
    "CREATE INDEX idx_events_source ON events(source_id)",
    "CREATE INDEX idx_events_dtstart ON events(dtstart_utc)",
    "CREATE INDEX idx_events_quartier ON events(quartier)",
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
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def public_frames(engine: Engine) -> dict[str, pd.DataFrame]:
    """Read the public columns of each table from the working store, ready to write.

    Datetimes become ISO 8601 UTC text; ``events.dtstart_local`` is added; bundled sample paths
    are shown relative to the project.
    """
    frames: dict[str, pd.DataFrame] = {}
    for table, spec in PUBLIC_TABLES.items():
        columns = [c for c in spec["columns"] if c != "dtstart_local"]  # type: ignore[union-attr]
        source_table = {"events": "event", "occurrences": "occurrence", "sources": "source",
                        "organisations": "organisation"}[table]
        query = f"SELECT {', '.join(columns)} FROM {source_table} ORDER BY id"
        frame = pd.read_sql_query(query, engine, dtype=object)
        for column in _DATETIME_COLUMNS[table]:
            frame[column] = frame[column].map(iso_utc)
        for column in ("start_date", "end_date"):
            if column in frame:
                frame[column] = frame[column].map(lambda v: None if v is None else str(v)[:10])
        frames[table] = frame
    events = frames["events"]
    events.insert(
        events.columns.get_loc("dtend_utc") + 1,
        "dtstart_local",
        [_local(row) for row in events.itertuples()],
    )
    sources = frames["sources"]
    sources["url"] = sources["url"].map(_public_url)
    return frames


def _local(row: object) -> str | None:
    from normalize.times import local_iso

    if row.all_day:
        return row.start_date
    value = row.dtstart_utc
    if not value:
        return None
    return local_iso(dt.datetime.fromisoformat(value))


def _public_url(url: str) -> str:
    if url.startswith(("http://", "https://")):
        return url
    try:
        return Path(url).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return Path(url).name


def _create_table(connection: sqlite3.Connection, table: str, frame: pd.DataFrame) -> None:
    columns = []
    for column in frame.columns:
        kind = "INTEGER" if column in {"all_day", "uid_repaired", "floating", "sequence",
                                       "consecutive_failures"} else "TEXT"
        suffix = " PRIMARY KEY" if column == _PRIMARY_KEYS[table] else ""
        columns.append(f'"{column}" {kind}{suffix}')
    connection.execute(f'CREATE TABLE "{table}" ({", ".join(columns)})')
    placeholders = ", ".join("?" for _ in frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    connection.executemany(f'INSERT INTO "{table}" VALUES ({placeholders})', rows)


def build_database(engine: Engine, out_dir: Path,
                   frames: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write ``out_dir/tissu-open.db`` atomically and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = frames if frames is not None else public_frames(engine)
    handle, temp_name = tempfile.mkstemp(prefix=".tissu-open-", suffix=".db", dir=out_dir)
    os.close(handle)
    try:
        connection = sqlite3.connect(temp_name)
        with connection:
            for table, frame in frames.items():
                _create_table(connection, table, frame)
            for statement in _INDEXES:
                connection.execute(statement)
            connection.execute(
                "CREATE VIRTUAL TABLE events_fts USING fts5(title, description, location, "
                "content='events', tokenize='unicode61 remove_diacritics 2')"
            )
            connection.execute(
                "INSERT INTO events_fts(rowid, title, description, location) "
                "SELECT rowid, title, description, location FROM events"
            )
            connection.execute(UPCOMING_VIEW)
        connection.execute("VACUUM")
        connection.close()
        target = out_dir / DB_NAME
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
        return target
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
