"""Enrichment of a stored event being rebuilt (normalize/enrich.py): the place columns derived
from its LOCATION follow a LOCATION that moved; what the source gives itself is kept.

Real inputs: a VEVENT of tests/fixtures/ical/basic_latin1.ics (a Google export, LOCATION
« Treuchtlingen, 91757 Treuchtlingen, Deutschland ») and the OpenAgenda event of
tests/fixtures/openagenda/oa_begles.event.json (postal code and position given by the source);
provenance in tests/fixtures/PROVENANCE.md. The venue they move from is one of
data/places.yaml (« Église Saint-Germain-l'Auxerrois », Pantin).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from sqlmodel import Session

from connectors.ical import parse_ical
from connectors.openagenda import parse_openagenda
from normalize.enrich import (
    ENRICH_READS,
    ENRICH_WRITES,
    PLACE_DERIVED,
    enrich_event,
    forget_derived_places,
)
from normalize.events import Horizon, RecordView, normalize_ical_group, normalize_json_record
from schemas.models import Event, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, Route
from tissu.pipeline import harvest_all

EVERYTHING = Horizon(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
UID = "d2fqot83imae46g8ov14p93jv4@google.com"
CHURCH = "Église Saint-Germain-l'Auxerrois"  # data/places.yaml: eglise-saint-germain-pantin
SOURCE = Source(id="asso", name="Agenda de l'asso", publisher_name="Asso de Pantin",
                publisher_type="association", format="ical", url="https://example.org/a.ics",
                licence="Licence Ouverte 2.0", quartier="Centre")


def _treuchtlingen_event() -> dict:
    """The normalised columns of the VEVENT d2fqot83… of basic_latin1.ics, as read today."""
    parsed = parse_ical((FIXTURES / "ical" / "basic_latin1.ics").read_bytes(), "asso")
    [record] = [r for r in parsed.records if r.uid == UID]
    view = RecordView(record.uid, record.recurrence_id, record.payload_format, record.payload,
                      record.content_hash)
    return normalize_ical_group("asso", UID, [view], EVERYTHING).event


def _stored(location: str | None) -> Event:
    """An event as the previous normalisation stored it, enriched at ``location``."""
    event = Event(id=f"asso--{UID}", source_id="asso", source_uid=UID, title="Bio",
                  location=location)
    return enrich_event(event, SOURCE)


def test_a_location_moved_to_another_town_takes_that_town() -> None:
    before = _stored(CHURCH)
    assert (before.place_id, before.postal_code, before.city, before.latitude,
            before.longitude) == ("eglise-saint-germain-pantin", "93500", "Pantin", 48.892778,
                                  2.413056)
    data = _treuchtlingen_event()
    assert data["location"] == "Treuchtlingen, 91757 Treuchtlingen, Deutschland"
    assert not set(PLACE_DERIVED) & set(data)  # an iCalendar source gives none of them
    # normalize.pipeline: the stored row, the columns just read written over it
    for column, value in data.items():
        setattr(before, column, value)
    enrich_event(forget_derived_places(before, data), SOURCE)
    assert (before.place_id, before.postal_code, before.city, before.latitude,
            before.longitude) == (None, "91757", "Treuchtlingen", None, None)
    assert before.quartier == "Centre"  # the registry's, no longer the church's street


def test_the_postal_code_and_position_a_source_gives_are_kept() -> None:
    [record] = parse_openagenda((FIXTURES / "openagenda" / "oa_begles.event.json").read_bytes(),
                                "asso").records
    view = RecordView(record.uid, "", "json", record.payload, record.content_hash)
    data = normalize_json_record("asso", view, EVERYTHING).event
    assert data["location"] == "Info Jeunes de Bègles, 21 rue Calixte Camelle 33130 Bègles"
    stored = _stored(CHURCH)  # the same event stored when it was at the church
    for column, value in data.items():
        setattr(stored, column, value)
    enrich_event(forget_derived_places(stored, data), SOURCE)
    assert (stored.place_id, stored.postal_code, stored.city, stored.latitude,
            stored.longitude) == (None, "33130", "Bègles", 44.807543, -0.547802)


def test_a_position_given_alone_keeps_the_derived_postal_code() -> None:
    """JSON-LD ``geo`` without ``address``: the position is the source's, the postal code is
    derived again from the LOCATION."""
    stored = _stored(CHURCH)
    stored.location = "Treuchtlingen, 91757 Treuchtlingen, Deutschland"
    stored.latitude, stored.longitude = 48.9556, 10.9086
    forget_derived_places(stored, {"location", "latitude", "longitude"})
    enrich_event(stored, SOURCE)
    assert (stored.postal_code, stored.city, stored.latitude, stored.longitude) == (
        "91757", "Treuchtlingen", 48.9556, 10.9086)


def test_place_columns_are_among_those_enrichment_reads_and_writes() -> None:
    """normalize.pipeline copies a child's enrichment when ENRICH_READS are equal."""
    assert set(PLACE_DERIVED) <= set(ENRICH_READS) & set(ENRICH_WRITES)


CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Test//Tissu//FR
BEGIN:VEVENT
UID:permanence-1@example.org
DTSTAMP:20261101T100000Z
DTSTART;TZID=Europe/Paris:20261205T100000
DTEND;TZID=Europe/Paris:20261205T120000
SUMMARY:Permanence
LOCATION:{location}
END:VEVENT
END:VCALENDAR
"""
T1 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def test_a_harvest_moves_the_postal_code_with_the_location(http_server, tmp_settings) -> None:
    def serve(location: str) -> None:
        body = CALENDAR.format(location=location).replace("\n", "\r\n").encode("utf-8")
        http_server.routes["/agenda.ics"] = Route(body=body,
                                                  headers={"Content-Type": "text/calendar"})

    entry = {"id": "asso", "name": "Agenda de l'asso", "format": "ical",
             "url": http_server.url("/agenda.ics"), "licence": "Licence Ouverte 2.0",
             "publisher": {"name": "Asso de Pantin", "type": "association"}}
    Path(tmp_settings.registry).write_text(yaml.safe_dump({"sources": [entry]}), "utf-8")
    specs = load_registry(tmp_settings.registry)
    engine = make_engine(tmp_settings.database_url)
    serve(CHURCH)
    harvest_all(engine, specs, tmp_settings, now=T1)
    serve("Treuchtlingen\\, 91757 Treuchtlingen\\, Deutschland")
    harvest_all(engine, specs, tmp_settings, now=T1 + dt.timedelta(hours=6))
    with Session(engine) as session:
        event = session.get(Event, "asso--permanence-1@example.org")
    assert event is not None and (event.location or "").startswith("Treuchtlingen")
    assert (event.place_id, event.postal_code, event.city, event.latitude) == (
        None, "91757", "Treuchtlingen", None)
