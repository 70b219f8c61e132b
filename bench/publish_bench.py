"""Benchmark of the PUBLISH stage (issue 5): not a test.

1. Publishing N events (default 100,000) with every export: a synthetic working store (500
   sources, 10 quartiers, the theme vocabulary; ``--series`` share of weekly series expanded over
   a year, the rest single events) is published with ``publish.run.publish``; prints the
   seconds per step. Target: ≤ 30 s for 100k events.
2. The canned query "Cette semaine, par quartier" on the published database (≈ 1.2M
   occurrences with the defaults, ≈ 21k of them in the week), run ``--repeat`` times with SQLite's clock pinned to the publish time;
   prints p50/p95/max in ms. Target: p95 ≤ 50 ms.

Run: ``.venv/bin/python bench/publish_bench.py [--events 100000] [--series 0.2]``
(``--store FILE`` keeps the generated working store in FILE and reuses it on the next run; each
run publishes a fresh copy of it, so every publish is a first publish.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publish.build import load_themes_vocab
from publish.metadata import canned_queries
from publish.run import publish
from schemas.models import Event, Occurrence, Organisation, Source
from schemas.store import make_engine

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
PARIS_OFFSET = dt.timedelta(hours=1)  # November to March; good enough for synthetic local text
QUARTIERS = ["Quatre-Chemins", "Centre", "Courtillières", "Église", "Hoche", "Mairie-Ourcq",
             "Petit-Pantin", "Les Limites", "Haut-Pantin", "Sept-Arpents"]


def _text(value: dt.datetime) -> str:
    """The way SQLAlchemy's DateTime stores a (UTC-naive) value in SQLite."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _defaults(model: Any) -> dict[str, object]:
    found: dict[str, object] = {}
    for name, info in model.model_fields.items():
        default = info.default
        if default is not None and not callable(default) and repr(default) != "PydanticUndefined":
            found[name] = default
    return found


def _insert(connection: sqlite3.Connection, table: str, rows: list[dict[str, object]]) -> None:
    columns = list(rows[0])
    sql = (f'INSERT INTO "{table}" ({", ".join(columns)}) '
           f'VALUES ({", ".join("?" for _ in columns)})')
    connection.executemany(sql, ([r[c] for c in columns] for r in rows))


def build_store(path: Path, events: int, series_share: float, seed: int = 5) -> tuple[int, int]:
    """Fill a working store at ``path``; returns (events, occurrences)."""
    engine = make_engine(f"sqlite:///{path}")
    engine.dispose()
    rng = random.Random(seed)
    vocab = load_themes_vocab()
    themes = list(vocab["code"]) if vocab is not None else ["alimentation", "sante"]
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    source_defaults, event_defaults = _defaults(Source), _defaults(Event)
    occurrence_defaults, org_defaults = _defaults(Occurrence), _defaults(Organisation)
    sources = [source_defaults | {
        "id": f"src-{i:03d}", "name": f"Agenda {i}", "publisher_name": f"Association {i}",
        "publisher_type": "association", "format": "ical", "url": f"https://ex.org/{i}.ics",
        "licence": "Licence Ouverte 2.0", "themes": "[]", "status": "active",
    } for i in range(500)]
    _insert(connection, "source", sources)
    _insert(connection, "organisation", [org_defaults | {
        "id": f"association-{i}", "name": f"Association {i}", "type": "association"}
        for i in range(500)])
    event_rows, occurrence_rows = [], []
    first_seen = NOW - dt.timedelta(days=20)
    total_occurrences = 0
    for n in range(events):
        source = n % 500
        is_series = rng.random() < series_share
        # a series runs through the whole horizon (started before it); a single event falls
        # anywhere in it
        span = 7 if is_series else 395
        start = (NOW - dt.timedelta(days=30)
                 + dt.timedelta(minutes=rng.randrange(0, span * 24 * 4) * 15))
        end = start + dt.timedelta(hours=rng.choice([1, 2, 3]))
        event_id = f"src-{source:03d}--uid-{n}"
        chosen = rng.sample(themes, rng.choice([1, 1, 2]))
        updated = first_seen + dt.timedelta(minutes=n % 10000)
        event_rows.append(event_defaults | {
            "id": event_id, "source_id": f"src-{source:03d}", "source_uid": f"uid-{n}",
            "title": f"Atelier solidaire n° {n} — {chosen[0]}",
            "description": "Distribution, accueil et orientation. " * rng.choice([1, 3, 8]),
            "all_day": 0, "dtstart_utc": _text(start), "dtend_utc": _text(end),
            "tzid": "Europe/Paris", "floating": 0,
            "rrule": "FREQ=WEEKLY" if is_series else None, "status": "confirmed",
            "sequence": 0, "location": f"Maison de quartier {source % 10}",
            "url": f"https://ex.org/e/{n}", "organizer": f"Association {source}",
            "organisation_id": f"association-{source}", "categories": "[]",
            "themes": json.dumps(chosen), "quartier": QUARTIERS[source % 10],
            "content_hash": hashlib.sha1(event_id.encode()).hexdigest(),
            "first_seen_at": _text(first_seen), "updated_at": _text(updated),
            "removed_at_source": None, "revision": 0, "rdate": "[]", "exdate": "[]",
        })
        starts = [start + dt.timedelta(weeks=w) for w in range(56)] if is_series else [start]
        for instance in starts:
            instance_end = instance + (end - start)
            key = instance.strftime("%Y%m%dT%H%M%SZ")
            occurrence_rows.append(occurrence_defaults | {
                "id": f"{event_id}--{key}", "event_id": event_id, "recurrence_id": key,
                "all_day": 0, "start_utc": _text(instance), "end_utc": _text(instance_end),
                "start_local": (instance + PARIS_OFFSET).replace(tzinfo=dt.timezone(
                    PARIS_OFFSET)).isoformat(),
                "end_local": (instance_end + PARIS_OFFSET).replace(tzinfo=dt.timezone(
                    PARIS_OFFSET)).isoformat(),
                "start_date": None, "end_date": None, "status": "confirmed",
                "title": None, "location": None,
            })
        if len(occurrence_rows) > 200_000:
            _insert(connection, "occurrence", occurrence_rows)
            total_occurrences += len(occurrence_rows)
            occurrence_rows = []
    _insert(connection, "event", event_rows)
    if occurrence_rows:
        _insert(connection, "occurrence", occurrence_rows)
        total_occurrences += len(occurrence_rows)
    connection.commit()
    connection.close()
    return len(event_rows), total_occurrences


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Parse options, build the store, publish, time the query; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--series", type=float, default=0.2,
                        help="share of weekly series (56 occurrences each, the horizon)")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--store", type=Path, default=None,
                        help="keep the generated working store in this file and reuse it "
                             "(built with the same --events/--series when absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tissu-bench-") as folder:
        root = Path(folder)
        clock = time.perf_counter()
        if args.store is not None and args.store.exists():
            shutil.copyfile(args.store, root / "tissu.db")
            with sqlite3.connect(root / "tissu.db") as reader:
                events = reader.execute("SELECT count(*) FROM event").fetchone()[0]
                occurrences = reader.execute("SELECT count(*) FROM occurrence").fetchone()[0]
            print(f"working store: {events} events, {occurrences} occurrences "
                  f"(copied from {args.store})")
        else:
            events, occurrences = build_store(root / "tissu.db", args.events, args.series)
            print(f"working store: {events} events, {occurrences} occurrences "
                  f"({time.perf_counter() - clock:.1f} s to generate)")
            if args.store is not None:
                args.store.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / "tissu.db", args.store)
        engine = make_engine(f"sqlite:///{root / 'tissu.db'}")
        load_before = os.getloadavg()
        cpu_before = _cpu_seconds()
        clock = time.perf_counter()
        outcome = publish(engine, root / "publish", NOW)
        seconds = time.perf_counter() - clock
        cpu = _cpu_seconds() - cpu_before
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.timings.items())
        print(f"publish with all exports: {seconds:.1f} s ({steps}); target ≤ 30 s")
        print(f"  CPU time {cpu:.1f} s (this process and its export workers, user + system) "
              f"on {os.cpu_count()} cores; load average before "
              f"{', '.join(f'{v:.2f}' for v in load_before)}, after "
              f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        exports = root / "publish" / "exports"
        print(f"  exports: {len(list(exports.rglob('*.*')))} files, "
              f"agenda.ics {(exports / 'agenda.ics').stat().st_size / 1e6:.1f} MB")
        connection = sqlite3.connect(f"file:{outcome.database}?mode=ro", uri=True)
        columns = {r[1] for r in connection.execute("PRAGMA table_info(events)")}
        longest = connection.execute("SELECT max(julianday(end_utc) - julianday(start_utc)) "
                                     "FROM occurrences").fetchone()[0]
        sql = canned_queries(columns, math.ceil(longest) + 1)["par_quartier"]["sql"].replace(
            "'now'", f"'{NOW:%Y-%m-%d %H:%M:%S}'")
        published = connection.execute("SELECT count(*) FROM occurrences").fetchone()[0]
        timings = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = connection.execute(sql).fetchall()
            timings.append((time.perf_counter() - start) * 1000)
        connection.close()
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(f"'Cette semaine, par quartier' on {published} occurrences "
              f"({sum(r[1] for r in result)} this week, {len(result)} quartiers): "
              f"p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
              f"max {timings[-1]:.1f} ms over {args.repeat} runs; target p95 ≤ 50 ms")


if __name__ == "__main__":
    main()
