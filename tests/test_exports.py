"""Exports: CSV (RFC 4180), Frictionless data package, data.inclusion JSON Schema, Atom, JSON-LD;
served with ETag / Last-Modified / 304 and CORS; the events API and the live calendar."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from pathlib import Path

import feedparser
import icalendar
import pytest
from frictionless import Package, validate
from jsonschema import Draft202012Validator, FormatChecker
from sqlmodel import Session

from publish.run import publish
from schemas.models import Service
from tests.conftest import NOW, ROOT, SAMPLES
from tests.test_publish import make_site, stop

SCHEMAS = ROOT / "schemas" / "datainclusion"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    site = make_site(tmp, {
        "lisbon.ics": ((SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes(),
                       {"quartier": "Quatre-Chemins", "themes": ["seniors-isolement"]}),
        "fablab.ics": ((SAMPLES / "fablab_cottbus.ics").read_bytes(), {"quartier": "Centre"}),
    })
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
        patch.setenv("TISSU_HOST_DELAY", "0")
        try:
            site.harvest(NOW)
        finally:
            stop(site)
    with Session(site.engine) as session:  # two directory services: one valid, one not
        org = "association-lisbon"
        session.add(Service(id="dir--s1", source_id="lisbon", source_uid="s1", organisation_id=org,
                            name="Aide alimentaire d'urgence",
                            description="Colis alimentaires chaque mardi, sur orientation.",
                            thematiques='["equipement-et-alimentation--alimentation"]',
                            publics='["tous-publics"]', frais='["gratuit"]',
                            date_maj=dt.date(2026, 11, 2)))
        session.add(Service(id="dir--s2", source_id="lisbon", source_uid="s2", organisation_id=org,
                            name="X", description="court", thematiques='["pas-un-code"]'))
        session.commit()
    out = publish(site.engine, site.settings.publish_dir, NOW)
    return site, out


def test_csv_is_utf8_bom_rfc4180(published) -> None:
    _site, out = published
    data = out.exports["csv"].read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,")
    assert b"\r\n" in data
    records = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert len(records) == 29
    assert {r["quartier"] for r in records} == {"Quatre-Chemins", "Centre"}
    for table in ("occurrences", "organisations", "sources", "themes", "publish_runs"):
        assert (out.exports["csv"].parent / f"{table}.csv").exists(), table


def test_frictionless_validate_passes(published) -> None:
    _site, out = published
    path = out.exports["datapackage"]
    report = validate(str(path))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    package = Package(str(path))
    names = {r.name for r in package.resources}
    assert {"events", "occurrences", "organisations", "sources", "themes"} <= names
    events = package.get_resource("events")
    assert events.schema.primary_key == ["id"]
    assert events.schema.get_field("dtstart_utc").type == "datetime"
    assert events.schema.get_field("themes").type == "array"
    assert all(f.description for f in events.schema.fields)


def test_datainclusion_export_validates_against_v1_schema(published) -> None:
    _site, out = published
    folder = out.exports["datainclusion_structures"].parent
    structures = json.loads((folder / "structures.json").read_text(encoding="utf-8"))
    services = json.loads((folder / "services.json").read_text(encoding="utf-8"))
    report = json.loads((folder / "rapport.json").read_text(encoding="utf-8"))
    checks = {"structure": structures, "service": services}
    for model, records in checks.items():
        schema = json.loads((SCHEMAS / f"{model}.json").read_text(encoding="utf-8"))
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        for record in records:
            assert not list(validator.iter_errors(record)), record
    assert {s["nom"] for s in structures} == {"Association lisbon", "Association fablab"}
    assert [s["id"] for s in services] == ["s1"]
    assert services[0]["structure_id"] == "association-lisbon"
    assert services[0]["frais"] == "gratuit"
    # the invalid one is reported, in French, with the fields at fault
    reasons = " ".join(report["rejected"]["service dir--s2"])
    assert "nom" in reasons and "thematiques" in reasons


def test_atom_and_jsonld(published) -> None:
    _site, out = published
    feed = feedparser.parse(out.exports["atom"].read_bytes())
    assert not feed.bozo
    assert feed.feed.title == "Tissu — nouveautés de l'agenda solidaire"
    assert len(feed.entries) == 29
    assert all(e.id.startswith("urn:tissu:event:") for e in feed.entries)
    changes = feedparser.parse(out.exports["changes_atom"].read_bytes())
    assert not changes.bozo and len(changes.entries) == 29
    assert changes.entries[0].title.startswith("Nouveau : ")
    graph = json.loads(out.exports["jsonld"].read_text(encoding="utf-8"))["@graph"]
    lisbon = next(e for e in graph if e["identifier"] == "lisbon--EVENT2")
    assert lisbon["eventSchedule"] == {
        "@type": "Schedule", "repeatFrequency": "P1W", "scheduleTimezone": "Europe/Lisbon",
        "byDay": ["https://schema.org/Monday"], "startDate": "2020-09-21",
        # DTSTART;TZID=Europe/Lisbon:20200921T113000, DTEND …T130000: Lisbon wall-clock times
        "startTime": "11:30:00", "endTime": "13:00:00"}



def test_schedules_sharing_a_rule_keep_their_own_zone_times_and_lists() -> None:
    """A rule is parsed once for all the series that share it; each schedule still gets its
    zone, its times and lists of its own."""
    from publish.exports import schedule

    base = {"rrule": "FREQ=WEEKLY;BYDAY=MO,TH;COUNT=10", "all_day": 0,
            "dtstart_utc": "2026-12-07T13:00:00Z", "dtend_utc": "2026-12-07T15:00:00Z",
            "exdate": "[]"}
    paris = schedule(base | {"tzid": "Europe/Paris"})
    lisbon = schedule(base | {"tzid": "Europe/Lisbon",
                              "exdate": '["2026-12-10T13:00:00Z"]'})
    assert paris is not None and lisbon is not None
    assert paris == {"@type": "Schedule", "repeatFrequency": "P1W",
                     "scheduleTimezone": "Europe/Paris",
                     "byDay": ["https://schema.org/Monday", "https://schema.org/Thursday"],
                     "repeatCount": 10, "startDate": "2026-12-07", "startTime": "14:00:00",
                     "endTime": "16:00:00"}
    assert lisbon["scheduleTimezone"] == "Europe/Lisbon"
    # 13:00 UTC is 13:00 in Lisbon in December (WET, UTC+0), 14:00 in Paris
    assert (lisbon["startTime"], lisbon["endTime"]) == ("13:00:00", "15:00:00")
    assert lisbon["exceptDate"] == ["2026-12-10T13:00:00+00:00"]
    assert "exceptDate" not in paris
    unknown = schedule(base | {"tzid": "Mars/Olympus_Mons"})
    assert unknown is not None and unknown["scheduleTimezone"] == "Europe/Paris"
    assert unknown["startTime"] == "14:00:00"
    until = schedule(base | {"tzid": "America/New_York",
                             "rrule": "FREQ=WEEKLY;UNTIL=20261231T030000Z"})
    assert until is not None and until["endDate"] == "2026-12-30"  # 22:00 on the 30th there
    paris["byDay"].append("changed")
    assert schedule(base | {"tzid": "Europe/Paris"})["byDay"] == [  # type: ignore[index]
        "https://schema.org/Monday", "https://schema.org/Thursday"]
    assert schedule(base | {"rrule": "FREQ=WEEKLY;BYDAY=1MO"}) is None


# --- served over HTTP by the plugin ---------------------------------------------------------


def _get(out, path: str, headers: dict[str, str] | None = None, method: str = "get"):
    from datasette.app import Datasette

    async def run():
        ds = Datasette([str(out.database)], immutables=[])
        return await getattr(ds.client, method)(path, headers=headers or {})

    return asyncio.run(run())


@pytest.fixture
def served(published, monkeypatch):
    site, out = published
    monkeypatch.setenv("TISSU_PUBLISH_DIR", str(site.settings.publish_dir))
    monkeypatch.setattr("publish.web.exports.clock", lambda: NOW)
    return out


def test_exports_are_served_with_etag_last_modified_304_and_cors(served) -> None:
    first = _get(served, "/exports/agenda.ics")
    assert first.status_code == 200
    assert first.content == served.exports["ics"].read_bytes()
    assert first.headers["content-type"].startswith("text/calendar")
    assert first.headers["access-control-allow-origin"] == "*"
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    again = _get(served, "/exports/agenda.ics", {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    since = _get(served, "/exports/agenda.ics", {"If-Modified-Since": modified})
    assert since.status_code == 304
    stale = _get(served, "/exports/agenda.ics", {"If-None-Match": '"autre"'})
    assert stale.status_code == 200
    older = _get(served, "/exports/agenda.ics",
                 {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert older.status_code == 200
    for path in ("/exports/datapackage.json", "/exports/events.csv", "/exports/nouveautes.atom",
                 "/exports/ics/quartier/centre.ics", "/exports/datainclusion/structures.json"):
        response = _get(served, path)
        assert response.status_code == 200, path
        assert response.headers["access-control-allow-origin"] == "*"
    assert _get(served, "/exports/../tissu-open.db").status_code in (403, 404)
    assert _get(served, "/exports/%2e%2e/metadata.json").status_code in (403, 404)
    assert _get(served, "/exports/nothing.ics").status_code == 404
    preflight = _get(served, "/api/events.json", method="options")
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["access-control-allow-methods"]


def test_live_calendar_filters(served) -> None:
    both = _get(served, "/exports/agenda.ics?quartier=Quatre-Chemins&theme=seniors-isolement")
    assert both.status_code == 200
    calendar = icalendar.Calendar.from_ical(both.content)
    assert [str(e["UID"]) for e in calendar.walk("VEVENT")] == ["lisbon--EVENT2@tissu"]
    none = _get(served, "/exports/agenda.ics?quartier=Centre&theme=seniors-isolement")
    assert icalendar.Calendar.from_ical(none.content).walk("VEVENT") == []
    again = _get(served, "/exports/agenda.ics?quartier=Centre",
                 {"If-None-Match": _get(served, "/exports/agenda.ics?quartier=Centre")
                  .headers["etag"]})
    assert again.status_code == 304


def test_live_calendar_refuses_unknown_codes_without_echoing_them(served) -> None:
    for query, status, text in (
            ("quartier=%3Cscript%3E&gratuit=1", 404, "quartier inconnu"),
            ("theme=zzz", 404, "thème inconnu"),
            ("organisation=zzz", 404, "organisation inconnue"),
            ("public=zzz", 404, "public inconnu"),
            ("quartier=Centre&gratuit=2", 400, "paramètre « gratuit » invalide"),
            ("theme=seniors-isolement&quartier=Nulle-part", 404, "quartier inconnu")):
        response = _get(served, f"/exports/agenda.ics?{query}")
        assert response.status_code == status, query
        assert text in response.text, query
        assert "script" not in response.text and "zzz" not in response.text
        assert "Nulle-part" not in response.text and "BEGIN:VCALENDAR" not in response.text
    # known codes: the calendar is named with the French labels
    known = _get(served, "/exports/agenda.ics?theme=seniors-isolement&public=enfants&gratuit=1")
    assert known.status_code == 200
    name = str(icalendar.Calendar.from_ical(known.content)["X-WR-CALNAME"])
    assert name.endswith("— thème : Seniors et lutte contre l'isolement, public : Enfants, "
                         "gratuit"), name


def test_events_api_cursor_and_modified_since(served) -> None:
    page = _get(served, "/api/events.json?limit=10")
    assert page.status_code == 200
    assert page.headers["access-control-allow-origin"] == "*"
    body = page.json()
    seen = [e["id"] for e in body["events"]]
    assert body["count"] == 10 and body["next_cursor"]
    while body["next"]:
        body = _get(served, body["next"]).json()
        seen += [e["id"] for e in body["events"]]
    assert len(seen) == len(set(seen)) == 29
    assert isinstance(_get(served, "/api/events.json?limit=1").json()["events"][0]["themes"],
                      list)
    future = (NOW + dt.timedelta(days=1)).isoformat()
    assert _get(served, f"/api/events.json?modified_since={future}").json()["count"] == 0
    past = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _get(served, f"/api/events.json?modified_since={past}&limit=1000").json()[
        "count"] == 29
    quartier = _get(served, "/api/events.json?quartier=Quatre-Chemins").json()
    assert [e["id"] for e in quartier["events"]] == ["lisbon--EVENT2"]
    bad = _get(served, "/api/events.json?cursor=pas-un-curseur")
    assert bad.status_code == 400 and "curseur" in bad.json()["error"]


def test_publish_dir_files_exist(published) -> None:
    _site, out = published
    exports = Path(out.exports["ics"]).parent
    index = json.loads((exports / "feeds.json").read_text(encoding="utf-8"))
    assert {(f["kind"], f["code"]) for f in index} >= {
        ("all", None), ("quartier", "Quatre-Chemins"), ("quartier", "Centre"),
        ("theme", "seniors-isolement")}


def test_datasette_pages_carry_french_labels_and_licence(published) -> None:
    from datasette.app import Datasette

    _site, out = published
    metadata = json.loads(out.metadata.read_text(encoding="utf-8"))

    async def run():
        ds = Datasette([str(out.database)], immutables=[], metadata=metadata)
        return await ds.client.get("/tissu-open/events")

    page = asyncio.run(run()).text
    assert "Licence des données" in page and "Source des données" in page
    assert "Licence Ouverte 2.0 (Etalab)" in page
    assert "Data license" not in page


def test_occurrence_title_and_location_are_described_as_overrides_only(published) -> None:
    import sqlite3

    _site, out = published
    with sqlite3.connect(out.database) as connection:
        rows = connection.execute(
            "SELECT o.title, o.location, e.title, e.location FROM occurrences o "
            "JOIN events e ON e.id = o.event_id").fetchall()
    assert rows
    # a session's own title/location is stored only when it differs from the event's
    assert all(t is None or t != et for t, _l, et, _el in rows)
    assert all(loc is None or loc != eloc for _t, loc, _et, eloc in rows)
    fields = {f.name: f.description for f in
              Package(str(out.exports["datapackage"])).get_resource("occurrences").schema.fields}
    for name, parent in (("title", "events.title"), ("location", "events.location")):
        assert "seulement quand la source l'a changé pour elle" in fields[name]
        assert "RECURRENCE-ID" in fields[name] and parent in fields[name]
        assert "sauf modification" not in fields[name]
