"""The public source status page ``/etat-des-sources`` and its Atom feed of incidents.

For every source: its health from :func:`connectors.health.source_health` (``ok`` | ``warning`` |
``failing``) shown as a green, amber or red mark that also carries a shape and a word (never
colour alone), the reasons in plain French, the last successful harvest (Europe/Paris), and the
trend of the number of events over the last reads. ``/etat-des-sources.atom`` lists source
incidents (:func:`tissu.alerts.all_incidents`) as Atom (RFC 4287, written by feedgen).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from datasette.utils.asgi import Response
from feedgen.feed import FeedGenerator
from sqlmodel import Session, col, select

from connectors.health import health_report, last_read, without_guard
from normalize.times import PARIS
from publish.web import pages
from schemas.models import RETIRED, HarvestRun, Source, utcnow
from tissu.alerts import READS, all_incidents

MARKS = {"ok": "●", "warning": "▲", "failing": "■"}
#: Warnings of a source listed on the page of every source; the rest are counted, and listed
#: in full on that source's own page (``/etat-des-sources?source=<id>``).
SHOWN_WARNINGS = 10
TREND_READS = 6


def trend(session: Session, source_id: str, reads: int = TREND_READS) -> list[int]:
    """Events found by the last ``reads`` reads of a source, oldest first."""
    rows = session.exec(
        select(HarvestRun.events).where(HarvestRun.source_id == source_id,
                                        col(HarvestRun.status).in_(READS))
        .order_by(col(HarvestRun.started_at).desc(), col(HarvestRun.id).desc()).limit(reads))
    return list(reversed(list(rows)))


def last_read_warnings(session: Session, source_id: str) -> list[str]:
    """Every warning of the last read of a source (``HarvestRun.warnings``), in order.

    The ``<source id> : `` prefix is dropped and the deletion guard's warning left out (it has
    its own reason), as in :func:`connectors.health.source_health`; unreadable JSON gives [].
    """
    read = last_read(session, source_id)
    return without_guard(read.warnings) if read is not None else []


def reason_items(reasons: list[str], warnings: list[str]) -> list[dict[str, Any]]:
    """The reasons of a source as items ``{"text": str, "details": [str]}``, in order.

    Health sums up a read's warnings in one reason, « N avertissements à la dernière lecture :
    <the first> »; that reason becomes « N avertissements à la dernière lecture : » with every
    warning as a detail. A summary not found (worded otherwise) is kept, and the warnings
    follow it as details of the last reason, so that none is lost.
    """
    items: list[dict[str, Any]] = [{"text": r, "details": []} for r in reasons]
    if len(warnings) < 2:  # one warning: the reason already says it in full
        return items
    head = f"{len(warnings)} avertissements à la dernière lecture :"
    for item in items:
        if item["text"] == f"{head} {warnings[0]}":
            item["text"], item["details"] = head, list(warnings)
            return items
    if items:
        items[-1]["details"] = list(warnings)
    return items


def shorten(items: list[dict[str, Any]], limit: int = SHOWN_WARNINGS) -> list[dict[str, Any]]:
    """The reason items with at most ``limit`` details each; ``"more"`` (int, 0 when none) is
    how many were left out."""
    return [{**item, "details": item["details"][:limit],
             "more": max(0, len(item["details"]) - limit)} for item in items]


def trend_word(values: list[int]) -> str:
    """``↗`` up, ``↘`` down, ``→`` stable, '' with fewer than two reads (first vs last)."""
    if len(values) < 2:
        return ""
    return "↗" if values[-1] > values[0] else ("↘" if values[-1] < values[0] else "→")


def local(value: dt.datetime | None) -> str | None:
    """An aware UTC instant as ``29/11/2026 13:00`` in Europe/Paris."""
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if value else None


def status_rows(now: dt.datetime, only: str | None = None) -> dict[str, Any]:
    """Everything the page shows: one row per source, worst first, and counts per status.

    A source retired from the registry is not listed (neither harvested nor published any
    more); a paused one says so (``paused``). Each source lists at most
    :data:`SHOWN_WARNINGS` warnings (``reasons[i]["more"]`` counts the others). With ``only`` (a source id) the rows are that source's alone (none when no
    source has that id), with every warning; the counts stay those of every source.
    """
    settings = pages.settings()
    engine = pages.engine()
    healths = health_report(engine, now, getattr(settings, "stale_after_days", 30))
    rows = []
    with Session(engine) as session:
        for health in healths:
            source = session.get(Source, health.source_id)
            if source is None or source.status == RETIRED:  # no longer harvested nor published
                continue
            values = trend(session, source.id)
            warnings = last_read_warnings(session, source.id) if health.reasons else []
            rows.append({
                "id": source.id, "name": source.name, "publisher": source.publisher_name,
                "status": health.status, "mark": MARKS[health.status],
                "reasons": (reason_items(health.reasons, warnings) if source.id == only
                            else shorten(reason_items(health.reasons, warnings))),
                "last_success": local(health.last_success_at),
                "paused": source.status == "paused",
                "trend": values, "trend_word": trend_word(values),
                "upcoming": health.events_upcoming,
            })
    counts = {key: sum(1 for r in rows if r["status"] == key) for key in MARKS}
    if only is not None:
        rows = [r for r in rows if r["id"] == only]
    return {"rows": rows, "counts": counts, "only": only}


async def status_page(datasette: Any, request: Any) -> Response:
    """``/etat-des-sources``: the health of every source, French first (``?lang=en|ar``);
    ``?source=<id>``: that source alone, with all its warnings."""
    lang = pages.language(request)
    context = await pages.in_thread(status_rows, utcnow(), request.args.get("source") or None)
    return pages.render(request, "status/page.html", context, lang)


def incidents_atom(now: dt.datetime) -> bytes:
    """The Atom feed of the latest 100 source incidents (French)."""
    settings = pages.settings()
    base = settings.public_url.rstrip("/")
    with Session(pages.engine()) as session:
        incidents = all_incidents(session)
        names = {s.id: s.name for s in session.exec(select(Source))}
    feed = FeedGenerator()
    feed.id(f"{base}/etat-des-sources.atom")
    feed.title("Tissu — incidents des sources")
    feed.subtitle("Pannes, rétablissements et agendas vidés des sources de Tissu")
    feed.language("fr")
    feed.author({"name": "Tissu"})
    feed.link(href=f"{base}/etat-des-sources", rel="alternate")
    feed.link(href=f"{base}/etat-des-sources.atom", rel="self")
    feed.updated(incidents[0].at if incidents else now)
    for incident in incidents:
        entry = feed.add_entry(order="append")
        key = incident.run_id if incident.run_id is not None else int(incident.at.timestamp())
        entry.id(f"{base}/etat-des-sources#{incident.source_id}-{incident.kind}-{key}")
        name = names.get(incident.source_id, incident.source_id)
        entry.title(f"{name} : {incident.message}")
        entry.updated(incident.at)
        entry.published(incident.at)
        entry.category(term=incident.kind)
        entry.link(href=f"{base}/etat-des-sources#source-{incident.source_id}", rel="alternate")
        entry.content(f"{name} ({incident.source_id}) — {incident.message}, le "
                      f"{local(incident.at)} (heure de Paris).", type="text")
    return feed.atom_str(pretty=True)


async def status_atom(datasette: Any, request: Any) -> Response:
    """``/etat-des-sources.atom``: incidents as Atom."""
    body = await pages.in_thread(incidents_atom, utcnow())
    return Response(body, content_type="application/atom+xml; charset=utf-8")


ROUTES = [(r"^/etat-des-sources$", status_page), (r"^/etat-des-sources\.atom$", status_atom)]
