"""NORMALIZE for one source: its stored records → Event and Occurrence rows.

Idempotent: the same records and horizon give the same rows; ``updated_at`` moves only when an
event's content hash changes.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, select, update
from sqlmodel import Session

from normalize.enrich import enrich_event, forget_derived_places
from normalize.events import (
    SOURCE_BUDGET_CODE,
    Horizon,
    NormalizedEvent,
    NormalizeWarning,
    RecordView,
    normalize_ical_group,
    normalize_json_record,
)
from schemas.models import Event, Occurrence, Organisation, Source, SourceRecord
from schemas.store import bulk_insert

if TYPE_CHECKING:
    from connectors.base import ParseResult


@dataclass
class NormalizeOutcome:
    """Counts for the CLI summary, and the warnings and errors of one source's normalisation:
    « source : uid : … » texts; a warning of an event or of the source's session budget is a
    normalize.events.NormalizeWarning keeping its code (the doctor reads them by code)."""

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


class _Row:
    """An Event row being rebuilt, as plain attributes (what ``enrich_event`` fills)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _model_defaults(model: Any) -> dict[str, Any]:
    """Column → default value of a SQLModel table (what ``Model()`` would fill in)."""
    defaults: dict[str, Any] = {}
    for column in model.__table__.columns:
        info = model.model_fields.get(column.name)
        default = getattr(info, "default", None)
        defaults[column.name] = None if type(default).__name__ == "PydanticUndefinedType" \
            else default
    return defaults


#: Most sessions one source may bring (a city agenda of 2 000 weekly events for a year is
#: ~100 000); events after the budget keep their row without sessions, with a warning. Each
#: event is capped too (normalize.events.MAX_OCCURRENCES).
MAX_SOURCE_OCCURRENCES = 120_000
_EVENT_DEFAULTS = _model_defaults(Event)
_OCCURRENCE_DEFAULTS = _model_defaults(Occurrence)
_EVENT_TABLE: Any = Event.__table__  # type: ignore[attr-defined]
_OCCURRENCE_TABLE: Any = Occurrence.__table__  # type: ignore[attr-defined]
# Columns normalisation writes on an existing event besides those of normalize.events (the
# rest, e.g. deduplication's cluster columns and first_seen_at, are left as they are).
_REBUILT_COLUMNS = ("organisation_id", "themes", "quartier", "source_url", "updated_at",
                    "revision", "removed_at_source", "publics", "gratuit", "price",
                    "registration_required", "registration_url", "registration_phone",
                    "accessibility", "language", "place_id", "postal_code", "city", "latitude",
                    "longitude")


def _preparsed(parsed: ParseResult | None) -> dict[tuple[str, str], tuple[str, Any]]:
    """(uid, recurrence-id) → (content hash, what the connector parsed) for reusable records."""
    if parsed is None:
        return {}
    return {(r.uid, r.recurrence_id): (r.content_hash, r.parsed)
            for r in parsed.records if r.parsed is not None}


@dataclass
class PreparedEvent:
    """One UID group normalised (and enriched) ahead of :func:`normalize_source`, in a child.

    ``key`` names the records it was built from (:func:`_group_key`); ``enrich_inputs`` are
    the event columns enrichment read and ``enriched`` what it wrote (None: not enriched).
    """

    key: tuple[tuple[str, str, bool, str], ...]
    event: dict[str, Any]
    occurrences: list[dict[str, Any]]
    warnings: list[str]
    enrich_inputs: dict[str, Any] | None = None
    enriched: dict[str, Any] | None = None


@dataclass
class PreparedSource:
    """What :func:`prepare_events` built for one source, for one horizon."""

    source_id: str
    horizon: Horizon
    themes: str
    quartier: str | None
    events: dict[str, PreparedEvent] = field(default_factory=dict)


def _group_key(records: Any) -> tuple[tuple[str, str, bool, str], ...]:
    """(recurrence id, content hash, uid repaired, format) of each record, sorted."""
    return tuple(sorted((r.recurrence_id, r.content_hash, bool(r.uid_repaired),
                         r.payload_format) for r in records))


def _rebuilt_row(data: dict[str, Any], themes: str, quartier: str | None,
                 source_url: str | None) -> _Row:
    """A new event's row before enrichment (what :func:`normalize_source` builds)."""
    return _Row({**_EVENT_DEFAULTS, **data, "themes": themes, "quartier": quartier,
                 "source_url": source_url})


def prepare_events(parsed: ParseResult, source_id: str, themes: str | None,
                   quartier: str | None, horizon: Horizon,
                   enrich: bool = True) -> PreparedSource:
    """Normalise (and, when ``enrich``, enrich) the event records of one parse result.

    Runs in a parsing child (connectors.base.ParsePool) while the parent stores other
    sources; :func:`normalize_source` then copies a prepared event instead of building it when
    its live stored records are the same (:func:`_group_key`), the horizon is the same and the
    source's session budget is not spent, and copies the enrichment when the columns it reads
    are equal. So the rows written are those :func:`normalize_source` would build alone. A
    group that fails here is left out (the parent builds it, and reports the failure).
    ``themes`` is the source's JSON list of registry themes, ``quartier`` its quartier.
    """
    from types import SimpleNamespace

    from normalize.enrich import ENRICH_READS, ENRICH_WRITES

    prepared = PreparedSource(source_id, horizon, themes or "[]", quartier)
    latest: dict[tuple[str, str], Any] = {}
    for record in parsed.records:  # as connectors.harvest.sync_records: the last one wins
        latest.pop((record.uid, record.recurrence_id), None)
        latest[(record.uid, record.recurrence_id)] = record
    groups: dict[str, list[Any]] = defaultdict(list)
    for record in latest.values():
        if record.kind == "event":
            groups[record.uid].append(record)
    source = SimpleNamespace(id=source_id, themes=prepared.themes, quartier=quartier)
    for uid, group in groups.items():
        views = [RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                            r.content_hash, bool(r.uid_repaired), parsed=r.parsed)
                 for r in group]
        try:
            if views[0].payload_format == "ical":
                normalized = normalize_ical_group(source_id, uid, views, horizon)
            elif len(views) == 1:
                normalized = normalize_json_record(source_id, views[0], horizon)
            else:  # several JSON records of one UID: the stored order decides, not ours
                continue
        except Exception:  # noqa: BLE001, S112 - the parent builds it and reports it
            continue
        event = PreparedEvent(_group_key(views), normalized.event, normalized.occurrences,
                              normalized.warnings)
        if enrich:
            row = _rebuilt_row(normalized.event, prepared.themes, quartier, None)
            inputs = {c: getattr(row, c) for c in ENRICH_READS}
            try:
                enrich_event(row, source)
            except Exception:  # noqa: BLE001, S110 - the parent enriches and reports it
                pass
            else:
                event.enrich_inputs = inputs
                event.enriched = {c: getattr(row, c) for c in ENRICH_WRITES}
        prepared.events[uid] = event
    return prepared


def _normalize_group(source_id: str, uid: str, live: list[Any],
                     preparsed: dict[tuple[str, str], tuple[str, Any]],
                     window: Horizon) -> NormalizedEvent:
    """Normalise the live stored records of one UID (raises what normalisation raises)."""
    views = []
    for r in live:
        known = preparsed.get((r.uid, r.recurrence_id))
        views.append(RecordView(
            r.uid, r.recurrence_id, r.payload_format, r.payload, r.content_hash,
            bool(r.uid_repaired),
            parsed=known[1] if known is not None and known[0] == r.content_hash else None))
    if views[0].payload_format == "ical":
        return normalize_ical_group(source_id, uid, views, window)
    return normalize_json_record(source_id, views[0], window)


def normalize_source(session: Session, source: Source, horizon: Horizon,
                     now: dt.datetime, parsed: ParseResult | None = None,
                     commit: bool = True) -> NormalizeOutcome:
    """Rebuild the events and occurrences of ``source`` from its stored records.

    Events whose records all vanished from the source get ``removed_at_source``; they are kept.
    ``parsed`` is the connector's result that was just stored for this source (same run): a
    stored record with the same content hash as one of its records is normalised from what the
    connector parsed instead of parsing its payload again. Rows are written with bulk
    statements (SQLAlchemy core), in the session's transaction, committed at the end unless
    ``commit`` is False (the caller then commits them with its own writes: one commit less per
    source in a harvest).
    """
    outcome = NormalizeOutcome(source_id=source.id)
    organisation_id = upsert_organisation(session, source)
    if source.format == "datainclusion":
        from normalize.directory import normalize_directory

        directory = normalize_directory(session, source, now)
        outcome.organisations, outcome.services = directory.organisations, directory.services
        outcome.warnings.extend(f"{source.id} : {w}" for w in directory.warnings)
        return outcome
    record_table: Any = SourceRecord.__table__  # type: ignore[attr-defined]
    records = session.execute(
        select(record_table.c.uid, record_table.c.recurrence_id, record_table.c.payload_format,
               record_table.c.payload, record_table.c.content_hash, record_table.c.uid_repaired,
               record_table.c.removed_at_source)
        .where(record_table.c.source_id == source.id, record_table.c.kind == "event")
    ).all()
    groups: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        groups[record.uid].append(record)
    existing = {row["id"]: dict(row) for row in session.execute(
        select(_EVENT_TABLE).where(_EVENT_TABLE.c.source_id == source.id)).mappings()}
    preparsed = _preparsed(parsed)
    ahead = getattr(parsed, "prepared", None)
    if not (isinstance(ahead, PreparedSource) and ahead.source_id == source.id
            and ahead.horizon == horizon and ahead.themes == (source.themes or "[]")
            and ahead.quartier == source.quartier):
        ahead = None
    default_themes = source.themes or "[]"
    source_url = source.url if source.url.startswith(("http://", "https://")) else None
    rebuilt: list[str] = []
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    new_occurrences: list[dict[str, Any]] = []
    spent = Horizon(horizon.start, horizon.start)  # an empty window
    budget_warned = False
    for uid, group in groups.items():
        live = [r for r in group if r.removed_at_source is None]
        event_id = f"{source.id}--{uid}"
        if not live:
            old = existing.get(event_id)
            if old is not None and old["removed_at_source"] is None:
                removed_at = max(r.removed_at_source for r in group)
                session.execute(update(_EVENT_TABLE).where(_EVENT_TABLE.c.id == event_id).values(
                    removed_at_source=removed_at,
                    revision=(old["revision"] or 0) + 1,  # republished as CANCELLED
                    updated_at=removed_at))  # a change: modified_since sees it
                # Gone from its source: its occurrences still listed are now cancelled
                # (publication keeps them as STATUS:CANCELLED for 30 days, then drops them).
                session.execute(update(_OCCURRENCE_TABLE)
                                .where(_OCCURRENCE_TABLE.c.event_id == event_id)
                                .values(status="cancelled"))
            continue
        # past the source's budget of sessions, events keep their row but no more sessions
        window = horizon if len(new_occurrences) < MAX_SOURCE_OCCURRENCES else spent
        if window is spent and not budget_warned:
            budget_warned = True
            outcome.warnings.append(NormalizeWarning(
                f"{source.id} : plus de {MAX_SOURCE_OCCURRENCES} séances : les événements "
                "suivants sont gardés sans leurs séances", SOURCE_BUDGET_CODE))
        prepared = ahead.events.get(uid) if ahead is not None and window is horizon else None
        if prepared is not None and prepared.key != _group_key(live):
            prepared = None
        if prepared is not None:  # built by the parsing child from the same records
            normalized: NormalizedEvent = NormalizedEvent(
                prepared.event, prepared.occurrences, prepared.warnings)
        else:
            try:
                normalized = _normalize_group(source.id, uid, live, preparsed, window)
            except Exception as exc:  # noqa: BLE001 - one bad record costs only itself
                outcome.errors.append(f"{source.id} : {uid} : {exc}")
                continue
        outcome.warnings.extend(w.prefixed(source.id) if isinstance(w, NormalizeWarning)
                                else f"{source.id} : {w}" for w in normalized.warnings)
        data = normalized.event
        old = existing.get(event_id)
        row: Any
        if old is None:
            row = _Row({**_EVENT_DEFAULTS, **data, "first_seen_at": now, "updated_at": now})
        else:
            row = _Row(dict(old))
            if old["content_hash"] != data["content_hash"] or old["removed_at_source"] is not None:
                row.updated_at = now
                row.revision = (old["revision"] or 0) + 1  # published SEQUENCE moves with it
            row.__dict__.update(data)
            row.removed_at_source = None
            forget_derived_places(row, data)  # derived again from the current LOCATION
        row.organisation_id = organisation_id
        row.themes = default_themes
        row.quartier = source.quartier
        row.source_url = source_url
        if (prepared is not None and prepared.enriched is not None
                and prepared.enrich_inputs is not None
                and all(getattr(row, c) == v for c, v in prepared.enrich_inputs.items())):
            row.__dict__.update(prepared.enriched)  # enrich_event on the same columns
        else:
            try:  # themes, publics, price, registration, language, place (normalize/enrich.py)
                enrich_event(row, source)
            except Exception as exc:  # noqa: BLE001 - enrichment never costs the event itself
                outcome.warnings.append(
                    f"{source.id} : {uid} : enrichissement impossible ({exc})")
        values = row.__dict__
        if old is None:
            inserts.append({c: values.get(c) for c in _EVENT_DEFAULTS})
        else:
            columns = tuple(sorted(set(data) | set(_REBUILT_COLUMNS)))
            updates[columns].append({"_id": event_id,
                                     **{f"v_{c}": values.get(c) for c in columns}})
            rebuilt.append(event_id)
        new_occurrences.extend({**_OCCURRENCE_DEFAULTS, **occ} for occ in normalized.occurrences)
        outcome.events += 1
    for chunk_start in range(0, len(rebuilt), 500):  # events seen before: occurrences rebuilt
        chunk = rebuilt[chunk_start : chunk_start + 500]
        session.execute(delete(_OCCURRENCE_TABLE).where(_OCCURRENCE_TABLE.c.event_id.in_(chunk)))
    bulk_insert(session, _EVENT_TABLE, inserts)
    for columns, rows in updates.items():
        session.execute(
            update(_EVENT_TABLE).where(_EVENT_TABLE.c.id == bindparam("_id"))
            .values({c: bindparam(f"v_{c}") for c in columns}), rows)
    bulk_insert(session, _OCCURRENCE_TABLE, new_occurrences)
    outcome.occurrences = len(new_occurrences)
    if commit:
        session.commit()
    return outcome
