"""The copy of big tables inside SQLite (ATTACH + INSERT … SELECT) publishes what pandas does."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from publish.build import _create_table, build_database, public_frames
from schemas.models import EventSource
from schemas.store import make_engine

UTC = dt.UTC


def _store(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    seen = dt.datetime(2026, 12, 4, 20, 0, 0, 123456, tzinfo=UTC)
    with Session(engine) as session:
        for number in range(3):
            session.add(EventSource(
                id=f"c{number}|e{number}", cluster_id=f"c{number}",
                canonical_event_id=f"c{number}", event_id=f"e{number}", source_id="src",
                source_uid=f"uid-{number}", url=None if number == 1 else f"https://a.fr/{number}",
                publisher_type="association", confidence=0.5 + number / 10,
                first_seen_at=seen if number != 2 else None, last_seen_at=seen))
        session.commit()
    return engine


def _published(db: Path, table: str) -> tuple[str, list[tuple]]:
    with sqlite3.connect(db) as connection:
        sql = connection.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                 (table,)).fetchone()[0]
        rows = connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
    return sql.replace("IF NOT EXISTS ", ""), rows


def _through_pandas(engine, tmp_path: Path, table: str) -> tuple[str, list[tuple]]:  # type: ignore[no-untyped-def]
    db = tmp_path / "pandas.db"
    with sqlite3.connect(db) as connection:
        _create_table(connection, table, public_frames(engine, only={table})[table])
    return _published(db, table)


def test_event_sources_copied_in_sqlite_equal_the_pandas_path(tmp_path: Path) -> None:
    engine = _store(tmp_path)
    with engine.begin() as connection:  # a time written with its offset, not SQLite's naive text
        connection.execute(text("UPDATE eventsource SET last_seen_at = "
                                "'2026-12-04T21:30:00+01:00' WHERE id = 'c2|e2'"))
    database = build_database(engine, tmp_path / "out")
    sql, rows = _published(database, "event_sources")
    assert (sql, rows) == _through_pandas(engine, tmp_path, "event_sources")
    assert rows[0][-2:] == ("2026-12-04T20:00:00Z", "2026-12-04T20:00:00Z")
    assert rows[2][-2:] == (None, "2026-12-04T20:30:00Z")
    assert '"confidence" REAL' in sql and '"url" TEXT' in sql


def test_a_number_in_a_text_column_is_published_as_pandas_types_it(tmp_path: Path) -> None:
    engine = _store(tmp_path)
    engine.dispose()
    with sqlite3.connect(tmp_path / "store.db") as raw:  # columns without affinity keep numbers
        raw.execute("ALTER TABLE eventsource RENAME TO old_eventsource")
        raw.execute("CREATE TABLE eventsource (id VARCHAR PRIMARY KEY, cluster_id, "
                    "canonical_event_id, event_id, source_id, source_uid, url, source_url, "
                    "publisher_type, confidence FLOAT, first_seen_at, last_seen_at)")
        raw.execute("INSERT INTO eventsource SELECT id, cluster_id, canonical_event_id, event_id,"
                    " source_id, CASE WHEN id = 'c1|e1' THEN NULL ELSE 7 END, url, source_url,"
                    " publisher_type, confidence, first_seen_at, last_seen_at"
                    " FROM old_eventsource")
    database = build_database(engine, tmp_path / "out")
    sql, rows = _published(database, "event_sources")
    assert (sql, rows) == _through_pandas(engine, tmp_path, "event_sources")
    # typed by its first value; pandas made the numbers beside a NULL floats
    assert '"source_uid" REAL' in sql and [r[5] for r in rows] == [7.0, None, 7.0]
