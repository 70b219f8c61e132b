"""Places, quartiers and geocoders (normalize/places.py, normalize/geocode.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from normalize.geocode import BANGeocoder, OfflineGeocoder
from normalize.places import (
    load_places,
    load_streets,
    match_place,
    parse_location,
    place_key,
    resolve_location,
    sync_places,
)
from schemas.models import Place
from schemas.store import make_engine
from tests.conftest import Route


def test_registry_files_load_and_are_consistent() -> None:
    places = load_places()
    assert len(places) >= 15
    streets = load_streets()
    quartiers = {q for q in streets.values() if q}
    for place in places:
        assert place.quartier is None or place.quartier in quartiers | {"Église", "Haut-Pantin",
                                                                        "Mairie-Hoche"}
        # An address is only "verified" with the URL of the page that states it.
        assert not place.verified or (place.source and place.address)
        assert place.coordinates_verified is False  # no position was checked against the BAN
        if place.lat is not None:
            assert 48.88 < place.lat < 48.92 and 2.38 < place.lon < 2.43  # inside Pantin


def test_registry_holds_the_cited_addresses() -> None:
    places = {p.id: p for p in load_places()}
    # patrimoine.ville-pantin.fr: hôtel de ville at 45, services at the centre administratif 84-88.
    assert places["mairie-pantin"].address == "45 avenue du Général-Leclerc"
    assert places["centre-administratif-pantin"].address == "84-88 avenue du Général-Leclerc"
    # pantin.fr (Canal n°312): one maison de quartier for Haut- and Petit-Pantin.
    assert match_place("MQ du Petit-Pantin")[0].id == "maison-de-quartier-haut-et-petit-pantin"
    assert match_place("Maison de quartier du Haut-Pantin")[0].id == (
        "maison-de-quartier-haut-et-petit-pantin")
    assert resolve_location("CMS Ténine, Pantin").address == "7 avenue des Courtillières"


def test_place_key_expands_abbreviations_and_ignores_small_words() -> None:
    assert place_key("MQ des 4-Chemins") == "maison quartier quatre chemins"
    assert place_key("Maison de quartier des Quatre Chemins") == "maison quartier quatre chemins"
    assert place_key("Médiathèque Elsa-Triolet") == place_key("bibliothèque elsa triolet")


@pytest.mark.parametrize("text", [
    "MQ des Quatre-Chemins", "Maison de Quartier des 4 Chemins", "maison de quartier quatre chemins",
    "Quatre-Chemins, maison de quartier", "MAISON DE QUARTIER DES QUATRE-CHEMINS",
    "Maison de quartier des Quatre-Chemin",
])
def test_spellings_of_one_venue(text: str) -> None:
    found = match_place(text)
    assert found is not None and found[0].id == "maison-de-quartier-quatre-chemins"


def test_other_venues_do_not_match() -> None:
    # Real LOCATIONs from the corpus (Albi, Chicago): not Pantin venues.
    assert match_place("Halle du Castelvieil") is None
    assert match_place("Chicago Low-Income Housing Trust Fund office") is None
    assert match_place("Maison de quartier des Courtillières")[0].id != (
        "maison-de-quartier-quatre-chemins")


def test_parse_location_postal_code_city_street() -> None:
    parsed = parse_location("Maison de quartier des Courtillières, 12 av. du Général-Leclerc "
                            "93500 Pantin")
    assert (parsed.name, parsed.street_number, parsed.street, parsed.postal_code, parsed.city) == (
        "Maison de quartier des Courtillières", "12", "av. du Général-Leclerc", "93500", "Pantin")
    # Toulouse CSV style address (columns joined): "23 rue des Potiers 31000 TOULOUSE"
    parsed = parse_location("THEATRE DU GRAND ROND, 23 rue des Potiers, 31000 TOULOUSE")
    assert (parsed.name, parsed.street, parsed.postal_code, parsed.city) == (
        "THEATRE DU GRAND ROND", "rue des Potiers", "31000", "Toulouse")


def test_single_word_aliases_need_pantin() -> None:
    assert resolve_location("Mairie").place_id is None
    assert resolve_location("Mairie", default_city="Pantin").place_id == "mairie-pantin"
    assert resolve_location("Mairie, 93500 Pantin").place_id == "mairie-pantin"
    assert resolve_location("Mairie de Bobigny").place_id is None


def test_resolution_brings_quartier_from_place_or_street() -> None:
    venue = resolve_location("Ciné 104, 104 avenue Jean-Lolive, Pantin")
    assert (venue.place_id, venue.quartier, venue.quartier_from, venue.postal_code) == (
        "cine-104", "Église", "place", "93500")
    street = resolve_location("12 rue Berthier, 93500 Pantin")
    assert (street.place_id, street.quartier, street.quartier_from, street.address) == (
        None, "Quatre-Chemins", "street", "12 rue Berthier")
    # Same street name elsewhere: no Pantin quartier.
    assert resolve_location("3 rue Victor Hugo 75016 Paris").quartier is None
    # A street crossing quartiers stays without quartier, with a note.
    long_street = resolve_location("40 avenue Jean-Lolive 93500 Pantin")
    assert long_street.quartier is None and long_street.notes


def test_sync_places_writes_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with Session(engine) as session:
        assert sync_places(session) == len(load_places())
        assert sync_places(session) == len(load_places())  # idempotent
        rows = session.exec(select(Place)).all()
    assert len(rows) == len(load_places())
    assert all(r.coordinates_verified is False for r in rows)


def test_offline_geocoder_knows_venues_only() -> None:
    geocoder = OfflineGeocoder()
    found = geocoder.geocode("104 avenue Jean-Lolive")
    assert found is not None and found.precision == "venue"
    assert geocoder.geocode("17 rue Inconnue") is None


BAN_ANSWER = {
    "type": "FeatureCollection", "version": "draft",
    "features": [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [2.404071, 48.891952]},
        "properties": {"label": "104 Avenue Jean Lolive 93500 Pantin", "score": 0.97,
                       "housenumber": "104", "postcode": "93500", "citycode": "93055",
                       "city": "Pantin", "type": "housenumber"},
    }],
    "query": "104 avenue Jean-Lolive",
}


def test_ban_geocoder_reads_answer_and_caches(http_server, tmp_path: Path) -> None:
    http_server.routes["/search/"] = Route(body=json.dumps(BAN_ANSWER).encode(),
                                           headers={"Content-Type": "application/json"})
    cache = tmp_path / "ban.json"
    geocoder = BANGeocoder(http_server.base, cache_path=cache)
    found = geocoder.geocode("104 avenue Jean-Lolive", postal_code="93500")
    assert found is not None
    assert (found.latitude, found.longitude, found.citycode, found.precision) == (
        48.891952, 2.404071, "93055", "housenumber")
    assert "postcode" in http_server.requests[0]["path"] or http_server.hits["/search/"] == 1
    again = BANGeocoder(http_server.base, cache_path=cache).geocode(
        "104 Avenue Jean Lolive", postal_code="93500")
    assert again == found
    assert http_server.hits["/search/"] == 1  # second answer came from the cache file


def test_ban_geocoder_low_score_empty_and_errors(http_server) -> None:
    low = dict(BAN_ANSWER, features=[dict(BAN_ANSWER["features"][0])])
    low["features"][0] = dict(low["features"][0], properties={"score": 0.3, "type": "street"})
    http_server.routes["/search/"] = Route(body=json.dumps(low).encode())
    assert BANGeocoder(http_server.base).geocode("quelque part") is None
    http_server.routes["/search/"] = Route(body=b'{"features": []}')
    assert BANGeocoder(http_server.base).geocode("nulle part") is None
    http_server.routes["/search/"] = Route(body=b"<html>oops", status=200)
    geocoder = BANGeocoder(http_server.base)
    assert geocoder.geocode("rue cassée") is None
    http_server.routes["/search/"] = Route(body=b"", status=503)
    assert geocoder.geocode("rue cassée") is None
    assert geocoder.requests == 2  # errors are not cached: asked again
    http_server.routes["/search/"] = Route(body=b"x" * 1_100_000)
    assert BANGeocoder(http_server.base).geocode("trop gros") is None
