"""data.inclusion connector and directory normalisation: every corpus file, values checked by hand.

Fixtures: tests/fixtures/datainclusion/ (provenance in tests/fixtures/PROVENANCE.md). The two
``di_api_response_*_subset`` files are the first items of real API pages (schema v0 fields) whose
envelopes announce more pages; ``les-emplois_mock_structures`` is a v1 page with an all-null and an
all-empty-string record; ``les-emplois_mock_sources`` is a ``/sources`` listing.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import yaml
from sqlmodel import Session, select

from connectors.datainclusion import parse_datainclusion, prefixed_id
from normalize.directory import check_opening_hours, service_columns, structure_columns
from schemas.models import Organisation, Service
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, Route
from tissu.pipeline import harvest_all

DI = FIXTURES / "datainclusion"
NOW = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
ACTION_LOGEMENT = "datainclusion--action-logement--005d3060-c322-4ec5-bd70-a60f054d3b81"


def parse(name: str):
    return parse_datainclusion((DI / name).read_bytes(), "di")


def items(name: str) -> dict[str, dict]:
    return {r.uid: json.loads(r.payload) for r in parse(name).records}


def test_structures_page_v0():
    result = parse("di_api_response_structures_subset.json")
    assert result.errors == []
    assert len(result.records) == 16 and {r.kind for r in result.records} == {"structure"}
    assert not result.complete  # page 1 of 5: absent structures must not be marked removed
    assert "16 éléments lus sur 2021" in str(result.warnings[0])
    found = items("di_api_response_structures_subset.json")
    warnings: list[str] = []
    agency = structure_columns("di", found["structure--action-logement--005d3060-c322-4ec5-bd70"
                                           "-a60f054d3b81"], warnings)
    assert agency["id"] == ACTION_LOGEMENT
    assert agency["name"] == "AGENCE ACTION LOGEMENT"
    assert agency["siret"] == "82454114801871" and agency["rna"] is None
    assert agency["opening_hours"] == "Mo-Fr 09:00-18:00" and agency["opening_hours_valid"]
    assert (agency["postal_code"], agency["city"], agency["insee_code"]) == (
        "75012", "Paris", "75056")
    assert (agency["latitude"], agency["longitude"]) == (48.847047, 2.403254)
    assert json.loads(agency["networks"]) == ["action-logement"]
    assert agency["schema_version"] == "v0" and agency["date_maj"] == dt.date(2024, 1, 10)
    assert agency["contact_phone"] == "09 70 80 08 00"
    tarification = structure_columns("di", found["structure--cd35--1018"], warnings)
    assert tarification["id"] == "datainclusion--cd35--1018"
    # Free text, not OSM syntax: kept as given, flagged.
    assert tarification["opening_hours"] == (
        "lundi au vendredi 9h-11h45/14h-16h30 (16h le vendredi).")
    assert tarification["opening_hours_valid"] is False
    assert "\r" not in tarification["description"]
    assert "le plus tôt possible.\n\nL'assuré doit" in tarification["description"]
    assert structure_columns("di", found["structure--cd35--108"], warnings)[
        "opening_hours_valid"] is None  # no hours at all
    assert warnings == []


def test_services_page_v0_with_control_characters_and_off_list_codes():
    result = parse("di_api_response_services_subset.json")
    assert len(result.records) == 6 and {r.kind for r in result.records} == {"service"}
    assert not result.complete
    found = list(items("di_api_response_services_subset.json").values())
    warnings: list[str] = []
    rows = [service_columns("di", item, warnings) for item in found]
    assert {r["organisation_id"] for r in rows} == {ACTION_LOGEMENT}
    visale = rows[0]
    assert visale["name"] == "Garantie Visale"
    assert json.loads(visale["types"]) == ["aide-financiere"]
    assert json.loads(visale["frais"]) == ["gratuit"]  # v0 list
    assert json.loads(visale["modes_accueil"]) == ["a-distance", "en-presentiel"]
    assert json.loads(visale["publics"]) == ["locataires", "salaries", "jeunes"]
    unknown = json.loads(visale["unknown_codes"])
    assert unknown["publics"] == ["locataires", "salaries"]  # v0 profils, not v1 publics
    assert len(unknown["thematiques"]) == 3
    assert visale["mobilisation_url"] == "https://www.visale.fr/"
    assert visale["zone"] == '["75"]'
    assert visale["schema_version"] == "v0"
    travaux = rows[1]  # "finan\u0002cer" inside a word: the control character goes, not a space
    assert "\x02" not in travaux["description"]
    assert "possibilité de financer l’achat de matériaux" in travaux["description"]
    assert json.loads(travaux["unknown_codes"])["types"] == ["financement"]
    assert len([w for w in warnings if "hors référentiel" in w]) == 6


def test_v1_mock_with_null_and_empty_string_records():
    result = parse("les-emplois_mock_structures.json")
    assert result.complete and result.errors == []
    assert [r.uid for r in result.records][:2] == [
        "structure--emplois-de-linclusion--null", "structure--emplois-de-linclusion--empty"]
    found = items("les-emplois_mock_structures.json")
    warnings: list[str] = []
    null = structure_columns("di", found["structure--emplois-de-linclusion--null"], warnings)
    assert null["name"] == "Nom de la structure 'emplois-de-linclusion--null'"
    assert null["siret"] is None and null["address"] is None and null["latitude"] is None
    empty = structure_columns("di", found["structure--emplois-de-linclusion--empty"], warnings)
    assert empty["name"] == "(structure sans nom)"
    assert all(empty[k] is None for k in ("siret", "address", "postal_code", "city", "website",
                                          "opening_hours", "contact_email", "description"))
    assert (empty["latitude"], empty["longitude"]) == (None, None)  # 0.0, 0.0 is "no position"
    assert empty["networks"] == "[]"
    dora = structure_columns("di", found["structure--dora--cc4e1fbc-533b-46e2-8b33-bc31c33c9ffd"],
                             warnings)
    assert dora["siret"] == "13003013300016" and dora["schema_version"] == "v1"
    assert dora["opening_hours"] == "Mo-Fr 09:00-12:00,14:00-17:00"
    assert dora["opening_hours_valid"] is True
    assert dora["contact_email"] == "test@email.com"  # PRIVATE column, never published
    blacklisted = structure_columns("di", found["structure--dora--blacklisted-siren-structure"],
                                    warnings)
    assert blacklisted["siret"] is None  # 13 digits
    assert json.loads(structure_columns(
        "di", found["structure--mission-locale--with-mobilization-link"], warnings)[
        "networks"]) == ["mission-locale"]
    assert warnings == [
        "structure emplois-de-linclusion--empty : sans nom",
        ("structure dora--blacklisted-siren-structure : SIRET invalide '7793112240000' "
         "(14 chiffres attendus) : ignoré"),
    ]


def test_sources_listing_is_reported_as_holding_no_directory_record():
    result = parse("les-emplois_mock_sources.json")
    assert result.records == []
    assert [e.code for e in result.errors] == ["producers"]
    assert "liste de 15 producteurs" in str(result.errors[0])


def test_ids_codes_and_opening_hours_rules():
    assert prefixed_id("cd35", 1018) == "cd35--1018"
    assert prefixed_id("dora", "dora--42") == "dora--42"
    assert check_opening_hours("Mo-Fr 09:00-12:00,14:00-17:00; PH off") is True
    assert check_opening_hours("lundi au vendredi 9h-17h") is False
    assert check_opening_hours(None) is None
    # A code with a space inside (seen in the full v0 API answer) is flagged, not kept.
    warnings: list[str] = []
    row = service_columns("di", {
        "id": "x", "structure_id": "s", "source": "action-logement", "nom": "Aide",
        "thematiques": ["difficultes-financieres--etre-accompagne-en cas-de-difficultes",
                        "sante--acces-aux-soins"],
        "frais": "payant", "type": "atelier", "publics": ["seniors"],
        "horaires_accueil": "Tu 14:00-17:00", "description": "Atelier du mardi après-midi",
    }, warnings)
    assert json.loads(row["thematiques"]) == ["sante--acces-aux-soins"]
    assert json.loads(row["unknown_codes"]) == {
        "thematiques": ["difficultes-financieres--etre-accompagne-en cas-de-difficultes"]}
    assert (row["frais"], row["types"], row["publics"]) == ('["payant"]', '["atelier"]',
                                                            '["seniors"]')
    assert row["schema_version"] == "v1" and row["opening_hours_valid"] is True


def test_structures_and_services_sources_link_through_the_store(http_server, tmp_settings):
    for name in ("di_api_response_structures_subset.json", "di_api_response_services_subset.json"):
        http_server.routes[f"/{name}"] = Route(body=(DI / name).read_bytes())
    Path(tmp_settings.registry).write_text(yaml.safe_dump({"sources": [
        {"id": f"di-{kind}", "name": f"data.inclusion {kind}", "format": "datainclusion",
         "url": http_server.url(f"/di_api_response_{kind}_subset.json"),
         "licence": "Licence Ouverte 2.0",
         "publisher": {"name": "GIP Plateforme de l'inclusion", "type": "etablissement-public"}}
        for kind in ("structures", "services")]}), encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    summaries = harvest_all(engine, load_registry(tmp_settings.registry), tmp_settings, now=NOW)
    assert [(s.source_id, s.status, s.records) for s in summaries] == [
        ("di-structures", "ok", 16), ("di-services", "ok", 6)]
    with Session(engine) as session:
        services = session.exec(select(Service).order_by(Service.id)).all()
        assert len(services) == 6
        agency = session.get(Organisation, services[0].organisation_id)
        assert agency.name == "AGENCE ACTION LOGEMENT" and agency.source_id == "di-structures"
        assert len(session.exec(select(Organisation).where(
            Organisation.source_id == "di-structures")).all()) == 16
    from publish.build import build_database

    database = build_database(engine, tmp_settings.publish_dir)
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM services").fetchone() == (6,)
        columns = {row[1] for table in ("services", "organisations")
                   for row in connection.execute(f"PRAGMA table_info({table})")}
        assert "contact_email" not in columns and "contact_phone" not in columns
        dump = "\n".join(connection.iterdump())
    assert "09 70 80 08 00" not in dump  # the phone number stays in the working store
