"""The working store's fast write paths give the same stored text as SQLAlchemy's own."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session

from schemas.models import SourceRecord, UTCDateTime
from schemas.store import bulk_insert, make_engine


def _chained(dialect):
    """SQLAlchemy's two steps: process_bind_param, then the DATETIME formatting."""
    return TypeDecorator.bind_processor(UTCDateTime().dialect_impl(dialect), dialect)


def _stored_both_ways(tmp_path, batches: list[tuple[Any, list[dict[str, Any]]]]) -> list[Any]:
    """Each table's rows as stored by ``bulk_insert`` and by SQLAlchemy's ``insert``, each in
    its own new store: ``[rows through bulk_insert, rows through insert]``, one list of rows
    per (table, rows) of ``batches``, in id order."""
    stored = []
    for name, fast in (("bulk", True), ("sqlalchemy", False)):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        with Session(engine) as session:
            for table, rows in batches:
                if fast:
                    bulk_insert(session, table, rows)
                else:
                    session.execute(insert(table), rows)
            session.commit()
        engine.dispose()
        connection = sqlite3.connect(tmp_path / f"{name}.db")
        stored.append([connection.execute(f"SELECT * FROM {table.name} ORDER BY id").fetchall()
                       for table, _ in batches])
        connection.close()
    return stored


def test_sqlite_datetime_binding_is_sqlalchemys_text():
    dialect = sqlite.dialect()
    fused = UTCDateTime()._cached_bind_processor(dialect)
    chained = _chained(dialect)
    assert fused is not None and fused.__qualname__.startswith("UTCDateTime.")
    zones = [dt.UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/Cayenne"),
             dt.timezone(dt.timedelta(hours=5, minutes=45))]
    draw = random.Random(5545)
    values = [dt.datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=ZoneInfo("Europe/Paris")),
              dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
              dt.datetime(99, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC), None]
    values += [dt.datetime(draw.randint(1, 9998), draw.randint(1, 12), draw.randint(1, 28),
                           draw.randint(0, 23), draw.randint(0, 59), draw.randint(0, 59),
                           draw.choice([0, draw.randint(0, 999_999)]), tzinfo=draw.choice(zones))
               for _ in range(2000)]
    for value in values:
        assert fused(value) == chained(value), value
    assert fused(dt.datetime(2026, 12, 5, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))) \
        == "2026-12-05 09:30:00.000000"
    with pytest.raises(ValueError, match="naive"):
        fused(dt.datetime(2026, 12, 5, 10, 30))


def test_bulk_insert_of_source_records_stores_what_sqlalchemy_stores(tmp_path):
    now = dt.datetime(2026, 12, 5, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))
    rows = [{"id": f"s--{i}", "source_id": "s", "uid": f"uid-{i}", "recurrence_id": "",
             "kind": "event", "payload_format": "ical",
             "payload": "BEGIN:VEVENT\r\nSUMMARY:Atelier « numérique »\r\nEND:VEVENT\r\n",
             "content_hash": f"h{i}", "uid_repaired": i == 1, "line": 10 * i,
             "first_seen_at": now, "last_seen_at": now, "last_changed_at": now,
             "removed_at_source": None, "missing_since": None} for i in range(3)]
    stored = [both[0] for both in _stored_both_ways(tmp_path, [(SourceRecord.__table__, rows)])]
    assert stored[0] == stored[1]
    assert len(stored[0]) == 3
    assert "2026-12-04 23:30:00.000000" in stored[0][0]  # Paris half past midnight, in UTC


def test_bulk_insert_stores_what_sqlalchemy_stores(tmp_path):
    from normalize.pipeline import (
        _EVENT_DEFAULTS,
        _EVENT_TABLE,
        _OCCURRENCE_DEFAULTS,
        _OCCURRENCE_TABLE,
    )

    paris = dt.timezone(dt.timedelta(hours=1))
    events = [{**_EVENT_DEFAULTS, "id": "s--a", "source_id": "s", "source_uid": "a",
               "title": "Atelier « vélo »", "all_day": False,
               "dtstart_utc": dt.datetime(2026, 12, 7, 9, 30, tzinfo=paris),
               "dtend_utc": dt.datetime(2026, 12, 7, 11, tzinfo=dt.UTC),
               "first_seen_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
               "updated_at": dt.datetime(2026, 12, 1, 0, 0, 0, 5, tzinfo=dt.UTC),
               "latitude": 48.89, "gratuit": True},
              {**_EVENT_DEFAULTS, "id": "s--b", "source_id": "s", "source_uid": "b",
               "title": "Vacances", "all_day": True, "start_date": dt.date(2026, 12, 19),
               "end_date": dt.date(2027, 1, 4),
               "first_seen_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
               "updated_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)}]
    occurrences = [{**_OCCURRENCE_DEFAULTS, "id": "s--a--1", "event_id": "s--a",
                    "start_utc": dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.UTC),
                    "start_local": "2026-12-07T09:30:00+01:00", "all_day": False}]
    stored = _stored_both_ways(
        tmp_path, [(_EVENT_TABLE, events), (_OCCURRENCE_TABLE, occurrences)])
    assert stored[0] == stored[1]
    assert len(stored[0][0]) == 2 and len(stored[0][1]) == 1
    assert "2026-12-07 08:30:00.000000" in stored[0][0][0]  # aware Paris time stored as UTC
