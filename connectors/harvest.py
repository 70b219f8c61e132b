"""HARVEST + PARSE for one source: fetch, keep the raw snapshot, parse, store source records.

A record seen again is updated in place; a record missing from a complete run is marked
``removed_at_source`` (never deleted); a failed or partial run leaves the stored records alone, so
the source's last good events stay published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select

from connectors import parser_for
from connectors.base import ParseResult, Problem
from connectors.http import FetchError, fetch
from schemas.models import HarvestRun, Source, SourceRecord
from tissu.settings import Settings

_EXTENSIONS = {"ical": "ics", "rss": "xml", "atom": "xml", "openagenda": "json",
               "datainclusion": "json"}


@dataclass
class HarvestOutcome:
    """Result of harvesting one source (what the CLI summary shows)."""

    source_id: str
    status: str
    records: int = 0
    events: int = 0
    news: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changed: bool = False
    run_id: int | None = None


def record_id(source_id: str, uid: str, recurrence_id: str = "") -> str:
    """Stable record id ``<source>--<uid>[--<recurrence-id>]``."""
    return f"{source_id}--{uid}" + (f"--{recurrence_id}" if recurrence_id else "")


def save_raw(raw_dir: Path, source: Source, content: bytes, now: dt.datetime,
             retention: int) -> Path:
    """Write ``data/raw/<source>/<UTC timestamp>.<ext>`` and keep the newest ``retention``."""
    folder = raw_dir / source.id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now.strftime('%Y%m%dT%H%M%S%fZ')}.{_EXTENSIONS.get(source.format, 'bin')}"
    path.write_bytes(content)
    snapshots = sorted(p for p in folder.iterdir() if p.is_file())
    for old in snapshots[: max(0, len(snapshots) - retention)]:
        old.unlink()
    return path


def _finish(session: Session, source: Source, run: HarvestRun, outcome: HarvestOutcome,
            now: dt.datetime) -> HarvestOutcome:
    run.finished_at = now
    run.status = outcome.status
    run.warnings = json.dumps(outcome.warnings, ensure_ascii=False)
    run.errors = json.dumps(outcome.errors, ensure_ascii=False)
    run.records, run.events, run.news = outcome.records, outcome.events, outcome.news
    source.last_attempt_at = now
    if outcome.status == "failed":
        source.consecutive_failures += 1
        source.last_error = outcome.errors[0] if outcome.errors else "échec"
    else:
        source.consecutive_failures = 0
        source.last_success_at = now
        source.last_error = outcome.errors[0] if outcome.errors else None
    session.add(run)
    session.add(source)
    session.commit()
    outcome.run_id = run.id
    return outcome


def harvest_source(session: Session, source: Source, settings: Settings,
                   now: dt.datetime) -> HarvestOutcome:
    """Fetch, snapshot, parse and store one source's records.

    Never raises for a problem of the source: the outcome's ``status`` is ``ok``, ``partial``,
    ``unchanged`` or ``failed`` and its ``errors`` name what went wrong (line when known).
    """
    run = HarvestRun(source_id=source.id, started_at=now)
    session.add(run)
    session.commit()
    outcome = HarvestOutcome(source_id=source.id, status="ok")
    try:
        fetched = fetch(
            source.url,
            etag=source.etag,
            last_modified=source.last_modified,
            max_bytes=settings.max_body_bytes,
            timeout=(settings.connect_timeout, settings.read_timeout),
        )
    except FetchError as exc:
        outcome.status = "failed"
        outcome.errors.append(f"{source.id} : {exc}")
        return _finish(session, source, run, outcome, now)
    run.http_status = fetched.status
    if fetched.not_modified:
        outcome.status = "unchanged"
        return _finish(session, source, run, outcome, now)
    digest = hashlib.sha256(fetched.content).hexdigest()
    run.bytes, run.content_hash = len(fetched.content), digest
    if digest == source.content_hash:
        outcome.status = "unchanged"
        source.etag, source.last_modified = fetched.etag, fetched.last_modified
        return _finish(session, source, run, outcome, now)
    save_raw(settings.raw_dir, source, fetched.content, now, settings.raw_retention)
    try:
        parsed = parser_for(source.format)(fetched.content, source.id)
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the other sources
        parsed = ParseResult(errors=[Problem(f"erreur interne du lecteur ({exc!r})")])
    outcome.warnings = [f"{source.id} : {p}" for p in parsed.warnings]
    outcome.errors = [f"{source.id} : {p}" for p in parsed.errors]
    outcome.records, outcome.events, outcome.news = (
        len(parsed.records), parsed.events, parsed.news,
    )
    if parsed.errors and not parsed.records:
        outcome.status = "failed"
        return _finish(session, source, run, outcome, now)
    outcome.status = "partial" if parsed.errors else "ok"
    outcome.changed = store_records(session, source.id, parsed, now,
                                    complete=not parsed.errors)
    source.content_hash = digest
    source.etag, source.last_modified = fetched.etag, fetched.last_modified
    return _finish(session, source, run, outcome, now)


def store_records(session: Session, source_id: str, parsed: ParseResult, now: dt.datetime,
                  complete: bool) -> bool:
    """Upsert parsed records; when ``complete``, mark the unseen ones removed at source.

    Returns True when anything changed.
    """
    existing = {
        r.id: r for r in session.exec(select(SourceRecord).where(SourceRecord.source_id == source_id))
    }
    changed = False
    seen: set[str] = set()
    for parsed_record in parsed.records:
        rid = record_id(source_id, parsed_record.uid, parsed_record.recurrence_id)
        seen.add(rid)
        content_hash = parsed_record.content_hash
        row = existing.get(rid)
        if row is None:
            row = SourceRecord(
                id=rid, source_id=source_id, uid=parsed_record.uid,
                recurrence_id=parsed_record.recurrence_id, kind=parsed_record.kind,
                payload_format=parsed_record.payload_format, payload=parsed_record.payload,
                content_hash=content_hash, uid_repaired=parsed_record.uid_repaired,
                line=parsed_record.line, first_seen_at=now, last_seen_at=now,
                last_changed_at=now,
            )
            changed = True
        else:
            if row.content_hash != content_hash or row.removed_at_source is not None:
                row.payload, row.content_hash = parsed_record.payload, content_hash
                row.kind, row.payload_format = parsed_record.kind, parsed_record.payload_format
                row.last_changed_at, row.removed_at_source = now, None
                changed = True
            row.line = parsed_record.line
            row.last_seen_at = now
        session.add(row)
    if complete:
        for rid, row in existing.items():
            if rid not in seen and row.removed_at_source is None:
                row.removed_at_source = now
                session.add(row)
                changed = True
    session.commit()
    return changed
