"""The stages in order, source by source, each source isolated from the others.

Thin by design: it calls one function per stage (connectors.harvest, normalize.pipeline,
publish.build) and collects their outcomes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlmodel import Session, select

from connectors.harvest import HarvestOutcome, Prefetched, harvest_source
from schemas.models import RETIRED, HarvestRun, Source, utcnow
from schemas.registry import SourceSpec
from tissu.settings import Settings

if TYPE_CHECKING:
    from normalize.pipeline import NormalizeOutcome


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
    #: True when the source's events were rebuilt this run (normalize.pipeline), False when
    #: normalisation was skipped because nothing it depends on had changed.
    normalised: bool = False


# A source whose records did not change is normalised again at most this often anyway, so
# that its occurrences follow the moving expansion horizon (TISSU_HORIZON_*_DAYS) and a new
# version of the normalisation code reaches every event within a day (at once with --force).
RENORMALISE_AFTER = dt.timedelta(hours=24)
# Reference data normalisation reads besides the records. Their (path, size, mtime) enter every
# source's normalisation key, so editing one re-normalises every source at the next harvest.
_NORMALISATION_INPUTS = ("data/places.yaml", "data/quartiers.yaml", "data/vocab/*.yaml",
                         "data/mappings/*.yaml")


@functools.lru_cache(maxsize=1)
def _normalisation_inputs_stamp() -> str:
    """:func:`tissu.fingerprint.files_stamp` of the reference data normalisation reads."""
    from tissu.fingerprint import files_stamp

    return files_stamp(_NORMALISATION_INPUTS)


def normalisation_key(source: Source, settings: Settings) -> str:
    """Fingerprint of everything but the records that ``normalize_source`` reads for ``source``.

    Registry fields copied onto its events (publisher, themes, quartier, address, format), the
    expansion horizon's length, the geocoder setting, and the reference data files
    (:data:`_NORMALISATION_INPUTS`; code changes reach events through
    :data:`RENORMALISE_AFTER` or ``--force``). Hex SHA-256.
    """
    basis = json.dumps([
        source.id, source.format, source.url, source.publisher_name, source.publisher_type,
        source.publisher_website, source.themes, source.quartier,
        settings.horizon_past_days, settings.horizon_future_days,
        settings.geocoder, settings.ban_url,  # TISSU_GEOCODER=ban fills positions (enrich.py)
        _normalisation_inputs_stamp(),
    ], ensure_ascii=False)
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def needs_normalisation(source: Source, harvested: HarvestOutcome, key: str,
                        now: dt.datetime, force: bool = False) -> bool:
    """Whether ``normalize_source`` must run for ``source`` after this harvest.

    False only when the harvest changed none of its stored records (``harvested.changed``
    false: HTTP 304, identical bytes, or the same records again), its last normalisation
    succeeded with the same :func:`normalisation_key` less than :data:`RENORMALISE_AFTER`
    before ``now`` (aware UTC), and the run is not forced.
    """
    if force or harvested.changed or source.normalized_key != key:
        return True
    done = source.normalized_at
    return done is None or not (now - RENORMALISE_AFTER < done <= now)




def sync_registry(session: Session, specs: Iterable[SourceSpec],
                  retired: list[str] | None = None) -> list[Source]:
    """Create or update Source rows from registry entries; health fields are kept.

    A source that came from the registry (``origin == "registry"``) and is no longer listed
    gets status :data:`RETIRED`: it is not harvested any more and its events leave the next
    publication (publish.build; they stay in the store); listed again, it takes the registry's
    status and is read in full. Sources registered on ``/inscription`` are not in the file and are left
    alone. The ids retired by this call are appended to ``retired``.
    """
    sources: list[Source] = []
    known = {row.id: row for row in session.exec(select(Source))}  # one query, not one per id
    specs = list(specs)
    listed = {spec.id for spec in specs}
    for row in known.values():
        if row.id not in listed and row.origin == "registry" and row.status != RETIRED:
            row.status = RETIRED
            session.add(row)
            if retired is not None:
                retired.append(row.id)
    for spec in specs:
        row = known.get(spec.id) or Source(
            id=spec.id, name=spec.name, publisher_name=spec.publisher.name,
            publisher_type=spec.publisher.type, format=spec.format, url=spec.url,
            licence=spec.licence,
        )
        if row.url != spec.url or row.format != spec.format or row.status == RETIRED:
            row.content_hash = row.etag = row.last_modified = None  # force a full read
            row.crawl_pages = None
        row.name, row.format, row.url, row.licence = spec.name, spec.format, spec.url, spec.licence
        row.publisher_name, row.publisher_type = spec.publisher.name, spec.publisher.type
        row.publisher_website = spec.publisher.website
        row.themes = json.dumps(spec.themes, ensure_ascii=False)
        row.quartier, row.refresh, row.status = spec.quartier, spec.refresh, spec.status
        if row.paused_by_moderator:  # `tissu sources pause` wins over the seed registry
            row.status = "paused"
        session.add(row)
        sources.append(row)
    session.commit()
    return sources


def _record_failed_run(session: Session, source_id: str, now: dt.datetime, error: str) -> None:
    """Store that the run of ``source_id`` started at ``now`` failed with ``error``: its row
    left « running » (committed before an unexpected error) is closed, or a failed row added,
    so that health and « tissu sources status » see the failure. Never raises."""
    try:
        run = session.exec(select(HarvestRun).where(
            HarvestRun.source_id == source_id, HarvestRun.started_at == now,
            HarvestRun.status == "running")).first() or HarvestRun(source_id=source_id,
                                                                   started_at=now)
        run.status, run.finished_at = "failed", now
        run.errors = json.dumps([error], ensure_ascii=False)
        session.add(run)
        session.commit()
    except Exception:  # noqa: BLE001 - the failure is still reported by the caller
        session.rollback()


def _refresh_health(session: Session, source: Source, settings: Settings,
                    now: dt.datetime, commit: bool = True) -> None:
    """Set the source's health after its run (connectors.health) and, when ``commit``,
    commit it with whatever the run left uncommitted in ``session``.

    A health that cannot be computed is left as it was (nothing is set then) without failing
    the run: never raises for it. With ``commit``, never raises at all (a failed commit is
    rolled back); without, the caller's commit raises what the database raises.
    """
    from connectors.health import update_health

    try:
        update_health(session, source, now, dt.timedelta(days=settings.stale_after_days),
                      commit=False)
    except Exception:  # noqa: BLE001, S110 - health is a report; it must not fail the run
        pass  # update_health reads the store before it sets any column
    if commit:
        try:
            session.commit()
        except Exception:  # noqa: BLE001 - as above
            session.rollback()


def run_source(engine: Engine, source_id: str, settings: Settings,
               now: dt.datetime | None = None, force: bool = False,
               prefetched: Prefetched | None = None,
               snapshot: Source | None = None) -> SourceSummary:
    """Harvest then normalise one source in its own session, then store its health.

    ``force`` lifts the deletion guard (connectors.harvest.sync_records). ``prefetched``: its
    bytes already fetched (and parsed) in this run (:func:`harvest_pooled`). ``snapshot``: the
    source's row as this run read it (detached, unmodified), taken instead of reading it again
    (~2 ms a source); only the columns the run sets are written, as with a row read here.
    Never raises.
    """
    now = now or utcnow()
    # The source's row is written only through this session during its run: its attributes
    # stay as written across commits instead of being read again after each one (a SELECT of
    # the whole row at each access after a commit: ~1 s of a 100-source harvest).
    with Session(engine, expire_on_commit=False) as session:
        source = None
        if snapshot is not None and snapshot.id == source_id:
            with contextlib.suppress(InvalidRequestError):  # e.g. changed since: read it
                source = session.merge(snapshot, load=False)
        if source is None:
            source = session.get(Source, source_id)
        if source is None:
            return SourceSummary(source_id, "failed", errors=[f"{source_id} : source inconnue"])
        key = normalisation_key(source, settings)
        try:
            # the run row and the records stay uncommitted: committed alone before the events
            # are rebuilt, or with the health when there is nothing to rebuild (one commit
            # for an unchanged source)
            harvested: HarvestOutcome = harvest_source(session, source, settings, now,
                                                       force=force, prefetched=prefetched,
                                                       commit=False)
            normalise = needs_normalisation(source, harvested, key, now, force)
            if normalise:
                session.commit()
        except Exception as exc:  # noqa: BLE001 - isolation: report, never stop the others
            session.rollback()
            error = (f"{source_id} : erreur interne de la collecte ({type(exc).__name__} : "
                     f"{exc})")
            _record_failed_run(session, source_id, now, error)
            return SourceSummary(source_id, "failed", errors=[error])
        summary = SourceSummary(source_id, harvested.status, harvested.records, harvested.events,
                                warnings=harvested.warnings, errors=harvested.errors)
        if not normalise:
            # Same records, same inputs, normalised recently: its events are already right,
            # and so are the warnings of that normalisation (e.g. an unknown TZID): a read whose
            # bytes changed (a DTSTAMP rewritten at each fetch) keeps them on its run row.
            kept = json.loads(source.normalized_warnings or "[]")
            run = session.get(HarvestRun, harvested.run_id) if kept and harvested.run_id \
                else None
            if run is not None:
                summary.warnings.extend(w for w in kept if w not in summary.warnings)
                run.warnings = json.dumps(summary.warnings, ensure_ascii=False)
                session.add(run)
            _refresh_health(session, source, settings, now, commit=False)
            try:
                session.commit()  # the run, its warnings and the source's health
            except Exception as exc:  # noqa: BLE001 - isolation, as above
                session.rollback()
                return SourceSummary(source_id, "failed", errors=[f"{source_id} : {exc!r}"])
            return summary
        # imported here: a run where nothing changed never loads the normalisation libraries
        from normalize.events import Horizon
        from normalize.pipeline import normalize_source

        horizon = Horizon.around(now, settings.horizon_past_days, settings.horizon_future_days)

        def normalise_and_store() -> NormalizeOutcome:
            # the events, the source's normalisation columns, the run's warnings and the
            # source's health: one transaction (one commit instead of three per source)
            normalized = normalize_source(session, source, horizon, now,
                                          parsed=harvested.parsed, commit=False)
            warnings = summary.warnings + normalized.warnings  # as the summary will say
            # The run row was written before normalisation: keep its warnings (e.g. an unknown
            # TZID) with the parser's, for health, « tissu sources status » and the status page.
            run = session.get(HarvestRun, harvested.run_id) \
                if normalized.warnings and harvested.run_id else None
            if run is not None:
                run.warnings = json.dumps(warnings, ensure_ascii=False)
                session.add(run)
            # a record that failed (no key stored) is tried again at the next run
            source.normalized_at = now
            source.normalized_key = None if normalized.errors else key
            source.normalized_warnings = json.dumps(normalized.warnings, ensure_ascii=False)
            session.add(source)
            _refresh_health(session, source, settings, now, commit=False)
            session.commit()
            return normalized

        try:
            try:
                normalized = normalise_and_store()
            except IntegrityError:
                # Another worker inserted a shared row (e.g. the publisher's Organisation) at
                # the same time: the second attempt finds it and updates it.
                session.rollback()
                normalized = normalise_and_store()
        except Exception as exc:  # noqa: BLE001
            session.rollback()
            summary.errors.append(f"{source_id} : normalisation impossible ({exc!r})")
            with contextlib.suppress(Exception):  # tried again at the next run, changed or not
                source.normalized_key = None
                session.add(source)
                session.commit()
            _refresh_health(session, source, settings, now)
            return summary
        summary.events = normalized.events
        summary.occurrences = normalized.occurrences
        summary.warnings.extend(normalized.warnings)
        summary.errors.extend(normalized.errors)
        summary.normalised = True
        return summary


def harvest_all(engine: Engine, specs: list[SourceSpec], settings: Settings,
                now: dt.datetime | None = None,
                progress: Callable[[SourceSummary], None] | None = None,
                jobs: int = 1, per_host: int = 2, force: bool = False,
                processes: int | None = None) -> list[SourceSummary]:
    """Harvest and normalise every active source of the registry.

    One after the other by default, parsing in ``processes`` child processes
    (:func:`harvest_pooled`; None: :func:`parse_processes`, 0: none) when there are at least
    :data:`POOL_MIN_SOURCES` sources; with ``jobs`` > 1, on a pool of that many threads with at
    most ``per_host`` sources of one host fetched at once (:func:`harvest_parallel`).
    ``force`` lifts the deletion guard (``tissu harvest --force``).
    """
    from connectors.html import is_crawl_format

    now = now or utcnow()
    processes = parse_processes(settings) if processes is None else processes
    retired: list[str] = []
    with Session(engine) as session:
        sync_registry(session, specs, retired)
        active_sources = session.exec(select(Source).where(Source.status == "active")).all()
        active = [s.id for s in active_sources]
        if jobs <= 1 and processes > 0 and len(active) >= POOL_MIN_SOURCES and (
                force or any(s.content_hash is None and not is_crawl_format(s.format)
                             for s in active_sources)):
            from connectors.base import ParsePool

            # Sources never read will be parsed: the fork server's imports overlap with the
            # crawl service's start. Otherwise it starts at the first parse (a run where
            # nothing changed never starts it: its output pipe would outlive the run).
            ParsePool.warm_up()
        if warm_up_crawls(active_sources, force):
            from connectors.html import prefetch_crawls

            # the sites run in the crawl service while the other sources are harvested
            prefetch_crawls([(s.id, s.url, s.format) for s in active_sources
                             if is_crawl_format(s.format) and (force or not s.crawl_pages)],
                            settings, now, per_host=per_host)
    if jobs > 1:
        summaries = harvest_parallel(engine, active, settings, now, jobs, per_host, progress,
                                     force=force)
    elif processes > 0 and len(active) >= POOL_MIN_SOURCES:
        summaries = harvest_pooled(engine, active, settings, now, processes, progress,
                                   force=force)
    else:
        summaries = []
        for source_id in active:
            summary = run_source(engine, source_id, settings, now, force=force)
            summaries.append(summary)
            if progress:
                progress(summary)
    from connectors.html import forget_prefetched

    forget_prefetched()
    # once, after every source is normalised; a source just retired leaves its clusters
    deduplicate_if_needed(engine, now, force=force or bool(retired))
    for source_id in retired:
        summaries.append(SourceSummary(source_id, RETIRED, warnings=[
            (f"{source_id} : n'est plus dans le registre : elle n'est plus collectée et ses "
            "événements quittent la prochaine publication (remettez-la dans le registre pour "
            "la collecter et la publier de nouveau)")]))
    return summaries


# --- One harvest on several cores: parsing children ----------------------------------------------
# The main process fetches (on one thread per child, ahead of the store) and writes the store,
# source after source in registry order as a serial run; the children parse each source's
# bytes and prepare its normalisation (normalize.pipeline.prepare_events), which the main
# process copies when its stored records are the ones the child saw. Same rows as a serial run.

#: Fewer sources than this are harvested without children (starting them costs ~1 s).
POOL_MIN_SOURCES = 4


def parse_processes(settings: Settings) -> int:
    """How many parsing children a harvest starts: ``settings.parse_processes``
    (``TISSU_PARSE_PROCESSES``; 0: none, everything in the main process; by default the number
    of CPUs, at most 4, none on one CPU)."""
    return settings.parse_processes


def harvest_pooled(engine: Engine, source_ids: list[str], settings: Settings,
                   now: dt.datetime | None = None, processes: int = 2,
                   progress: Callable[[SourceSummary], None] | None = None,
                   force: bool = False) -> list[SourceSummary]:
    """Run :func:`run_source` for ``source_ids`` in order, parsing in ``processes`` children.

    Each fetched source whose bytes changed is parsed by a child (connectors.base.ParsePool),
    which also prepares its events; a parse longer than ``settings.parse_time_limit`` seconds
    gets its child killed and the source fails with « lecture interrompue ». A website's crawl
    (or the check that its pages are unchanged) is awaited on the same threads, and its events
    prepared by a child alike. Anything the look-ahead could not do is done as in a serial run. Summaries come
    back in the order of ``source_ids``; never raises for a source's problem.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    from connectors import PARSERS
    from connectors.base import ParsePool
    from connectors.harvest import fetch_source, needs_parse
    from connectors.html import crawl_source, is_crawl_format, pages_unchanged
    from connectors.http import FetchError
    from normalize.events import Horizon

    now = now or utcnow()
    horizon = Horizon.around(now, settings.horizon_past_days, settings.horizon_future_days)
    enrich_ahead = (settings.geocoder or "offline").strip().lower() in ("", "offline")
    with Session(engine) as session:
        snapshots = {s.id: s for s in session.exec(select(Source).where(
            Source.id.in_(source_ids)))}  # type: ignore[attr-defined]
        for source in snapshots.values():
            session.expunge(source)  # read-only copies for the fetching threads

    def ahead(source: Source, pool: ParsePool) -> Prefetched:
        prepare = ("normalize.pipeline", "prepare_events", {
            "source_id": source.id, "themes": source.themes, "quartier": source.quartier,
            "horizon": horizon, "enrich": enrich_ahead})
        if is_crawl_format(source.format):  # a website: its crawl, then its events prepared
            if not force and source.crawl_pages and pages_unchanged(
                    source.crawl_pages, settings, source.url):
                return Prefetched(crawl_unchanged=True)
            crawled = crawl_source(source.id, source.url, source.format, settings, now)
            if crawled.records:
                crawled = pool.parse(None, crawled, source.id, settings.parse_time_limit,
                                     prepare)
            return Prefetched(parsed=crawled)
        try:
            fetched = fetch_source(source, settings, force)
        except FetchError as exc:
            return Prefetched(error=exc)
        if not needs_parse(source, fetched, force):
            return Prefetched(fetched=fetched)
        parsed = pool.parse(PARSERS[source.format], fetched.content, source.id,
                            settings.parse_time_limit, prepare)
        return Prefetched(fetched=fetched, parsed=parsed)

    summaries: list[SourceSummary] = []
    # Sources fetched (and parsed) ahead of the one being stored: enough that a slow stage
    # (a crawl awaited, a big file) does not stall the others; two threads more than children
    # so that a child never waits for a fetch.
    window = 4 * processes + 2
    with ParsePool(processes) as pool, ThreadPoolExecutor(
            max_workers=processes + 2, thread_name_prefix="tissu-fetch") as fetchers:
        pending: deque[tuple[str, Future[Prefetched] | None]] = deque()
        queue = iter(source_ids)

        def fill() -> None:
            while len(pending) < window:
                source_id = next(queue, None)
                if source_id is None:
                    return
                source = snapshots.get(source_id)
                if source is None or not (source.format in PARSERS
                                          or is_crawl_format(source.format)):
                    pending.append((source_id, None))
                else:
                    pending.append((source_id, fetchers.submit(ahead, source, pool)))

        fill()
        while pending:
            source_id, future = pending.popleft()
            fill()
            prefetched: Prefetched | None = None
            if future is not None:
                try:
                    prefetched = future.result()
                except Exception:  # noqa: BLE001 - fetched again, in this thread
                    prefetched = None
            summary = run_source(engine, source_id, settings, now, force=force,
                                 prefetched=prefetched, snapshot=snapshots.get(source_id))
            summaries.append(summary)
            if progress:
                progress(summary)
    return summaries


def warm_up_crawls(sources: Iterable[Source], force: bool = False) -> bool:
    """Start the crawl service now when one of ``sources`` is a website that will be crawled.

    A website is crawled when it has no pages of a complete crawl to compare with, or when
    ``force``; starting the service early (connectors.html.CrawlService) lets Scrapy's import
    overlap with the harvest of the other sources. Returns True when it was started.
    """
    from connectors.html import crawl_service, is_crawl_format

    if not any(is_crawl_format(s.format) and (force or not s.crawl_pages) for s in sources):
        return False
    crawl_service().warm_up()
    return True


def deduplicate_if_needed(engine: Engine, now: dt.datetime, force: bool = False) -> bool:
    """Run ``normalize.dedupe.run_deduplication`` unless no source changed since the last one.

    A source normalised after the last successful deduplication (``Source.normalized_at`` later
    than its ``deduped_at``, or never deduplicated) makes it due; so does a reviewer's decision
    (``tissu dedupe review``) taken after it, and ``force``. After a run without a
    "déduplication impossible" warning, every normalised source's ``deduped_at`` becomes
    ``now`` (aware UTC). Returns True when deduplication ran. Never raises.
    """
    from sqlalchemy import func, or_, update
    from sqlmodel import col

    from schemas.models import DedupeDecision

    try:
        with Session(engine) as session:
            pending: object = session.exec(
                select(Source.id).where(
                    col(Source.normalized_at).is_not(None),
                    or_(col(Source.deduped_at).is_(None),
                        col(Source.deduped_at) < col(Source.normalized_at))).limit(1)
            ).first()
            last = session.exec(select(func.min(Source.deduped_at))).one()
            if pending is None and last is not None:
                pending = session.exec(select(DedupeDecision.pair_key).where(
                    col(DedupeDecision.decided_at) > last).limit(1)).first()
    except Exception:  # noqa: BLE001 - when in doubt, deduplicate
        pending = "?"
    if pending is None and not force:
        return False
    from normalize.dedupe import run_deduplication

    outcome = run_deduplication(engine, now)
    if any("déduplication impossible" in w for w in getattr(outcome, "warnings", [])):
        return True
    # on failure the next run deduplicates again: harmless
    with contextlib.suppress(Exception), Session(engine) as session:
        session.execute(update(Source)
                        .where(col(Source.normalized_at).is_not(None),
                               col(Source.normalized_at) <= now)
                        .values(deduped_at=now))
        session.commit()
    return True


# --- Parallel harvest: a bounded pool in one process, and workers sharing one store ------------
# Several sources are fetched at once (network waits overlap) but never more than ``per_host``
# from one host:port, on top of connectors.http's politeness delay between two requests.


def _host_key(url: str) -> str:
    """``host:port`` of an http(s) URL; ``file`` for a bundled path."""
    from urllib.parse import urlsplit

    if not url.startswith(("http://", "https://")):
        return "file"
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"


def source_is_due(source: Source, now: dt.datetime) -> bool:
    """True when ``source`` was never attempted or its ``refresh`` period has passed.

    ``now`` is aware UTC; ``refresh`` is a registry duration (``30m``, ``6h``, ``1d``).
    """
    from schemas.registry import REFRESH_RE

    if source.last_attempt_at is None:
        return True
    match = REFRESH_RE.match((source.refresh or "6h").strip())
    seconds = 6 * 3600
    if match:
        seconds = int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return source.last_attempt_at + dt.timedelta(seconds=seconds) <= now


def harvest_parallel(engine: Engine, source_ids: list[str], settings: Settings,
                     now: dt.datetime | None = None, jobs: int = 4, per_host: int = 2,
                     progress: Callable[[SourceSummary], None] | None = None,
                     force: bool = False) -> list[SourceSummary]:
    """Run :func:`run_source` for ``source_ids`` on a pool of ``jobs`` threads.

    At most ``per_host`` sources of one host:port are fetched at the same time. Summaries come
    back in the order of ``source_ids``; ``progress`` is called from this thread as each ends.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    now = now or utcnow()
    with Session(engine) as session:
        urls = {s.id: s.url for s in session.exec(select(Source).where(
            Source.id.in_(source_ids)))}  # type: ignore[attr-defined]
    limits: dict[str, threading.BoundedSemaphore] = {}
    for url in urls.values():
        limits.setdefault(_host_key(url), threading.BoundedSemaphore(max(1, per_host)))

    def one(source_id: str) -> SourceSummary:
        limit = limits.get(_host_key(urls.get(source_id, "")))
        if limit is None:
            return run_source(engine, source_id, settings, now, force=force)
        with limit:
            return run_source(engine, source_id, settings, now, force=force)

    results: dict[str, SourceSummary] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="tissu-harvest") as pool:
        futures = {pool.submit(one, source_id): source_id for source_id in source_ids}
        for future in as_completed(futures):
            source_id = futures[future]
            try:
                summary = future.result()
            except Exception as exc:  # noqa: BLE001 - run_source never raises; belt and braces
                summary = SourceSummary(source_id, "failed", errors=[f"{source_id} : {exc!r}"])
            results[source_id] = summary
            if progress:
                progress(summary)
    return [results[source_id] for source_id in source_ids]


def sync_registry_locked(engine: Engine, specs: Iterable[SourceSpec]) -> None:
    """:func:`sync_registry` under a cross-process lock (several workers may start together)."""
    from schemas.store import registry_lock

    specs = list(specs)
    for attempt in range(3):
        with Session(engine) as session:
            registry_lock(session)
            try:
                sync_registry(session, specs)
                return
            except IntegrityError:  # SQLite has no advisory lock: another worker won the insert
                session.rollback()
                if attempt == 2:
                    raise


def run_worker(engine: Engine, settings: Settings, *, worker: str | None = None,
               specs: list[SourceSpec] | None = None, jobs: int = 1,
               since: dt.datetime | None = None, poll: float | None = None,
               now: Callable[[], dt.datetime] | None = None, lease_seconds: int = 1800,
               progress: Callable[[SourceSummary], None] | None = None,
               force: bool = False) -> list[SourceSummary]:
    """Harvest due sources claimed one at a time from a shared store, until none is left.

    Several processes (``tissu harvest --worker``), each with ``jobs`` threads, may run this on
    one PostgreSQL store: a source is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and a lease
    (schemas.store.claim_source), so no source is harvested by two workers at once.

    Args:
        specs: registry entries to synchronise first (under a lock), or None to use the store.
        since: when set (aware UTC), claim every active source not attempted since that
            instant, due or not: a full round shared by workers given the same ``since``.
        poll: when set, keep running and look for due sources every ``poll`` seconds instead of
            returning when none is left.
        now: clock returning aware UTC (tests pass a fixed one).

    Returns the summaries of the sources this process harvested.
    """
    import threading

    from schemas.store import claim_source, release_source, worker_name

    clock = now or utcnow
    if specs is not None:
        sync_registry_locked(engine, specs)
    with Session(engine) as session:
        warm_up_crawls(session.exec(select(Source).where(Source.status == "active")).all(),
                       force)

    def due(source: Source, at: dt.datetime) -> bool:
        if since is not None:
            return source.last_attempt_at is None or source.last_attempt_at < since
        return source_is_due(source, at)

    from concurrent.futures import ThreadPoolExecutor

    from connectors.html import is_crawl_format

    summaries: list[SourceSummary] = []
    guard = threading.Lock()
    with Session(engine) as session:
        websites = {s.id for s in session.exec(select(Source)) if is_crawl_format(s.format)}
    # A website's harvest mostly waits for its crawl (in the crawl service): it runs on a side
    # thread while this worker claims and harvests the next sources.
    side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tissu-website")

    def harvest_one(source_id: str, name: str, at: dt.datetime) -> None:
        try:
            summary = run_source(engine, source_id, settings, at, force=force)
        finally:
            release_source(engine, source_id, name)
        with guard:
            summaries.append(summary)
            if progress:
                progress(summary)

    def loop(name: str) -> None:
        while True:
            at = clock()
            source_id = claim_source(engine, name, at, due, lease_seconds)
            if source_id is None:
                return
            if source_id in websites:
                side.submit(harvest_one, source_id, name, at)
            else:
                harvest_one(source_id, name, at)

    base = worker or worker_name()
    try:
        while True:
            names = [base] if jobs <= 1 else [f"{base}:{i}" for i in range(jobs)]
            threads = [threading.Thread(target=loop, args=(n,), name=n) for n in names[1:]]
            for thread in threads:
                thread.start()
            loop(names[0])
            for thread in threads:
                thread.join()
            if poll is None:
                side.shutdown(wait=True)
                return summaries
            import time

            time.sleep(poll)
    finally:
        side.shutdown(wait=True)
