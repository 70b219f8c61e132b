"""NORMALIZE for one source: its stored records → Event and Occurrence rows.

Idempotent: the same records and horizon give the same rows; ``updated_at`` moves only when an
event's content hash changes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from sqlmodel import Session, delete, select, update

from normalize.enrich import enrich_event
from normalize.events import (
    Horizon,
    NormalizedEvent,
    RecordView,
    normalize_ical_group,
    normalize_json_record,
)
from schemas.models import Event, Occurrence, Organisation, Source, SourceRecord


@dataclass
class NormalizeOutcome:
    """Counts for the CLI summary."""

    source_id: str
    events: int = 0
    occurrences: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    organisations: int = 0  # data.inclusion structures (normalize.directory)
    services: int = 0


def slugify(value: str) -> str:
    """ASCII slug: 'Secours populaire — Pantin' → 'secours-populaire-pantin'."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "organisation"


def upsert_organisation(session: Session, source: Source) -> str:
    """The publisher of ``source`` as an Organisation; returns its id."""
    org_id = slugify(source.publisher_name)
    org = session.get(Organisation, org_id) or Organisation(id=org_id, name=source.publisher_name)
    org.name, org.type = source.publisher_name, source.publisher_type
    org.website = source.publisher_website
    session.add(org)
    return org_id


def normalize_source(session: Session, source: Source, horizon: Horizon,
                     now: dt.datetime) -> NormalizeOutcome:
    """Rebuild the events and occurrences of ``source`` from its stored records.

    Events whose records all vanished from the source get ``removed_at_source``; they are kept.
    """
    outcome = NormalizeOutcome(source_id=source.id)
    organisation_id = upsert_organisation(session, source)
    if source.format == "datainclusion":
        from normalize.directory import normalize_directory

        directory = normalize_directory(session, source, now)
        outcome.organisations, outcome.services = directory.organisations, directory.services
        outcome.warnings.extend(f"{source.id} : {w}" for w in directory.warnings)
        return outcome
    records = session.exec(
        select(SourceRecord).where(SourceRecord.source_id == source.id,
                                   SourceRecord.kind == "event")
    ).all()
    groups: dict[str, list[SourceRecord]] = defaultdict(list)
    for record in records:
        groups[record.uid].append(record)
    existing = {e.id: e for e in session.exec(select(Event).where(Event.source_id == source.id))}
    default_themes = source.themes or "[]"
    rebuilt: list[str] = []
    new_occurrences: list[Occurrence] = []
    for uid, group in groups.items():
        live = [r for r in group if r.removed_at_source is None]
        event_id = f"{source.id}--{uid}"
        if not live:
            row = existing.get(event_id)
            if row is not None and row.removed_at_source is None:
                row.removed_at_source = max(r.removed_at_source for r in group)  # type: ignore[type-var]
                row.revision = (row.revision or 0) + 1  # republished as CANCELLED
                row.updated_at = row.removed_at_source  # a change: modified_since sees it
                session.add(row)
                # Gone from its source: its occurrences still listed are now cancelled
                # (publication keeps them as STATUS:CANCELLED for 30 days, then drops them).
                session.exec(update(Occurrence)  # type: ignore[call-overload]
                             .where(Occurrence.event_id == event_id)  # type: ignore[arg-type]
                             .values(status="cancelled"))
            continue
        views = [
            RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload, r.content_hash,
                       r.uid_repaired)
            for r in live
        ]
        try:
            if views[0].payload_format == "ical":
                normalized: NormalizedEvent = normalize_ical_group(source.id, uid, views, horizon)
            else:
                normalized = normalize_json_record(source.id, views[0], horizon)
        except Exception as exc:  # noqa: BLE001 - one bad record costs only itself
            outcome.errors.append(f"{source.id} : {uid} : {exc}")
            continue
        outcome.warnings.extend(f"{source.id} : {w}" for w in normalized.warnings)
        data = normalized.event
        row = existing.get(event_id)
        if row is None:
            row = Event(**data, first_seen_at=now, updated_at=now)
        else:
            if row.content_hash != data["content_hash"] or row.removed_at_source is not None:
                row.updated_at = now
                row.revision = (row.revision or 0) + 1  # published SEQUENCE moves with it
            for key, value in data.items():
                setattr(row, key, value)
            row.removed_at_source = None
        row.organisation_id = organisation_id
        row.themes = default_themes
        row.quartier = source.quartier
        row.source_url = source.url if source.url.startswith(("http://", "https://")) else None
        try:  # themes, publics, price, registration, language, place (normalize/enrich.py)
            enrich_event(row, source)
        except Exception as exc:  # noqa: BLE001 - enrichment never costs the event itself
            outcome.warnings.append(f"{source.id} : {uid} : enrichissement impossible ({exc})")
        session.add(row)
        rebuilt.append(event_id)
        new_occurrences.extend(Occurrence(**occ) for occ in normalized.occurrences)
        outcome.events += 1
    if rebuilt:
        for chunk_start in range(0, len(rebuilt), 500):
            chunk = rebuilt[chunk_start : chunk_start + 500]
            session.exec(delete(Occurrence).where(Occurrence.event_id.in_(chunk)))  # type: ignore[attr-defined]
    session.add_all(new_occurrences)
    outcome.occurrences = len(new_occurrences)
    session.commit()
    return outcome


def theme_list(raw: str) -> list[str]:
    """Decode a JSON list column."""
    try:
        value = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
