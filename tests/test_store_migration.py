"""A working store made by an older Tissu gains the columns added to the models since."""

import sqlite3

from sqlmodel import Session

from schemas.models import Source
from schemas.store import make_engine


def test_old_store_gets_new_columns(tmp_path):
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    # the `source` table as the first version of schema v1 created it
    connection.execute(
        "CREATE TABLE source (id VARCHAR NOT NULL PRIMARY KEY, name VARCHAR NOT NULL, "
        "publisher_name VARCHAR NOT NULL, publisher_type VARCHAR NOT NULL, "
        "publisher_website VARCHAR, format VARCHAR NOT NULL, url VARCHAR NOT NULL, "
        "licence VARCHAR NOT NULL, themes VARCHAR NOT NULL, quartier VARCHAR, "
        "refresh VARCHAR NOT NULL, status VARCHAR NOT NULL, origin VARCHAR NOT NULL, "
        "contact_email VARCHAR)")
    connection.execute(
        "INSERT INTO source VALUES ('asso', 'Asso', 'Asso', 'association', NULL, 'ical', "
        "'https://example.org/a.ics', 'Licence Ouverte 2.0', '[]', NULL, '6h', 'active', "
        "'registry', NULL)")
    connection.commit()
    connection.close()

    engine = make_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        source = session.get(Source, "asso")
        assert source is not None and source.name == "Asso"
        assert source.consecutive_failures == 0  # added with the model's default
        assert source.last_success_at is None
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(source)")}
    assert {"consecutive_failures", "last_error", "etag"} <= columns
    make_engine(f"sqlite:///{path}")  # idempotent


def test_old_store_gets_new_indexes(tmp_path):
    """The harvest-run table of an older store gains the (source_id, started_at) index its
    health query reads through; the planner then uses it."""
    path = tmp_path / "old.db"
    make_engine(f"sqlite:///{path}").dispose()
    connection = sqlite3.connect(path)
    connection.execute("DROP INDEX ix_harvestrun_source_started")
    connection.commit()
    connection.close()

    make_engine(f"sqlite:///{path}").dispose()
    connection = sqlite3.connect(path)
    names = {row[1] for row in connection.execute("PRAGMA index_list(harvestrun)")}
    assert "ix_harvestrun_source_started" in names
    plan = " ".join(str(row[-1]) for row in connection.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM harvestrun WHERE source_id = 'a' "
        "ORDER BY started_at DESC LIMIT 5"))
    assert "ix_harvestrun_source_started" in plan and "TEMP B-TREE" not in plan
    connection.close()
    make_engine(f"sqlite:///{path}")  # idempotent


def test_sqlite_connections_keep_statement_journals_in_memory(tmp_path):
    """Every connection of a SQLite store keeps temporary files, statement journals included,
    in memory (PRAGMA temp_store = 2): the change counter's triggers made each inserted row of
    an indexed table open a statement journal on disk."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA temp_store").scalar() == 2
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
