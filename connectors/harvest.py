"""HARVEST + PARSE for one source: fetch, keep the raw snapshot, parse, store source records.

A record seen again is updated in place; a record missing from a complete run is marked
``removed_at_source`` (never deleted); a failed or partial run, or a payload known to be only one
page of the source, leaves the stored records alone, so the source's last good events stay
published. A deletion guard keeps vanished future events when more than half would go at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlmodel import Session, select

from connectors import parser_for
from connectors.base import ParsedRecord, ParseResult, Problem, parse_with_time_limit
from connectors.html import harvest_crawl, is_crawl_format
from connectors.http import FetchError, FetchResult, fetch
from schemas.models import Event, HarvestRun, Occurrence, Source, SourceRecord
from schemas.store import bulk_insert
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
    #: The parse result just stored (in memory only), so that normalisation reuses what the
    #: connector parsed instead of parsing the stored payloads again; None when nothing was read.
    parsed: ParseResult | None = field(default=None, repr=False)


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
            now: dt.datetime, commit: bool = True) -> HarvestOutcome:
    """Write the run's outcome on ``run`` and ``source``; commit unless ``commit`` is False
    (then flushed: ``outcome.run_id`` is known, the caller commits)."""
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
    if commit:
        session.commit()
    else:
        session.flush()
    outcome.run_id = run.id
    return outcome


@dataclass
class Prefetched:
    """A source's bytes fetched (and maybe parsed) ahead of its harvest (tissu.pipeline).

    Exactly what :func:`harvest_source` would have done itself before touching the store:
    ``error`` when the fetch failed, else ``fetched``; ``parsed`` when the bytes changed and
    were parsed (in a child process, connectors.base.ParsePool), None otherwise. For a website
    (connectors.html.harvest_crawl): ``crawl_unchanged`` when every page of its last crawl
    answered the same, else ``parsed`` is its crawl.
    """

    fetched: FetchResult | None = None
    error: FetchError | None = None
    parsed: ParseResult | None = None
    crawl_unchanged: bool = False


def fetch_source(source: Source, settings: Settings, force: bool = False) -> FetchResult:
    """Fetch ``source.url`` with its validators (none when ``force``); reads no store.

    Raises:
        FetchError: the bytes could not be obtained (message in French).
    """
    return fetch(
        source.url,
        etag=None if force else source.etag,
        last_modified=None if force else source.last_modified,
        max_bytes=settings.max_body_bytes,
        timeout=(settings.connect_timeout, settings.read_timeout),
        # only the seed registry may point at bundled files; registered URLs are hostile
        allow_local=source.origin == "registry",
    )


def needs_parse(source: Source, fetched: FetchResult, force: bool = False) -> bool:
    """Whether fetched bytes must be parsed: not a 304 and (``force`` or new content hash)."""
    if fetched.not_modified:
        return False
    return force or hashlib.sha256(fetched.content).hexdigest() != source.content_hash


def harvest_source(session: Session, source: Source, settings: Settings,
                   now: dt.datetime, force: bool = False,
                   prefetched: Prefetched | None = None, commit: bool = True) -> HarvestOutcome:
    """Fetch, snapshot, parse and store one source's records.

    Never raises for a problem of the source: the outcome's ``status`` is ``ok``, ``partial``,
    ``unchanged`` or ``failed`` and its ``errors`` name what went wrong (line when known).
    ``partial`` also means the deletion guard held back vanished future events (a warning says
    how many). ``force`` lifts that guard and re-reads the source even when it is unchanged
    (no conditional GET, no content-hash skip). ``prefetched``: the fetch (and parse) already
    done for this source in this run (:class:`Prefetched`), used instead of fetching again.
    With ``commit`` False, the run row and the records are left in the session's transaction
    for the caller to commit (tissu.pipeline.run_source: an unchanged source's run and health
    in one commit).
    """
    run = HarvestRun(source_id=source.id, started_at=now, forced=force)
    session.add(run)
    if prefetched is None:  # a run still fetching or parsing shows as « running » meanwhile;
        session.commit()    # a prefetched one is stored in one transaction (_finish commits)
    outcome = HarvestOutcome(source_id=source.id, status="ok")
    if is_crawl_format(source.format):  # websites: a Scrapy crawl stands for fetch + parse
        return harvest_crawl(session, source, run, outcome, settings, now, force,
                             prefetched=prefetched, commit=commit)
    try:
        if prefetched is None:
            fetched = fetch_source(source, settings, force)
        elif prefetched.error is not None:
            raise prefetched.error
        else:
            assert prefetched.fetched is not None
            fetched = prefetched.fetched
    except FetchError as exc:
        outcome.status = "failed"
        outcome.errors.append(f"{source.id} : {exc}")
        return _finish(session, source, run, outcome, now, commit)
    run.http_status = fetched.status
    if fetched.not_modified:
        outcome.status = "unchanged"
        return _finish(session, source, run, outcome, now, commit)
    digest = hashlib.sha256(fetched.content).hexdigest()
    run.bytes, run.content_hash = len(fetched.content), digest
    if digest == source.content_hash and not force:
        outcome.status = "unchanged"
        source.etag, source.last_modified = fetched.etag, fetched.last_modified
        return _finish(session, source, run, outcome, now, commit)
    save_raw(settings.raw_dir, source, fetched.content, now, settings.raw_retention)
    if prefetched is not None and prefetched.parsed is not None:
        parsed = prefetched.parsed
    else:
        try:
            parsed = parse_with_time_limit(parser_for(source.format), fetched.content,
                                           source.id, settings.parse_time_limit)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the other sources
            parsed = ParseResult(errors=[Problem(f"erreur interne du lecteur ({exc!r})")])
    if record_parsed(session, source, run, outcome, parsed, now, force):
        source.content_hash = digest
        source.etag, source.last_modified = fetched.etag, fetched.last_modified
    return _finish(session, source, run, outcome, now, commit)


def record_parsed(session: Session, source: Source, run: HarvestRun, outcome: HarvestOutcome,
                  parsed: ParseResult, now: dt.datetime, force: bool = False) -> bool:
    """Fill ``outcome`` from a parse result and store its records (fetched or crawled sources).

    ``failed`` when nothing could be read (stored records untouched), ``partial`` when some
    records were unreadable (nothing is then marked removed at source) or when the deletion
    guard held vanished records back, ``ok`` otherwise. Returns False when the run failed.
    """
    outcome.warnings = [f"{source.id} : {p}" for p in parsed.warnings]
    outcome.errors = [f"{source.id} : {p}" for p in parsed.errors]
    outcome.records, outcome.events, outcome.news = (
        len(parsed.records), parsed.events, parsed.news,
    )
    if parsed.errors and not parsed.records:
        outcome.status = "failed"
        return False
    # a cut file is a partial read (and, being incomplete, removes nothing); one page of a
    # paginated API is a normal read that removes nothing either
    cut = any(problem.code == "truncated" for problem in parsed.warnings)
    outcome.status = "partial" if parsed.errors or cut else "ok"
    sync = sync_records(session, source.id, parsed, now,  # committed by _finish, with the run
                        complete=not parsed.errors and parsed.complete, force=force,
                        commit=False)
    outcome.changed = sync.changed
    if sync.changed:  # as sync_records wrote it, for a session that does not expire it
        source.normalized_key = None
    outcome.parsed = parsed
    run.removed, run.guarded = sync.removed, len(sync.guarded)
    if sync.guarded:
        outcome.status = "partial"
        what = "fiches" if source.format == "datainclusion" else "événements à venir"
        outcome.warnings.append(
            f"{source.id} : garde-fou : {len(sync.guarded)} {what} sur "
            f"{sync.guarded_of} ont disparu de la source d'un coup ; ils sont gardés "
            "(« tissu harvest --force » pour accepter leur retrait)")
    return True


@dataclass
class SyncReport:
    """What one store of parsed records did (connectors.harvest.sync_records).

    ``guarded`` are the uids of future events absent from the payload but kept because more than
    half of the source's future events would have gone at once (the deletion guard).
    """

    changed: bool = False
    removed: int = 0
    guarded: list[str] = field(default_factory=list)
    guarded_of: int = 0  # future events (or directory records) the guard compared against


def future_event_uids(session: Session, source_id: str, now: dt.datetime) -> set[str]:
    """Source uids of this source's events that are not over at ``now`` (aware UTC).

    An event is future when one of its occurrences ends at or after ``now``, or when the series
    itself (outside the expansion horizon) ends at or after ``now``.
    """
    prefix = f"{source_id}--"
    event_ids = set(session.exec(
        select(Occurrence.event_id)
        .join(Event, Event.id == Occurrence.event_id)  # type: ignore[arg-type]
        .where(Event.source_id == source_id,
               Occurrence.end_utc >= now)  # type: ignore[arg-type,operator]
    ).all())
    for event in session.exec(select(Event).where(Event.source_id == source_id)):
        end = event.dtend_utc or event.dtstart_utc
        if (end is not None and end >= now) or (
            event.end_date is not None and event.end_date > now.date()
        ):
            event_ids.add(event.id)
    return {e[len(prefix):] for e in event_ids if e.startswith(prefix)}


def _unit(kind: str, uid: str, rid: str) -> tuple[str, str]:
    """What the deletion guard counts: an event (by uid, overrides included) or a record."""
    return ("event", uid) if kind == "event" else (kind, rid)


def sync_records(session: Session, source_id: str, parsed: ParseResult, now: dt.datetime,
                 complete: bool, force: bool = False, commit: bool = True) -> SyncReport:
    """Upsert parsed records; when ``complete``, mark the unseen ones ``removed_at_source``.

    A record seen again is updated in place (``last_seen_at``; payload and ``last_changed_at``
    when its content hash changed; a removed record comes back). Unseen records are never
    deleted. Deletion guard (as Linked Events' importer sync): when more than half of the
    source's future events (or, for data.inclusion, of its structures and services) are absent,
    those are kept and flagged with ``missing_since`` instead, unless ``force``. Past events
    vanish without the guard. News items are not guarded. Committed, unless ``commit`` is
    False (the caller commits: :func:`record_parsed`'s records go with their run row).
    """
    report = SyncReport()
    table: Any = SourceRecord.__table__  # type: ignore[attr-defined]
    existing = {row.id: row for row in session.execute(
        core_select(table.c.id, table.c.uid, table.c.kind, table.c.content_hash,
               table.c.removed_at_source, table.c.missing_since)
        .where(table.c.source_id == source_id)).all()}
    latest: dict[str, ParsedRecord] = {}
    for parsed_record in parsed.records:  # one row per record id; the last one read wins
        rid = record_id(source_id, parsed_record.uid, parsed_record.recurrence_id)
        latest.pop(rid, None)
        latest[rid] = parsed_record
    seen: set[str] = set(latest)
    seen_units: set[tuple[str, str]] = set()
    inserts: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    seen_rows: list[dict[str, Any]] = []
    for rid, parsed_record in latest.items():
        seen_units.add(_unit(parsed_record.kind, parsed_record.uid, rid))
        content_hash = parsed_record.content_hash
        row = existing.get(rid)
        if row is None:
            inserts.append({
                "id": rid, "source_id": source_id, "uid": parsed_record.uid,
                "recurrence_id": parsed_record.recurrence_id, "kind": parsed_record.kind,
                "payload_format": parsed_record.payload_format,
                "payload": parsed_record.payload, "content_hash": content_hash,
                "uid_repaired": parsed_record.uid_repaired, "line": parsed_record.line,
                "first_seen_at": now, "last_seen_at": now, "last_changed_at": now,
                "removed_at_source": None, "missing_since": None,
            })
            report.changed = True
        elif row.content_hash != content_hash or row.removed_at_source is not None:
            changed_rows.append({
                "_id": rid, "v_payload": parsed_record.payload, "v_content_hash": content_hash,
                "v_kind": parsed_record.kind, "v_payload_format": parsed_record.payload_format,
                "v_line": parsed_record.line, "v_now": now})
            report.changed = True
        else:
            seen_rows.append({"_id": rid, "v_line": parsed_record.line, "v_now": now})
    bulk_insert(session, table, inserts)
    if changed_rows:
        session.execute(update(table).where(table.c.id == bindparam("_id")).values(
            payload=bindparam("v_payload"), content_hash=bindparam("v_content_hash"),
            kind=bindparam("v_kind"), payload_format=bindparam("v_payload_format"),
            line=bindparam("v_line"), last_seen_at=bindparam("v_now"),
            last_changed_at=bindparam("v_now"), removed_at_source=None, missing_since=None),
            changed_rows)
    if seen_rows:
        session.execute(update(table).where(table.c.id == bindparam("_id")).values(
            line=bindparam("v_line"), last_seen_at=bindparam("v_now"), missing_since=None),
            seen_rows)
    if complete:
        unseen = [row for rid, row in existing.items()
                  if rid not in seen and row.removed_at_source is None]
        future = future_event_uids(session, source_id, now) if unseen else set()
        guardable = {
            _unit(r.kind, r.uid, r.id) for r in existing.values()
            if r.removed_at_source is None and r.kind != "news"
            and (r.kind != "event" or r.uid in future)
        }
        vanished = {u for u in guardable if u not in seen_units}
        hold = bool(vanished) and not force and len(vanished) * 2 > len(guardable)
        for row in unseen:
            if hold and _unit(row.kind, row.uid, row.id) in vanished:
                session.execute(update(table).where(table.c.id == row.id)
                                .values(missing_since=row.missing_since or now))
                if row.uid not in report.guarded:
                    report.guarded.append(row.uid)
            else:
                session.execute(update(table).where(table.c.id == row.id)
                                .values(removed_at_source=now, missing_since=None))
                report.removed += 1
                report.changed = True
        report.guarded_of = len(guardable) if hold else 0
    if report.changed:  # in the same transaction: the source's events must be rebuilt
        session.execute(update(Source.__table__)  # type: ignore[attr-defined]
                        .where(Source.__table__.c.id == source_id)  # type: ignore[attr-defined]
                        .values(normalized_key=None))
    if commit:  # else the caller commits (connectors.harvest.record_parsed: with the run row)
        session.commit()
    return report


def store_records(session: Session, source_id: str, parsed: ParseResult, now: dt.datetime,
                  complete: bool, force: bool = False) -> bool:
    """Upsert parsed records (see :func:`sync_records`); returns True when anything changed."""
    return sync_records(session, source_id, parsed, now, complete, force).changed
