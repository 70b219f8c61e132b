"""The working store: an SQLModel engine over SQLite (default) or PostgreSQL, and source leases.

``TISSU_DATABASE_URL`` chooses the database:

- ``sqlite:///data/tissu.db`` (default): one file, WAL journal, writers wait up to 30 s.
- ``postgresql+psycopg://user@host:5432/tissu`` (psycopg 3): the scale path, shared by several
  ``tissu harvest --worker`` processes. A libpq ``options`` query parameter is passed through, so
  ``…/tissu?options=-csearch_path%3Dtissu`` keeps the tables in the schema ``tissu``.

The published database is never this store: it stays an immutable SQLite file (publish/).

Several harvest workers share the store through :class:`SourceLease`: a worker claims a due
source with ``SELECT … FOR UPDATE SKIP LOCKED`` on its ``source`` row (PostgreSQL), records a
lease with an expiry, harvests, then releases it. On SQLite, which has no row locks, the same
claim is a compare-and-set on the lease row inside a write transaction, so it is safe there too.
A claim reads no other source: due-ness is turned into SQL (:func:`claim_source`).

:func:`make_engine` also installs the change counter of the published tables (triggers and the
table ``tissu_change``, see tissu.fingerprint.install_change_triggers): ``tissu publish`` reads
it to know, in a few milliseconds, that nothing changed since the last publication.
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import and_, delete, event, exists, insert, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from schemas import models  # noqa: F401  (registers the tables)
from schemas.models import Source, utc_field
from tissu.fingerprint import install_change_triggers

# Any constant works; it only has to be the same for every Tissu process on one database.
_SCHEMA_LOCK_KEY = 0x7155_0001
_REGISTRY_LOCK_KEY = 0x7155_0002
_ENGINES: list[Engine] = []  # every engine made here, so that tests can close their pools


class SourceLease(SQLModel, table=True):
    """A harvest worker's claim on one source, so that no source is harvested twice at once.

    ``worker`` is ``<hostname>:<pid>[:<thread>]``; ``claimed_at``/``expires_at`` are aware UTC.
    A lease past ``expires_at`` (a worker that died) may be claimed again.
    """

    source_id: str = Field(primary_key=True)
    worker: str
    claimed_at: dt.datetime | None = utc_field(nullable=False)
    expires_at: dt.datetime | None = utc_field(nullable=False)


def is_postgresql(engine_or_url: Engine | str) -> bool:
    """True when the engine (or URL) points at PostgreSQL."""
    url = engine_or_url if isinstance(engine_or_url, str) else engine_or_url.url.drivername
    return str(url).startswith("postgresql")


def make_engine(database_url: str) -> Engine:
    """Create the engine and the tables if missing.

    Args:
        database_url: SQLAlchemy URL, ``sqlite:///path`` or ``postgresql+psycopg://…``.

    For SQLite the parent folder is created, WAL is enabled and foreign processes wait up to 30 s
    for a lock. For PostgreSQL, table creation holds an advisory lock so that several workers
    starting together do not race on ``CREATE TABLE``.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Statement journals in memory: with the change counter's triggers
            # (tissu.fingerprint), each row of an executemany INSERT into an indexed table opened
            # one in a temporary file (100 000 events: +1.2–2.3 s; in memory: +0.3 s).
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.close()

        for attempt in range(5):
            try:
                SQLModel.metadata.create_all(engine)
                with engine.begin() as connection:
                    add_missing_columns(connection)
                    add_missing_indexes(connection)
                    _install_change_triggers(connection)
                break
            except OperationalError as exc:  # another process created a table meanwhile
                if "already exists" not in str(exc) or attempt == 4:
                    raise
        return engine
    if is_postgresql(database_url):
        if database_url.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver we ship; plain URLs would ask for psycopg2.
            database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
        engine = create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            SQLModel.metadata.create_all(connection)
            add_missing_columns(connection)
            add_missing_indexes(connection)
            _install_change_triggers(connection)
        _ENGINES.append(engine)
        return engine
    engine = create_engine(database_url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    return engine


def _existing_tables(inspector: Any) -> list[Any]:
    """The models' tables (``sqlalchemy.Table``, in dependency order) that already exist in the
    database ``inspector`` looks at."""
    existing = set(inspector.get_table_names())
    return [table for table in SQLModel.metadata.sorted_tables if table.name in existing]


def add_missing_indexes(connection: object) -> list[str]:
    """Create the indexes the models gained since an existing table was created.

    ``create_all`` makes indexes only with a new table. Returns the names of the indexes
    created (``CREATE INDEX`` after a check that it is absent).
    """
    from sqlalchemy import inspect

    inspector = inspect(connection)
    created: list[str] = []
    for table in _existing_tables(inspector):
        present = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name and index.name not in present:
                index.create(connection, checkfirst=True)  # type: ignore[arg-type]
                created.append(str(index.name))
    return created


def _install_change_triggers(connection: Any) -> None:
    """tissu.fingerprint.install_change_triggers, never fatal: a store where they cannot be made
    (e.g. a PostgreSQL role without the right to create triggers or functions: in a savepoint)
    still opens; ``tissu publish`` then reads its rows to know whether it changed. A trigger
    another SQLite process made meanwhile ("already exists") is raised for make_engine's retry.
    """
    import logging

    try:
        if connection.dialect.name == "postgresql":
            with connection.begin_nested():
                install_change_triggers(connection)
        else:  # pysqlite's SAVEPOINTs do not nest in its implicit transactions
            install_change_triggers(connection)
    except Exception as exc:  # never stop a command for a speed-up
        if isinstance(exc, OperationalError) and "already exists" in str(exc):
            raise
        logging.getLogger("tissu.store").warning("compteur de changements non installé : %s", exc)


def add_missing_columns(connection: object) -> list[str]:
    """Add to existing tables the columns that the models gained since they were created.

    ``create_all`` creates missing tables but never alters existing ones, so a working store
    made by an older Tissu would lack new columns. Each missing column is added as nullable,
    with the model's scalar default when it has one. Returns ``table.column`` names added.
    """
    from sqlalchemy import inspect

    inspector = inspect(connection)
    dialect = connection.dialect  # type: ignore[attr-defined]
    added: list[str] = []
    for table in _existing_tables(inspector):
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=dialect)
            default = ""
            arg = getattr(column.default, "arg", None)
            if isinstance(arg, bool):
                default = f" DEFAULT {'TRUE' if arg else 'FALSE'}" if dialect.name != "sqlite" \
                    else f" DEFAULT {int(arg)}"
            elif isinstance(arg, (int, float)):
                default = f" DEFAULT {arg}"
            elif isinstance(arg, str):
                default = " DEFAULT '" + arg.replace("'", "''") + "'"
            connection.execute(  # type: ignore[attr-defined]
                text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{default}')
            )
            added.append(f"{table.name}.{column.name}")
    return added


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in the session's transaction.

    On SQLite, one DB-API ``executemany`` of tuples whose values went through each column
    type's own bind processor — what SQLAlchemy's ``insert`` does, without its per-row and
    per-key bookkeeping (10 000 events of 45 columns: 0.85 → 0.57 s); elsewhere, or when
    SQLAlchemy's processors cannot be read, SQLAlchemy's ``insert``. Used for the rows a
    harvest writes by the thousand: source records (connectors.harvest.sync_records), events
    and occurrences (normalize.pipeline.normalize_source).

    Raises:
        ValueError: a naive datetime in a UTC column (schemas.models.UTCDateTime).
        sqlalchemy.exc.IntegrityError: a row breaks a constraint (nothing of the call is kept
            once the session rolls back).
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    keys = list(rows[0])
    try:
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            raise NotImplementedError(dialect.name)
        processors = [table.c[key].type._cached_bind_processor(dialect) for key in keys]
    except (AttributeError, KeyError, NotImplementedError):
        session.execute(insert(table), rows)
        return
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(k) for k in keys)}) "
           f"VALUES ({', '.join('?' for _ in keys)})")
    # the values in key order (C code), then only the columns that have a processor (dates,
    # booleans: a few of ~45) go through it
    values = operator.itemgetter(*keys) if len(keys) > 1 else (lambda row: (row[keys[0]],))
    processed = [(i, process) for i, process in enumerate(processors) if process is not None]
    params: list[Any] = []
    for row in rows:
        if processed:
            bound = list(values(row))
            for i, process in processed:
                bound[i] = process(bound[i])
            params.append(tuple(bound))
        else:
            params.append(values(row))
    connection.exec_driver_sql(sql, params)


def dispose_engines() -> None:
    """Close the pooled connections of every PostgreSQL engine made by :func:`make_engine`.

    For tests and short-lived commands: a pool left to the garbage collector leaves its
    connections open until then.
    """
    while _ENGINES:
        _ENGINES.pop().dispose()


def registry_lock(session: Session) -> None:
    """Serialise registry synchronisation between processes (PostgreSQL; no-op on SQLite).

    The lock is held until the session's transaction ends (commit or rollback).
    """
    bind = session.get_bind()
    if is_postgresql(bind):  # type: ignore[arg-type]
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _REGISTRY_LOCK_KEY})


def worker_name(suffix: str = "") -> str:
    """``<hostname>:<pid>`` plus an optional suffix: how a lease names its holder."""
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{suffix}" if suffix else "")


def claim_source(engine: Engine, worker: str, now: dt.datetime,
                 is_due: Callable[[Source, dt.datetime], bool],
                 lease_seconds: int = 1800) -> str | None:
    """Claim one due, unleased, active source for ``worker``; return its id, or None.

    Candidates are active sources (not paused by a moderator) for which ``is_due(source, now)``
    is true, least recently attempted first (never attempted first, then by id). ``now`` is
    aware UTC; the lease expires ``lease_seconds`` later.

    ``is_due`` must depend only on the source's ``refresh`` and ``last_attempt_at`` and be
    monotone in the latter (an older attempt is at least as due), as
    ``tissu.pipeline.source_is_due`` and a worker's ``--since`` round are. It is then turned
    into SQL (:func:`_due_clause`: for each ``refresh`` value, the latest attempt time still
    due), so that a claim reads no other source: one small query for the ``refresh`` values,
    one that picks the first due candidate without a live lease — ``FOR UPDATE SKIP LOCKED
    LIMIT 1`` on PostgreSQL, so a row another worker is claiming is skipped instead of waited
    for — and the lease written by compare-and-set in the same transaction (on SQLite, which
    has no row locks, in a write transaction). The chosen row is checked with ``is_due`` again;
    should that disagree (a non-monotone ``is_due``), every candidate is read and checked in
    Python instead (:func:`_claim_by_scan`).
    """
    expires = now + dt.timedelta(seconds=lease_seconds)
    postgresql = is_postgresql(engine)
    claimable = (col(Source.status) == "active", col(Source.paused_by_moderator).is_(False))
    with Session(engine) as session:
        for _attempt in range(50):
            refreshes = session.exec(select(Source.refresh).where(*claimable).distinct()).all()
            try:
                due = _due_clause(refreshes, now, is_due)
            except Exception:  # noqa: BLE001 - an is_due that cannot judge a probe
                session.rollback()
                return _claim_by_scan(session, worker, now, is_due, expires)
            if due is None:
                session.rollback()
                return None
            live_lease = exists().where(col(SourceLease.source_id) == col(Source.id),
                                        col(SourceLease.expires_at) > now)
            query = (select(Source.id, Source.refresh, Source.last_attempt_at)
                     .where(*claimable, due, ~live_lease)
                     .order_by(col(Source.last_attempt_at).is_not(None),
                               col(Source.last_attempt_at), col(Source.id))
                     .limit(1))
            if postgresql:
                query = query.with_for_update(skip_locked=True, of=Source)  # type: ignore[arg-type]
            row = session.exec(query).first()
            if row is None:
                session.rollback()
                return None
            source_id, refresh, last_attempt_at = row
            if not is_due(_probe(refresh, last_attempt_at, source_id), now):
                session.rollback()
                return _claim_by_scan(session, worker, now, is_due, expires)
            if not postgresql:
                session.rollback()  # SQLite: the lease is written in a transaction of its own
            if _try_lease(session, source_id, worker, now, expires, locked=postgresql):
                return source_id
            # another worker leased it between our read and our write: look again
    return None


# Latest and earliest attempt times searched for by _due_clause (UTC).
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)  # far from datetime.max: is_due adds to it


def _due_clause(refreshes: Sequence[str], now: dt.datetime,
                is_due: Callable[[Source, dt.datetime], bool]) -> Any:
    """A SQL condition on ``source`` true exactly for the sources ``is_due`` at ``now``, or None
    when none can be.

    For each ``refresh`` value, ``is_due`` is asked about a never-attempted source and for the
    latest ``last_attempt_at`` still due (:func:`_latest_due`): ``refresh = r AND
    (last_attempt_at IS NULL OR last_attempt_at <= t)``. Relies on ``is_due`` being monotone
    in ``last_attempt_at``. Raises what ``is_due`` raises.
    """
    clauses = []
    for refresh in refreshes:
        parts: list[Any] = []
        if is_due(_probe(refresh, None), now):
            parts.append(col(Source.last_attempt_at).is_(None))
        latest = _latest_due(refresh, now, is_due)
        if latest is _ALWAYS:
            parts.append(col(Source.last_attempt_at).is_not(None))
        elif latest is not None:
            parts.append(col(Source.last_attempt_at) <= latest)
        if parts:
            clauses.append(and_(col(Source.refresh) == refresh, or_(*parts)))
    return or_(*clauses) if clauses else None


_ALWAYS = _LATEST
_MICROSECOND = dt.timedelta(microseconds=1)
# (is_due, refresh) → (now, latest due) of the last bisection: the next claim's answer is
# usually the same instant (a --since round) or the same distance before now (a refresh period),
# checked with two questions instead of ~58.
_LAST_CUTOFFS: dict[tuple[Any, str], tuple[dt.datetime, dt.datetime]] = {}


def _latest_due(refresh: str, now: dt.datetime,
                is_due: Callable[[Source, dt.datetime], bool]) -> dt.datetime | None:
    """The latest ``last_attempt_at`` for which a source with this ``refresh`` is due at
    ``now``, to the microsecond (the precision both databases store); None when no attempt
    time is due, :data:`_ALWAYS` when every one is. Found by bisection between
    :data:`_EARLIEST` and :data:`_LATEST`, or confirmed from the previous answer."""
    def due(at: dt.datetime) -> bool:
        return is_due(_probe(refresh, at), now)

    key = (is_due, refresh)
    previous = _LAST_CUTOFFS.get(key)
    if previous is not None:
        before, cutoff = previous
        for guess in (cutoff, now - (before - cutoff)):
            if _EARLIEST <= guess < _LATEST and due(guess) and not due(guess + _MICROSECOND):
                _LAST_CUTOFFS[key] = (now, guess)
                return guess
    if not due(_EARLIEST):
        return None
    if due(_LATEST):
        return _ALWAYS
    low, high = 0, (_LATEST - _EARLIEST) // _MICROSECOND
    while high - low > 1:  # due at low, not at high
        middle = (low + high) // 2
        if due(_EARLIEST + middle * _MICROSECOND):
            low = middle
        else:
            high = middle
    cutoff = _EARLIEST + low * _MICROSECOND
    if len(_LAST_CUTOFFS) > 256:
        _LAST_CUTOFFS.clear()
    _LAST_CUTOFFS[key] = (now, cutoff)
    return cutoff


@dataclass
class _Probe:
    """What ``is_due`` is asked about while a claim is turned into SQL: a stand-in for a
    :class:`Source` with its ``id``, ``refresh`` and ``last_attempt_at`` (cheaper to make and
    to change than a mapped row, which a claim would otherwise build ~200 times)."""

    id: str
    refresh: str
    last_attempt_at: dt.datetime | None
    status: str = "active"


def _probe(refresh: str, last_attempt_at: dt.datetime | None, source_id: str = "") -> Source:
    """A stand-in source (never added to a session) to ask ``is_due`` about."""
    return cast(Source, _Probe(source_id, refresh, last_attempt_at))


def _claim_by_scan(session: Session, worker: str, now: dt.datetime,
                   is_due: Callable[[Source, dt.datetime], bool],
                   expires: dt.datetime) -> str | None:
    """:func:`claim_source` by reading every candidate and lease (for any ``is_due``)."""
    leased = {
        lease.source_id
        for lease in session.exec(select(SourceLease).where(col(SourceLease.expires_at) > now))
    }
    candidates = [
        s for s in session.exec(
            select(Source).where(col(Source.status) == "active",
                                 col(Source.paused_by_moderator).is_(False))
        )
        if s.id not in leased and is_due(s, now)
    ]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    candidates.sort(key=lambda s: (s.last_attempt_at or epoch, s.id))
    candidate_ids = [s.id for s in candidates]
    session.rollback()
    for candidate_id in candidate_ids:
        if _try_lease(session, candidate_id, worker, now, expires):
            return candidate_id
    return None


def _try_lease(session: Session, source_id: str, worker: str, now: dt.datetime,
               expires: dt.datetime, locked: bool = False) -> bool:
    """Lock ``source_id``'s row (SKIP LOCKED; not again when ``locked``: the session's
    transaction holds it already) and write ``worker``'s lease unless another live lease
    exists; commit and return True, or roll back and return False."""
    if not locked and session.exec(
        select(Source.id).where(Source.id == source_id).with_for_update(skip_locked=True)
    ).first() is None:  # another worker holds the row right now (or no such source)
        session.rollback()
        return False
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        # one statement: insert the lease, or take over one that expired or is ours already
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        row = session.execute(
            insert(SourceLease)
            .values(source_id=source_id, worker=worker, claimed_at=now, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[SourceLease.__table__.c.source_id],  # type: ignore[attr-defined]
                set_={"worker": worker, "claimed_at": now, "expires_at": expires},
                where=or_(col(SourceLease.expires_at) <= now, col(SourceLease.worker) == worker))
            .returning(SourceLease.__table__.c.source_id)  # type: ignore[attr-defined]
        ).first()
        if row is None:  # a live lease of another worker: lost
            session.rollback()
            return False
    else:
        taken = session.execute(
            update(SourceLease)
            .where(col(SourceLease.source_id) == source_id,
                   or_(col(SourceLease.expires_at) <= now, col(SourceLease.worker) == worker))
            .values(worker=worker, claimed_at=now, expires_at=expires)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:
            if session.get(SourceLease, source_id) is not None:  # live lease: lost
                session.rollback()
                return False
            session.add(SourceLease(source_id=source_id, worker=worker, claimed_at=now,
                                    expires_at=expires))
    try:
        session.commit()
    except IntegrityError:  # another process inserted the lease first (SQLite)
        session.rollback()
        return False
    return True


def lease_source(engine: Engine, source_id: str, worker: str, now: dt.datetime,
                 lease_seconds: int = 1800) -> bool:
    """Take ``worker``'s lease on the one source ``source_id``, as :func:`claim_source` does for
    a due one: True when taken (release it with :func:`release_source`), False when another
    worker or scheduler holds a live lease on it or the source does not exist. ``now`` is aware
    UTC; the lease expires ``lease_seconds`` later."""
    with Session(engine) as session:
        return _try_lease(session, source_id, worker, now,
                          now + dt.timedelta(seconds=lease_seconds))


def release_source(engine: Engine, source_id: str, worker: str) -> None:
    """Drop ``worker``'s lease on ``source_id`` (a lease taken over by another is left alone)."""
    with Session(engine) as session:
        session.execute(
            delete(SourceLease).where(col(SourceLease.source_id) == source_id,
                                      col(SourceLease.worker) == worker)
        )
        session.commit()
