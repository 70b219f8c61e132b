"""Parallel harvest: a bounded pool in one process, and worker processes sharing one store.

A shared local HTTP server counts the requests per source and how many are in flight at once;
three ``tissu harvest --worker`` processes must never fetch one source at the same time, and
together must harvest every source exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from sqlmodel import Session, select

from schemas.models import Source
from schemas.registry import load_registry
from schemas.store import SourceLease, claim_source, make_engine, release_source
from tests.conftest import NOW, Route
from tissu.pipeline import harvest_all, run_worker, source_is_due, sync_registry

ROOT = Path(__file__).resolve().parent.parent


def calendar(source: str, n: int = 2) -> bytes:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:{source}-{i}@bench\r\nDTSTAMP:20261101T000000Z\r\n"
        f"DTSTART:202612{10 + i:02d}T170000Z\r\nDTEND:202612{10 + i:02d}T180000Z\r\n"
        f"SUMMARY:Atelier {source} {i}\r\nEND:VEVENT\r\n"
        for i in range(n)
    )
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tissu tests//\r\n{events}"
            "END:VCALENDAR\r\n").encode()


class Tracker:
    """Counts requests per path and the largest number in flight per path and per host."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.total_in_flight = 0
        self.max_total = 0

    def route(self, path: str, body: bytes) -> Route:
        def answer(_hit: int) -> tuple[int, bytes, dict[str, str]]:
            with self.lock:
                self.in_flight[path] = self.in_flight.get(path, 0) + 1
                self.max_in_flight[path] = max(self.max_in_flight.get(path, 0),
                                               self.in_flight[path])
                self.total_in_flight += 1
                self.max_total = max(self.max_total, self.total_in_flight)
            time.sleep(self.delay)
            with self.lock:
                self.in_flight[path] -= 1
                self.total_in_flight -= 1
            return 200, body, {"Content-Type": "text/calendar"}

        return Route(answer)


def make_registry(server, settings, tracker: Tracker, count: int) -> list:
    sources = []
    for i in range(count):
        sid = f"asso-{i:02d}"
        server.routes[f"/{sid}.ics"] = tracker.route(f"/{sid}.ics", calendar(sid))
        sources.append({"id": sid, "name": f"Asso {i}", "format": "ical",
                        "url": server.url(f"/{sid}.ics"), "licence": "Licence Ouverte 2.0",
                        "publisher": {"name": f"Asso {i}", "type": "association"}})
    Path(settings.registry).write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")
    return load_registry(settings.registry)


def runs_per_source(engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT source_id, count(*) FROM harvestrun GROUP BY source_id")).all()
    return {source_id: count for source_id, count in rows}


def test_three_worker_processes_never_harvest_one_source_at_once(http_server, tmp_settings,
                                                                 database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("worker processes share a PostgreSQL store (SQLite: see the thread tests)")
    tracker = Tracker(delay=0.15)
    make_registry(http_server, tmp_settings, tracker, count=9)
    env = dict(os.environ, TISSU_RAW_DIR=str(tmp_path / "raw"), TISSU_HOST_DELAY="0",
               TISSU_ALLOW_LOOPBACK_FETCH="1")
    command = [sys.executable, "-m", "tissu.cli", "harvest", "--worker",
               "--registry", str(tmp_settings.registry), "--db", database_url,
               "--out", str(tmp_path / "publish")]
    paths = sorted(f"/asso-{i:02d}.ics" for i in range(9))

    def three_workers(extra: list[str]) -> None:
        workers = [subprocess.Popen(command + extra, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT) for _ in range(3)]
        try:
            outputs = [w.communicate(timeout=120)[0].decode() for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.communicate()
        assert [w.returncode for w in workers] == [0, 0, 0], outputs

    # first round: every source is due (never harvested); each is fetched exactly once
    three_workers([])
    assert [http_server.hits.get(p, 0) for p in paths] == [1] * 9
    assert set(tracker.max_in_flight.values()) == {1}
    engine = make_engine(database_url)
    assert runs_per_source(engine) == {f"asso-{i:02d}": 1 for i in range(9)}
    with Session(engine) as session:
        assert session.exec(text("SELECT count(*) FROM sourcelease")).one()[0] == 0  # released
        assert session.get(Source, "asso-07").last_success_at is not None

    # a full round shared by the three: every source once more, never twice at once
    since = dt.datetime.now(dt.UTC).isoformat()
    three_workers(["--since", since])
    assert [http_server.hits.get(p, 0) for p in paths] == [2] * 9
    assert set(tracker.max_in_flight.values()) == {1}
    assert runs_per_source(engine) == {f"asso-{i:02d}": 2 for i in range(9)}


def test_claims_are_exclusive_and_leases_expire(tmp_settings, database_url):
    engine = make_engine(database_url)
    specs = make_registry_offline(tmp_settings, count=3)
    with Session(engine) as session:
        sync_registry(session, specs)

    def always(_source, _now):
        return True

    first = claim_source(engine, "w1", NOW, always, lease_seconds=60)
    second = claim_source(engine, "w2", NOW, always, lease_seconds=60)
    third = claim_source(engine, "w3", NOW, always, lease_seconds=60)
    assert sorted([first, second, third]) == ["asso-00", "asso-01", "asso-02"]
    assert claim_source(engine, "w4", NOW, always) is None  # all three are leased
    # a worker that died: its lease expires and the source may be claimed again
    later = NOW.replace(minute=2)
    assert claim_source(engine, "w4", later, always) in {first, second, third}
    # releasing someone else's lease does nothing; releasing one's own frees the source
    release_source(engine, first, "intruder")
    with Session(engine) as session:
        assert session.get(SourceLease, first) is not None
    release_source(engine, second, "w2")
    assert claim_source(engine, "w5", NOW, always) == second


def make_registry_offline(settings, count: int) -> list:
    sources = [{"id": f"asso-{i:02d}", "name": f"Asso {i}", "format": "ical",
                "url": f"http://127.0.0.1:9/asso-{i:02d}.ics", "licence": "Licence Ouverte 2.0",
                "publisher": {"name": f"Asso {i}", "type": "association"}} for i in range(count)]
    Path(settings.registry).write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")
    return load_registry(settings.registry)


def test_source_is_due_follows_refresh():
    source = Source(id="a", name="a", publisher_name="a", publisher_type="association",
                    format="ical", url="http://x/a.ics", licence="LO", refresh="30m")
    assert source_is_due(source, NOW)
    source.last_attempt_at = NOW
    assert not source_is_due(source, NOW.replace(minute=29))
    assert source_is_due(source, NOW.replace(minute=30))


def test_pool_in_one_process_respects_per_host_limit(http_server, tmp_settings):
    tracker = Tracker(delay=0.1)
    specs = make_registry(http_server, tmp_settings, tracker, count=8)
    engine = make_engine(tmp_settings.database_url)
    summaries = harvest_all(engine, specs, tmp_settings, now=NOW, jobs=4, per_host=2)
    assert [s.source_id for s in summaries] == [f"asso-{i:02d}" for i in range(8)]
    assert {s.status for s in summaries} == {"ok"}
    assert sum(s.events for s in summaries) == 16
    assert tracker.max_total == 2  # four threads, but two at a time on this one host:port


def test_worker_threads_in_one_process(http_server, tmp_settings, database_url):
    tracker = Tracker(delay=0.05)
    specs = make_registry(http_server, tmp_settings, tracker, count=6)
    engine = make_engine(database_url)
    summaries = run_worker(engine, tmp_settings, specs=specs, jobs=3, now=lambda: NOW)
    assert sorted(s.source_id for s in summaries) == [f"asso-{i:02d}" for i in range(6)]
    assert set(tracker.max_in_flight.values()) == {1}
    assert runs_per_source(engine) == {f"asso-{i:02d}": 1 for i in range(6)}
    # nothing is due any more at the same instant
    assert run_worker(engine, tmp_settings, jobs=3, now=lambda: NOW) == []


@pytest.fixture
def tmp_settings(store_settings):
    """These tests run on SQLite, then on PostgreSQL when it is configured."""
    return store_settings


def test_scheduler_harvest_waits_for_a_worker_lease(http_server, tmp_settings, database_url):
    """``tissu schedule`` beside ``tissu harvest --worker``: a source a worker holds is not
    fetched by the scheduler (status ``busy``); once released, the scheduler harvests it under
    its own lease and lets it go."""
    from schemas.store import lease_source
    from tissu.scheduler import _default_harvest

    tracker = Tracker(delay=0)
    specs = make_registry(http_server, tmp_settings, tracker, count=1)
    engine = make_engine(database_url)
    with Session(engine) as session:
        sync_registry(session, specs)
    assert lease_source(engine, "asso-00", "worker-a", NOW, lease_seconds=600)
    assert not lease_source(engine, "asso-00", "worker-b", NOW)  # one holder at a time
    busy = _default_harvest(engine, "asso-00", tmp_settings, NOW)
    assert busy.status == "busy" and http_server.hits.get("/asso-00.ics", 0) == 0
    release_source(engine, "asso-00", "worker-a")
    done = _default_harvest(engine, "asso-00", tmp_settings, NOW)
    assert done.status == "ok" and done.events == 2
    assert http_server.hits["/asso-00.ics"] == 1
    with Session(engine) as session:
        assert session.get(SourceLease, "asso-00") is None  # the scheduler let it go
    assert not lease_source(engine, "nowhere", "worker-a", NOW)  # no such source


def test_a_claim_picks_exactly_the_due_sources_least_recently_attempted_first(tmp_settings,
                                                                                database_url):
    """Due-ness is turned into SQL per refresh value (schemas.store._due_clause): the sources
    claimed are exactly those ``source_is_due`` says, to the microsecond, oldest attempt first;
    a ``--since`` round and an ``is_due`` that is not monotone give the same answers as asking
    every source in Python."""
    engine = make_engine(database_url)
    specs = make_registry_offline(tmp_settings, count=6)
    with Session(engine) as session:
        sync_registry(session, specs)
        attempts = {  # id: (refresh, last attempt)
            "asso-00": ("30m", NOW - dt.timedelta(minutes=30)),  # due: exactly one period
            "asso-01": ("30m", NOW - dt.timedelta(minutes=30) + dt.timedelta(microseconds=1)),
            "asso-02": ("1d", NOW - dt.timedelta(hours=25)),  # due, attempted first
            "asso-03": ("6h", NOW - dt.timedelta(hours=5)),  # not due
            "asso-04": ("6h", None),  # never attempted: first of all
            "asso-05": ("n'importe quoi", NOW - dt.timedelta(hours=6)),  # unreadable: 6 h
        }
        for source_id, (refresh, last) in attempts.items():
            source = session.get(Source, source_id)
            source.refresh, source.last_attempt_at = refresh, last
            session.add(source)
        session.commit()
    claimed = []
    while (source_id := claim_source(engine, f"w{len(claimed)}", NOW, source_is_due)):
        claimed.append(source_id)
    assert claimed == ["asso-04", "asso-02", "asso-05", "asso-00"]
    for source_id in claimed:
        release_source(engine, source_id, f"w{claimed.index(source_id)}")

    since = NOW - dt.timedelta(minutes=30) + dt.timedelta(microseconds=1)  # asso-01's attempt

    def round_since(source, _now):
        return source.last_attempt_at is None or source.last_attempt_at < since

    assert [claim_source(engine, f"r{i}", NOW, round_since) for i in range(6)] == [
        "asso-04", "asso-02", "asso-05", "asso-03", "asso-00", None]
    with Session(engine) as session:
        for lease in session.exec(select(SourceLease)).all():
            session.delete(lease)
        session.commit()

    def not_yesterday(source, now):  # not monotone: the SQL pick (asso-02) is checked again,
        last = source.last_attempt_at  # found not due, and every source is read instead
        return last is not None and not now - dt.timedelta(hours=26) <= last <= now - \
            dt.timedelta(hours=24)

    assert claim_source(engine, "odd", NOW, not_yesterday) == "asso-05"
