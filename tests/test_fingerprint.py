"""The store fingerprint read from the change counter (tissu/fingerprint.py): an unchanged store
gives the same digest, any committed change of a published value gives another one, whoever
writes it (SQLAlchemy, the database's own driver, another connection), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from schemas.models import Event, Occurrence, Place, Source
from schemas.store import dispose_engines, make_engine
from tissu.fingerprint import CHANGE_TABLE, publish_if_changed, store_fingerprint

T1 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def _store(database_url: str) -> Any:
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(Source(id="s1", name="Source 1", publisher_name="Asso", publisher_type="asso",
                           format="ical", url="http://127.0.0.1/s1.ics",
                           licence="Licence Ouverte 2.0", last_attempt_at=T1))
        session.add(Event(id="s1--a", source_id="s1", source_uid="a", title="Atelier vélo",
                          dtstart_utc=T1, dtend_utc=T1 + dt.timedelta(hours=2)))
        session.add(Occurrence(id="s1--a--1", event_id="s1--a", start_utc=T1,
                               end_utc=T1 + dt.timedelta(hours=2),
                               start_local="2026-11-29T13:00:00+01:00"))
        session.add(Place(id="salle-brel", name="Salle Jacques-Brel"))
        session.commit()
    return engine


def _run(engine: Any, sql: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


def test_fast_digest_is_used_and_holds_while_nothing_changes(database_url):
    engine = _store(database_url)
    first = store_fingerprint(engine)
    assert first.startswith("c:")
    assert store_fingerprint(database_url) == first
    # bookkeeping that never reaches the publication, and a value set to itself: no change
    _run(engine, "UPDATE source SET last_attempt_at = :t, etag = 'W/\"2\"', "
                 "health_checked_at = :t WHERE id = 's1'", t=T1 + dt.timedelta(hours=1))
    _run(engine, "UPDATE event SET title = title")
    _run(engine, "INSERT INTO harvestrun (source_id, started_at, status, records, events, news, "
                 "occurrences, removed, guarded, forced, warnings, errors) VALUES ('s1', :t, "
                 "'unchanged', 0, 0, 0, 0, 0, 0, false, '[]', '[]')", t=T1)
    _run(engine, "DELETE FROM event WHERE id = 'nobody'")
    assert store_fingerprint(engine) == first
    make_engine(database_url)  # another process starting: triggers already there
    assert store_fingerprint(engine) == first


@pytest.mark.parametrize("change", [
    "UPDATE event SET title = 'Atelier vélo (reporté)'",
    "UPDATE event SET dtstart_utc = NULL",
    "UPDATE source SET health_reason = 'contenu inchangé depuis 31 jours'",
    "UPDATE source SET name = 'Source un'",
    "UPDATE occurrence SET location = 'Salle Jacques-Brel'",
    "UPDATE place SET latitude = 48.89",
    "DELETE FROM occurrence",
    ("INSERT INTO place (id, name, coordinates_verified, aliases) "
     "VALUES ('mdq', 'Maison de quartier', false, '[]')"),
])
def test_any_change_of_a_published_value_moves_the_digest(database_url, change):
    engine = _store(database_url)
    before = store_fingerprint(engine)
    _run(engine, change)
    after = store_fingerprint(engine)
    assert after.startswith("c:") and after != before


def test_a_writer_with_the_databases_own_driver_is_counted(tmp_path):
    import sqlite3

    path = tmp_path / "tissu.db"
    engine = _store(f"sqlite:///{path}")
    before = store_fingerprint(engine)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE event SET description = 'Réparez votre vélo'")
    connection.commit()
    connection.close()
    assert store_fingerprint(engine) != before


def test_a_table_without_its_triggers_is_read_row_by_row(tmp_path):
    """A trigger dropped, or a column added by hand: the counter is not trusted (rows are
    read); the next make_engine puts the triggers back and moves the counter."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'tissu.db'}"
    engine = _store(url)
    before = store_fingerprint(engine)
    connection = sqlite3.connect(tmp_path / "tissu.db")
    [name] = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                "AND tbl_name = 'place' AND name LIKE 'tissu_chg_u_%'").fetchone()
    connection.execute(f"DROP TRIGGER {name}")
    connection.commit()
    slow = store_fingerprint(engine)
    assert slow.startswith("r:")
    connection.execute("UPDATE place SET name = 'Salle J.-Brel'")  # not counted: no trigger
    connection.commit()
    assert store_fingerprint(engine).startswith("r:") and store_fingerprint(engine) != slow
    make_engine(url)
    again = store_fingerprint(engine)
    assert again.startswith("c:") and again != before
    connection.execute("ALTER TABLE place ADD COLUMN note TEXT")
    connection.commit()
    assert store_fingerprint(engine).startswith("r:")
    make_engine(url)
    with_note = store_fingerprint(engine)
    assert with_note.startswith("c:") and with_note != again
    connection.execute("UPDATE place SET note = 'rez-de-chaussée'")  # the new column counts
    connection.commit()
    assert store_fingerprint(engine) != with_note
    connection.close()


def test_a_table_made_again_and_filled_without_triggers_is_not_taken_for_unchanged(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'tissu.db'}"
    engine = _store(url)
    before = store_fingerprint(engine)
    connection = sqlite3.connect(tmp_path / "tissu.db")
    [sql] = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'place'").fetchone()
    connection.execute("DROP TABLE place")  # its triggers go with it
    connection.execute(sql)
    connection.execute("INSERT INTO place (id, name, coordinates_verified, aliases) "
                       "VALUES ('salle-brel', 'Salle Brel', 0, '[]')")
    connection.commit()
    connection.close()
    assert store_fingerprint(engine) != before
    make_engine(url)
    assert store_fingerprint(engine) != before


def test_a_new_store_is_never_taken_for_the_old_one(tmp_path):
    """Same rows, same number of changes, another store (deleted and made again): another
    digest, through the store's identity kept with the counter."""
    first = store_fingerprint(_store(f"sqlite:///{tmp_path / 'a.db'}"))
    second = store_fingerprint(_store(f"sqlite:///{tmp_path / 'b.db'}"))
    assert first != second


def test_publication_follows_a_change_made_outside_tissu(database_url, tmp_path):
    engine = _store(database_url)
    out = tmp_path / "publish"
    assert publish_if_changed(engine, out, T1).published
    assert not publish_if_changed(engine, out, T1 + dt.timedelta(minutes=5)).published
    _run(engine, "UPDATE event SET title = 'Atelier vélo (annulé)', status = 'cancelled'")
    again = publish_if_changed(engine, out, T1 + dt.timedelta(minutes=6))
    assert again.published and again.outcome is not None and not again.outcome.errors
    assert not publish_if_changed(engine, out, T1 + dt.timedelta(minutes=7)).published


def test_postgresql_counts_truncate_and_workers_writing_at_once(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TRUNCATE, one counter row per connection)")
    import psycopg

    engine = _store(database_url)
    conninfo = "postgresql://" + database_url.split("://", 1)[1]
    before = store_fingerprint(engine)
    first, second = psycopg.connect(conninfo), psycopg.connect(conninfo)
    try:
        # two transactions writing the same table at once: neither waits for the other
        first.execute("SET lock_timeout = '2s'")
        second.execute("SET lock_timeout = '2s'")
        first.execute("UPDATE event SET title = 'A' WHERE id = 's1--a'")
        second.execute("INSERT INTO place (id, name, coordinates_verified, aliases) "
                       "VALUES ('p2', 'Lieu 2', false, '[]')")
        second.execute("UPDATE source SET name = 'B'")
        # not committed yet: a digest read now, then the commits, then another digest
        during = store_fingerprint(engine)
        assert during == before
        first.commit()
        second.commit()
        after = store_fingerprint(engine)
        assert after != before
        first.execute("TRUNCATE occurrence")
        first.commit()
        assert store_fingerprint(engine) not in (before, after)
        rows = first.execute(f"SELECT count(*) FROM {CHANGE_TABLE}").fetchone()
        assert rows is not None and rows[0] >= 2
    finally:
        first.close()
        second.close()
        dispose_engines()


def test_a_store_where_triggers_cannot_be_made_still_opens(database_url, monkeypatch):
    """E.g. a PostgreSQL role without the right to create triggers: make_engine logs it and goes
    on (the DDL is in a savepoint there), the fingerprint reads the rows."""
    import schemas.store

    def refused(connection):
        connection.exec_driver_sql("CREATE TABLE tissu_refused (x INTEGER)")  # undone on PG
        raise RuntimeError("permission denied for schema tissu")

    monkeypatch.setattr(schemas.store, "install_change_triggers", refused)
    engine = _store(database_url)
    first = store_fingerprint(engine)
    assert first.startswith("r:")
    _run(engine, "UPDATE event SET title = 'Atelier vélo (complet)'")
    assert store_fingerprint(engine) not in (first, None)


def test_postgresql_one_transaction_writing_two_stores_moves_both(database_url):
    """The per-transaction « already counted » mark is per schema, and the counter bumped is
    the one of the changed table's schema, not the session's search_path."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (stores as schemas of one database)")
    import uuid

    import psycopg

    conninfo = "postgresql://" + database_url.split("://", 1)[1]
    other = f"tissu_test_{uuid.uuid4().hex[:12]}"
    base = database_url.split("?", 1)[0]
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{other}"')
    try:
        first = _store(database_url)
        second = _store(f"{base}?options=-csearch_path%3D{other}")
        before = (store_fingerprint(first), store_fingerprint(second))
        with psycopg.connect(conninfo) as connection:  # search_path: the first store
            connection.execute("UPDATE event SET title = 'A'")
            connection.execute(f'UPDATE "{other}".event SET title = \'B\'')
        after = (store_fingerprint(first), store_fingerprint(second))
        assert after[0] != before[0] and after[1] != before[1]
    finally:
        dispose_engines()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{other}" CASCADE')


def test_postgresql_counter_rows_are_folded_without_moving_the_digest(database_url):
    """One counter row per connection that ever wrote: make_engine folds them past 256, and
    the digest (their sum) stays what it was."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (one counter row per connection)")
    engine = _store(database_url)
    _run(engine, f"INSERT INTO {CHANGE_TABLE} (slot, changes) "
                 "SELECT g, 3 FROM generate_series(100000, 100299) g")
    before = store_fingerprint(engine)
    make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT count(*) FROM {CHANGE_TABLE}")).scalar_one()
    assert rows == 1
    assert store_fingerprint(engine) == before
    _run(engine, "UPDATE place SET name = 'Salle J.-Brel'")
    assert store_fingerprint(engine) != before
    dispose_engines()
