"""Source incidents (for the public status page and its Atom feed) and e-mails to publishers.

An incident is read from the harvest history (:class:`schemas.models.HarvestRun`), oldest first:

- ``failing``: a failed run after a run that was not failed (or the first run failing);
- ``recovered``: a successful run after failed ones;
- ``empty``: a read (``ok``/``partial``) with zero events after a read with events;
- ``refilled``: a read with events after an ``empty`` one.

:func:`check_publisher_alerts` (the scheduler's hourly ``alerts`` job, when
``TISSU_PUBLISHER_ALERTS=1``) e-mails a source's publisher once per incident when the feed has
been failing for 24 hours, or has dropped to zero events; the alert closes when the feed recovers.
Only sources with a contact (registered through the registration page) get e-mails.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from schemas.models import HarvestRun, Source, SourceAlert
from tissu.mail import send_mail
from tissu.settings import Settings

FAILING_FOR = dt.timedelta(hours=24)
READS = ("ok", "partial")


@dataclass(frozen=True)
class Incident:
    """A change of state of one source, at ``at`` (aware UTC); ``message`` is plain French."""

    source_id: str
    kind: str
    at: dt.datetime
    message: str
    run_id: int | None = None


def source_incidents(session: Session, source_id: str, limit_runs: int = 500) -> list[Incident]:
    """The incidents of one source, oldest first, from its last ``limit_runs`` runs."""
    runs = list(session.exec(
        select(HarvestRun).where(HarvestRun.source_id == source_id,
                                 HarvestRun.status != "running")
        .order_by(col(HarvestRun.started_at).desc(), col(HarvestRun.id).desc())
        .limit(limit_runs)))
    runs.reverse()
    incidents: list[Incident] = []
    failed = False
    last_events: int | None = None
    for run in runs:
        at = run.started_at or run.finished_at
        assert at is not None
        if run.status == "failed":
            if not failed:
                errors = json.loads(run.errors or "[]")
                reason = errors[0].removeprefix(f"{source_id} : ") if errors else "erreur"
                incidents.append(Incident(source_id, "failing", at,
                                          f"collecte en échec : {reason}", run.id))
            failed = True
            continue
        if failed:
            incidents.append(Incident(source_id, "recovered", at, "collecte rétablie", run.id))
            failed = False
        if run.status in READS:
            if run.events == 0 and last_events:
                incidents.append(Incident(source_id, "empty", at,
                                          f"plus aucun événement (il y en avait {last_events})",
                                          run.id))
            elif run.events and last_events == 0:
                incidents.append(Incident(source_id, "refilled", at,
                                          f"de nouveau {run.events} événement(s)", run.id))
            last_events = run.events
    return incidents


def all_incidents(session: Session, limit: int = 100) -> list[Incident]:
    """The latest incidents of every source, newest first."""
    incidents: list[Incident] = []
    for source_id in session.exec(select(Source.id)):
        incidents.extend(source_incidents(session, source_id))
    incidents.sort(key=lambda i: (i.at, i.source_id), reverse=True)
    return incidents[:limit]


def _open_conditions(session: Session, source: Source, now: dt.datetime) -> dict[str, Incident]:
    """The alert conditions true at ``now``: ``failing`` (for 24 h) and ``empty``."""
    incidents = source_incidents(session, source.id)
    current: dict[str, Incident] = {}
    last_failure_state = next((i for i in reversed(incidents)
                               if i.kind in {"failing", "recovered"}), None)
    if last_failure_state is not None and last_failure_state.kind == "failing" \
            and source.consecutive_failures > 0 and now - last_failure_state.at >= FAILING_FOR:
        current["failing"] = last_failure_state
    last_count_state = next((i for i in reversed(incidents) if i.kind in {"empty", "refilled"}),
                            None)
    if last_count_state is not None and last_count_state.kind == "empty":
        current["empty"] = last_count_state
    return current


def check_publisher_alerts(engine: Engine, now: dt.datetime, settings: Settings) -> list[SourceAlert]:
    """Open (and e-mail) or close alerts for every source; returns the alerts opened now."""
    opened: list[SourceAlert] = []
    with Session(engine) as session:
        for source in session.exec(select(Source).where(Source.status == "active")):
            conditions = _open_conditions(session, source, now)
            alerts = {a.kind: a for a in session.exec(
                select(SourceAlert).where(SourceAlert.source_id == source.id,
                                          col(SourceAlert.closed_at).is_(None)))}
            for kind, alert in alerts.items():
                if kind not in conditions:
                    alert.closed_at = now
                    session.add(alert)
            for kind, incident in conditions.items():
                if kind in alerts:
                    continue
                alert = SourceAlert(source_id=source.id, kind=kind, opened_at=now)
                if source.contact_email:
                    what = ("ne peut plus être lu depuis plus de 24 heures"
                            if kind == "failing" else "ne contient plus aucun événement")
                    sent = send_mail(
                        settings, source.contact_email, f"Tissu : votre agenda {what}",
                        f"Bonjour,\n\nVotre agenda « {source.name} » ({source.url}) {what} "
                        f"({incident.message}).\n\nPour voir ce qui ne va pas et comment le "
                        f"corriger : tissu check {source.url}\nou la page "
                        f"{settings.public_url}/inscription (bouton « Vérifier »).\n\nÉtat de "
                        f"toutes les sources : {settings.public_url}/etat-des-sources\n\n"
                        "L'équipe Tissu\n")
                    alert.sent_at = now if sent else None
                session.add(alert)
                opened.append(alert)
        session.commit()
        for alert in opened:
            session.refresh(alert)
            session.expunge(alert)
    return opened
