"""The stages in order, source by source, each source isolated from the others.

Thin by design: it calls one function per stage (connectors.harvest, normalize.pipeline,
publish.build) and collects their outcomes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.harvest import HarvestOutcome, harvest_source
from normalize.events import Horizon
from normalize.pipeline import normalize_source
from schemas.models import Source, utcnow
from schemas.registry import SourceSpec
from tissu.settings import Settings


@dataclass
class SourceSummary:
    """One line of the harvest summary table."""

    source_id: str
    status: str
    records: int = 0
    events: int = 0
    occurrences: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def sync_registry(session: Session, specs: Iterable[SourceSpec]) -> list[Source]:
    """Create or update Source rows from registry entries; health fields are kept."""
    sources: list[Source] = []
    for spec in specs:
        row = session.get(Source, spec.id) or Source(
            id=spec.id, name=spec.name, publisher_name=spec.publisher.name,
            publisher_type=spec.publisher.type, format=spec.format, url=spec.url,
            licence=spec.licence,
        )
        if row.url != spec.url or row.format != spec.format:
            row.content_hash = row.etag = row.last_modified = None  # force a full read
        row.name, row.format, row.url, row.licence = spec.name, spec.format, spec.url, spec.licence
        row.publisher_name, row.publisher_type = spec.publisher.name, spec.publisher.type
        row.publisher_website = spec.publisher.website
        row.themes = json.dumps(spec.themes, ensure_ascii=False)
        row.quartier, row.refresh, row.status = spec.quartier, spec.refresh, spec.status
        session.add(row)
        sources.append(row)
    session.commit()
    return sources


def run_source(engine: Engine, source_id: str, settings: Settings,
               now: dt.datetime | None = None) -> SourceSummary:
    """Harvest then normalise one source in its own session. Never raises."""
    now = now or utcnow()
    horizon = Horizon.around(now, settings.horizon_past_days, settings.horizon_future_days)
    with Session(engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            return SourceSummary(source_id, "failed", errors=[f"{source_id} : source inconnue"])
        try:
            harvested: HarvestOutcome = harvest_source(session, source, settings, now)
        except Exception as exc:  # noqa: BLE001 - isolation: report, never stop the others
            session.rollback()
            return SourceSummary(source_id, "failed", errors=[f"{source_id} : {exc!r}"])
        summary = SourceSummary(source_id, harvested.status, harvested.records, harvested.events,
                                warnings=harvested.warnings, errors=harvested.errors)
        try:
            normalized = normalize_source(session, source, horizon, now)
        except Exception as exc:  # noqa: BLE001
            session.rollback()
            summary.errors.append(f"{source_id} : normalisation impossible ({exc!r})")
            return summary
        summary.events = normalized.events
        summary.occurrences = normalized.occurrences
        summary.warnings.extend(normalized.warnings)
        summary.errors.extend(normalized.errors)
        return summary


def harvest_all(engine: Engine, specs: list[SourceSpec], settings: Settings,
                now: dt.datetime | None = None,
                progress: Callable[[SourceSummary], None] | None = None) -> list[SourceSummary]:
    """Harvest and normalise every active source of the registry, one after the other."""
    now = now or utcnow()
    with Session(engine) as session:
        sync_registry(session, specs)
        active = [s.id for s in session.exec(select(Source).where(Source.status == "active"))]
    summaries = []
    for source_id in active:
        summary = run_source(engine, source_id, settings, now)
        summaries.append(summary)
        if progress:
            progress(summary)
    return summaries
