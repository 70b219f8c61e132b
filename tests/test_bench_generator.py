"""The benchmark corpus generator tells the truth: what it says it serves is what Tissu publishes.

A small instance (iCalendar, RSS with ``ev:`` dates, schema.org JSON-LD pages; recurring series,
EXDATE, all-day events, events near midnight and on clock-change days, cross-source duplicates)
is served by the bench server on 127.0.0.1, harvested and published; every event and every
occurrence of the truth must be in the published database, and nothing else.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from pathlib import Path

import yaml

from bench.generator import dst_sundays, generate
from bench.server import CorpusServer
from publish.run import publish
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW
from tissu.pipeline import harvest_all


def test_generator_truth_matches_what_the_pipeline_publishes(tmp_settings):
    corpus = generate(sources=6, events_per_source=14, seed=7, now=NOW)
    kinds = Counter(t.kind for t in corpus.truth)
    # the instance holds every hard case the generator promises
    assert {"recurring", "all-day", "midnight", "dst", "dst-series", "duplicate"} <= set(kinds)
    assert {s.format for s in corpus.sources} == {"ical", "rss", "html"}
    assert any(t.exdates for t in corpus.truth)
    assert corpus.duplicate_pairs()

    with CorpusServer(corpus.served()) as server:
        Path(tmp_settings.registry).write_text(
            yaml.safe_dump(corpus.registry(server.base_url)), encoding="utf-8")
        specs = load_registry(tmp_settings.registry)
        engine = make_engine(tmp_settings.database_url)
        summaries = harvest_all(engine, specs, tmp_settings, now=NOW)
        assert {s.source_id: s.status for s in summaries} == {
            s.id: "ok" for s in corpus.sources}, [s.errors for s in summaries]
        out = publish(engine, tmp_settings.publish_dir, NOW)

    connection = sqlite3.connect(out.database)
    try:
        events = {(r[0], r[1]): r[2:] for r in connection.execute(
            "SELECT source_id, source_uid, id, title, dtstart_utc, start_date, all_day "
            "FROM events")}
        occurrences: dict[str, list[str]] = {}
        for event_id, start_utc, start_date, all_day in connection.execute(
                "SELECT event_id, start_utc, start_date, all_day FROM occurrences "
                "ORDER BY start_utc"):
            occurrences.setdefault(event_id, []).append(start_date if all_day else start_utc)
    finally:
        connection.close()

    assert set(events) == {(t.source_id, t.uid) for t in corpus.truth}
    for t in corpus.truth:
        event_id, title, dtstart_utc, start_date, all_day = events[(t.source_id, t.uid)]
        assert title == t.title, t
        assert bool(all_day) == t.all_day, t
        if t.all_day:
            assert start_date == t.start_date, t
        else:
            assert dtstart_utc == t.start_utc, t
        assert occurrences.get(event_id) == t.occurrences, t


def test_clock_change_days_and_series_across_them():
    assert dst_sundays(2027) == [dt.date(2027, 3, 28), dt.date(2027, 10, 31)]
    corpus = generate(sources=3, events_per_source=200, seed=3, now=NOW, formats=("ical",))
    series = [t for t in corpus.truth if t.kind == "dst-series"]
    assert series
    for t in series:
        # same local time every week, so the UTC hour moves by one across the change
        hours = {occurrence[11:13] for occurrence in t.occurrences}
        assert len(hours) == 2, t
    midnight = [t for t in corpus.truth if t.kind == "midnight"]
    assert any(t.start_local[:10] != t.start_utc[:10] for t in midnight)


def test_all_day_originals_never_share_a_title_or_room_on_one_date():
    """Two all-day originals with one title (or room) on one date are one event to a reader;
    the generator's truth must not call them different (W5 counted them as false merges)."""
    corpus = generate(400, 60, seed=3, formats=("ical",))
    seen: dict[tuple[str, str, str], str | None] = {}
    for event in corpus.truth:
        if not event.all_day or event.kind == "duplicate":
            continue
        place = event.location.split(",")[0]
        for key in (("title", event.title, event.start_date), ("room", place, event.start_date)):
            assert key not in seen, (key, event.uid, seen[key])
            seen[key] = event.uid
    assert len(seen) > 100  # enough all-day originals for a collision to be likely
