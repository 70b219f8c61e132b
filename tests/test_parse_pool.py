"""Harvesting with parsing children (tissu.pipeline.harvest_pooled, connectors.base.ParsePool).

The children parse each source and prepare its events; the store must end up exactly as after
a harvest in one process, on the bench generator's corpus and on the bundled real samples. A
child that overruns the parse time limit is killed, and the source fails with a French error
naming it while the others are harvested.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bench.generator import generate
from bench.server import CorpusServer
from connectors.base import ParsePool, ParseResult
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, ROOT
from tissu.pipeline import harvest_all, harvest_pooled


def stuck_parser(data: bytes, source_id: str) -> ParseResult:
    """A parser that never ends (imported by name in the child)."""
    while True:
        time.sleep(1)


def crashing_parser(data: bytes, source_id: str) -> ParseResult:
    """A parser whose process dies (imported by name in the child)."""
    import os

    os._exit(3)


def _rows(url: str, folder: Path) -> dict[str, list[str]]:
    """Every row of the tables a harvest writes, sorted (SQLite store), ``folder`` named DIR.

    The source's normalisation key hashes its URL (which holds ``folder``): only its presence
    is compared.
    """
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        tables = {}
        for table in ("event", "occurrence", "sourcerecord", "organisation", "eventsource",
                      "harvestrun", "source"):
            columns = [r[1] for r in connection.execute(f"PRAGMA table_info({table})")]
            kept = [f"{c} IS NOT NULL" if c == "normalized_key" else c for c in columns]
            tables[table] = sorted(repr(row).replace(str(folder), "DIR")
                                   for row in connection.execute(
                                       f"SELECT {', '.join(kept)} FROM {table}"))
        return tables
    finally:
        connection.close()


def _harvest(settings, registry_text: str, tmp: Path, name: str, processes: int,
             now: dt.datetime = NOW, force: bool = False):
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    registry = folder / "sources.yaml"
    registry.write_text(registry_text, encoding="utf-8")
    settings = replace(settings, database_url=f"sqlite:///{folder / 'tissu.db'}",
                       registry=registry, raw_dir=folder / "raw")
    engine = make_engine(settings.database_url)
    summaries = harvest_all(engine, load_registry(registry), settings, now=now,
                            processes=processes, force=force)
    engine.dispose()
    return summaries, _rows(settings.database_url, folder)


def test_children_store_what_one_process_stores_on_the_bench_corpus(
        tmp_settings, tmp_path, monkeypatch):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("compares two SQLite files")
    import normalize.pipeline

    corpus = generate(sources=8, events_per_source=30, seed=11, now=NOW)
    built_here: list[str] = []  # sources whose events the main process built itself
    build = normalize.pipeline._normalize_group

    def counting(source_id: str, *args: object) -> object:
        built_here.append(source_id)
        return build(source_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(normalize.pipeline, "_normalize_group", counting)
    with CorpusServer(corpus.served()) as server:
        registry = yaml.safe_dump(corpus.registry(server.base_url))
        alone, alone_rows = _harvest(tmp_settings, registry, tmp_path, "alone", 0)
        assert len(built_here) == sum(s.events for s in alone)
        built_here.clear()
        pooled, pooled_rows = _harvest(tmp_settings, registry, tmp_path, "pooled", 2)
    # the children built every event: calendars, feeds and the web sites' crawls
    assert {s.format for s in corpus.sources} == {"ical", "rss", "html"}
    assert built_here == []
    assert [s.status for s in alone] == ["ok"] * 8
    assert [(s.source_id, s.status, s.events, s.occurrences, s.warnings, s.errors)
            for s in pooled] == [(s.source_id, s.status, s.events, s.occurrences, s.warnings,
                                  s.errors) for s in alone]
    assert sum(s.occurrences for s in alone) > 240  # recurring series were expanded
    for table, rows in alone_rows.items():
        assert pooled_rows[table] == rows, table


def test_children_store_what_one_process_stores_when_events_change(tmp_settings, tmp_path):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("compares two SQLite files")
    corpus = generate(sources=6, events_per_source=20, seed=5, now=NOW)
    later = NOW + dt.timedelta(days=3)
    with CorpusServer(corpus.served()) as server:
        registry = yaml.safe_dump(corpus.registry(server.base_url))
        _harvest(tmp_settings, registry, tmp_path, "first", 0)
        for name in ("alone", "pooled"):
            shutil.copytree(tmp_path / "first", tmp_path / name)
        # calendars and feeds change: titles and addresses of events are rewritten (the
        # bench server answers 304 to If-Modified-Since whatever the bytes: forced reads)
        changed = 0
        for path, (body, ctype, _etag) in list(server.files.items()):
            # another town: a stored event keeps the postal code it had (enrichment only fills
            # what is missing), which a child enriching from scratch would not know
            new = body.replace(b"Jardin", b"Jardin ouvert").replace(b"93500 Pantin",
                                                                    b"75019 Paris")
            if new != body:
                server.files[path] = (new, ctype, f'"{path}-v2"')
                changed += 1
        assert changed >= 4
        alone, alone_rows = _harvest(tmp_settings, registry, tmp_path, "alone", 0, later, True)
        pooled, pooled_rows = _harvest(tmp_settings, registry, tmp_path, "pooled", 2, later,
                                       True)
    assert sum(s.normalised for s in alone) == 6
    assert [(s.source_id, s.status, s.events, s.occurrences, s.warnings, s.errors)
            for s in pooled] == [(s.source_id, s.status, s.events, s.occurrences, s.warnings,
                                  s.errors) for s in alone]
    assert any("Jardin ouvert" in row for row in alone_rows["event"])
    for table, rows in alone_rows.items():
        assert pooled_rows[table] == rows, table


def test_children_store_what_one_process_stores_on_the_bundled_samples(
        tmp_settings, tmp_path):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("compares two SQLite files")
    registry = (ROOT / "data" / "sources.yaml").read_text(encoding="utf-8")
    for name in ("alone", "pooled"):  # the registry's files are read beside it
        shutil.copytree(ROOT / "data" / "samples", tmp_path / name / "samples")
    alone, alone_rows = _harvest(tmp_settings, registry, tmp_path, "alone", 0)
    pooled, pooled_rows = _harvest(tmp_settings, registry, tmp_path, "pooled", 2)
    assert len(alone) == 6 and sum(s.events for s in alone) > 100
    assert [(s.source_id, s.status, s.events, s.occurrences, s.warnings, s.errors)
            for s in pooled] == [(s.source_id, s.status, s.events, s.occurrences, s.warnings,
                                  s.errors) for s in alone]
    for table, rows in alone_rows.items():
        assert pooled_rows[table] == rows, table


def test_a_child_that_overruns_is_killed_and_replaced():
    with ParsePool(1) as pool:
        assert pool._children == []  # started when first needed
        assert pool.parse(("connectors.ical", "parse_ical"), b"", "vide", 30).errors
        [child] = pool._children
        started = time.monotonic()
        result = pool.parse(("tests.test_parse_pool", "stuck_parser"), b"", "lente", 0.5)
        assert time.monotonic() - started < 5
        assert [p.code for p in result.errors] == ["time-limit"]
        assert str(result.errors[0]).startswith("lecture interrompue : le fichier demande plus "
                                                "de 0.5 s de traitement")
        assert child.process.exitcode is not None  # killed, not left running
        assert child not in pool._children and len(pool._children) == 1
        # the replacement child parses the next source
        again = pool.parse(("connectors.ical", "parse_ical"),
                           b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\n"
                           b"DTSTART:20261207T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                           "suivante", 30)
        assert not again.errors and [r.uid for r in again.records] == ["a"]
        assert again.records[0].parsed is None  # components stay in the child


def test_a_child_that_dies_is_reported_and_replaced():
    with ParsePool(1) as pool:
        result = pool.parse(("tests.test_parse_pool", "crashing_parser"), b"", "x", 30)
        assert [p.code for p in result.errors] == ["internal"]
        assert "processus de lecture arrêté" in result.errors[0].message
        again = pool.parse(("connectors.feeds", "parse_feed"), b"<rss></rss>", "y", 30)
        assert [p.code for p in again.errors] != ["internal"]


def test_harvest_kills_an_overrunning_parse_and_names_the_source(
        http_server, tmp_settings):
    from tests.conftest import Route
    from tissu.pipeline import sync_registry

    # ~6 000 VEVENTs: parsing takes seconds, far more than the limit below
    vevents = b"".join(
        b"BEGIN:VEVENT\r\nUID:e%d\r\nDTSTART:20261207T100000Z\r\nSUMMARY:Atelier %d\r\n"
        b"END:VEVENT\r\n" % (i, i) for i in range(6000))
    http_server.routes["/lourd.ics"] = Route(b"BEGIN:VCALENDAR\r\n" + vevents
                                             + b"END:VCALENDAR\r\n")
    http_server.routes["/leger.ics"] = Route(
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261207T100000Z\r\n"
        b"SUMMARY:Permanence\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    registry = {"sources": [
        {"id": name, "name": name, "format": "ical", "url": http_server.url(path),
         "licence": "Licence Ouverte 2.0",
         "publisher": {"name": "Asso", "type": "association"}}
        for name, path in (("lourde", "/lourd.ics"), ("legere", "/leger.ics"))]}
    Path(tmp_settings.registry).write_text(yaml.safe_dump(registry), encoding="utf-8")
    settings = replace(tmp_settings, parse_time_limit=0.3)
    engine = make_engine(settings.database_url)
    from sqlmodel import Session

    with Session(engine) as session:
        sync_registry(session, load_registry(settings.registry))
    started = time.monotonic()
    summaries = harvest_pooled(engine, ["lourde", "legere"], settings, NOW, processes=1)
    assert time.monotonic() - started < 20
    heavy, light = summaries
    assert heavy.status == "failed"
    assert heavy.errors[0].startswith("lourde : lecture interrompue : le fichier demande plus "
                                      "de 0.3 s de traitement")
    assert light.status == "ok" and light.events == 1 and light.occurrences == 1


def test_a_pool_whose_children_cannot_start_still_harvests(http_server, tmp_settings,
                                                           monkeypatch):
    from sqlmodel import Session

    from tests.conftest import Route
    from tissu.pipeline import sync_registry

    def cannot_start(self: ParsePool) -> None:
        raise OSError("trop de processus")

    monkeypatch.setattr(ParsePool, "_start", cannot_start)
    for name in ("a", "b"):
        http_server.routes[f"/{name}.ics"] = Route(
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:" + name.encode()
            + b"\r\nDTSTART:20261207T100000Z\r\nSUMMARY:Permanence\r\nEND:VEVENT\r\n"
            b"END:VCALENDAR\r\n")
    registry = {"sources": [
        {"id": f"source-{name}", "name": name, "format": "ical",
         "url": http_server.url(f"/{name}.ics"), "licence": "Licence Ouverte 2.0",
         "publisher": {"name": "Asso", "type": "association"}} for name in ("a", "b")]}
    Path(tmp_settings.registry).write_text(yaml.safe_dump(registry), encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        sync_registry(session, load_registry(tmp_settings.registry))
    summaries = harvest_pooled(engine, ["source-a", "source-b"], tmp_settings, NOW,
                               processes=2)
    assert [(s.status, s.events, s.occurrences) for s in summaries] == [("ok", 1, 1)] * 2
