"""The copy of big tables inside SQLite (ATTACH + INSERT … SELECT) publishes what pandas does."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from publish.build import _copy_streamed, _create_table, build_database, public_frames
from schemas.models import Event, EventSource
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


def _events_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    seen = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with Session(engine) as session:
        session.add(Event(  # timed, winter: 18:30 Paris
            id="a--1", source_id="a", source_uid="1", title="Atelier", description="Café",
            dtstart_utc=dt.datetime(2026, 12, 4, 17, 30, tzinfo=UTC),
            dtend_utc=dt.datetime(2026, 12, 4, 19, 0, tzinfo=UTC), tzid="Europe/Paris",
            latitude=48.9, longitude=2.4, age_min=6, gratuit=True, first_seen_at=seen,
            updated_at=seen))
        session.add(Event(  # all day, cancelled, removed at its source
            id="a--2", source_id="a", source_uid="2", title="Fête", all_day=True,
            start_date=dt.date(2026, 12, 24), end_date=dt.date(2026, 12, 25),
            status="cancelled", first_seen_at=seen, removed_at_source=seen))
        session.add(Event(  # summer time, no coordinates, no end
            id="b--3", source_id="b", source_uid="3", title="Permanence",
            dtstart_utc=dt.datetime(2027, 7, 1, 8, 0, tzinfo=UTC), is_canonical=False,
            first_seen_at=seen))
        session.commit()
    return engine


def _events_both_ways(engine, tmp_path: Path) -> tuple[tuple, tuple]:  # type: ignore[no-untyped-def]
    frame = public_frames(engine, only={"events"})["events"]
    copied = tmp_path / "copied.db"
    with sqlite3.connect(copied) as connection:
        used = _copy_streamed(connection, engine, "events", frame)
    if not used:
        with sqlite3.connect(copied) as connection:
            _create_table(connection, "events", frame)
    return (used, _published(copied, "events")), _through_pandas(engine, tmp_path, "events")


def test_events_written_by_sqlite_equal_the_pandas_frame(tmp_path: Path) -> None:
    engine = _events_store(tmp_path)
    (used, copied), expected = _events_both_ways(engine, tmp_path)
    assert used and copied == expected
    sql, rows = copied
    assert '"dtstart_local" TEXT' in sql and '"latitude" REAL' in sql and '"age_min" INTEGER' in sql
    names = [r[1] for r in sqlite3.connect(tmp_path / "copied.db").execute(
        "PRAGMA table_info(events)")]
    local = {r[0]: r[names.index("dtstart_local")] for r in rows}
    assert local == {"a--1": "2026-12-04T18:30:00+01:00", "a--2": "2026-12-24",
                     "b--3": "2027-07-01T10:00:00+02:00"}
    first = dict(zip(names, rows[0], strict=True))
    assert (first["dtstart_utc"], first["first_seen_at"], first["gratuit"]) == (
        "2026-12-04T17:30:00Z", "2026-12-01T08:00:00Z", 1)
    # and build_database takes that way, with the same file as before
    database = build_database(engine, tmp_path / "out")
    assert _published(database, "events") == expected


def test_events_with_a_null_all_day_keep_the_pandas_path(tmp_path: Path) -> None:
    engine = _events_store(tmp_path)
    engine.dispose()
    with sqlite3.connect(tmp_path / "store.db") as raw:  # pandas reads the NULL as NaN (true)
        raw.execute("ALTER TABLE event RENAME TO old_event")
        raw.execute("CREATE TABLE event AS SELECT * FROM old_event")
        raw.execute("UPDATE event SET all_day = NULL WHERE id = 'a--1'")
    (used, copied), expected = _events_both_ways(engine, tmp_path)
    assert not used and copied == expected


def test_date_text_of_every_kind_of_value() -> None:
    import pandas as pd

    from publish.build import _date_text

    assert [_date_text(v) for v in (None, float("nan"), pd.NaT, "2026-12-04",
                                    "2026-12-04 00:00:00.000000", dt.date(2026, 1, 2))] == [
        None, None, None, "2026-12-04", "2026-12-04", "2026-01-02"]
