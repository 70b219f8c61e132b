"""Places, quartiers and geocoders (normalize/places.py, normalize/geocode.py).

Every fact of data/places.yaml and data/quartiers.yaml must be written on the public page it
cites: tests/fixtures/places/cited_pages.yaml holds the lines of those pages that state them
(provenance in tests/fixtures/PROVENANCE.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

from normalize.geocode import (
    BANGeocoder,
    OfflineGeocoder,
    geocode_unknown_location,
    make_geocoder,
)
from normalize.places import (
    QUARTIERS_FILE,
    load_places,
    load_streets,
    match_place,
    parse_location,
    place_gaps,
    place_key,
    resolve_location,
    sync_places,
)
from schemas.models import Event, Place, Source
from schemas.store import make_engine
from tests.conftest import Route

FIXTURE = Path(__file__).parent / "fixtures" / "places" / "cited_pages.yaml"
CITED = {p["url"]: p["text"] for p in yaml.safe_load(FIXTURE.read_text("utf-8"))["pages"]}
QUARTIER_NAMES = {q["name"] for q in
                  yaml.safe_load(QUARTIERS_FILE.read_text("utf-8"))["quartiers"]}


def _dms(degrees: str, minutes: str, seconds: str) -> float:
    return int(degrees) + int(minutes) / 60 + int(seconds) / 3600


def _positions(text: str) -> list[tuple[float, float]]:
    """Every (lat, lon) written on a page: decimal pairs and degree-minute-second pairs."""
    found = [(float(a), float(b)) for a, b in re.findall(r"(4\d\.\d{3,}),\s*(2\.\d{3,})", text)]
    dms = re.findall(r"(\d+)°\s*(\d+)′\s*(\d+)″\s*N,?\s*(\d+)°\s*(\d+)′\s*(\d+)″\s*E", text)
    found += [(_dms(*m[:3]), _dms(*m[3:])) for m in dms]
    return found


def test_registry_files_load_and_are_consistent() -> None:
    places = load_places()
    assert len(places) == 25
    assert len({p.id for p in places}) == len(places)
    for place in places:
        assert place.quartier is None or place.quartier in QUARTIER_NAMES, place.id
        assert place.quartier is None or place.quartier_source, place.id  # no uncited quartier
        assert not place.verified or (place.source and place.address), place.id
        assert (place.lat is None) == (place.coordinates_source is None), place.id
        assert place.coordinates_verified == (place.lat is not None)
    streets = load_streets()
    assert set(streets.values()) <= QUARTIER_NAMES | {None}


def test_every_cited_address_is_written_on_its_cited_page() -> None:
    checked = 0
    for place in load_places():
        if not place.verified:
            continue
        assert place.source in CITED, f"{place.id} : page {place.source} absente de la fixture"
        assert f" {place_key(place.address)} " in f" {place_key(CITED[place.source])} ", place.id
        checked += 1
    assert checked == 14  # venues whose address a cited page gives


def test_every_cited_position_is_written_on_its_cited_page() -> None:
    positioned = [p for p in load_places() if p.lat is not None]
    assert {p.id for p in positioned} == {"gare-de-pantin", "eglise-saint-germain-pantin"}
    for place in positioned:
        written = _positions(CITED[place.coordinates_source])
        assert any(abs(place.lat - lat) < 1e-5 and abs(place.lon - lon) < 1e-5
                   for lat, lon in written), (place.id, written)


def test_every_cited_quartier_is_written_on_its_cited_page() -> None:
    with_quartier = [p for p in load_places() if p.quartier]
    assert len(with_quartier) == 8
    for place in with_quartier:
        assert place_key(place.quartier) in place_key(CITED[place.quartier_source]), place.id


def test_cited_streets_are_written_on_their_page() -> None:
    document = yaml.safe_load(QUARTIERS_FILE.read_text("utf-8"))
    cited = [s for s in document["streets"] if s.get("verified")]
    assert len(cited) == 6
    for street in cited:
        name = place_key(street["street"]).split(maxsplit=1)[1]  # without rue / allée…
        assert name in place_key(CITED[street["source"]]), street["street"]
    # Only the Serpentin is tied to a quartier; boundary streets of the Quatre-Chemins are not.
    assert load_streets()[place_key("allée du Serpentin")] == "Courtillières"
    assert load_streets()[place_key("rue Lapérouse")] is None


def test_cited_values() -> None:
    places = {p.id: p for p in load_places()}
    # patrimoine.ville-pantin.fr: hôtel de ville at 45, services at the centre administratif 84-88.
    assert places["mairie-pantin"].address == "45 avenue du Général-Leclerc"
    assert places["centre-administratif-pantin"].address == "84-88 avenue du Général-Leclerc"
    assert places["piscine-alice-milliat"].address == "49 avenue du Général-Leclerc"
    # fr.wikipedia.org/wiki/Gare_de_Pantin: 48.89789, 2.400438.
    assert (places["gare-de-pantin"].lat, places["gare-de-pantin"].lon) == (48.89789, 2.400438)
    # No number cited for the Ciné 104 nor La Dynamo: no address at all.
    assert places["cine-104"].address is None and places["la-dynamo"].address is None


@pytest.mark.parametrize(("location", "place_id", "quartier"), [
    # LOCATION strings as public agendas write them (tests/fixtures/places/cited_pages.yaml).
    ("Les Magasins Généraux 1 rue de l'Ancien Canal, 93500, Pantin", "magasins-generaux",
     "Église"),
    ("Théâtre du Fil de l'Eau 20 Rue Delizy, 93500 Pantin", "theatre-du-fil-de-l-eau", None),
    ("Théâtre du Fil de l’eau, 20, rue Delizy", "theatre-du-fil-de-l-eau", None),
    ("CMS TÉNINE, 7, avenue des Courtillières", "centre-municipal-de-sante-tenine",
     "Courtillières"),
    ("La Maison de santé pantinoise (4, rue des Grilles)", "maison-de-sante-pantinoise", None),
    ("centre Au fil de l’eau (7, rue du Débarcadère)", "centre-de-sante-au-fil-de-l-eau", None),
    ("maison de quartier des Courtillières", "maison-de-quartier-courtillieres", "Courtillières"),
    ("bibliothèque Romain-Rolland", "bibliotheque-romain-rolland", "Courtillières"),
    ("CMS des Quatre-Chemins", "centre-municipal-de-sante-quatre-chemins", "Quatre-Chemins"),
    ("Piscine Leclerc", "piscine-alice-milliat", None),
    # Address only: the cited address finds the venue.
    ("49 avenue du Général-Leclerc, 93500 Pantin", "piscine-alice-milliat", None),
    ("18 rue Ste-Marguerite 93500 Pantin", "centre-municipal-de-sante-sainte-marguerite",
     "Quatre-Chemins"),
])
def test_public_location_strings_find_venue_and_quartier(location: str, place_id: str,
                                                         quartier: str | None) -> None:
    where = resolve_location(location)
    assert (where.place_id, where.quartier, where.postal_code) == (place_id, quartier, "93500")


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


def test_one_maison_de_quartier_for_haut_and_petit_pantin() -> None:
    # pantin.fr (Canal n°312) names one « maison de quartier du Haut-et-Petit-Pantin ».
    assert match_place("MQ du Petit-Pantin")[0].id == "maison-de-quartier-haut-et-petit-pantin"
    assert match_place("Maison de quartier du Haut-Pantin")[0].id == (
        "maison-de-quartier-haut-et-petit-pantin")


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


def test_quartier_from_street_only_when_cited() -> None:
    street = resolve_location("3 allée du Serpentin, 93500 Pantin")
    assert (street.place_id, street.quartier, street.quartier_from, street.address) == (
        None, "Courtillières", "street", "3 allée du Serpentin")
    # Same street name elsewhere: no Pantin quartier.
    assert resolve_location("3 allée du Serpentin 75019 Paris").quartier is None
    # A boundary street, a long street, a street whose old quartier had no source: no quartier.
    for location in ("12 rue Lapérouse 93500 Pantin", "40 avenue Jean-Lolive 93500 Pantin",
                     "12 rue Berthier, 93500 Pantin"):
        where = resolve_location(location)
        assert where.quartier is None and where.notes, location


def test_sync_places_writes_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with Session(engine) as session:
        assert sync_places(session) == len(load_places())
        assert sync_places(session) == len(load_places())  # idempotent
        rows = {r.id: r for r in session.exec(select(Place)).all()}
    assert len(rows) == len(load_places())
    gare = rows["gare-de-pantin"]
    assert (gare.latitude, gare.longitude, gare.coordinates_verified) == (48.89789, 2.400438, True)
    assert "fr.wikipedia.org/wiki/Gare_de_Pantin" in gare.source_note
    cine = rows["cine-104"]
    assert (cine.latitude, cine.coordinates_verified) == (None, False)
    assert "aucune source" in cine.source_note


def test_place_gaps_lists_what_the_city_should_complete() -> None:
    gaps = {g.id: g.missing for g in place_gaps()}
    assert gaps["ccas-pantin"] == ("adresse", "position", "quartier")
    assert gaps["gare-de-pantin"] == ("quartier",)
    assert gaps["centre-municipal-de-sante-quatre-chemins"] == ("position",)
    assert len(gaps) == len(load_places())  # no venue has all three facts cited yet


def test_places_check_command() -> None:
    from typer.testing import CliRunner

    from tissu.cli import app

    result = CliRunner().invoke(app, ["places", "check"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "25 lieu(x) sur 25 à compléter" in result.output
    assert "(ccas-pantin)" in result.output and "adresse, position, quartier" in result.output


def test_offline_geocoder_gives_cited_positions_only() -> None:
    geocoder = OfflineGeocoder()
    found = geocoder.geocode("Gare de Pantin")
    assert found is not None
    assert (found.latitude, found.longitude, found.precision) == (48.89789, 2.400438, "venue")
    assert geocoder.geocode("Ciné 104") is None  # known venue, no cited position
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


def _ban_route(answer: dict[str, object] = BAN_ANSWER) -> Route:
    return Route(body=json.dumps(answer).encode(), headers={"Content-Type": "application/json"})


def test_ban_geocoder_reads_answer_and_caches(http_server, tmp_path: Path) -> None:
    http_server.routes["/search/"] = _ban_route()
    cache = tmp_path / "ban.json"
    geocoder = BANGeocoder(http_server.base, cache_path=cache)
    found = geocoder.geocode("104 avenue Jean-Lolive", postal_code="93500")
    assert found is not None
    assert (found.latitude, found.longitude, found.citycode, found.precision) == (
        48.891952, 2.404071, "93055", "housenumber")
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


def test_ban_geocoder_stops_asking_after_repeated_failures(http_server) -> None:
    http_server.routes["/search/"] = Route(body=b"", status=503)
    geocoder = BANGeocoder(http_server.base, max_failures=3)
    for number in range(5):
        assert geocoder.geocode(f"{number} rue Hoche") is None
    assert http_server.hits["/search/"] == 3  # an unreachable BAN cannot slow a harvest
    geocoder.pause = 0.0  # the pause is over: one probe, which succeeds
    http_server.routes["/search/"] = _ban_route()
    assert geocoder.geocode("104 avenue Jean-Lolive") is not None
    assert (http_server.hits["/search/"], geocoder.failures) == (4, 0)


def test_make_geocoder_follows_the_setting(tmp_settings) -> None:
    assert isinstance(make_geocoder(tmp_settings), OfflineGeocoder)  # default
    ban = make_geocoder(replace(tmp_settings, geocoder="ban", ban_url="http://127.0.0.1:9"))
    assert isinstance(ban, BANGeocoder) and ban.base_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="TISSU_GEOCODER doit valoir offline ou ban"):
        make_geocoder(replace(tmp_settings, geocoder="google"))


def test_unknown_location_goes_to_the_ban_only_when_asked(http_server, tmp_settings,
                                                          tmp_path: Path) -> None:
    serpentin = dict(BAN_ANSWER, features=[dict(
        BAN_ANSWER["features"][0], geometry={"type": "Point", "coordinates": [2.4131, 48.9105]},
        properties=dict(BAN_ANSWER["features"][0]["properties"],
                        label="3 Allée du Serpentin 93500 Pantin"))])
    http_server.routes["/search/"] = _ban_route(serpentin)
    # Default (offline): nothing is sent.
    assert geocode_unknown_location("3 allée du Serpentin, 93500 Pantin",
                                    settings=tmp_settings) is None
    assert http_server.hits.get("/search/") is None
    ban = replace(tmp_settings, geocoder="ban", ban_url=http_server.base,
                  geocode_cache=tmp_path / "geocode.json")
    found = geocode_unknown_location("Permanence, 3 allée du Serpentin, 93500 Pantin",
                                     settings=ban)
    assert found is not None
    assert (found.latitude, found.longitude, found.postal_code, found.quartier) == (
        48.9105, 2.4131, "93500", "Courtillières")
    # Only the street address was asked, with the postal code (the cache key says so).
    cached = json.loads((tmp_path / "geocode.json").read_text("utf-8"))
    assert list(cached) == ["3 allee du serpentin|93500"]
    # A LOCATION without a street is never sent; an unknown setting is treated as offline.
    assert geocode_unknown_location("Salle des fêtes", settings=ban) is None
    assert geocode_unknown_location("3 allée du Serpentin 93500 Pantin",
                                    settings=replace(ban, geocoder="google")) is None
    assert http_server.hits["/search/"] == 1


def test_enrichment_uses_the_ban_for_unknown_places(http_server, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from normalize.enrich import enrich_event

    http_server.routes["/search/"] = _ban_route()
    source = Source(id="asso", name="asso", publisher_name="Asso", publisher_type="association",
                    format="ical", url="https://example.org/a.ics", licence="CC0")
    event = Event(id="asso--1", source_id="asso", source_uid="1", title="Permanence",
                  location="Local associatif, 104 avenue Jean-Lolive, 93500 Pantin")
    enrich_event(event, source)  # offline by default: no position, no request
    assert event.latitude is None and not http_server.hits
    monkeypatch.setenv("TISSU_GEOCODER", "ban")
    monkeypatch.setenv("TISSU_BAN_URL", http_server.base)
    monkeypatch.setenv("TISSU_GEOCODE_CACHE", str(tmp_path / "cache.json"))
    enrich_event(event, source)
    assert (event.latitude, event.longitude, event.postal_code, event.city) == (
        48.891952, 2.404071, "93500", "Pantin")
    assert event.quartier is None  # avenue Jean-Lolive crosses quartiers
    # A known venue keeps the registry's facts and never asks the BAN.
    known = Event(id="asso--2", source_id="asso", source_uid="2", title="Visite",
                  location="Église Saint-Germain-l'Auxerrois")
    enrich_event(known, source)
    assert (known.place_id, known.latitude) == ("eglise-saint-germain-pantin", 48.892778)
    assert http_server.hits["/search/"] == 1


def test_changing_the_geocoder_renormalises_sources(tmp_settings) -> None:
    from tissu.pipeline import normalisation_key

    source = Source(id="asso", name="asso", publisher_name="Asso", publisher_type="association",
                    format="ical", url="https://example.org/a.ics", licence="CC0")
    offline = normalisation_key(source, tmp_settings)
    assert normalisation_key(source, tmp_settings) == offline
    assert normalisation_key(source, replace(tmp_settings, geocoder="ban")) != offline


def test_parse_location_abbreviated_street_types():
    # « r. », « bd. », « imp. » as people write them (W5 met « 22 r. Cartier-Bresson »).
    parsed = parse_location("MQ du Petit-Pantin, 22 r. Cartier-Bresson")
    assert (parsed.name, parsed.street_number, parsed.street) == (
        "MQ du Petit-Pantin", "22", "r. Cartier-Bresson")
    assert place_key(parsed.street) == place_key("rue Cartier-Bresson")
    parsed = parse_location("Jardin partagé, 4 imp. des Lilas 93500 Pantin")
    assert (parsed.street_number, parsed.street, parsed.postal_code) == ("4", "imp. des Lilas",
                                                                          "93500")


def test_parse_location_street_type_inside_a_word_is_not_a_street():
    # « Grue 3 » is a room name, not « rue 3 ».
    parsed = parse_location("Salle Grue 3, 12 bd. Jean-Jaurès 93500 Pantin")
    assert (parsed.name, parsed.street_number, parsed.street) == (
        "Salle Grue 3", "12", "bd. Jean-Jaurès")
