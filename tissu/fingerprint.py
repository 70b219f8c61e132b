"""Publish only when something changed: a fingerprint of the working store, kept beside the
publication.

``tissu publish`` rebuilds ``tissu-open.db`` and every export (seconds to minutes). When the
working store holds the same data as at the last publish, that work would write the same files:
:func:`publish_if_changed` then keeps the publication as it is. The fingerprint
(:func:`store_fingerprint`) is a SHA-256 over every row of every working-store table that can
reach the publication, minus bookkeeping that moves at each harvest without changing what is
published (HTTP validators, "last attempt" times). It is stored in
``<publish dir>/.store-fingerprint.json`` after each publish that ended without error.

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
                                 "publishrun", "publishchange", "publishedevent"})
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
    """SHA-256 hex digest of what the working store can publish.

    ``store`` is the engine or its SQLAlchemy URL (SQLite or PostgreSQL; read with the
    database's own driver, so that checking costs no SQLAlchemy import). Every row of every
    table of the store, as its catalogue lists them, except the unpublished ones
    (:data:`_UNPUBLISHED_TABLES`, the scheduler's jobs), without :data:`_VOLATILE_COLUMNS`, in
    primary-key order, plus :func:`_inputs_stamp`. The same data gives the same digest on one
    database; SQLite and PostgreSQL digests differ. Raises what the driver raises, and
    ValueError for another kind of database.
    """
    url = store if isinstance(store, str) else store.url.render_as_string(hide_password=False)
    digest = hashlib.sha256(_inputs_stamp().encode())
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url.removeprefix("sqlite:///")
        connection: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dialect = "sqlite"
    elif url.startswith(("postgresql", "postgres")):
        import psycopg

        connection = psycopg.connect("postgresql://" + url.split("://", 1)[1])
        dialect = "postgresql"
    else:
        raise ValueError(f"base non prise en charge : {url.split(':', 1)[0]}")
    try:
        cursor = connection.cursor()
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
    return digest.hexdigest()


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
    if fingerprint is None:
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
