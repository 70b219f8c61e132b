"""Source health: is each source still delivering? (``ok`` | ``warning`` | ``failing``).

Computed from the source row, its recent :class:`HarvestRun` rows and its events, as City
Bureau's status badge does (red on error, warning on zero items):

- ``failing``: the last attempt failed (``consecutive_failures`` > 0), reason = last error;
- ``warning``: never harvested yet; zero items at the last read; item count down by more than
  half since the read before; only past events; content unchanged for longer than
  ``stale_after``; the deletion guard held events back; the last read was partial; the last
  read had warnings (parser or normalisation, e.g. a truncated file, an unreadable RRULE, an
  unknown TZID: the first one is quoted; not when it read nothing, already a reason);
- ``ok`` otherwise.

A *read* is a run whose payload changed and was parsed (status ``ok`` or ``partial``); ``unchanged``
runs (HTTP 304 or same bytes) are attempts, not reads. Every reason is a short French sentence.
:func:`source_health` is the one function the CLI (``tissu sources status``), the published
``sources`` table and the public status page all use. :func:`last_read` gives every warning
and error of a source's last read (``tissu sources status SOURCE``, :func:`details_text`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Integer, String, bindparam, exists, func, true
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from schemas.models import Event, HarvestRun, Occurrence, Source, UTCDateTime

if TYPE_CHECKING:
    from rich.table import Table

READ_STATUSES = ("ok", "partial")
DEFAULT_STALE_AFTER = dt.timedelta(days=30)
RANK = {"ok": 0, "warning": 1, "failing": 2}


@dataclass
class Health:
    """The health of one source at ``checked_at`` (aware UTC datetimes throughout).

    Attributes:
        status: ``ok`` | ``warning`` | ``failing``.
        reasons: French sentences, most serious first; empty when ``ok``.
        recent_items: records read by the most recent reads, newest first (at most ``window``).
        events_total: events of the source still at the source (not ``removed_at_source``).
        events_upcoming: those with an occurrence ending at or after ``checked_at``.
        last_changed_at: start of the last read (when the content last changed).
        guarded: future events kept by the deletion guard at the last read.
        source_status: the source's own status (``active`` | ``paused`` | ``retired``): its
            health describes its last reads, this says whether it is still harvested.
    """

    source_id: str
    status: str
    checked_at: dt.datetime
    reasons: list[str] = field(default_factory=list)
    last_attempt_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_changed_at: dt.datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    recent_items: list[int] = field(default_factory=list)
    events_total: int = 0
    events_upcoming: int = 0
    guarded: int = 0
    source_status: str = "active"

    @property
    def label(self) -> str:
        """The health in words, with « en pause » or « retirée du registre » when the source
        is no longer harvested (a paused source's last reads may be fine)."""
        return LABELS[self.status] + _SOURCE_STATES.get(self.source_status, "")

    @property
    def reason(self) -> str:
        """All reasons in one French line ('collecte normale' when ok)."""
        return " ; ".join(self.reasons) if self.reasons else "collecte normale"


def _days(delta: dt.timedelta) -> str:
    days = int(delta.total_seconds() // 86400)
    return f"{days} jour{'s' if days > 1 else ''}"


def _strip_source(message: str | None, source_id: str) -> str | None:
    """'<source> : message' → 'message' (errors are stored prefixed with the source id)."""
    if not message:
        return message
    return message.removeprefix(f"{source_id} : ")


def _read_warnings(run: HarvestRun | _Read, source_id: str) -> list[str]:
    """The reason for the warnings of a read (``HarvestRun.warnings``), or nothing.

    One French sentence: how many warnings and the first one, e.g. « 2 avertissements à la
    dernière lecture : ligne 13 : propriété RRULE illisible (…) ». The deletion guard's warning
    is left out (it has its own reason). Unreadable JSON counts as no warning.
    """
    texts = without_guard(_messages(run.warnings, source_id))
    if not texts:
        return []
    count = (f"{len(texts)} avertissements" if len(texts) > 1 else "1 avertissement")
    return [f"{count} à la dernière lecture : {texts[0]}"]


class _Read(NamedTuple):
    """The columns of one read (a :class:`HarvestRun` of status ``ok`` or ``partial``) used here."""

    started_at: dt.datetime | None
    records: int
    guarded: int
    status: str
    errors: str
    warnings: str


@functools.cache
def _facts_statement() -> Any:
    """The statement of :func:`_facts`, built once (building it cost more than running it);
    parameters ``source_id``, ``now`` (aware UTC) and ``window``."""
    runs = HarvestRun.__table__.c  # type: ignore[attr-defined]
    source_id = bindparam("source_id", type_=String())
    now = bindparam("now", type_=UTCDateTime())
    total = (sa_select(func.count()).select_from(Event)
             .where(col(Event.source_id) == source_id, col(Event.removed_at_source).is_(None))
             .scalar_subquery())
    upcoming = (sa_select(func.count(func.distinct(Occurrence.event_id)))
                .join(Event, col(Event.id) == col(Occurrence.event_id))
                .where(col(Event.source_id) == source_id,
                       col(Event.removed_at_source).is_(None), col(Occurrence.end_utc) >= now)
                .scalar_subquery())
    finished = exists().where(runs.source_id == source_id, runs.status != "running")
    facts = sa_select(total.label("total"), upcoming.label("upcoming"),
                      finished.label("finished")).subquery()
    reads = (sa_select(runs.started_at, runs.records, runs.guarded, runs.status, runs.errors,
                       runs.warnings, runs.id)
             .where(runs.source_id == source_id, runs.status.in_(READ_STATUSES))
             .order_by(runs.started_at.desc(), runs.id.desc())
             .limit(bindparam("window", type_=Integer())).subquery())
    return (sa_select(facts.c.total, facts.c.upcoming, facts.c.finished, reads.c.started_at,
                      reads.c.records, reads.c.guarded, reads.c.status, reads.c.errors,
                      reads.c.warnings)
            .select_from(facts.outerjoin(reads, true()))
            .order_by(reads.c.started_at.desc(), reads.c.id.desc()))


def _facts(session: Session, source_id: str, now: dt.datetime,
           window: int) -> tuple[list[tuple[Any, ...]], int, int, bool]:
    """What health is computed from, in one statement (it runs after every harvest of a source).

    Returns the ``window`` most recent reads of ``source_id``, newest first (the columns of
    :class:`_Read`), its events still at the source, those with an occurrence ending at or
    after ``now`` (aware UTC), and whether any of its runs has finished. Reads are looked up
    among all its runs, however many unchanged attempts (304) followed the last one.
    """
    rows = session.execute(_facts_statement(),
                           {"source_id": source_id, "now": now, "window": window}).all()
    first = rows[0]
    found = [tuple(row[3:]) for row in rows if row[6] is not None]
    return found, int(first[0] or 0), int(first[1] or 0), bool(first[2])


def source_health(session: Session, source: Source, now: dt.datetime,
                  stale_after: dt.timedelta = DEFAULT_STALE_AFTER, window: int = 5) -> Health:
    """Compute the health of ``source`` at ``now`` (aware UTC). Reads only; never raises on data.

    Args:
        stale_after: content unchanged for longer than this is a warning
            (``Settings.stale_after_days``, default 30 days).
        window: how many recent reads ``recent_items`` keeps.
    """
    health = Health(
        source_id=source.id, status="ok", checked_at=now,
        last_attempt_at=source.last_attempt_at, last_success_at=source.last_success_at,
        consecutive_failures=source.consecutive_failures or 0,
        last_error=_strip_source(source.last_error, source.id),
        source_status=source.status,
    )
    row_reads, health.events_total, health.events_upcoming, any_finished = _facts(
        session, source.id, now, window)
    reads = [_Read(*row) for row in row_reads]
    health.last_changed_at = reads[0].started_at if reads else None
    health.recent_items = [r.records for r in reads]
    health.guarded = reads[0].guarded if reads else 0
    failing: list[str] = []
    warnings: list[str] = []
    if health.consecutive_failures > 0:
        times = ("la dernière collecte a échoué" if health.consecutive_failures == 1
                 else f"les {health.consecutive_failures} dernières collectes ont échoué")
        failing.append(f"{times} : {health.last_error or 'erreur inconnue'}")
    if not any_finished and source.last_attempt_at is None:
        warnings.append("pas encore collectée")
    if reads:
        last = reads[0]
        if last.records == 0:
            warnings.append("aucun élément lu à la dernière lecture")
        elif len(reads) > 1 and reads[1].records > 0 and last.records * 2 < reads[1].records:
            warnings.append(f"nombre d'éléments en forte baisse ({reads[1].records} → "
                            f"{last.records})")
        if last.guarded:
            warnings.append(f"garde-fou : {last.guarded} événements disparus d'un coup sont "
                            "gardés en attendant confirmation")
        errors = json.loads(last.errors or "[]")
        if last.status == "partial" and errors:
            warnings.append(f"lecture partielle : {len(errors)} élément(s) illisible(s)")
        if last.records:  # with nothing read, « aucun élément lu » says it (an empty list
            warnings.extend(_read_warnings(last, source.id))  # is a parser warning too)
    if source.format != "datainclusion" and health.events_total and not health.events_upcoming:
        warnings.append("seulement des événements passés")
    if health.last_changed_at is not None and now - health.last_changed_at > stale_after:
        warnings.append(f"contenu inchangé depuis {_days(now - health.last_changed_at)}")
    health.reasons = failing + warnings
    health.status = "failing" if failing else ("warning" if warnings else "ok")
    return health


def update_health(session: Session, source: Source, now: dt.datetime,
                  stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                  commit: bool = True) -> Health:
    """Compute :func:`source_health` and store it in the source's public health columns.

    Committed, unless ``commit`` is False: the columns are then set in the session's
    transaction for the caller to commit. Raises what reading the store raises, before any
    column is set.
    """
    health = source_health(session, source, now, stale_after)
    source.health, source.health_reason = health.status, health.reason
    source.health_checked_at = now
    source.last_changed_at = health.last_changed_at
    source.items_last_run = health.recent_items[0] if health.recent_items else None
    source.items_recent = json.dumps(health.recent_items)
    source.events_total, source.events_upcoming = health.events_total, health.events_upcoming
    session.add(source)
    if commit:
        session.commit()
    return health


def all_health(session: Session, now: dt.datetime,
               stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> list[Health]:
    """:func:`source_health` of every source, worst first, then by id."""
    sources = session.exec(select(Source).order_by(col(Source.id))).all()
    healths = [source_health(session, s, now, stale_after) for s in sources]
    return sorted(healths, key=lambda h: (-RANK[h.status], h.source_id))


def health_report(engine: Engine, now: dt.datetime, stale_after_days: int = 30) -> list[Health]:
    """:func:`all_health` in its own session (for the CLI and the status page)."""
    with Session(engine) as session:
        return all_health(session, now, dt.timedelta(days=stale_after_days))


LABELS = {"ok": "ok", "warning": "à surveiller", "failing": "en panne"}
_SOURCE_STATES = {"paused": " · en pause", "retired": " · retirée du registre"}
_COLOURS = {"ok": "green", "warning": "yellow", "failing": "red"}
# From this width on (terminal columns), the reasons are a column of the table; below it (80
# columns when the output is piped) they are listed under the table (:func:`reason_lines`).
WIDE_STATUS_TABLE = 140


def _local(value: dt.datetime | None, year: bool = True) -> str:
    if value is None:
        return "—"
    from normalize.times import PARIS

    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M" if year else "%d/%m %H:%M")


def status_table(healths: list[Health], with_reasons: bool = True) -> Table:
    """A rich table of source health for ``tissu sources status`` (times in Europe/Paris).

    ``with_reasons``: the wide table (reasons, failure count and recent item counts as
    columns). Without, the compact table that reads at 80 columns: source, health, last
    attempt and last success (day/month hour:minute), upcoming events; the reasons are then
    printed below it (:func:`reason_lines`), the rest in the details of one source
    (:func:`details_text`). Ids keep their line up to 26 characters; counts are never cut.
    """
    from rich import box
    from rich.table import Table

    table = Table(title="État des sources", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    # the ids keep their line up to 26 characters (80 columns); a longer one folds
    longest = max((len(h.source_id) for h in healths), default=6)
    table.add_column("source", overflow="fold", min_width=min(longest, 26))
    table.add_column("santé", no_wrap=True)
    if with_reasons:
        table.add_column("raison", overflow="fold", ratio=1)
    table.add_column("tentative", no_wrap=True)
    table.add_column("succès", no_wrap=True)
    if with_reasons:
        table.add_column("échecs", justify="right", no_wrap=True)
        table.add_column("éléments (récents)")
    table.add_column("à venir / total" if with_reasons else "à venir", justify="right",
                     no_wrap=True)
    for h in healths:
        cells = [_escape(h.source_id), f"[{_COLOURS[h.status]}]{_escape(h.label)}[/]"]
        if with_reasons:
            cells.append(_escape(h.reason))
        cells += [_local(h.last_attempt_at, with_reasons), _local(h.last_success_at, with_reasons)]
        if with_reasons:
            cells += [str(h.consecutive_failures),
                      " ← ".join(str(n) for n in h.recent_items) or "—"]
        cells.append(f"{h.events_upcoming} / {h.events_total}" if with_reasons
                     else str(h.events_upcoming))
        table.add_row(*cells)
    return table


def reason_lines(healths: list[Health]) -> list[str]:
    """The reasons of the sources not ``ok``, one line each, for below the compact table.

    « <source> (<santé>) : <raison> ; <raison> » (plain text, no markup), worst first as
    ``healths`` are ordered.
    """
    return [f"{h.source_id} ({h.label}) : {h.reason}" for h in healths
            if h.status != "ok"]


@dataclass
class LastRead:
    """The most recent read of a source (a run of status ``ok`` or ``partial``).

    ``warnings`` and ``errors``: every message of that read, in order, without the
    « <source> : » prefix. ``started_at`` is aware UTC.
    """

    started_at: dt.datetime | None
    status: str
    records: int
    warnings: list[str]
    errors: list[str]


def without_guard(warnings: list[str]) -> list[str]:
    """``warnings`` of a read without the deletion guard's (it has a reason of its own) and
    without empty ones."""
    return [w for w in warnings if w and not w.startswith("garde-fou : ")]


def _messages(stored: str | None, source_id: str) -> list[str]:
    try:
        values = json.loads(stored or "[]")
    except ValueError:
        return []
    if not isinstance(values, list):
        return []
    return [_strip_source(str(v), source_id) or "" for v in values if v]


def last_read(session: Session, source_id: str) -> LastRead | None:
    """The last read of ``source_id`` with all its warnings and errors, or None (never read).

    The health's reason quotes only the first warning; ``tissu sources status SOURCE`` lists
    them all from here. Unreadable JSON counts as no message.
    """
    run = session.exec(
        select(HarvestRun)
        .where(col(HarvestRun.source_id) == source_id,
               col(HarvestRun.status).in_(READ_STATUSES))
        .order_by(col(HarvestRun.started_at).desc(), col(HarvestRun.id).desc())
        .limit(1)).first()
    if run is None:
        return None
    return LastRead(run.started_at, run.status, run.records,
                    _messages(run.warnings, source_id), _messages(run.errors, source_id))


def source_details(engine: Engine, source_id: str, now: dt.datetime,
                   stale_after_days: int = 30) -> tuple[Health, LastRead | None] | None:
    """:func:`source_health` and :func:`last_read` of one source, or None when it is unknown."""
    with Session(engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            return None
        health = source_health(session, source, now, dt.timedelta(days=stale_after_days))
        return health, last_read(session, source_id)


def details_text(health: Health, read: LastRead | None) -> list[str]:
    """The lines of ``tissu sources status SOURCE`` (plain French text, times Europe/Paris).

    Health and every reason, dates, counts, then every warning and error of the last read.
    """
    lines = [f"Source {health.source_id} : {health.label}"]
    lines += [f"  - {reason}" for reason in health.reasons] or ["  - collecte normale"]
    lines += [
        f"dernière tentative : {_local(health.last_attempt_at)}",
        f"dernier succès : {_local(health.last_success_at)}",
        f"échecs d'affilée : {health.consecutive_failures}",
    ]
    if health.last_error:
        lines.append(f"dernière erreur : {health.last_error}")
    lines.append("éléments lus (récents) : "
                 + (" ← ".join(str(n) for n in health.recent_items) or "—"))
    lines.append(f"événements : {health.events_upcoming} à venir sur {health.events_total}")
    if read is None:
        lines.append("Aucune lecture encore : rien à détailler.")
        return lines
    kind = "partielle" if read.status == "partial" else "complète"
    lines.append(f"Dernière lecture ({kind}) : {_local(read.started_at)}, {read.records} "
                 "élément(s)")
    for none, title, messages in (("aucun avertissement", "avertissement", read.warnings),
                                  ("aucune erreur", "erreur", read.errors)):
        if not messages:
            lines.append(f"  {none}")
            continue
        lines.append(f"  {len(messages)} {title}{'s' if len(messages) > 1 else ''} :")
        lines += [f"    - {message}" for message in messages]
    return lines


def _escape(text: str) -> str:
    """``text`` with rich markup escaped (a reason may contain « [ »)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
