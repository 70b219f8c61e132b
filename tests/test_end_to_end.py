"""Harvest → publish through a local HTTP server, twice; failures stay isolated."""

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events
import yaml
from sqlalchemy import text

from publish.run import publish
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES, Route
from tissu.pipeline import harvest_all

FILES = {
    "/fablab.ics": "fablab_cottbus.ics",
    "/portland.ics": "ical_google.ics",
    "/lisbon.ics": "issue_48_daylight_aware_repeats.ics",
    "/aquitaine.xml": "agenda_region_aquitaine_spip_rss.xml",
}


@pytest.fixture
def tmp_settings(store_settings):
    """Every end-to-end test runs on SQLite, then on PostgreSQL when it is configured."""
    return store_settings


def entry(source_id: str, url: str, fmt: str = "ical") -> dict:
    return {"id": source_id, "name": source_id, "format": fmt, "url": url,
            "licence": "Licence Ouverte 2.0",
            "publisher": {"name": f"Asso {source_id}", "type": "association"}}


def setup_sources(server, settings, extra=()):
    for path, name in FILES.items():
        server.routes[path] = Route((SAMPLES / name).read_bytes())
    sources = [entry("fablab", server.url("/fablab.ics")),
               entry("portland", server.url("/portland.ics")),
               entry("lisbon", server.url("/lisbon.ics")),
               entry("aquitaine", server.url("/aquitaine.xml"), "rss"), *extra]
    Path(settings.registry).write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")
    return load_registry(settings.registry)


def table(db: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_harvest_publish_twice_gives_identical_data(http_server, tmp_settings):
    specs = setup_sources(http_server, tmp_settings)
    engine = make_engine(tmp_settings.database_url)
    summaries = harvest_all(engine, specs, tmp_settings, now=NOW)
    assert {s.source_id: s.status for s in summaries} == {
        "fablab": "ok", "portland": "ok", "lisbon": "ok", "aquitaine": "ok"}
    assert {s.source_id: s.events for s in summaries} == {
        "fablab": 28, "portland": 41, "lisbon": 1, "aquitaine": 204}
    out = publish(engine, tmp_settings.publish_dir, NOW)
    db = out.database
    assert table(db, "SELECT count(*) FROM events") == [(274,)]
    # the Lisbon weekly meeting: Mondays 11:30 local, first upcoming one on 30 Nov 2026 (WET)
    rows = table(db, "SELECT start_utc, start_local FROM occurrences "
                     "WHERE event_id = 'lisbon--EVENT2' AND start_utc >= '2026-11-29' "
                     "ORDER BY start_utc LIMIT 1")
    assert rows == [("2026-11-30T11:30:00Z", "2026-11-30T12:30:00+01:00")]
    # public columns only
    columns = [r[1] for r in table(db, "PRAGMA table_info(sources)")]
    assert "contact_email" not in columns and "etag" not in columns
    # accent-insensitive full-text search
    hits = table(db, "SELECT e.title FROM events_fts f JOIN events e ON e.rowid = f.rowid "
                     "WHERE events_fts MATCH 'echasses'")
    assert ("Initations aux échasses",) in hits

    ics = out.exports["ics"].read_bytes()
    calendar = icalendar.Calendar.from_ical(ics)
    # series keep the zone their source meant, with one VTIMEZONE per zone used
    zones = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    assert "Europe/Lisbon" in zones
    assert {e["DTSTART"].params["TZID"] for e in calendar.walk("VEVENT")
            if "TZID" in e["DTSTART"].params} == zones
    summaries_in_feed = {str(e["SUMMARY"]) for e in calendar.walk("VEVENT")}
    assert "MDS-t" in summaries_in_feed
    upcoming = recurring_ical_events.of(calendar).between(NOW, NOW + dt.timedelta(days=7))
    assert any(str(e["SUMMARY"]) == "MDS-t" for e in upcoming)
    # one VEVENT per series (not per occurrence), and every series still has a future instance
    uids = {str(e["UID"]) for e in calendar.walk("VEVENT")}
    future = recurring_ical_events.of(calendar).between(NOW, NOW + dt.timedelta(days=366))
    assert uids == {str(e["UID"]) for e in future}
    jsonld = json.loads(out.exports["jsonld"].read_text(encoding="utf-8"))
    assert jsonld["@context"] == "https://schema.org"
    assert len(jsonld["@graph"]) == 274
    assert out.exports["csv"].read_bytes().startswith(b"\xef\xbb\xbfid,")

    def snapshot():
        return {
            name: table(db, f"SELECT * FROM {name} ORDER BY 1")
            for name in ("events", "occurrences", "organisations")
        } | {"ics": out.exports["ics"].read_bytes(),
             "jsonld": out.exports["jsonld"].read_bytes(),
             "csv": out.exports["csv"].read_bytes()}

    before = snapshot()
    later = NOW + dt.timedelta(minutes=5)
    second = harvest_all(engine, specs, tmp_settings, now=later)
    assert {s.status for s in second} == {"unchanged"}
    publish(engine, tmp_settings.publish_dir, later)
    assert snapshot() == before


def test_failing_source_keeps_last_good_events_and_others_complete(http_server, tmp_settings):
    http_server.routes["/asso.ics"] = Route((SAMPLES / "fablab_cottbus.ics").read_bytes())
    extra = [entry("asso", http_server.url("/asso.ics"))]
    specs = setup_sources(http_server, tmp_settings, extra)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=NOW)

    later = NOW + dt.timedelta(hours=6)
    cases = {
        "404": Route(b"", status=404),
        "html": Route(b"<!DOCTYPE html><html><body>Notre agenda</body></html>",
                      headers={"Content-Type": "text/html"}),
    }
    for name, route in cases.items():
        http_server.routes["/asso.ics"] = route
        summaries = {s.source_id: s for s in harvest_all(engine, specs, tmp_settings, now=later)}
        failed = summaries["asso"]
        assert failed.status == "failed", name
        assert failed.errors and failed.errors[0].startswith("asso : ")
        assert all(s.status in {"ok", "unchanged"} for k, s in summaries.items() if k != "asso")
        out = publish(engine, tmp_settings.publish_dir, later)
        assert table(out.database, "SELECT count(*) FROM events WHERE source_id='asso' "
                                   "AND removed_at_source IS NULL") == [(28,)]
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT status, errors FROM harvestrun "
                                       "WHERE source_id='asso' ORDER BY id")).all()
    assert [r[0] for r in runs] == ["ok", "failed", "failed"]
    assert "HTTP 404" in runs[1][1]
    assert "page web" in runs[2][1]


def test_unreachable_and_truncated_sources(http_server, tmp_settings):
    data = (SAMPLES / "fablab_cottbus.ics").read_bytes()
    cut = data.index(b"BEGIN:VEVENT", len(data) // 2) + 40  # inside a VEVENT
    http_server.routes["/cut.ics"] = Route(data[:cut])
    http_server.routes["/bom.ics"] = Route(b"\xef\xbb\xbf" + data)
    extra = [entry("cut", http_server.url("/cut.ics")), entry("bom", http_server.url("/bom.ics")),
             entry("down", "http://127.0.0.1:9/nothing.ics")]
    specs = setup_sources(http_server, tmp_settings, extra)
    engine = make_engine(tmp_settings.database_url)
    summaries = {s.source_id: s for s in harvest_all(engine, specs, tmp_settings, now=NOW)}
    assert summaries["down"].status == "failed"
    assert "connexion impossible" in summaries["down"].errors[0]
    assert summaries["bom"].status == "ok" and summaries["bom"].events == 28
    cut_summary = summaries["cut"]
    complete_before = data[:cut].count(b"END:VEVENT")
    assert cut_summary.status == "partial"
    assert cut_summary.events == complete_before
    assert any("ligne" in e for e in cut_summary.errors)
    assert summaries["fablab"].status == "ok"


def test_datasette_serves_events_json(http_server, tmp_settings):
    from datasette.app import Datasette

    specs = setup_sources(http_server, tmp_settings)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=NOW)
    out = publish(engine, tmp_settings.publish_dir, NOW)
    metadata = json.loads(out.metadata.read_text(encoding="utf-8"))
    assert metadata["license"] == "Licence Ouverte 2.0 (Etalab)"
    for name, spec in metadata["databases"]["tissu-open"]["tables"].items():
        if name != "events_fts":
            cols = [r[1] for r in table(out.database, f"PRAGMA table_info({name})")]
            assert set(cols) == set(spec["columns"]), name

    async def fetch():
        ds = Datasette([str(out.database)], immutables=[], metadata=metadata)
        response = await ds.client.get("/tissu-open/events.json?_shape=array&_size=5")
        search = await ds.client.get("/tissu-open/events.json?_search=echasses&_shape=array")
        return response, search

    response, search = asyncio.run(fetch())
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 5 and {"id", "title", "dtstart_utc"} <= set(rows[0])
    assert [r["title"] for r in search.json()] == ["Initations aux échasses"]
