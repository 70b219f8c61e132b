"""``make bench``: Tissu's workloads W1–W6, each beside a floor or ceiling measured in the same run.

Absolute times vary a lot on a shared machine, so every figure comes with a reference measured
in the same run on the same machine (the library's own speed on the same input, or the server's
static-file ceiling) and the ratio between them. Writes ``bench/results/<UTC date>.json`` and
rewrites the results table of ``BENCHMARKS.md`` (between its ``bench:results`` markers).

Workloads (issue 8):
    W1 cold harvest → normalise → publish of the generated corpus (``--sources`` × ``--events``),
       one process on SQLite, then two ``tissu harvest --worker`` processes on PostgreSQL; floor:
       parsing the same files with icalendar / feedparser / extruct alone.
    W2 the same harvest again with nothing changed (304s and content hashes), as a share of W1.
    W3 serving a published database of about 1M occurrences to 10 concurrent clients.
    W4 exporting 100k events to iCalendar, JSON-LD and CSV; floor: icalendar's serialisation.
    W5 deduplicating the generated events; precision and recall against the generator's truth.
    W6 the HTML path: our schema.org extraction + normalisation beside city-scrapers-core.

Run: ``.venv/bin/python -m bench.run [--scale small|full] [--only W1,W2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
PYTHON = sys.executable
TISSU = [PYTHON, "-m", "tissu.cli"]
POSTGRES_URL = os.environ.get("TISSU_BENCH_POSTGRES_URL",
                              os.environ.get("TISSU_TEST_POSTGRES_URL", ""))

SCALES = {
    # sources, events per source, W3 events in the served database, W4 events, W5 events
    "small": {"sources": 40, "events": 25, "serve_events": 5_000, "export_events": 5_000,
              "dedupe_events": 5_000, "html_pages": 20, "duration": 5},
    "full": {"sources": 500, "events": 100, "serve_events": 100_000, "export_events": 100_000,
             "dedupe_events": 100_000, "html_pages": 200, "duration": 20},
}


# W1's mix of publishers: half iCalendar, four in ten RSS, one in ten a web page crawled with
# Scrapy (all crawls of one harvest run in one child process, see connectors/html.py).
W1_FORMATS = ("ical", "rss", "ical", "rss", "ical", "rss", "ical", "rss", "ical", "html")


# --- helpers ---------------------------------------------------------------------------------


def run_timed(command: list[str], env: dict[str, str], cwd: Path = ROOT,
              timeout: float = 3600) -> dict[str, Any]:
    """Run ``command``; return seconds, peak RSS (MB, from wait4), CPU seconds (user +
    system of the command and of the children it waited for: a harvest's parsing children
    count when it stopped their fork server, connectors.processes) and the output's tail."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "returncode": process.returncode,
            "tail": output.decode("utf-8", "replace")[-1500:]}


def run_parallel(commands: list[list[str]], env: dict[str, str]) -> dict[str, Any]:
    """Run ``commands`` at once; wall seconds, the largest peak RSS, every return code."""
    start = time.perf_counter()
    processes = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT) for c in commands]
    outputs, peaks, codes = [], [], []
    for process in processes:
        assert process.stdout is not None
        outputs.append(process.stdout.read())
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        peaks.append(usage.ru_maxrss / 1024)
        codes.append(process.returncode)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": max(peaks),
            "returncodes": codes,
            "tail": b"\n".join(o[-600:] for o in outputs).decode("utf-8", "replace")}


def bench_env(work: Path, database_url: str, publish_dir: Path) -> dict[str, str]:
    """The environment of the ``tissu`` processes: loopback allowed, no politeness delay."""
    return dict(os.environ, TISSU_ALLOW_LOOPBACK_FETCH="1", TISSU_HOST_DELAY="0",
                TISSU_DATABASE_URL=database_url, TISSU_REGISTRY=str(work / "sources.yaml"),
                TISSU_PUBLISH_DIR=str(publish_dir), TISSU_RAW_DIR=str(work / "raw"),
                TISSU_RAW_RETENTION="1", TISSU_PUBLISH_DEBOUNCE="0", COLUMNS="120")


def fresh_postgres_schema(name: str) -> str | None:
    """A new empty schema in the bench PostgreSQL database; its SQLAlchemy URL, or None."""
    if not POSTGRES_URL:
        return None
    import psycopg

    conninfo = "postgresql://" + POSTGRES_URL.split("://", 1)[1]
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            connection.execute(f'CREATE SCHEMA "{name}"')
    except psycopg.Error:
        return None
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{name}"


def drop_postgres_schema(name: str) -> None:
    import psycopg

    conninfo = "postgresql://" + POSTGRES_URL.split("://", 1)[1]
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


# --- W1 floor: the libraries alone on the same files -------------------------------------------


def parse_floor(corpus: Any) -> dict[str, Any]:
    """Parse every file of the corpus with icalendar, feedparser or extruct, reading each event.

    Returns seconds, events read and events/s: the speed Tissu's harvest is compared with.
    """
    import extruct
    import feedparser
    import icalendar

    events = 0
    start = time.perf_counter()
    for source in corpus.sources:
        if source.format == "ical":
            calendar = icalendar.Calendar.from_ical(source.content)
            for event in calendar.walk("VEVENT"):
                _ = (str(event.get("UID")), str(event.get("SUMMARY")), event.decoded("DTSTART"),
                     event.decoded("DTEND", None), str(event.get("LOCATION")),
                     str(event.get("DESCRIPTION")), event.get("RRULE"))
                events += 1
        elif source.format == "rss":
            feed = feedparser.parse(source.content)
            for entry in feed.entries:
                _ = (entry.get("id"), entry.get("title"), entry.get("ev_startdate"),
                     entry.get("ev_enddate"), entry.get("ev_location"), entry.get("summary"))
                events += 1
        else:
            data = extruct.extract(source.content.decode("utf-8"), syntaxes=["json-ld"],
                                   uniform=True)
            for block in data["json-ld"]:
                for node in block.get("@graph", [block]):
                    _ = (node.get("@id"), node.get("name"), node.get("startDate"),
                         node.get("endDate"), node.get("location"))
                    events += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "events": events, "events_per_s": events / seconds}


# --- W1 / W2 -----------------------------------------------------------------------------------


def w1_w2(scale: dict[str, Any], work: Path) -> dict[str, Any]:
    """Cold harvest + publish (W1) and the unchanged rerun (W2) of a generated corpus."""
    import yaml

    from bench.generator import generate
    from bench.server import CorpusServer

    corpus = generate(scale["sources"], scale["events"], seed=42, formats=W1_FORMATS)
    # W1 is a cold run: nothing left by an earlier run in the same --work (store, publication,
    # raw snapshots, crawl pages) may make it warm
    for left in ("w1", "w1pg", "raw", "raw-pg", "corpus"):
        shutil.rmtree(work / left, ignore_errors=True)
    corpus.write(work / "corpus")
    floor = parse_floor(corpus)
    result: dict[str, Any] = {
        "corpus": {"sources": len(corpus.sources), "events": corpus.events,
                   "occurrences": corpus.occurrences,
                   "bytes": sum(len(s.content) for s in corpus.sources),
                   "formats": {f: sum(1 for s in corpus.sources if s.format == f)
                               for f in ("ical", "rss", "html")}},
        "floor": floor,
    }
    with CorpusServer(corpus.served()) as server:
        (work / "sources.yaml").write_text(yaml.safe_dump(corpus.registry(server.base_url)),
                                           encoding="utf-8")
        # one process, SQLite
        db = f"sqlite:///{work / 'w1' / 'tissu.db'}"
        env = bench_env(work, db, work / "w1" / "publish")
        harvest = run_timed(TISSU + ["harvest"], env)
        publish = run_timed(TISSU + ["publish"], env)
        seconds = harvest["seconds"] + publish["seconds"]
        one = {"harvest": harvest, "publish": publish, "seconds": seconds,
               "events_per_s": corpus.events / seconds,
               "ratio_to_floor": corpus.events / seconds / floor["events_per_s"],
               "peak_rss_mb": max(harvest["peak_rss_mb"], publish["peak_rss_mb"]),
               "published_events": _count(work / "w1" / "publish" / "tissu-open.db", "events")}
        result["one_process_sqlite"] = one
        # W2: the same run again, nothing changed
        hits_before = sum(server.hits.values())
        not_modified_before = server.not_modified
        again = run_timed(TISSU + ["harvest"], env)
        publish_again = run_timed(TISSU + ["publish"], env)
        result["w2"] = {"harvest": again, "publish": publish_again,
                        "seconds": again["seconds"] + publish_again["seconds"],
                        "share_of_w1": (again["seconds"] + publish_again["seconds"]) / seconds,
                        "harvest_share_of_w1_harvest": again["seconds"] / harvest["seconds"],
                        "requests": sum(server.hits.values()) - hits_before,
                        "not_modified": server.not_modified - not_modified_before}
        # two worker processes on one PostgreSQL store
        schema = "tissu_bench_w1"
        pg = fresh_postgres_schema(schema)
        if pg is None:
            result["two_workers_postgresql"] = {"status": "not measurable",
                                                "reason": "no PostgreSQL (TISSU_TEST_POSTGRES_URL)"}
        else:
            env = bench_env(work, pg, work / "w1pg" / "publish")
            env["TISSU_RAW_DIR"] = str(work / "raw-pg")
            workers = run_parallel([TISSU + ["harvest", "--worker"]] * 2, env)
            publish = run_timed(TISSU + ["publish"], env)
            seconds = workers["seconds"] + publish["seconds"]
            result["two_workers_postgresql"] = {
                "harvest": workers, "publish": publish, "seconds": seconds,
                "events_per_s": corpus.events / seconds,
                "ratio_to_floor": corpus.events / seconds / floor["events_per_s"],
                "peak_rss_mb": max(workers["peak_rss_mb"], publish["peak_rss_mb"]),
                "published_events": _count(work / "w1pg" / "publish" / "tissu-open.db", "events")}
            drop_postgres_schema(schema)
    return result


def _count(db: Path, table: str) -> int | None:
    import sqlite3

    if not db.exists():
        return None
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()


# --- W3 / W4: a large published database -------------------------------------------------------


def large_publication(events: int, work: Path) -> tuple[Path, dict[str, Any]]:
    """Build a working store of ``events`` events (publish_bench's generator) and publish it.

    With ``TISSU_BENCH_REUSE=1``, a database already published in ``work`` is kept.
    """
    from bench.publish_bench import NOW, build_store
    from publish.run import publish
    from schemas.store import make_engine

    folder = work / f"published-{events}"
    done = folder / "publish" / "tissu-open.db"
    if os.environ.get("TISSU_BENCH_REUSE") == "1" and done.exists():
        # keep the database a previous run built in the same --work folder (W3 re-runs)
        import sqlite3

        with sqlite3.connect(f"file:{done}?mode=ro", uri=True) as connection:
            made = connection.execute("SELECT count(*) FROM events").fetchone()[0]
            occurrences = connection.execute("SELECT count(*) FROM occurrences").fetchone()[0]
        return folder / "publish", {"events": made, "occurrences": occurrences, "reused": True}
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    made, occurrences = build_store(folder / "tissu.db", events, 0.2)
    built = time.perf_counter() - start
    engine = make_engine(f"sqlite:///{folder / 'tissu.db'}")
    start = time.perf_counter()
    outcome = publish(engine, folder / "publish", NOW)
    engine.dispose()
    return folder / "publish", {"events": made, "occurrences": occurrences,
                                "store_seconds": built,
                                "publish_seconds": time.perf_counter() - start,
                                "publish_steps": dict(getattr(outcome, "timings", {}) or {})}


def w4_exports(publish_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Time the iCalendar, JSON-LD and CSV exports beside icalendar's own serialisation."""
    import sqlite3

    import icalendar

    from bench.publish_bench import NOW
    from publish.exports import write_csv_tables, write_jsonld
    from publish.ics import calendar_bytes, prepare_feed_events, select_feed_rows

    db = publish_dir / "tissu-open.db"
    out = publish_dir.parent / "w4-exports"
    out.mkdir(exist_ok=True)
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        start = time.perf_counter()
        feed_events = prepare_feed_events(connection, NOW)
        data = calendar_bytes(feed_events)
        ics_seconds = time.perf_counter() - start
        (out / "agenda.ics").write_bytes(data)
        rows = select_feed_rows(connection, NOW)
        # the floor: the same events built and serialised with icalendar alone
        start = time.perf_counter()
        calendar = icalendar.Calendar()
        calendar.add("PRODID", "-//bench//icalendar//FR")
        calendar.add("VERSION", "2.0")
        for row in rows:
            event = icalendar.Event()
            event.add("UID", row["id"])
            event.add("SUMMARY", row["title"])
            if row.get("all_day"):
                event.add("DTSTART", dt.date.fromisoformat(row["start_date"]))
            elif row.get("dtstart_utc"):
                event.add("DTSTART", dt.datetime.fromisoformat(
                    row["dtstart_utc"].replace("Z", "+00:00")))
                if row.get("dtend_utc"):
                    event.add("DTEND", dt.datetime.fromisoformat(
                        row["dtend_utc"].replace("Z", "+00:00")))
            if row.get("rrule"):
                event.add("RRULE", icalendar.vRecur.from_ical(row["rrule"]))
            if row.get("location"):
                event.add("LOCATION", row["location"])
            if row.get("description"):
                event.add("DESCRIPTION", row["description"])
            calendar.add_component(event)
        floor_data = calendar.to_ical()
        floor_seconds = time.perf_counter() - start
        start = time.perf_counter()
        jsonld_count = write_jsonld(connection, out / "events.jsonld")
        jsonld_seconds = time.perf_counter() - start
        connection.row_factory = None
        start = time.perf_counter()
        write_csv_tables(connection, out)
        csv_seconds = time.perf_counter() - start
    finally:
        connection.close()
    start = time.perf_counter()
    parsed = icalendar.Calendar.from_ical(data)
    vevents = parsed.walk("VEVENT")
    roundtrip_seconds = time.perf_counter() - start
    masters = {str(e["UID"]) for e in vevents if "RECURRENCE-ID" not in e}
    return {
        "events_in_store": info["events"], "feed_events": len(feed_events),
        "ics": {"seconds": ics_seconds, "bytes": len(data),
                "events_per_s": len(feed_events) / ics_seconds},
        "icalendar_floor": {"seconds": floor_seconds, "bytes": len(floor_data),
                            "events_per_s": len(rows) / floor_seconds},
        "ics_speed_ratio": floor_seconds / ics_seconds,
        "roundtrip": {"vevents": len(vevents), "distinct_uids": len(masters),
                      "valid": len(masters) == len(feed_events), "seconds": roundtrip_seconds},
        "jsonld": {"seconds": jsonld_seconds, "events": jsonld_count},
        "csv": {"seconds": csv_seconds},
    }


def _wrk_script(path: Path, vary: bool = False) -> Path:
    # vary: each request adds "&_n=<counter>" to the URL, so no two requests are the same page
    # (the resident pages' cache, publish/web/page_cache.py, then always renders afresh)
    script = path / ("report-vary.lua" if vary else "report.lua")
    varying = ("counter = 0\n"
               "request = function()\n"
               "  counter = counter + 1\n"
               "  return wrk.format(nil, wrk.path .. '&_n=' .. counter .. '-' .. math.random(1e9))\n"
               "end\n") if vary else ""
    script.write_text(
        varying +
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('JSON{\"requests\":%d,\"errors\":%d,\"duration_us\":%d,"
        "\"p50\":%d,\"p95\":%d,\"p99\":%d,\"non2xx\":%d}\\n', summary.requests,"
        " summary.errors.connect + summary.errors.read + summary.errors.write"
        " + summary.errors.timeout, summary.duration, latency:percentile(50),"
        " latency:percentile(95), latency:percentile(99), summary.errors.status))\n"
        "end\n", encoding="utf-8")
    return script


def load(url: str, seconds: int, clients: int, work: Path,
         vary: bool = False) -> dict[str, Any]:
    """``clients`` concurrent connections for ``seconds``: req/s and p50/p95/p99 in ms (wrk).

    ``vary``: every request a different URL (``&_n=<counter>`` appended), to measure pages
    that are not in a cache.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"status": "not measurable", "reason": "wrk absent (apt-get install wrk)"}
    completed = subprocess.run(
        [wrk, "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s",
         "-s", str(_wrk_script(work, vary)), url], check=False, capture_output=True, text=True,
        timeout=seconds + 60)
    match = re.search(r"JSON(\{.*\})", completed.stdout)
    if not match:
        return {"status": "error", "reason": completed.stdout[-500:] + completed.stderr[-500:]}
    data = json.loads(match.group(1))
    duration = data["duration_us"] / 1e6
    return {"req_per_s": data["requests"] / duration, "requests": data["requests"],
            "errors": data["errors"], "non_2xx": data["non2xx"],
            "p50_ms": data["p50"] / 1000, "p95_ms": data["p95"] / 1000,
            "p99_ms": data["p99"] / 1000}


def w3_serving(publish_dir: Path, info: dict[str, Any], scale: dict[str, Any],
               work: Path) -> dict[str, Any]:
    """Serve the published database with ``tissu serve`` and load five pages, one at a time."""
    import socket
    import urllib.request

    from bench.publish_bench import NOW

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, TISSU_PUBLISH_DIR=str(publish_dir))
    server = subprocess.Popen(TISSU + ["serve", "--out", str(publish_dir), "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/-/versions.json", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        monday = (NOW.date() - dt.timedelta(days=NOW.weekday())).isoformat()
        # The server shows "this week" from its own clock, so every page asks for the coming
        # seven days from now (the generated sessions run a year past NOW); the resident page
        # and Datasette's default table page select the same sessions (one quartier, the
        # week), as issue 8 asks. (Runs before 2026-12-04 gave the resident page
        # ?date=NOW, which shrinks to nothing once NOW's week is over, and Datasette's
        # page the week of every quartier.)
        clock = dt.datetime.now(dt.UTC).replace(microsecond=0)
        week_end = (clock + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        week_start = clock.strftime("%Y-%m-%dT%H:%M:%SZ")
        quartier = "Quatre-Chemins"
        pages = {
            "resident_week_by_quartier": f"/?quartier={quartier}",
            "resident_week_uncached": f"/?quartier={quartier}",
            "datasette_default_table": (
                f"/tissu-open/occurrences?quartier={quartier}&start_utc__gte={week_start}"
                f"&start_utc__lt={week_end}&_sort=start_utc"),
            "resident_search_page": "/recherche?q=atelier",
            "resident_search_uncached": "/recherche?q=atelier",
            "datasette_search_page": "/tissu-open/events?_search=atelier",
            "datasette_search_uncached": "/tissu-open/events?_search=atelier",
            "search_json": "/tissu-open/events.json?_search=atelier&_shape=array&_size=20",
            "search_json_uncached": ("/tissu-open/events.json?_search=atelier&_shape=array"
                                     "&_size=20"),
            "week_json": (f"/tissu-open/occurrences.json?start_utc__gte={week_start}"
                          f"&start_utc__lt={week_end}&_sort=start_utc&_shape=array&_size=50"),
            "static_file_ceiling": "/-/static/app.css",
        }
        checks = {}
        for name, path in pages.items():
            try:
                with urllib.request.urlopen(base + path, timeout=60) as response:
                    checks[name] = {"status": response.status, "bytes": len(response.read())}
            except OSError as exc:
                checks[name] = {"status": "error", "reason": str(exc)}
        results: dict[str, Any] = {"database": info, "monday": monday, "urls": pages,
                                   "warm_check": checks}
        for name, path in pages.items():
            results[name] = load(base + path, scale["duration"], 10, work,
                                 vary=name.endswith("_uncached"))
        resident = results["resident_week_by_quartier"]
        default = results["datasette_default_table"]
        static = results["static_file_ceiling"]
        if "req_per_s" in resident and "req_per_s" in default:
            results["resident_vs_default_throughput"] = resident["req_per_s"] / default["req_per_s"]
        if "req_per_s" in resident and "req_per_s" in static:
            results["resident_share_of_static_ceiling"] = resident["req_per_s"] / static["req_per_s"]
        uncached = results["resident_week_uncached"]
        if "req_per_s" in uncached and "req_per_s" in default:
            results["resident_uncached_vs_default_throughput"] = (uncached["req_per_s"]
                                                                  / default["req_per_s"])
        return results
    finally:  # tissu serve runs Datasette as a child: stop the whole process group
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- W5: deduplication ---------------------------------------------------------------------------


def w5_dedupe(scale: dict[str, Any], work: Path) -> dict[str, Any]:
    """Deduplicate the generator's events (stored as normalised events); precision and recall."""
    try:
        from normalize.dedupe import run_deduplication  # noqa: F401
    except ImportError as exc:
        return {"status": "not measurable", "reason": f"normalize.dedupe absent ({exc})"}
    per_source = 100
    steps: list[dict[str, Any]] = []
    # growing sizes up to the target, stopping when a step gets too long to try the next one
    sizes = sorted({min(5_000, scale["dedupe_events"]), min(20_000, scale["dedupe_events"]),
                    scale["dedupe_events"]})
    for size in sizes:
        step = _in_child(_dedupe_step, (size, per_source, work), W5_STEP_TIMEOUT)
        steps.append(step)
        if "seconds" not in step:
            break
        if step["seconds"] > 150 and size != sizes[-1]:
            steps.append({"events": sizes[-1], "status": "not run",
                          "reason": f"the {size}-event step took {step['seconds']:.0f} s"})
            break
    measured = [s for s in steps if "seconds" in s]
    if not measured:
        return {"status": "error", "reason": str(steps[-1].get("reason")), "steps": steps}
    return {**measured[-1], "steps": steps}


W5_STEP_TIMEOUT = 900  # seconds: a slower deduplication step is stopped and reported


def _in_child(function: Callable[..., dict[str, Any]], args: tuple[Any, ...],
              timeout: float) -> dict[str, Any]:
    """Run ``function(*args)`` in a forked child; stop it after ``timeout`` seconds."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def target() -> None:
        try:
            queue.put(function(*args))
        except Exception as exc:  # noqa: BLE001
            queue.put({"status": "error", "reason": repr(exc)})

    child = context.Process(target=target)
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.terminate()
        child.join()
        return {"events": args[0], "status": "not finished",
                "reason": f"stopped after {timeout:.0f} s"}
    try:
        return queue.get(timeout=10)
    except Exception:  # noqa: BLE001 - the child died without a result
        return {"events": args[0], "status": "error", "reason": f"exit code {child.exitcode}"}


def _dedupe_step(size: int, per_source: int, work: Path) -> dict[str, Any]:
    """One W5 step: ``size`` generated events deduplicated; precision/recall vs the truth."""
    from bench.generator import generate
    from normalize.dedupe import run_deduplication
    from schemas.store import make_engine

    corpus = generate(max(2, size // per_source), per_source, seed=5)
    folder = work / f"w5-{size}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'tissu.db'}"
    store_generated_events(url, corpus)
    engine = make_engine(url)
    start = time.perf_counter()
    outcome = run_deduplication(engine, corpus.now)
    seconds = time.perf_counter() - start
    found = found_duplicate_pairs(engine)
    rerun = _dedupe_rerun(engine, corpus.now, url)
    engine.dispose()
    truth = corpus.duplicate_pairs()
    true_positive = len(found & truth)
    titles = {f"{t.source_id}--{t.uid}": (t.title, t.start_utc or t.start_date, t.location)
              for t in corpus.truth}
    wrong = sorted(found - truth)[:8]
    missed = sorted(truth - found)[:8]
    return {
        "events": corpus.events, "truth_pairs": len(truth), "found_pairs": len(found),
        "seconds": seconds, "candidate_pairs": getattr(outcome, "candidate_pairs", None),
        "review_pairs": getattr(outcome, "review_pairs", None),
        "precision": true_positive / len(found) if found else None,
        "recall": true_positive / len(truth) if truth else None,
        "false_positive_examples": [[titles.get(a), titles.get(b)] for a, b in wrong],
        "missed_examples": [[titles.get(a), titles.get(b)] for a, b in missed], **rerun,
        "load_average": os.getloadavg()}


def _dedupe_rerun(engine: Any, now: dt.datetime, url: str) -> dict[str, Any]:
    """After the first run: again with nothing changed, then with 1 % of the events touched
    (``updated_at`` moved, as a re-harvest does), both incremental; then the I/O floor of the
    same store: one SELECT of the columns deduplication reads and one UPDATE per event."""
    import sqlite3

    from normalize.dedupe import run_deduplication

    figures: dict[str, Any] = {}
    start = time.perf_counter()
    outcome = run_deduplication(engine, now)
    figures["rerun_unchanged"] = {"seconds": time.perf_counter() - start,
                                  "days": getattr(outcome, "days", None),
                                  "recomputed": getattr(outcome, "recomputed", None)}
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE event SET updated_at = '2026-12-01 00:00:00.000000' "
                           "WHERE rowid % 100 = 0")
    start = time.perf_counter()
    outcome = run_deduplication(engine, now)
    figures["rerun_one_percent_touched"] = {"seconds": time.perf_counter() - start,
                                            "days": getattr(outcome, "days", None),
                                            "recomputed": getattr(outcome, "recomputed", None)}
    connection = sqlite3.connect(path)
    start = time.perf_counter()
    rows = connection.execute("SELECT e.*, s.publisher_name, s.publisher_type FROM event e "
                              "LEFT JOIN source s ON s.id = e.source_id").fetchall()
    connection.executemany("UPDATE event SET cluster_id = ? WHERE id = ?",
                           [(f"floor-{i}", row[0]) for i, row in enumerate(rows)])
    connection.commit()
    figures["io_floor_seconds"] = time.perf_counter() - start
    connection.close()
    return figures


def store_generated_events(url: str, corpus: Any) -> None:
    """Write the corpus's truth as normalised Event rows (what the harvest would have made)."""
    import json as _json

    from sqlmodel import Session

    from schemas.models import Event, Source
    from schemas.store import make_engine

    engine = make_engine(url)

    def when(text: str | None) -> dt.datetime | None:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None

    with Session(engine) as session:
        for s in corpus.sources:
            session.add(Source(id=s.id, name=f"Agenda {s.id}",
                               publisher_name=f"Association {s.id}",
                               publisher_type="association", format=s.format,
                               url=f"http://127.0.0.1/{s.path}", licence="Licence Ouverte 2.0",
                               quartier=s.quartier))
        session.commit()
        for t in corpus.truth:
            session.add(Event(
                id=f"{t.source_id}--{t.uid}", source_id=t.source_id, source_uid=t.uid,
                title=t.title, all_day=t.all_day, dtstart_utc=when(t.start_utc),
                dtend_utc=when(t.end_utc),
                start_date=dt.date.fromisoformat(t.start_date) if t.start_date else None,
                tzid="Europe/Paris", rrule=t.rrule, location=t.location, quartier=t.quartier,
                themes=_json.dumps([]), content_hash=t.uid))
        session.commit()
    engine.dispose()


def found_duplicate_pairs(engine: Any) -> set[tuple[str, str]]:
    """Pairs of event ids that the deduplication put in one cluster (sorted pairs)."""
    from sqlalchemy import inspect, text

    columns = {c["name"] for c in inspect(engine).get_columns("event")}
    column = next((c for c in ("cluster_id", "duplicate_of", "canonical_id") if c in columns),
                  None)
    if column is None:
        return set()
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT id, {column} FROM event "
                                       f"WHERE {column} IS NOT NULL")).all()
    clusters: dict[str, list[str]] = {}
    for event_id, key in rows:
        clusters.setdefault(key, []).append(event_id)
        if column != "cluster_id":
            clusters[key].append(key)
    pairs: set[tuple[str, str]] = set()
    for members in clusters.values():
        unique = sorted(set(members))
        pairs.update((a, b) for i, a in enumerate(unique) for b in unique[i + 1:])
    return pairs


# --- W6: the HTML path beside city-scrapers-core ------------------------------------------------


def w6_html(scale: dict[str, Any], work: Path) -> dict[str, Any]:
    """Items/s of our extraction + normalisation and of city-scrapers-core on the same pages."""
    from bench.html_peer import compare

    return compare(scale["html_pages"], work / "w6")


# --- report ----------------------------------------------------------------------------------


WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tissu benchmarks W1–W6 (not tests).")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5,W6",
                        help="comma-separated workloads (W1 and W2 run together)")
    parser.add_argument("--sources", type=int, default=None, help="W1: sources (overrides scale)")
    parser.add_argument("--events", type=int, default=None,
                        help="W1: events per source (overrides scale)")
    parser.add_argument("--dedupe-events", type=int, default=None,
                        help="W5: largest step (overrides scale)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (temporary)")
    parser.add_argument("--no-markdown", action="store_true",
                        help="do not rewrite the table of BENCHMARKS.md")
    parser.add_argument("--results", type=Path, default=None,
                        help="write the report there instead of bench/results/<UTC date>.json "
                             "(a trial run that must not change the day's report)")
    args = parser.parse_args(argv)
    scale = dict(SCALES[args.scale])
    if args.sources:
        scale["sources"] = args.sources
    if args.events:
        scale["events"] = args.events
    if args.dedupe_events:
        scale["dedupe_events"] = args.dedupe_events
    wanted = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    work = args.work or Path(tempfile.mkdtemp(prefix="tissu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "started_utc": started.isoformat(timespec="seconds"), "scale": args.scale,
        "command": " ".join(["make bench"] if argv is None and len(sys.argv) == 1
                            else [".venv/bin/python -m bench.run", *(argv or sys.argv[1:])]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "load_average": os.getloadavg()},
        "git": _git_head(), "workloads": {},
    }

    def attempt(name: str, function: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        print(f"[bench] {name}…", flush=True)
        clock = time.perf_counter()
        try:
            value = function()
        except Exception as exc:  # noqa: BLE001 - one workload's failure is reported, not fatal
            value = {"status": "error", "reason": f"{exc!r}",
                     "traceback": traceback.format_exc()[-3000:]}
        value.setdefault("status", "ok")
        value["wall_seconds"] = time.perf_counter() - clock
        value["command"] = report["command"]
        value["load_average_after"] = os.getloadavg()
        report["workloads"][name] = value
        partial = work / "partial-report.json"  # survives an interrupted run
        partial.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str),
                           encoding="utf-8")
        print(f"[bench] {name}: {value['status']} in {value['wall_seconds']:.0f} s", flush=True)
        return value

    if wanted & {"W1", "W2"}:
        attempt("W1+W2", lambda: w1_w2(scale, work))
    if wanted & {"W3", "W4"}:
        holder: dict[str, Any] = {}

        def build() -> dict[str, Any]:
            path, info = large_publication(scale["serve_events"], work)
            holder["path"], holder["info"] = path, info
            return info

        attempt("publication", build)
        if "path" in holder:
            if "W4" in wanted:
                attempt("W4", lambda: w4_exports(holder["path"], holder["info"]))
            if "W3" in wanted:
                attempt("W3", lambda: w3_serving(holder["path"], holder["info"], scale, work))
    if "W5" in wanted:
        attempt("W5", lambda: w5_dedupe(scale, work))
    if "W6" in wanted:
        attempt("W6", lambda: w6_html(scale, work))
    report["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = started.strftime("%Y-%m-%d") + ("" if args.scale == "full" else f"-{args.scale}")
    path = args.results or RESULTS / f"{name}.json"
    if args.results is None and path.exists() and wanted != {"W1", "W2", "W3", "W4", "W5", "W6"}:
        # a partial run completes the day's report instead of replacing it
        previous = json.loads(path.read_text(encoding="utf-8"))
        done = previous["workloads"]
        # a database reused from the same --work (TISSU_BENCH_REUSE=1) keeps the figures of
        # the run that built it
        if report["workloads"].get("publication", {}).get("reused") and "publication" in done:
            report["workloads"]["publication"] = done["publication"]
        rerun = report["workloads"].get("W3", {})
        if rerun.get("database", {}).get("reused") and "database" in done.get("W3", {}):
            rerun["database"] = done["W3"]["database"]
        done.update(report["workloads"])
        previous.setdefault("runs", []).append(
            {k: report[k] for k in ("started_utc", "finished_utc", "command", "git", "machine")})
        report = previous
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")
    print(f"[bench] résultats : {path}")
    if not args.no_markdown:
        from bench.report import update_benchmarks_md

        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        update_benchmarks_md(BENCHMARKS, report, shown)
        print(f"[bench] tableau : {BENCHMARKS.relative_to(ROOT)}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _git_head() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
