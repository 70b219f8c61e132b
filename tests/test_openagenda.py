"""OpenAgenda connector: every corpus file, with counts and hand-checked values.

Spot values were read by hand in the fixture files (tests/fixtures/openagenda/, provenance in
tests/fixtures/PROVENANCE.md); UTC starts are the ``begin`` of a timing minus its offset.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

from connectors.openagenda import clean_text, parse_openagenda, pick_language
from normalize.events import Horizon, RecordView, normalize_json_record
from schemas.models import Event, Occurrence
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, Route
from tissu.pipeline import harvest_all

OA = FIXTURES / "openagenda"
EVERYTHING = Horizon(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2040, 1, 1, tzinfo=dt.UTC))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def parse(name: str):
    return parse_openagenda((OA / name).read_bytes(), "oa")


def payloads(result) -> dict[str, dict]:
    return {r.uid: json.loads(r.payload) for r in result.records}


def occurrences(result, uid: str) -> list[dict]:
    record = next(r for r in result.records if r.uid == uid)
    view = RecordView(record.uid, "", "json", record.payload, record.content_hash)
    return normalize_json_record("oa", view, EVERYTHING).occurrences


# (file, events, timings in all, uid, French title, UTC start of the first timing)
CORPUS = [
    ("oa_albi_events.json", 75, 97, "48516406", "La Brocante du samedi", "2023-11-25T06:00:00"),
    ("oa_begles.event.json", 1, 5, "51028839",
     "Permanences Addictions du CEID à l'Info Jeunes de Bègles", "2025-01-08T17:00:00"),
    ("oa_bunkers.event.json", 1, 2, "92634388", "Visite des bunkers du parc de Pignerolle",
     "2025-09-20T07:30:00"),
    ("oa_events.response.json", 6, 8, "60444684",
     "Visite guidée de la bibliothèque Alexis de Tocqueville", "2022-09-17T09:00:00"),
    ("oa_quinzaine.event.json", 1, 13, "59395095",
     "Le Commerce Equitable en magasin bio avec BIOPARTENAIRE®", "2025-05-10T07:00:00"),
    ("oa_react_sample.json", 1, 7, "30815625", "Un titre", "2023-09-26T09:00:00"),
    ("oa_sdk_events.json", 1, 2, "40784373", "Un titre", "2022-04-20T12:35:22.586000"),
    ("oa_suzanne.event.json", 1, 33, "25972426",
     "[Hors les murs] Suzanne Martin à la Bibliothèque Mériadeck.", "2025-04-25T08:00:00"),
    ("oa_visite-gratuite.event.json", 1, 1, "63825911", "Gratuité du Muséum",
     "2025-05-17T16:00:00"),
    ("oa_withRegistrationLink.event.json", 1, 7, "17528115", "Ateliers Urb'Braye",
     "2025-04-10T08:00:00"),
]


@pytest.mark.parametrize(("name", "events", "timings", "uid", "title", "first_utc"), CORPUS)
def test_corpus_file(name, events, timings, uid, title, first_utc):
    result = parse(name)
    assert result.errors == []
    assert len(result.records) == events
    found = payloads(result)
    assert sum(len(p["timings"]) for p in found.values()) == timings
    assert found[uid]["title"] == title
    rows = occurrences(result, uid)
    assert rows[0]["start_utc"] == utc(first_utc)
    assert len(rows) == len(found[uid]["timings"])


def test_every_corpus_file_is_covered():
    tested = {c[0] for c in CORPUS} | {"oa_lineSeparator2028.json"}
    assert tested == {p.name for p in OA.glob("*.json")}


def test_albi_multi_timing_event_keeps_each_timing_with_milliseconds():
    result = parse("oa_albi_events.json")
    rows = occurrences(result, "35590385")  # Albi Jazz Festival #5: 8 timings, ".000+01:00"
    assert len(rows) == 8
    assert rows[0]["start_utc"] == utc("2024-01-20T10:00:00")
    assert rows[-1]["end_utc"] == utc("2024-01-27T22:59:00")
    assert rows[0]["start_local"] == "2024-01-20T11:00:00+01:00"


def test_begles_location_accessibility_age_keywords():
    found = payloads(parse("oa_begles.event.json"))["51028839"]
    assert found["location"] == "Info Jeunes de Bègles, 21 rue Calixte Camelle 33130 Bègles"
    assert (found["postal_code"], found["city"]) == ("33130", "Bègles")
    assert (found["latitude"], found["longitude"]) == (44.807543, -0.547802)
    assert found["accessibility"] == ["motor"]
    assert (found["age_min"], found["age_max"]) == (11, 50)
    assert len(found["categories"]) == 13  # 14 keywords, one empty string dropped
    assert found["categories"][0] == "Jeunes"
    assert found["conditions"] == "Gratuit, sans inscription"
    assert found["status"] == "confirmed" and found["event_status"] == "EventScheduled"
    # The last timing moved an hour earlier (17:00 instead of 18:00, Paris winter time).
    assert occurrences(parse("oa_begles.event.json"), "51028839")[-1]["start_utc"] == utc(
        "2025-02-26T16:00:00")


def test_registration_links_kept_emails_never():
    sample = payloads(parse("oa_react_sample.json"))["30815625"]
    assert sample["registration_url"] == "https://oa.com/sign-up"
    assert sample["registration"] == [{"type": "link", "value": "https://oa.com/sign-up"},
                                      {"type": "phone", "value": "01 23 45 67 89"}]
    assert sample["accessibility"] == ["intellectual", "psychic"]
    assert "kkk@oagenda.com" not in json.dumps(sample)
    braye = payloads(parse("oa_withRegistrationLink.event.json"))["17528115"]
    assert braye["registration_url"] == (
        "https://www.saintjeandebraye.fr/evenement/ateliers-urbbraye/")
    albi = parse("oa_albi_events.json")
    text = "".join(r.payload for r in albi.records)
    assert "paris@czech.cz" not in text and "contact@example.org" not in text  # member e-mail


def test_multilingual_title_prefers_french_then_english():
    found = payloads(parse("oa_bunkers.event.json"))["92634388"]
    assert found["title_language"] == "fr"
    assert found["summary"] == "Journées européennes du patrimoine 2025"
    assert pick_language({"de": "Besuch", "en": "Visit"}) == ("Visit", "en")
    assert pick_language({"it": "Visita", "de": "Besuch"}) == ("Besuch", "de")
    assert pick_language({"fr": "  ", "en": "Visit"}) == ("Visit", "en")


def test_response_without_timings_uses_first_next_last_with_a_warning():
    result = parse("oa_events.response.json")
    assert result.complete  # total 6 == 6 events
    assert len([w for w in result.warnings if w.code == "timing"]) == 6
    rows = occurrences(result, "71349782")  # next 15:30, last 17:00 (+02:00)
    assert [r["start_utc"] for r in rows] == [utc("2022-09-18T13:30:00"),
                                              utc("2022-09-18T15:00:00")]


def test_line_separator_event_without_timings_is_reported_not_stored():
    result = parse("oa_lineSeparator2028.json")
    assert result.records == []
    assert len(result.errors) == 1 and result.errors[0].code == "no-timing"
    raw = json.loads((OA / "oa_lineSeparator2028.json").read_text(encoding="utf-8"))
    text = clean_text(raw["event"]["longDescription"]["fr"])
    assert "\u2028" not in text
    assert "que d’autres.\nLes artistes en font" in text


def test_paginated_response_is_marked_incomplete_and_broken_json_names_the_line():
    document = json.loads((OA / "oa_events.response.json").read_text(encoding="utf-8"))
    document["total"] = 40
    result = parse_openagenda(json.dumps(document).encode(), "oa")
    assert not result.complete and len(result.records) == 6
    broken = parse_openagenda(b'{"events": [\n{"uid": 1,\n"title": }]}', "oa")
    assert broken.records == [] and broken.errors[0].line == 3


def test_harvest_through_local_server_builds_events_and_occurrences(http_server, tmp_settings):
    http_server.routes["/oa.json"] = Route(body=(OA / "oa_suzanne.event.json").read_bytes(),
                                           headers={"Content-Type": "application/json"})
    Path(tmp_settings.registry).write_text(yaml.safe_dump({"sources": [{
        "id": "oa-bordeaux", "name": "Bibliothèques de Bordeaux", "format": "openagenda",
        "url": http_server.url("/oa.json"), "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Ville de Bordeaux", "type": "service-municipal"}}]}),
        encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    now = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)
    [summary] = harvest_all(engine, load_registry(tmp_settings.registry), tmp_settings, now=now)
    assert summary.status == "ok" and summary.events == 1
    assert summary.occurrences == 33
    with Session(engine) as session:
        event = session.get(Event, "oa-bordeaux--25972426")
        assert event.title == "[Hors les murs] Suzanne Martin à la Bibliothèque Mériadeck."
        assert event.city == "Bordeaux" and event.latitude == 44.835117
        assert event.dtstart_utc == utc("2025-04-25T08:00:00")
        last = session.exec(select(Occurrence).where(Occurrence.event_id == event.id)
                            .order_by(Occurrence.start_utc.desc())).first()
        assert last.start_utc == utc("2025-06-02T11:00:00")
        assert last.start_local == "2025-06-02T13:00:00+02:00"


def test_cancelled_and_postponed_statuses_reach_the_occurrences():
    event = json.loads((OA / "oa_begles.event.json").read_text(encoding="utf-8"))
    for code, status, schema in ((6, "cancelled", "EventCancelled"),
                                 (4, "tentative", "EventPostponed"),
                                 (5, "confirmed", "EventScheduled")):
        event["status"] = code
        result = parse_openagenda(json.dumps(event).encode(), "oa")
        found = payloads(result)["51028839"]
        assert (found["status"], found["event_status"]) == (status, schema)
        assert {o["status"] for o in occurrences(result, "51028839")} == {status}
