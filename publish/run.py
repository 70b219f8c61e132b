"""The PUBLISH stage as one call: history, database, exports, Datasette metadata, snapshot."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from publish.build import build_database, public_frames, withdrawal
from publish.columns import PUBLIC_TABLES
from publish.exports import build_exports, write_atomic
from publish.history import RunCounts, finish_run, record_run
from publish.metadata import build_metadata
from publish.snapshots import snapshot_name, write_snapshot
from schemas.models import Event, Occurrence, utcnow


@dataclass
class PublishOutcome:
    """Where everything was written, and what changed since the previous publish."""

    database: Path
    metadata: Path
    exports: dict[str, Path]
    counts: RunCounts | None = None
    snapshot: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def publish(engine: Engine, out_dir: Path, now: dt.datetime) -> PublishOutcome:
    """Publish the working store into ``out_dir``.

    Writes ``tissu-open.db``, ``metadata.json``, ``exports/`` and, when due,
    ``snapshots/<date>/`` (see :mod:`publish.snapshots`); records the run and its changes
    (:mod:`publish.history`). ``now`` is aware (UTC); it decides what is upcoming and dates the
    run. The events of a source retired from the registry are left out
    (:class:`publish.build.Withdrawal`): the run records them as removed. Raises whatever the
    file system raises (the previous publication then stays in place).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    history_tables = {"publish_runs", "changes"}  # read again once this run is recorded
    left = withdrawal(engine)  # one answer for every table of this publication
    frames = public_frames(engine, only=set(PUBLIC_TABLES) - history_tables, stream=True,
                           left=left)
    timings["read"] = time.perf_counter() - clock
    events = frames["events"]

    def history() -> tuple[RunCounts, str | None, dict[str, pd.DataFrame]]:
        started = time.perf_counter()
        counted = select(
            func.count(), func.sum(case((Occurrence.end_utc >= now, 1), else_=0))  # type: ignore[operator,arg-type]
        ).select_from(Occurrence)
        if left:  # the occurrences of withdrawn events are not published
            counted = counted.where(col(Occurrence.event_id).not_in(
                select(col(Event.id)).where(col(Event.source_id).in_(sorted(left.sources)))))
        with Session(engine) as session:
            total, upcoming = session.execute(counted).one()
        counts = record_run(engine, events, now, int(total or 0), int(upcoming or 0))
        name = snapshot_name(out_dir, now, counts.changed)
        finish_run(engine, counts.run_id, None, f"snapshots/{name}" if name else None)
        tables = public_frames(engine, only=history_tables)
        timings["history"] = time.perf_counter() - started
        return counts, name, tables

    recorded: list[tuple[RunCounts, str | None]] = []

    def history_tables_() -> dict[str, pd.DataFrame]:
        counts, name, tables = history()
        recorded.append((counts, name))
        return tables

    # the history (Python, working store) runs while SQLite copies and indexes the big tables
    # of the published database (C, without the GIL)
    clock = time.perf_counter()
    database = build_database(engine, out_dir, frames, timings, meanwhile=history_tables_,
                              left=left)
    counts, name = recorded[0]
    timings["database"] = time.perf_counter() - clock
    clock = time.perf_counter()
    errors: list[str] = []
    metadata: list[dict] = []  # read from the database while the export workers run
    exports = build_exports(database, out_dir / "exports", now, timings, errors,
                            meanwhile=lambda: metadata.append(build_metadata(database)))
    timings["exports"] = time.perf_counter() - clock
    metadata_path = out_dir / "metadata.json"
    write_atomic(metadata_path, json.dumps(metadata[0], ensure_ascii=False,
                                           indent=2).encode("utf-8"))
    snapshot = write_snapshot(out_dir, name) if name else None
    # the end time reaches the published publish_runs table at the next publish
    finish_run(engine, counts.run_id, utcnow(), f"snapshots/{name}" if name else None)
    return PublishOutcome(database=database, metadata=metadata_path, exports=exports,
                          counts=counts, snapshot=snapshot, timings=timings, errors=errors)
