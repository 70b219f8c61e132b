"""The scheduler (APScheduler 3): every job is generated from the registry, none is written by hand.

Jobs, all persisted in the working database (``SQLAlchemyJobStore``, table ``apscheduler_jobs``):

- ``harvest:<source id>``: one per active source of the working database's registry (the
  ``data/sources.yaml`` seed plus approved registrations), on the source's own ``refresh``
  interval with jitter (10 % of the interval, at most 15 min). ``max_instances=1`` and
  ``coalesce=True``: the same source never runs twice at once, and missed runs collapse into one.
  After a failure the next attempt comes sooner than the interval and backs off exponentially:
  ``retry_base × 2^(failures-1)`` seconds, capped at ``max_backoff`` (settings).
- ``publish``: a one-off job placed ``publish_debounce`` seconds after a harvest that brought new
  data, pushed back by every further change (debounce), so a burst of harvests publishes once.
- ``reconcile``: re-reads the seed registry and adds, removes or reschedules harvest jobs so that
  they match the registry (this is how approvals and pauses reach a running scheduler).
- ``alerts`` (when ``TISSU_PUBLISHER_ALERTS=1``): hourly e-mails to publishers whose feed failed
  for 24 h or dropped to zero events (:mod:`tissu.alerts`).

A crashing harvest is logged and backed off; it never stops the scheduler. SIGTERM or SIGINT stop
it gracefully: no new job starts and the source being harvested finishes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from schemas.models import Source, utcnow
from schemas.registry import REFRESH_RE, RegistryError, load_registry
from tissu.settings import Settings

logger = logging.getLogger("tissu.scheduler")

JOBSTORE_TABLE = "apscheduler_jobs"
HARVEST_PREFIX = "harvest:"
PUBLISH_JOB = "publish"
RECONCILE_JOB = "reconcile"
ALERTS_JOB = "alerts"
MAX_JITTER = 900
FIRST_RUN_SPREAD = 300
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def refresh_seconds(refresh: str) -> int:
    """``30m`` / ``6h`` / ``1d`` → seconds (registry syntax); unknown values give 6 h."""
    match = REFRESH_RE.match((refresh or "").strip())
    if not match:
        return 6 * 3600
    return int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]


def jitter_seconds(interval: int) -> int:
    """Random delay bound added to each run: 10 % of the interval, between 1 s and 15 min."""
    return max(1, min(interval // 10, MAX_JITTER))


def backoff_seconds(failures: int, interval: int, settings: Settings) -> int:
    """Delay before the next attempt after ``failures`` consecutive failures (0 → interval).

    ``retry_base × 2^(failures-1)``, capped at ``max_backoff``: 5 min, 10 min, 20 min … 1 day
    with the defaults.
    """
    if failures <= 0:
        return interval
    return int(min(settings.retry_base * 2 ** min(failures - 1, 30), settings.max_backoff))


def _spread(source_id: str, interval: int) -> int:
    """A stable offset (s) in [0, min(interval, 5 min)) so sources don't all start at once."""
    span = max(1, min(interval, FIRST_RUN_SPREAD))
    return int(hashlib.sha256(source_id.encode()).hexdigest()[:8], 16) % span


@dataclass(frozen=True)
class HarvestJobSpec:
    """The harvest job of one source: id, interval and jitter (s), first run (aware UTC)."""

    job_id: str
    source_id: str
    name: str
    interval: int
    jitter: int
    first_run: dt.datetime


def harvest_job_specs(session: Session, now: dt.datetime,
                      settings: Settings) -> list[HarvestJobSpec]:
    """The harvest jobs the registry asks for: one per ``active`` source of the working store.

    The first run is due ``refresh`` after the last attempt (never before ``now``); a source never
    harvested starts within 5 minutes of ``now`` (stable per-source offset). A source whose last
    attempts failed starts after its backoff delay instead.
    """
    specs = []
    for source in session.exec(select(Source).where(Source.status == "active")
                               .order_by(Source.id)):  # type: ignore[arg-type]
        interval = refresh_seconds(source.refresh)
        if source.last_attempt_at is None:
            first = now + dt.timedelta(seconds=_spread(source.id, interval))
        else:
            wait = backoff_seconds(source.consecutive_failures, interval, settings)
            first = max(now, source.last_attempt_at + dt.timedelta(seconds=wait))
        specs.append(HarvestJobSpec(f"{HARVEST_PREFIX}{source.id}", source.id,
                                    f"Collecte {source.id}", interval,
                                    jitter_seconds(interval), first))
    return specs


def _trigger(spec: HarvestJobSpec) -> IntervalTrigger:
    return IntervalTrigger(seconds=spec.interval, jitter=spec.jitter, timezone=dt.UTC,
                           start_date=spec.first_run)


@dataclass
class Runtime:
    """What the job functions need in this process (jobs themselves store only a source id)."""

    scheduler: BackgroundScheduler
    engine: Engine
    settings: Settings
    harvest: Callable[..., Any]
    publish: Callable[..., Any]
    clock: Callable[[], dt.datetime] = utcnow
    stats: dict[str, int] = field(default_factory=lambda: {"harvests": 0, "failures": 0,
                                                           "publishes": 0})


_runtime: Runtime | None = None


def _current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("le planificateur n'est pas démarré dans ce processus")
    return _runtime


def _default_harvest(engine: Engine, source_id: str, settings: Settings, now: dt.datetime) -> Any:
    """Harvest ``source_id`` under a worker lease (schemas.store.lease_source), so a scheduler
    and ``tissu harvest --worker`` processes sharing one store never harvest it at once.

    Returns run_source's summary, or one with status ``busy`` when another holds the lease.
    """
    from schemas.store import lease_source, release_source, worker_name
    from tissu.pipeline import SourceSummary, run_source

    holder = worker_name("scheduler")
    if not lease_source(engine, source_id, holder, now):
        return SourceSummary(source_id, "busy")
    try:
        return run_source(engine, source_id, settings, now)
    finally:
        release_source(engine, source_id, holder)


def _default_publish(engine: Engine, settings: Settings, now: dt.datetime) -> Any:
    """Deduplicate across sources, then publish.

    Scheduled harvests run one source at a time (:func:`tissu.pipeline.run_source`), so the
    cross-source step that ``harvest_all`` runs at its end happens here, before each publish.
    """
    from normalize.dedupe import run_deduplication
    from publish.run import publish

    run_deduplication(engine, now)
    return publish(engine, settings.publish_dir, now)


def harvest_job(source_id: str) -> str:
    """Job body: harvest one source; back off after a failure; ask for a publish after changes.

    Returns the harvest status (``ok``, ``partial``, ``unchanged``, ``failed``, ``crashed``, or
    ``busy`` when a worker holds the source's lease).
    Never raises: an exception of the harvest is logged and counted as a failure.
    """
    runtime = _current()
    now = runtime.clock()
    runtime.stats["harvests"] += 1
    try:
        summary = runtime.harvest(runtime.engine, source_id, runtime.settings, now)
        status = str(getattr(summary, "status", "ok"))
    except Exception:  # isolation: a crashing source never stops the scheduler
        logger.exception("collecte de %s : erreur inattendue", source_id)
        status = "crashed"
    logger.info("collecte de %s : %s", source_id, status)
    if status in {"failed", "crashed"}:
        runtime.stats["failures"] += 1
        with Session(runtime.engine) as session:
            source = session.get(Source, source_id)
            failures = source.consecutive_failures if source is not None else 1
            interval = refresh_seconds(source.refresh) if source is not None else 6 * 3600
        if status == "crashed":
            failures += 1  # the harvest did not get to record its own failure
        delay = backoff_seconds(max(failures, 1), interval, runtime.settings)
        try:
            runtime.scheduler.modify_job(f"{HARVEST_PREFIX}{source_id}",
                                         next_run_time=now + dt.timedelta(seconds=delay))
            logger.warning("collecte de %s en échec (%d de suite) : nouvel essai dans %d s",
                           source_id, failures, delay)
        except JobLookupError:
            pass
    elif status in {"ok", "partial"}:
        request_publish(now)
    return status


def request_publish(now: dt.datetime) -> dt.datetime:
    """(Re)place the one-off ``publish`` job ``publish_debounce`` seconds after ``now``.

    Returns the publish time. Each call pushes it back: a burst of changes publishes once.
    """
    runtime = _current()
    when = now + dt.timedelta(seconds=runtime.settings.publish_debounce)
    runtime.scheduler.add_job(publish_job, trigger=DateTrigger(when, timezone=dt.UTC),
                              id=PUBLISH_JOB, name="Publication", replace_existing=True)
    return when


def publish_job() -> None:
    """Job body: build the published database and exports. Errors are logged, never raised."""
    runtime = _current()
    try:
        runtime.publish(runtime.engine, runtime.settings, runtime.clock())
        runtime.stats["publishes"] += 1
        logger.info("publication faite")
    except Exception:
        logger.exception("publication impossible")


def reconcile_job() -> None:
    """Job body: re-read the seed registry, then make the harvest jobs match the registry."""
    runtime = _current()
    sync_seed_registry(runtime.engine, runtime.settings)
    sync_jobs(runtime.scheduler, runtime.engine, runtime.clock(), runtime.settings)


def alerts_job() -> None:
    """Job body: e-mail publishers whose feed is failing or empty (see :mod:`tissu.alerts`)."""
    from tissu.alerts import check_publisher_alerts

    runtime = _current()
    try:
        check_publisher_alerts(runtime.engine, runtime.clock(), runtime.settings)
    except Exception:
        logger.exception("alertes aux éditeurs impossibles")


def sync_seed_registry(engine: Engine, settings: Settings) -> None:
    """Copy ``data/sources.yaml`` into the working registry; a bad file is logged and skipped."""
    from tissu.pipeline import sync_registry

    try:
        specs = load_registry(settings.registry)
    except RegistryError as exc:
        logger.error("registre refusé, les sources connues sont gardées : %s", exc)
        return
    with Session(engine) as session:
        sync_registry(session, specs)


def sync_jobs(scheduler: BackgroundScheduler, engine: Engine, now: dt.datetime,
              settings: Settings) -> dict[str, list[str]]:
    """Make the scheduler's harvest jobs match the registry.

    Returns ``{"added": [...], "removed": [...], "rescheduled": [...]}`` (source ids).
    """
    with Session(engine) as session:
        specs = {spec.job_id: spec for spec in harvest_job_specs(session, now, settings)}
    existing = {job.id: job for job in scheduler.get_jobs()
                if job.id.startswith(HARVEST_PREFIX)}
    changes: dict[str, list[str]] = {"added": [], "removed": [], "rescheduled": []}
    for job_id, job in existing.items():
        if job_id not in specs:
            scheduler.remove_job(job_id)
            changes["removed"].append(job_id.removeprefix(HARVEST_PREFIX))
    for job_id, spec in specs.items():
        job = existing.get(job_id)
        if job is None:
            scheduler.add_job(harvest_job, trigger=_trigger(spec), args=[spec.source_id],
                              id=job_id, name=spec.name, next_run_time=spec.first_run,
                              replace_existing=True, **JOB_DEFAULTS)
            changes["added"].append(spec.source_id)
        elif getattr(job.trigger, "interval", None) != dt.timedelta(seconds=spec.interval):
            scheduler.reschedule_job(job_id, trigger=_trigger(spec))
            changes["rescheduled"].append(spec.source_id)
    return changes


def make_jobstore(engine: Engine) -> SQLAlchemyJobStore:
    """The job store in the working database (table ``apscheduler_jobs``)."""
    return SQLAlchemyJobStore(engine=engine, tablename=JOBSTORE_TABLE)


def build_scheduler(engine: Engine, settings: Settings, *,
                    harvest: Callable[..., Any] | None = None,
                    publish: Callable[..., Any] | None = None,
                    clock: Callable[[], dt.datetime] = utcnow,
                    workers: int = 2) -> BackgroundScheduler:
    """A background scheduler on the working database, registered as this process's runtime.

    ``harvest(engine, source_id, settings, now)`` and ``publish(engine, settings, now)`` default
    to the real stages (:func:`tissu.pipeline.run_source`, :func:`publish.run.publish`); tests
    pass their own, and a fixed ``clock``.
    """
    global _runtime
    scheduler = BackgroundScheduler(
        jobstores={"default": make_jobstore(engine)},
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults=JOB_DEFAULTS, timezone=dt.UTC,
    )
    _runtime = Runtime(scheduler, engine, settings, harvest or _default_harvest,
                       publish or _default_publish, clock)
    return scheduler


def start_scheduler(engine: Engine, settings: Settings, **kwargs: Any) -> BackgroundScheduler:
    """Build and start the scheduler, reconcile the jobs at once and add the service jobs."""
    scheduler = build_scheduler(engine, settings, **kwargs)
    scheduler.start()
    reconcile_job()
    scheduler.add_job(reconcile_job, IntervalTrigger(seconds=settings.scheduler_sync_interval,
                                                     timezone=dt.UTC),
                      id=RECONCILE_JOB, name="Registre → tâches", replace_existing=True)
    if settings.publisher_alerts:
        scheduler.add_job(alerts_job, IntervalTrigger(hours=1, timezone=dt.UTC), id=ALERTS_JOB,
                          name="Alertes aux éditeurs", replace_existing=True)
    elif scheduler.get_job(ALERTS_JOB):
        scheduler.remove_job(ALERTS_JOB)
    return scheduler


# Jobs that exist only while a scheduler runs (start_scheduler adds them again): a stopped
# scheduler takes them out of the store, so that « tissu schedule --list » never shows their
# next run as if one were coming.
SERVICE_JOBS = (RECONCILE_JOB, ALERTS_JOB)


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Stop gracefully: no new job starts, running harvests finish (``shutdown(wait=True)``).

    The service jobs (:data:`SERVICE_JOBS`) are removed from the job store first; the harvest
    jobs and a pending ``publish`` stay, for the next start.
    """
    global _runtime
    if scheduler.running:
        for job_id in SERVICE_JOBS:
            try:
                scheduler.remove_job(job_id)
            except JobLookupError:
                pass
            except Exception:
                logger.exception("tâche %s non retirée du magasin", job_id)
        scheduler.shutdown(wait=True)
    if _runtime is not None and _runtime.scheduler is scheduler:
        _runtime = None


def run_scheduler(engine: Engine, settings: Settings, stop: threading.Event | None = None,
                  install_signals: bool = True, **kwargs: Any) -> BackgroundScheduler:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives, then stop gracefully (``tissu schedule``).

    Returns the (stopped) scheduler.
    """
    stop = stop or threading.Event()
    if install_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    scheduler = start_scheduler(engine, settings, **kwargs)
    logger.info("planificateur démarré : %d tâche(s)", len(scheduler.get_jobs()))
    try:
        while not stop.wait(1.0):
            pass
    finally:
        stop_scheduler(scheduler)
    return scheduler


def _offline_job(scheduler: BackgroundScheduler, spec: HarvestJobSpec) -> Job:
    return Job(scheduler, id=spec.job_id, func=harvest_job, args=(spec.source_id,), kwargs={},
               trigger=_trigger(spec), executor="default", name=spec.name,
               next_run_time=spec.first_run, **JOB_DEFAULTS)


def schedule_source(engine: Engine, source: Source, now: dt.datetime) -> None:
    """Write (or replace) a source's harvest job in the job store, first run at ``now``.

    Works from any process (the registration page, ``tissu sources approve``): the running
    scheduler reads its store at each wake-up, at the latest at the next ``reconcile``.
    """
    interval = refresh_seconds(source.refresh)
    spec = HarvestJobSpec(f"{HARVEST_PREFIX}{source.id}", source.id, f"Collecte {source.id}",
                          interval, jitter_seconds(interval), now)
    store = make_jobstore(engine)
    offline = BackgroundScheduler(timezone=dt.UTC)
    store.start(offline, "default")
    job = _offline_job(offline, spec)
    try:
        store.add_job(job)
    except ConflictingIdError:
        store.update_job(job)


def unschedule_source(engine: Engine, source_id: str) -> None:
    """Remove a source's harvest job from the job store (a no-op when absent)."""
    store = make_jobstore(engine)
    store.start(BackgroundScheduler(timezone=dt.UTC), "default")
    try:
        store.remove_job(f"{HARVEST_PREFIX}{source_id}")
    except JobLookupError:
        pass


def stored_jobs(engine: Engine) -> list[Job]:
    """The jobs persisted in the working database (for ``tissu schedule --list`` and tests)."""
    store = make_jobstore(engine)
    store.start(BackgroundScheduler(timezone=dt.UTC), "default")
    return store.get_all_jobs()


def next_run_label(job: Job, now: dt.datetime) -> str:
    """The « prochaine exécution (UTC) » cell of ``tissu schedule --list`` for a stored job.

    ``YYYY-MM-DD HH:MM:SS``; « — » when paused. A time already past means no scheduler ran it
    (a running one starts a due job within a second): it is followed by « (dépassée : le
    planificateur ne tourne pas) », and a service job (:data:`SERVICE_JOBS`, e.g. ``reconcile``,
    left by a scheduler that was killed) shows « au prochain démarrage du planificateur »
    instead of a stale time. ``now`` is aware UTC.
    """
    when = job.next_run_time
    if when is None:
        return "—"
    if when >= now - dt.timedelta(minutes=1):
        return f"{when.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"
    if job.id in SERVICE_JOBS:
        return "au prochain démarrage du planificateur"
    return (f"{when.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} "
            "(dépassée : le planificateur ne tourne pas)")


def serve_with_scheduler(engine: Engine, settings: Settings, command: list[str],
                         env: dict[str, str]) -> int:
    """``tissu run``: Datasette (``command``, a child process) and the scheduler, together.

    SIGTERM or SIGINT stop Datasette with whatever it started (its process group, as
    ``tissu serve``: tissu.supervise.run_until_stopped), then the scheduler gracefully (the
    current harvest ends). If Datasette exits on its own, the scheduler is stopped too.
    Returns 0 when stopped, else Datasette's exit code.
    """
    from tissu.supervise import run_until_stopped

    scheduler = start_scheduler(engine, settings)
    try:
        return run_until_stopped(command, env)
    finally:
        stop_scheduler(scheduler)
