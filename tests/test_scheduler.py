"""The scheduler: jobs generated from the registry with time controlled, backoff, debounced
publish, persistence in the working database, isolation of a crashing harvest, graceful stop."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from types import SimpleNamespace

import pytest
import yaml
from sqlmodel import Session

from schemas.models import Source
from schemas.store import make_engine

# Later than the real clock of any test run: jobs computed from it are never due for real while a
# (paused) scheduler holds them, so only the explicit calls below run them.
NOW = dt.datetime(2036, 11, 29, 12, 0, tzinfo=dt.UTC)
from tissu import scheduler as sched
from tissu.settings import get_settings


def entry(source_id, refresh="6h", status="active"):
    return {"id": source_id, "name": source_id, "format": "ical",
            "url": f"https://example.org/{source_id}.ics", "licence": "Licence Ouverte 2.0",
            "refresh": refresh, "status": status,
            "publisher": {"name": f"Asso {source_id}", "type": "association"}}


@pytest.fixture
def setup(tmp_path):
    settings = get_settings(database_url=f"sqlite:///{tmp_path / 'tissu.db'}",
                            registry=tmp_path / "sources.yaml", publish_dir=tmp_path / "publish",
                            raw_dir=tmp_path / "raw")
    settings.registry.write_text(yaml.safe_dump({"sources": [
        entry("mairie", "30m"), entry("secours", "6h"), entry("resto", "1d"),
        entry("dormant", "6h", "paused")]}), encoding="utf-8")
    engine = make_engine(settings.database_url)
    yield settings, engine
    if sched._runtime is not None and sched._runtime.scheduler.running:
        sched.stop_scheduler(sched._runtime.scheduler)
    sched._runtime = None


def test_jobs_are_built_from_the_registry_with_time_controlled(setup):
    settings, engine = setup
    sched.sync_seed_registry(engine, settings)
    with Session(engine) as session:
        mairie = session.get(Source, "mairie")
        mairie.last_attempt_at = NOW - dt.timedelta(minutes=10)  # harvested 10 min ago
        session.add(mairie)
        secours = session.get(Source, "secours")
        secours.last_attempt_at, secours.consecutive_failures = NOW - dt.timedelta(minutes=1), 2
        session.add(secours)
        session.commit()
        specs = {s.source_id: s for s in sched.harvest_job_specs(session, NOW, settings)}
    assert sorted(specs) == ["mairie", "resto", "secours"]  # the paused source has no job
    assert (specs["mairie"].interval, specs["mairie"].jitter) == (1800, 180)
    assert (specs["secours"].interval, specs["secours"].jitter) == (21600, 900)
    assert specs["resto"].interval == 86400
    assert specs["mairie"].job_id == "harvest:mairie"
    # due one interval after the last attempt
    assert specs["mairie"].first_run == NOW + dt.timedelta(minutes=20)
    # two failures in a row: retry 300 × 2 = 600 s after the last attempt
    assert specs["secours"].first_run == NOW + dt.timedelta(seconds=540)
    # never harvested: within five minutes, at a stable per-source offset
    assert NOW <= specs["resto"].first_run < NOW + dt.timedelta(minutes=5)
    with Session(engine) as session:
        again = {s.source_id: s for s in sched.harvest_job_specs(session, NOW, settings)}
    assert again["resto"].first_run == specs["resto"].first_run


def test_backoff_doubles_then_caps():
    settings = get_settings()
    assert [sched.backoff_seconds(n, 21600, settings) for n in range(5)] == [
        21600, 300, 600, 1200, 2400]
    assert sched.backoff_seconds(40, 21600, settings) == 86400


def test_jobs_are_persisted_in_the_working_database_and_follow_the_registry(setup):
    settings, engine = setup
    sched.sync_seed_registry(engine, settings)
    scheduler = sched.build_scheduler(engine, settings, clock=lambda: NOW)
    scheduler.start(paused=True)
    changes = sched.sync_jobs(scheduler, engine, NOW, settings)
    assert sorted(changes["added"]) == ["mairie", "resto", "secours"]
    job = scheduler.get_job("harvest:mairie")
    assert job.max_instances == 1 and job.coalesce is True
    assert job.trigger.interval == dt.timedelta(minutes=30) and job.trigger.jitter == 180
    sched.stop_scheduler(scheduler)

    # a new process finds the same jobs in the working database
    stored = {job.id: job for job in sched.stored_jobs(engine)}
    assert sorted(stored) == ["harvest:mairie", "harvest:resto", "harvest:secours"]
    assert stored["harvest:secours"].args == ("secours",)

    # the registry changes: one source paused, one refresh changed, one new source
    settings.registry.write_text(yaml.safe_dump({"sources": [
        entry("mairie", "1h"), entry("secours", "6h", "paused"), entry("resto", "1d"),
        entry("epicerie", "12h")]}), encoding="utf-8")
    scheduler = sched.build_scheduler(engine, settings, clock=lambda: NOW)
    scheduler.start(paused=True)
    sched.sync_seed_registry(engine, settings)
    changes = sched.sync_jobs(scheduler, engine, NOW, settings)
    assert changes == {"added": ["epicerie"], "removed": ["secours"], "rescheduled": ["mairie"]}
    assert scheduler.get_job("harvest:mairie").trigger.interval == dt.timedelta(hours=1)


def test_failure_backs_off_and_success_requests_a_debounced_publish(setup):
    settings, engine = setup
    sched.sync_seed_registry(engine, settings)
    outcomes = {"mairie": "failed"}

    def harvest(engine_, source_id, settings_, now):
        with Session(engine_) as session:  # what harvest_source records on failure
            source = session.get(Source, source_id)
            if outcomes.get(source_id) == "failed":
                source.consecutive_failures += 1
            session.add(source)
            session.commit()
        return SimpleNamespace(status=outcomes.get(source_id, "ok"))

    scheduler = sched.build_scheduler(engine, settings, harvest=harvest, clock=lambda: NOW)
    scheduler.start(paused=True)
    sched.sync_jobs(scheduler, engine, NOW, settings)
    assert sched.harvest_job("mairie") == "failed"
    assert scheduler.get_job("harvest:mairie").next_run_time == NOW + dt.timedelta(seconds=300)
    assert sched.harvest_job("mairie") == "failed"
    assert scheduler.get_job("harvest:mairie").next_run_time == NOW + dt.timedelta(seconds=600)
    assert scheduler.get_job("publish") is None

    assert sched.harvest_job("secours") == "ok"
    assert scheduler.get_job("publish").next_run_time == NOW + dt.timedelta(seconds=60)
    later = NOW + dt.timedelta(seconds=30)
    sched._runtime.clock = lambda: later
    assert sched.harvest_job("resto") == "ok"  # a second change pushes the publish back
    publish_jobs = [j for j in scheduler.get_jobs() if j.id == "publish"]
    assert [j.next_run_time for j in publish_jobs] == [later + dt.timedelta(seconds=60)]


def test_a_crashing_harvest_does_not_stop_the_scheduler(setup):
    settings, engine = setup
    settings.registry.write_text(yaml.safe_dump({"sources": [
        entry("crash", "30m"), entry("healthy", "30m")]}), encoding="utf-8")
    ran: list[str] = []
    done = threading.Event()

    def harvest(engine_, source_id, settings_, now):
        ran.append(source_id)
        if source_id == "crash":
            raise RuntimeError("boom")
        if ran.count("healthy") >= 2:
            done.set()
        return SimpleNamespace(status="unchanged")

    scheduler = sched.start_scheduler(engine, settings, harvest=harvest)
    now = dt.datetime.now(dt.UTC)
    for job_id in ("harvest:crash", "harvest:healthy"):
        scheduler.modify_job(job_id, next_run_time=now)
    deadline = time.monotonic() + 10
    while "crash" not in ran or "healthy" not in ran:
        assert time.monotonic() < deadline, ran
        time.sleep(0.05)
    time.sleep(0.3)
    # the crash was backed off (first retry 5 min later), the scheduler still runs jobs
    crash_job = scheduler.get_job("harvest:crash")
    assert crash_job.next_run_time > now + dt.timedelta(seconds=250)
    assert scheduler.running and sched._runtime.stats["failures"] == 1
    scheduler.modify_job("harvest:healthy", next_run_time=dt.datetime.now(dt.UTC))
    assert done.wait(10), ran
    sched.stop_scheduler(scheduler)


def test_graceful_stop_lets_the_current_source_finish(setup):
    settings, engine = setup
    settings.registry.write_text(yaml.safe_dump({"sources": [entry("slow", "30m")]}),
                                 encoding="utf-8")
    started, finished = threading.Event(), threading.Event()

    def harvest(engine_, source_id, settings_, now):
        started.set()
        time.sleep(0.8)
        finished.set()
        return SimpleNamespace(status="unchanged")

    stop = threading.Event()
    holder: dict[str, object] = {}

    def run():
        holder["scheduler"] = sched.run_scheduler(engine, settings, stop, install_signals=False,
                                                  harvest=harvest)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while sched._runtime is None or not sched._runtime.scheduler.running \
            or sched._runtime.scheduler.get_job("harvest:slow") is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sched._runtime.scheduler.modify_job("harvest:slow", next_run_time=dt.datetime.now(dt.UTC))
    assert started.wait(10)
    stop.set()  # what SIGTERM does
    thread.join(10)
    assert not thread.is_alive()
    assert finished.is_set()  # the running harvest was not cut short
    assert not holder["scheduler"].running


def _list(settings, *extra):
    from typer.testing import CliRunner

    from tissu.cli import app

    return CliRunner().invoke(app, ["schedule", "--list", "--registry", str(settings.registry),
                                    "--db", settings.database_url, *extra],
                              env={"COLUMNS": "200"})


def test_list_with_a_malformed_registry_says_so_and_fails(setup):
    """It used to print an empty table and exit 0."""
    settings, _engine = setup
    settings.registry.write_text("sources:\n  - id: mairie\n    name: [oublié\n",
                                 encoding="utf-8")
    result = _list(settings)
    assert result.exit_code == 2, result.output
    assert "Registre refusé" in result.output
    assert "sources.yaml ligne 3" in result.output.replace("\n", "")
    assert "Tâches planifiées" not in result.output
    settings.registry.write_text(yaml.safe_dump({"sources": [
        {k: v for k, v in entry("mairie").items() if k != "publisher"}]}), encoding="utf-8")
    missing = _list(settings)
    assert missing.exit_code == 2 and "champ 'publisher'" in missing.output


def test_a_stopped_scheduler_leaves_no_stale_reconcile_run(setup):
    settings, engine = setup

    def harvest(engine_, source_id, settings_, now):
        return SimpleNamespace(status="unchanged")

    scheduler = sched.start_scheduler(engine, settings, harvest=harvest)
    assert scheduler.get_job(sched.RECONCILE_JOB) is not None
    sched.stop_scheduler(scheduler)
    stored = {job.id for job in sched.stored_jobs(engine)}
    assert sched.RECONCILE_JOB not in stored
    assert {"harvest:mairie", "harvest:resto", "harvest:secours"} <= stored  # kept for restart
    listed = _list(settings)
    assert listed.exit_code == 0 and "reconcile" not in listed.output


def test_list_marks_runs_already_past(setup):
    """A scheduler killed without stopping leaves its jobs in the store with times that have
    passed: the list does not show them as coming."""
    settings, engine = setup
    sched.sync_seed_registry(engine, settings)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    scheduler = sched.build_scheduler(engine, settings, clock=lambda: past)
    scheduler.start(paused=True)
    sched.sync_jobs(scheduler, engine, past, settings)
    scheduler.add_job(sched.reconcile_job, sched.IntervalTrigger(seconds=300, timezone=dt.UTC),
                      id=sched.RECONCILE_JOB, name="Registre → tâches", next_run_time=past)
    scheduler.modify_job("harvest:mairie", next_run_time=past)
    scheduler.modify_job("harvest:resto", next_run_time=NOW)
    sched._runtime = None  # killed: shutdown() never ran, the store keeps what it had
    jobs = {job.id: job for job in sched.stored_jobs(engine)}
    now = dt.datetime.now(dt.UTC)
    assert sched.next_run_label(jobs[sched.RECONCILE_JOB], now) == \
        "au prochain démarrage du planificateur"
    assert sched.next_run_label(jobs["harvest:mairie"], now) == \
        f"{past:%Y-%m-%d %H:%M:%S} (dépassée : le planificateur ne tourne pas)"
    assert sched.next_run_label(jobs["harvest:resto"], now) == "2036-11-29 12:00:00"
    listed = _list(settings)
    assert listed.exit_code == 0
    assert "au prochain démarrage du planificateur" in listed.output
    assert f"{past:%Y-%m-%d %H:%M:%S}" in listed.output
    scheduler.shutdown(wait=False)


def test_tissu_run_stops_its_scheduler_when_datasette_ends(tmp_settings, monkeypatch):
    # tissu run: Datasette through tissu.supervise (its process group stopped on SIGTERM, as
    # tissu serve), the scheduler stopped whatever ends Datasette
    import sys

    import tissu.scheduler as scheduler_module

    seen: list[str] = []
    monkeypatch.setattr(scheduler_module, "start_scheduler",
                        lambda engine, settings: seen.append("started") or "scheduler")
    monkeypatch.setattr(scheduler_module, "stop_scheduler",
                        lambda scheduler: seen.append(f"stopped {scheduler}"))
    code = scheduler_module.serve_with_scheduler(
        None, tmp_settings, [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    assert (code, seen) == (3, ["started", "stopped scheduler"])
