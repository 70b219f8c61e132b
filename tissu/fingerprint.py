"""Publish only when something changed: a fingerprint of the working store, kept beside the
publication.

``tissu publish`` rebuilds ``tissu-open.db`` and every export (seconds to minutes). When the
working store holds the same data as at the last publish, that work would write the same files:
:func:`publish_if_changed` then keeps the publication as it is. The fingerprint
(:func:`store_fingerprint`) stands for every row of every working-store table that can reach
the publication, minus bookkeeping that moves at each harvest without changing what is
published (HTTP validators, "last attempt" times). It is read from a change counter kept by
database triggers (:func:`install_change_triggers`, installed by ``schemas.store.make_engine``:
~2 ms whatever the size of the store), or, when a table lacks its triggers, is a SHA-256 over
those rows (~1 s per 50 000 events). It is stored in ``<publish dir>/.store-fingerprint.json``
after each publish that ended without error.

A publication is also rebuilt, changed or not, when it is older than :data:`REPUBLISH_AFTER` or
from another UTC day (what is "upcoming", and the daily snapshot, move with the clock), when one
of its files is missing, or when the publishing code or its reference data (``publish/*.py``,
``data/vocab/*.yaml``, ``data/places.yaml``) changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tissu.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from publish.run import PublishOutcome

STAMP = ".store-fingerprint.json"
REPUBLISH_AFTER = dt.timedelta(hours=1)
# Working-store tables that never reach the publication: harvest and publish bookkeeping, raw
# source records (private payloads), worker leases, alert e-mails.
_UNPUBLISHED_TABLES = frozenset({"harvestrun", "sourcelease", "sourcerecord", "sourcealert",
                                 "publishrun", "publishchange", "publishedevent",
                                 "tissu_change"})
# Columns that move at every harvest without changing what is published.
_VOLATILE_COLUMNS = frozenset({
    ("source", "last_attempt_at"), ("source", "last_success_at"),
    ("source", "health_checked_at"), ("source", "etag"), ("source", "last_modified"),
    ("source", "normalized_at"), ("source", "normalized_key"), ("source", "deduped_at"),
    ("source", "crawl_pages"), ("source", "normalized_warnings"),
})
# Files the publication is built from besides the store: its code and reference data.
_PUBLISH_INPUTS = ("publish/*.py", "data/vocab/*.yaml", "data/places.yaml")
_OUTPUTS = ("tissu-open.db", "metadata.json", "exports")


def files_stamp(patterns: tuple[str, ...]) -> str:
    """SHA-256 hex digest over (path, size, mtime) of the project files matching ``patterns``
    (globs relative to the project root): changes when one of them is edited, added or
    removed, without reading them."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(PROJECT_ROOT.glob(pattern)):
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(PROJECT_ROOT)}:{stat.st_size}:"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _inputs_stamp() -> str:
    return files_stamp(_PUBLISH_INPUTS)


def store_fingerprint(store: Engine | str) -> str:
    """A digest of what the working store can publish: equal digests, same published data.

    ``store`` is the engine or its SQLAlchemy URL (SQLite or PostgreSQL; read with the
    database's own driver, so that checking costs no SQLAlchemy import). Returns ``c:`` + hex
    SHA-256 of the change counter (:data:`CHANGE_TABLE`: the store's identity, its count of
    changes of published tables, and their catalogue) when every published table carries its
    triggers (a few small queries); else ``r:`` + hex SHA-256 over every row of every table of
    the store, as its catalogue lists them, except the unpublished ones
    (:data:`_UNPUBLISHED_TABLES`, the scheduler's jobs), without :data:`_VOLATILE_COLUMNS`, in
    primary-key order. Both include :func:`_inputs_stamp`. Everything is read in one snapshot
    (SQLite read transaction, PostgreSQL REPEATABLE READ). The same data gives the same ``r:``
    digest on one database; a ``c:`` digest changes with any committed change of a published
    value (and sometimes without one: a change undone later counts too). Raises what the
    driver raises, and ValueError for another kind of database.
    """
    url = store if isinstance(store, str) else store.url.render_as_string(hide_password=False)
    inputs = _inputs_stamp()
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url.removeprefix("sqlite:///")
        connection: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dialect = "sqlite"
    elif url.startswith(("postgresql", "postgres")):
        import psycopg

        connection = psycopg.connect("postgresql://" + url.split("://", 1)[1])
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        dialect = "postgresql"
    else:
        raise ValueError(f"base non prise en charge : {url.split(':', 1)[0]}")
    try:
        cursor = connection.cursor()
        if dialect == "sqlite":
            cursor.execute("BEGIN")  # one snapshot for the catalogue, counter and rows
        counted = _counter_digest(cursor, dialect)
        if counted is not None:
            cursor.close()
            return "c:" + hashlib.sha256(f"{inputs}\x1f{counted}".encode()).hexdigest()
        digest = hashlib.sha256(inputs.encode())
        for table, columns, keys in _catalogue(cursor, dialect):
            columns = [c for c in columns if (table, c) not in _VOLATILE_COLUMNS]
            digest.update(f"\x1e{table}\x1f{','.join(columns)}\x1f".encode())
            if len(keys) == 1 and dialect == "postgresql":
                _digest_in_database(cursor, dialect, table, columns, keys[0], digest)
            else:
                _digest_rows(cursor, table, columns, keys or columns[:1], digest)
        cursor.close()
    finally:
        connection.rollback()
        connection.close()
    return "r:" + digest.hexdigest()


def _catalogue(cursor: Any, dialect: str) -> list[tuple[str, list[str], list[str]]]:
    """(table, columns in catalogue order, primary-key columns) of the published-side tables."""
    found: list[tuple[str, list[str], list[str]]] = []
    if dialect == "sqlite":
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                       "AND name NOT LIKE 'sqlite_%' ORDER BY name")
        for (table,) in cursor.fetchall():
            if _skipped(table):
                continue
            cursor.execute(f"PRAGMA table_info({_quoted(table)})")
            info = cursor.fetchall()  # cid, name, type, notnull, default, pk (1-based order)
            keys = [row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            found.append((table, [row[1] for row in info], keys))
        return found
    cursor.execute("SELECT table_name, column_name FROM information_schema.columns "
                   "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")
    columns: dict[str, list[str]] = {}
    for table, column in cursor.fetchall():
        columns.setdefault(table, []).append(column)
    cursor.execute(
        "SELECT k.table_name, k.column_name FROM information_schema.table_constraints t "
        "JOIN information_schema.key_column_usage k ON k.constraint_name = t.constraint_name "
        "AND k.constraint_schema = t.constraint_schema WHERE t.constraint_type = 'PRIMARY KEY' "
        "AND t.table_schema = current_schema() ORDER BY k.table_name, k.ordinal_position")
    primary: dict[str, list[str]] = {}
    for table, column in cursor.fetchall():
        primary.setdefault(table, []).append(column)
    cursor.execute("SELECT table_name FROM information_schema.tables "
                   "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
    tables = {row[0] for row in cursor.fetchall()}
    return [(table, columns[table], primary.get(table, [])) for table in sorted(columns)
            if table in tables and not _skipped(table)]


def _skipped(table: str) -> bool:
    return table in _UNPUBLISHED_TABLES or table.startswith("apscheduler")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _digest_rows(cursor: Any, table: str, columns: list[str], order: list[str],
                 digest: Any) -> None:
    """Any database: every row read in Python (slower; composite keys)."""
    cursor.execute(f"SELECT {', '.join(map(_quoted, columns))} FROM {_quoted(table)} "
                   f"ORDER BY {', '.join(map(_quoted, order))}")
    while rows := cursor.fetchmany(5000):
        digest.update(repr(rows).encode("utf-8", "surrogatepass"))


_CHUNK = 20000


def _digest_in_database(cursor: Any, dialect: str, table: str, columns: list[str], key: str,
                        digest: Any) -> None:
    """Each chunk of rows (in key order) turned to text by the database itself.

    Used for PostgreSQL, which hashes each chunk (``md5(string_agg(row::text …))``) so that
    rows do not cross the network. On SQLite, ``quote()`` and ``group_concat`` measured no
    faster than reading the rows in Python (:func:`_digest_rows`), which is used there.
    """
    last: Any = None
    while True:
        after = "" if last is None else f"WHERE {_quoted(key)} > ?"
        if dialect == "sqlite":
            row_text = "||char(31)||".join(f"quote({_quoted(c)})" for c in columns)
            cursor.execute(
                f"SELECT group_concat(r, char(30)), max(k), count(*) FROM (SELECT {row_text} "
                f"AS r, {_quoted(key)} AS k FROM {_quoted(table)} {after} "
                f"ORDER BY {_quoted(key)} LIMIT {_CHUNK})", () if last is None else (last,))
            text, last, count = cursor.fetchone()
            digest.update((text or "").encode("utf-8", "surrogatepass"))
        else:
            after = after.replace("?", "%s")
            cursor.execute(
                f"SELECT md5(string_agg(x::text, chr(30) ORDER BY x.__k)), max(x.__k), count(*) "
                f"FROM (SELECT {', '.join(map(_quoted, columns))}, {_quoted(key)} AS __k "
                f"FROM {_quoted(table)} {after} ORDER BY {_quoted(key)} LIMIT {_CHUNK}) x",
                () if last is None else (last,))
            text, last, count = cursor.fetchone()
            digest.update((text or "").encode())
        digest.update(b"\x1d")
        if count < _CHUNK:
            return


# --- The change counter: database triggers that count every change of a published table -------
# Reading every row (above) costs ~1 s per 50 000 events. Instead, triggers installed by
# schemas.store.make_engine (install_change_triggers) count, in the table tissu_change and in the
# writer's own transaction, every INSERT, DELETE (and TRUNCATE) of a published table and every
# UPDATE that changes one of its published columns (not _VOLATILE_COLUMNS), whoever the writer
# is. The fingerprint is then the counter, the store's identity (a random id made with the
# counter) and the catalogue: a few small queries. It is used only when every published table
# carries its current triggers; otherwise the rows are read as before.
CHANGE_TABLE = "tissu_change"
_PG_SLOTS_KEPT = 256  # per-connection counter rows beyond which make_engine folds them
_PG_FUNCTION = "tissu_note_change"
_PG_FUNCTION_BODY = f"""
BEGIN
  IF current_setting('tissu.change_noted', true) = TG_TABLE_SCHEMA THEN
    RETURN NULL;
  END IF;
  IF TG_LEVEL = 'STATEMENT' AND TG_OP IN ('INSERT', 'DELETE') THEN
    IF NOT EXISTS (SELECT 1 FROM tissu_rows) THEN
      RETURN NULL;
    END IF;
  END IF;
  EXECUTE format('INSERT INTO %I.{CHANGE_TABLE} (slot, changes) VALUES (pg_backend_pid(), 1) '
                 'ON CONFLICT (slot) DO UPDATE SET changes = {CHANGE_TABLE}.changes + 1',
                 TG_TABLE_SCHEMA);
  PERFORM set_config('tissu.change_noted', TG_TABLE_SCHEMA, true);
  RETURN NULL;
END
"""
# PostgreSQL: one counter row per backend (pg_backend_pid()), so that two workers writing at
# once never wait for each other's counter; the sum only grows. The counter is the one of the
# changed table's schema, bumped once per transaction and schema (a transaction-local setting).
# The row of slot 0 holds the store's identity (and, on SQLite, the one counter: SQLite has a
# single writer at a time).
# The source of the installed counter function, compared with _PG_FUNCTION_BODY.
_PG_FUNCTION_SOURCE = ("SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n "
                       "ON n.oid = p.pronamespace WHERE n.nspname = current_schema() "
                       f"AND p.proname = '{_PG_FUNCTION}'")


def _trigger_names(dialect: str, table: str, columns: list[str]) -> dict[str, str]:
    """kind → name of the triggers ``table`` needs; the name carries a hash of the table and of
    its published columns, so a trigger made for other columns is not taken for a current one."""
    published = [c for c in columns if (table, c) not in _VOLATILE_COLUMNS]
    tag = hashlib.sha256(f"{table}\x1f{','.join(published)}".encode()).hexdigest()[:16]
    kinds = ("i", "d", "u", "t") if dialect == "postgresql" else ("i", "d", "u")
    return {kind: f"tissu_chg_{kind}_{tag}" for kind in kinds}


def _trigger_sql(dialect: str, table: str, columns: list[str]) -> dict[str, str]:
    """name → CREATE TRIGGER statement of the triggers of ``table`` (see :data:`CHANGE_TABLE`)."""
    names = _trigger_names(dialect, table, columns)
    published = [c for c in columns if (table, c) not in _VOLATILE_COLUMNS] or columns
    quoted = _quoted(table)
    if dialect == "sqlite":
        bump = f"BEGIN UPDATE {CHANGE_TABLE} SET changes = changes + 1 WHERE slot = 0; END"
        changed = " OR ".join(f"OLD.{_quoted(c)} IS NOT NEW.{_quoted(c)}" for c in published)
        return {
            names["i"]: f"CREATE TRIGGER {names['i']} AFTER INSERT ON {quoted} {bump}",
            names["d"]: f"CREATE TRIGGER {names['d']} AFTER DELETE ON {quoted} {bump}",
            names["u"]: f"CREATE TRIGGER {names['u']} AFTER UPDATE ON {quoted} "
                        f"WHEN {changed} {bump}",
        }
    run = f"EXECUTE FUNCTION {_PG_FUNCTION}()"
    old = ", ".join(f"OLD.{_quoted(c)}" for c in published)
    new = ", ".join(f"NEW.{_quoted(c)}" for c in published)
    return {
        names["i"]: f"CREATE TRIGGER {names['i']} AFTER INSERT ON {quoted} REFERENCING NEW "
                    f"TABLE AS tissu_rows FOR EACH STATEMENT {run}",
        names["d"]: f"CREATE TRIGGER {names['d']} AFTER DELETE ON {quoted} REFERENCING OLD "
                    f"TABLE AS tissu_rows FOR EACH STATEMENT {run}",
        names["t"]: f"CREATE TRIGGER {names['t']} AFTER TRUNCATE ON {quoted} "
                    f"FOR EACH STATEMENT {run}",
        names["u"]: f"CREATE TRIGGER {names['u']} AFTER UPDATE ON {quoted} FOR EACH ROW "
                    f"WHEN ((ROW({old})) IS DISTINCT FROM (ROW({new}))) {run}",
    }


def _trigger_current(dialect: str, found: tuple[str, str] | None, table: str, sql: str) -> bool:
    """True when ``found`` (``(table, detail)`` from :func:`_tables_and_triggers`, or None) is
    the trigger ``sql`` of ``table``: the same statement on SQLite, enabled on PostgreSQL
    (not disabled, nor replica-only)."""
    return found is not None and found[0] == table and (
        found[1] == sql if dialect == "sqlite" else found[1] in ("O", "A"))


def _drop_trigger_sql(dialect: str, name: str, table: str) -> str:
    """``DROP TRIGGER IF EXISTS`` for trigger ``name`` of ``table`` (PostgreSQL names the table)."""
    return f"DROP TRIGGER IF EXISTS {name}" + (f" ON {_quoted(table)}"
                                               if dialect == "postgresql" else "")


def _tables_and_triggers(cursor: Any, dialect: str) -> tuple[
        list[tuple[str, Any, list[str]]], dict[str, tuple[str, str]]]:
    """([(table, identity, columns)] of every table, in name order; {trigger name: (table,
    definition or enabled flag)}). ``identity`` is SQLite's root page or PostgreSQL's oid: a
    table dropped and made again is another table."""
    tables: dict[str, tuple[Any, list[str]]] = {}
    if dialect == "sqlite":
        cursor.execute("SELECT m.name, m.rootpage, p.name FROM sqlite_master m "
                       "JOIN pragma_table_info(m.name) p WHERE m.type = 'table' "
                       "AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid")
        for table, identity, column in cursor.fetchall():
            tables.setdefault(table, (identity, []))[1].append(column)
        cursor.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
    else:
        cursor.execute("SELECT c.relname, c.oid::bigint, a.attname FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "JOIN pg_attribute a ON a.attrelid = c.oid "
                       "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                       "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum")
        for table, identity, column in cursor.fetchall():
            tables.setdefault(table, (identity, []))[1].append(column)
        cursor.execute("SELECT t.tgname, c.relname, t.tgenabled::text FROM pg_trigger t "
                       "JOIN pg_class c ON c.oid = t.tgrelid "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = current_schema() AND NOT t.tgisinternal")
    triggers = {name: (table, detail) for name, table, detail in cursor.fetchall()}
    return [(t, ident, cols) for t, (ident, cols) in sorted(tables.items())], triggers


def _counter_digest(cursor: Any, dialect: str) -> str | None:
    """The change counter's part of the fingerprint, or None when it cannot be trusted: no
    counter, or a published table without its current triggers (then rows are read)."""
    tables, triggers = _tables_and_triggers(cursor, dialect)
    if CHANGE_TABLE not in {t for t, _, _ in tables}:
        return None
    digest = hashlib.sha256()
    for table, identity, columns in tables:
        if _skipped(table):
            continue
        digest.update(f"\x1e{table}\x1f{identity}\x1f{','.join(columns)}".encode())
        for name, sql in _trigger_sql(dialect, table, columns).items():
            if not _trigger_current(dialect, triggers.get(name), table, sql):
                return None
    if dialect == "postgresql":
        cursor.execute(_PG_FUNCTION_SOURCE)
        function = cursor.fetchone()
        if function is None or function[0] != _PG_FUNCTION_BODY:
            return None
    cursor.execute(f"SELECT (SELECT store FROM {CHANGE_TABLE} WHERE slot = 0), "
                   f"(SELECT sum(changes) FROM {CHANGE_TABLE})")
    store, changes = cursor.fetchone()
    if not store:
        return None
    digest.update(f"\x1d{store}\x1f{changes}".encode())
    return digest.hexdigest()


def install_change_triggers(connection: Any) -> list[str]:
    """Create the change counter and the triggers every published table lacks (see
    :data:`CHANGE_TABLE`); return the names of the triggers created.

    ``connection`` is a SQLAlchemy connection inside a transaction (SQLite or PostgreSQL;
    schemas.store.make_engine calls this after creating the tables). When a trigger is
    created, the counter moves first in the same transaction: rows written while a table had no
    trigger are then never taken for unchanged. Triggers left by another column list are
    dropped. On PostgreSQL, more than :data:`_PG_SLOTS_KEPT` per-connection counter rows are
    folded into one (the fingerprint, which reads their sum, stays the same). Other databases:
    nothing is done.
    """
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return []
    raw = connection.exec_driver_sql
    cursor = _SQLAlchemyCursor(connection)
    tables, _ = _tables_and_triggers(cursor, dialect)
    if CHANGE_TABLE not in {t for t, _, _ in tables}:
        raw(f"CREATE TABLE IF NOT EXISTS {CHANGE_TABLE} (slot BIGINT PRIMARY KEY, "
            "changes BIGINT NOT NULL DEFAULT 0, store TEXT)")
    if raw(f"SELECT store FROM {CHANGE_TABLE} WHERE slot = 0").first() is None:
        raw(f"INSERT INTO {CHANGE_TABLE} (slot, changes, store) VALUES "
            f"(0, 0, '{uuid.uuid4().hex}')")
    if dialect == "postgresql":
        current = raw(_PG_FUNCTION_SOURCE).first()
        if current is None or current[0] != _PG_FUNCTION_BODY:
            body = _PG_FUNCTION_BODY.replace("%", "%%")  # the driver reads % as a placeholder
            raw(f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger "
                f"LANGUAGE plpgsql AS $tissu${body}$tissu$")
        if raw(f"SELECT count(*) FROM {CHANGE_TABLE}").scalar_one() > _PG_SLOTS_KEPT:
            # one row per connection that ever wrote: fold them into slot 0. The sum is kept
            # exactly: DELETE … RETURNING gives each row as committed by its writer (it waits
            # for a writer holding one), and slot 0 gets what the deleted rows held.
            raw(f"WITH gone AS (DELETE FROM {CHANGE_TABLE} WHERE slot <> 0 RETURNING changes) "
                f"UPDATE {CHANGE_TABLE} SET changes = changes + "
                "(SELECT coalesce(sum(changes), 0) FROM gone) WHERE slot = 0")
    cursor = _SQLAlchemyCursor(connection)
    tables, triggers = _tables_and_triggers(cursor, dialect)
    wanted: dict[str, tuple[str, str]] = {}
    current_names: set[str] = set()
    for table, _identity, columns in tables:
        if _skipped(table):
            continue
        for name, sql in _trigger_sql(dialect, table, columns).items():
            current_names.add(name)
            if not _trigger_current(dialect, triggers.get(name), table, sql):
                wanted[name] = (table, sql)
    stale = [(name, table) for name, (table, _) in triggers.items()
             if name.startswith("tissu_chg_") and name not in current_names]
    if not wanted and not stale:
        return []
    raw(f"UPDATE {CHANGE_TABLE} SET changes = changes + 1 WHERE slot = 0")
    for name, table in stale:
        raw(_drop_trigger_sql(dialect, name, table))
    for name, (table, sql) in wanted.items():
        raw(_drop_trigger_sql(dialect, name, table))
        raw(sql)
    return sorted(wanted)


class _SQLAlchemyCursor:
    """The two DB-API cursor methods :func:`_tables_and_triggers` uses, over a SQLAlchemy
    connection."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str) -> None:
        self.rows = [tuple(row) for row in self.connection.exec_driver_sql(sql)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


def _read_stamp(out_dir: Path) -> dict[str, Any]:
    try:
        value = json.loads((out_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def publication_is_current(out_dir: Path, fingerprint: str, now: dt.datetime) -> bool:
    """True when ``out_dir`` holds a publication of exactly this store, recent enough.

    That is: the stamp's fingerprint equals ``fingerprint``, it was published the same UTC day
    as ``now`` (aware) and less than :data:`REPUBLISH_AFTER` before it, and the database,
    metadata and exports are all there.
    """
    stamp = _read_stamp(out_dir)
    if stamp.get("fingerprint") != fingerprint:
        return False
    try:
        published = dt.datetime.fromisoformat(str(stamp.get("published_at")))
    except ValueError:
        return False
    if published.tzinfo is None:
        return False
    now_utc, published = now.astimezone(dt.UTC), published.astimezone(dt.UTC)
    if published.date() != now_utc.date() or not (
            now_utc - REPUBLISH_AFTER < published <= now_utc):
        return False
    return all((out_dir / name).exists() for name in _OUTPUTS)


def remember_publication(out_dir: Path, fingerprint: str, now: dt.datetime) -> None:
    """Write the stamp (fingerprint and ``now``, aware UTC) atomically into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    temporary = out_dir / f"{STAMP}.tmp"
    temporary.write_text(json.dumps({"fingerprint": fingerprint,
                                     "published_at": now.astimezone(dt.UTC).isoformat()}),
                         encoding="utf-8")
    os.replace(temporary, out_dir / STAMP)


def fingerprint_if_published(database_url: str, out_dir: Path) -> str | None:
    """:func:`store_fingerprint` of the store at ``database_url`` when ``out_dir`` holds a
    stamp to compare it with; None when there is none or the store cannot be read.

    Reads only the catalogue and the rows, with the database's own driver: no SQLAlchemy, no
    publishing code imported (``tissu publish`` checks this first).
    """
    if not (out_dir / STAMP).exists():
        return None
    try:
        return store_fingerprint(database_url)
    except Exception:  # noqa: BLE001 - when in doubt, publish
        return None


def publication_is_current_for(database_url: str, out_dir: Path, now: dt.datetime) -> bool:
    """:func:`publication_is_current` for the store at ``database_url``; False when unsure
    (see :func:`fingerprint_if_published`)."""
    fingerprint = fingerprint_if_published(database_url, out_dir)
    return fingerprint is not None and publication_is_current(out_dir, fingerprint, now)


@dataclass
class PublishDecision:
    """What :func:`publish_if_changed` did: ``outcome`` is None when the publication was kept."""

    published: bool
    outcome: PublishOutcome | None = None
    reason: str = ""


def publish_if_changed(engine: Engine, out_dir: Path, now: dt.datetime,
                       force: bool = False, fingerprint: str | None = None) -> PublishDecision:
    """``publish.run.publish`` unless the publication in ``out_dir`` is current (see module doc).

    ``now`` is aware UTC. ``force`` always publishes. ``fingerprint``: the store's, when the
    caller computed it already (else it is computed here). The stamp is written only after a
    publish without errors, so a failed export is retried by the next call. When the
    fingerprint cannot be computed, it publishes. Raises what ``publish`` raises.
    """
    if fingerprint is None or fingerprint.startswith("r:"):
        # an "r:" digest was read before make_engine installed the triggers: read the counter
        try:
            fingerprint = store_fingerprint(engine)
        except Exception:  # noqa: BLE001 - when in doubt, publish
            fingerprint = None
    if not force and fingerprint is not None and publication_is_current(out_dir, fingerprint,
                                                                         now):
        return PublishDecision(False, reason="rien n'a changé depuis la dernière publication")
    from publish.run import publish

    (out_dir / STAMP).unlink(missing_ok=True)  # a publish that fails half-way is never current
    outcome = publish(engine, out_dir, now)
    if fingerprint is not None and not outcome.errors:
        remember_publication(out_dir, fingerprint, now)
    return PublishDecision(True, outcome)
