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

from sqlalchemy.engine import Engine

from tissu.settings import PROJECT_ROOT

if TYPE_CHECKING:
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
    ("source", "crawl_pages"),
})
# Files the publication is built from besides the store: its code and reference data.
_PUBLISH_INPUTS = ("publish/*.py", "data/vocab/*.yaml", "data/places.yaml")
_OUTPUTS = ("tissu-open.db", "metadata.json", "exports")


def _inputs_stamp() -> str:
    digest = hashlib.sha256()
    for pattern in _PUBLISH_INPUTS:
        for path in sorted(PROJECT_ROOT.glob(pattern)):
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(PROJECT_ROOT)}:{stat.st_size}:"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def store_fingerprint(engine: Engine) -> str:
    """SHA-256 hex digest of what the working store can publish.

    Every row of every table of the store's models (``schemas``) except the unpublished ones
    (:data:`_UNPUBLISHED_TABLES`), without :data:`_VOLATILE_COLUMNS`, in primary-key order,
    plus :func:`_inputs_stamp`. The same data gives the same digest on one database; SQLite and
    PostgreSQL digests differ. Raises what the database raises.
    """
    from sqlmodel import SQLModel

    from schemas import store  # noqa: F401  (registers every table, leases included)

    digest = hashlib.sha256(_inputs_stamp().encode())
    dialect = engine.dialect.name
    with engine.connect() as connection:
        raw: Any = connection.connection.dbapi_connection
        cursor = raw.cursor()
        try:
            for table in sorted(SQLModel.metadata.sorted_tables, key=lambda t: t.name):
                if table.name in _UNPUBLISHED_TABLES:
                    continue
                columns = [c.name for c in table.columns
                           if (table.name, c.name) not in _VOLATILE_COLUMNS]
                keys = [c.name for c in table.primary_key.columns]
                digest.update(f"\x1e{table.name}\x1f{','.join(columns)}\x1f".encode())
                if len(keys) == 1 and dialect == "postgresql":
                    _digest_in_database(cursor, dialect, table.name, columns, keys[0], digest)
                else:
                    _digest_rows(cursor, table.name, columns, keys or columns[:1], digest)
        finally:
            cursor.close()
            connection.rollback()
    return digest.hexdigest()


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
    """PostgreSQL: each chunk of rows (in key order) hashed by the server itself
    (``md5(string_agg(row::text …))``), so that rows do not cross the network.

    (SQLite's own ``quote()`` and ``group_concat`` are no faster than reading the rows in
    Python, which :func:`_digest_rows` does; the ``sqlite`` branch is kept for tests.)
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


@dataclass
class PublishDecision:
    """What :func:`publish_if_changed` did: ``outcome`` is None when the publication was kept."""

    published: bool
    outcome: PublishOutcome | None = None
    reason: str = ""


def publish_if_changed(engine: Engine, out_dir: Path, now: dt.datetime,
                       force: bool = False) -> PublishDecision:
    """``publish.run.publish`` unless the publication in ``out_dir`` is current (see module doc).

    ``now`` is aware UTC. ``force`` always publishes. The stamp is written only after a publish
    without errors, so a failed export is retried by the next call. When the fingerprint cannot
    be computed, it publishes. Raises what ``publish`` raises.
    """
    try:
        fingerprint: str | None = store_fingerprint(engine)
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
