"""Publish history: one ``PublishRun`` per publish and the ``PublishChange`` rows since the last.

The state of every event at the last publish is kept in ``PublishedEvent`` (working store), as a
SHA-256 digest of its published row, so what changed is known even if the published folder was
wiped. Kinds of change:

- ``new``: first publish of the event;
- ``updated``: its published row changed;
- ``cancelled``: its STATUS became cancelled;
- ``removed``: it disappeared from its source (``removed_at_source``) or from the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Table, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from schemas.models import PublishChange, PublishedEvent, PublishRun


@dataclass
class RunCounts:
    """What one publish changed (numbers of events)."""

    run_id: int
    new: int = 0
    updated: int = 0
    cancelled: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        """True when at least one event changed."""
        return bool(self.new or self.updated or self.cancelled or self.removed)


def frame_digests(frame: pd.DataFrame) -> list[int]:
    """One 64-bit digest per row of ``frame`` (pandas' stable row hash, independent of the
    index); used to see which published rows changed between two publishes."""
    return [int(v) for v in pd.util.hash_pandas_object(frame, index=False)]


def _state(row: dict[str, object]) -> str:
    if row.get("removed_at_source"):
        return "removed"
    return "cancelled" if row.get("status") == "cancelled" else "active"


def record_run(engine: Engine, events: pd.DataFrame, now: dt.datetime,
               occurrences: int = 0, upcoming: int = 0) -> RunCounts:
    """Compare ``events`` (the published events frame) with the last publish; store the run.

    Writes one ``PublishRun``, its ``PublishChange`` rows, and updates ``PublishedEvent``
    (bulk statements: 100k events take about a second). ``now`` is aware (UTC).
    """
    frame = events.astype(object).where(events.notna(), None)
    digests = [f"{d:016x}" for d in frame_digests(frame)]
    removed = frame["removed_at_source"] if "removed_at_source" in frame else [None] * len(frame)
    statuses = frame["status"] if "status" in frame else ["confirmed"] * len(frame)
    titles = frame["title"] if "title" in frame else [""] * len(frame)
    records = list(zip(frame["id"], digests, removed, statuses, titles, strict=True))
    with Session(engine) as session:
        run = PublishRun(started_at=now, events=len(records), occurrences=occurrences,
                         upcoming_occurrences=upcoming)
        session.add(run)
        session.flush()
        assert run.id is not None
        run_id = run.id
        counts = RunCounts(run_id=run_id)
        previous = {
            event_id: (digest, status, title)
            for event_id, digest, status, title in session.execute(
                select(PublishedEvent.event_id, PublishedEvent.digest,  # type: ignore[call-overload]
                       PublishedEvent.status, PublishedEvent.title))
        }
        seen: set[str] = set()
        inserts: list[dict[str, object]] = []
        updates: list[dict[str, object]] = []
        changes: list[dict[str, object]] = []
        for raw_id, digest, removed_at, status, raw_title in records:
            event_id = str(raw_id)
            seen.add(event_id)
            state = _state({"removed_at_source": removed_at, "status": status})
            title = str(raw_title or "")
            before = previous.get(event_id)
            kind: str | None
            if before is None:
                kind = "new" if state == "active" else None
                inserts.append({"event_id": event_id, "digest": digest, "status": state,
                                "title": title, "first_published_at": now,
                                "last_changed_at": now, "last_run_id": run_id})
            elif before[0] != digest:
                kind = "updated" if state in (before[1], "active") else state
                updates.append({"event_id": event_id, "digest": digest, "status": state,
                                "title": title, "last_changed_at": now, "last_run_id": run_id})
            else:
                continue
            if kind is not None:
                changes.append({"run_id": run_id, "changed_at": now, "event_id": event_id,
                                "kind": kind, "title": title})
        for event_id, (_digest, status, title) in previous.items():
            if event_id not in seen and status != "deleted":
                changes.append({"run_id": run_id, "changed_at": now, "event_id": event_id,
                                "kind": "removed", "title": title})
                updates.append({"event_id": event_id, "status": "deleted",
                                "last_changed_at": now, "last_run_id": run_id})
        connection = session.connection()
        if inserts:
            _insert_many(connection, PublishedEvent.__table__, inserts)  # type: ignore[attr-defined]
        if updates:
            session.execute(update(PublishedEvent), updates)
        if changes:
            _insert_many(connection, PublishChange.__table__, changes)  # type: ignore[attr-defined]
        for change in changes:
            kind = str(change["kind"])
            setattr(counts, kind, getattr(counts, kind) + 1)
        run.new, run.updated = counts.new, counts.updated
        run.cancelled, run.removed = counts.cancelled, counts.removed
        session.add(run)
        session.commit()
    return counts


def _insert_many(connection: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) with one driver ``executemany``.

    Each value goes through its column type's bind processing, as SQLAlchemy would do; a value
    shared by every row (the publish time) is processed once instead of once per row, which is
    most of the cost of 100k rows through SQLAlchemy's own executemany.
    """
    dialect = connection.dialect
    columns = list(rows[0])
    processors: list[Any] = []
    for name in columns:
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        processors.append(_once(processor) if processor is not None else None)
    marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if marks is None:  # a driver with named or numbered parameters: SQLAlchemy's own way
        connection.execute(insert(table), rows)
        return
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join(marks for _ in columns)})")
    values = [tuple(row[c] if p is None else p(row[c]) for c, p in zip(columns, processors,
                                                                        strict=True))
              for row in rows]
    connection.exec_driver_sql(sql, values)  # type: ignore[arg-type]


def _once(processor: Any) -> Any:
    """``processor`` remembering its last argument and result (by identity)."""
    last: list[Any] = [object(), None]

    def process(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, processor(value)
        return last[1]

    return process


def finish_run(engine: Engine, run_id: int, finished_at: dt.datetime | None,
               snapshot: str | None) -> None:
    """Set the end time (aware; None leaves it) and the snapshot name of a run."""
    with Session(engine) as session:
        run = session.get(PublishRun, run_id)
        if run is None:
            return
        if finished_at is not None:
            run.finished_at = finished_at
        run.snapshot = snapshot
        session.add(run)
        session.commit()
