"""Extractors of normalize/extract.py, each with the real string that motivated it.

Strings quoted from corpus files name their file (tests/fixtures/themes/). No event of the
corpus mentions accessibility; those tests use constructed phrases and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normalize.extract import (
    detect_language,
    extract_accessibility,
    extract_details,
    extract_price,
    extract_publics,
    extract_registration,
    load_publics,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "themes"


def test_publics_codes_follow_datainclusion_list() -> None:
    reference = {p["value"] for p in json.loads((FIXTURES / "publics.json").read_text("utf-8"))}
    for code, entry in load_publics().items():
        assert (code in reference) == bool(entry["datainclusion"]), code


def test_publics_from_real_texts() -> None:
    # oa_withRegistrationLink.event.json
    assert extract_publics("La ville propose des ateliers sur les vacances d’avril, pour les "
                           "11-17ans.") == ["jeunes"]
    # toulouse CSV "AM STRAM GRAM"
    assert extract_publics("A partir de 3 ans Am stram gram sont les premiers mots") == [
        "enfants"]
    # aquitaine RSS "Salon de la Retraite"
    assert extract_publics("Les futurs retraités trouveront au salon des informations") == [
        "seniors"]
    # aquitaine RSS "Le printemps des vins à Berticot"
    assert "familles" in extract_publics("Parcours commenté pour toute la famille. Petits et "
                                         "grands partiront ensemble")


def test_price_lines_do_not_name_publics() -> None:
    # aquitaine RSS, Agora Boulazac: reduced prices list "demandeurs d'emploi" and ages.
    text = "Tarifs :\nplein tarif : 21€\ndemandeurs d’emploi, -26ans : 11€\n18ans : 7€"
    assert extract_publics(text) == []
    assert extract_publics("Tarif réduit pour les étudiants et demandeurs d'emploi.") == []
    assert extract_publics("Atelier CV pour les demandeurs d'emploi") == ["demandeurs-emploi"]


@pytest.mark.parametrize(("text", "gratuit", "price"), [
    # oa_begles.event.json
    ("t’accueille dans un cadre bienveillant, sans jugement, gratuit et anonyme.", True, None),
    # oa_visite-gratuite.event.json
    ("Gratuité du Muséum\n- Gratuité de 18h à minuit.", True, None),
    # aquitaine RSS, Stage de lithographie
    ("80€ le stage d’initiation, matériel compris, 6 tirages inclus", False, "80€"),
    # aquitaine RSS, Sortie champignons
    ("15h (2h) - 6€ /adultes et 3€/enfants - Sur réservation au 05 56 15 32 11", False, "6€"),
    # toulouse CSV, column "Tarif normal" of "11/11/11 A 11:11 ETONNANT, NON ?"
    ("De 6,00 € à 12,00 €", False, "De 6,00 € à 12,00 €"),
    ("Entrée : participation libre", None, "participation libre"),
    ("Opéra au cinéma : Carmen", None, None),
])
def test_price(text: str, gratuit: bool | None, price: str | None) -> None:
    result = extract_price(text)
    assert (result.gratuit, result.price) == (gratuit, price)


def test_registration_with_misspelt_word_and_mobile_number() -> None:
    # aquitaine RSS "Soirée irlandaise" (digits zeroed in the corpus, layout kept)
    result = extract_registration("Repas et soirée irlandaise. Rséervation obligatoire au "
                                  "06 00 00 00 00.")
    assert (result.required, result.phone, result.url) == (True, "06 00 00 00 00", None)


def test_registration_phone_with_dashes() -> None:
    # aquitaine RSS "Stage de lithographie"
    result = extract_registration("(logement en gîte possible sur place) – inscriptions au "
                                  "05-53-56-29-38.")
    assert (result.required, result.phone) == (True, "05 53 56 29 38")


def test_registration_link() -> None:
    # oa_withRegistrationLink.event.json
    text = ("Les places sont limitées, une inscription est nécessaire depuis le site de la "
            "Ville : [https://www.saintjeandebraye.fr/agenda](https://www.saintjeandebraye.fr)")
    result = extract_registration(text)
    assert result.required is True
    assert result.url == "https://www.saintjeandebraye.fr/agenda"


def test_registration_www_url_and_not_required() -> None:
    # aquitaine RSS (Réserve des Barthes)
    result = extract_registration("Réservation obligatoire sur le site Web (nombre limité de "
                                  "places) : www.jardin-des-barthes.fr")
    assert (result.required, result.url) == (True, "https://www.jardin-des-barthes.fr")
    # oa_bunkers.event.json
    assert extract_registration("Visite libre des bunkers de Pignerolle tout au long du "
                                "week-end sans réservation au préalable.").required is False
    # oa_begles: a contact number is not a booking number
    assert extract_registration("Pour plus d'information, n'hésite pas à nous contacter au "
                                "05.56.49.06.34").phone is None
    # "exclusivement réservé aux producteurs" (aquitaine RSS) is not a booking
    assert extract_registration("Le salon est exclusivement réservé aux producteurs, "
                                "viticulteurs et artisans.").required is None


def test_accessibility_constructed_phrases() -> None:
    # Constructed: no corpus event mentions accessibility.
    text = ("Salle accessible aux personnes à mobilité réduite. Spectacle traduit en LSF, "
            "boucle magnétique à l'accueil, programme en FALC.")
    assert extract_accessibility(text) == ["motor", "hearing", "sign-language", "easy-read"]
    assert extract_accessibility("Visite en audiodescription pour les personnes malvoyantes") \
        == ["visual"]
    assert extract_accessibility("Concert de l'Harmonie du Cap de Gascogne") == []


def test_language_explicit_mention_and_detection() -> None:
    # toulouse CSV "HOW GEOGRAPHY SHAPED HISTORY": French text, English talk.
    assert detect_language("Par Walter Scheidel, Historien de l'Université de Stanford. "
                           "En anglais.") == "en"
    # oa_albi_events.json
    assert detect_language("Près d’une quarantaine de brocanteurs sont présents sous la halle "
                           "du Castelvieil.") == "fr"
    # fablab_cottbus.ics
    assert detect_language("Wir unterstützen das Repair Café der Stadt Cottbus. Seid auch ihr "
                           "dabei und repariert mit uns") == "de"
    assert detect_language("Finance Meeting") is None


def test_extract_details_combines_everything() -> None:
    details = extract_details("Sortie champignons", "15h (2h) - 6€ /adultes et 3€/enfants - "
                              "Sur réservation au 05 56 15 32 11")
    assert details.price.price == "6€" and details.registration.phone == "05 56 15 32 11"
    assert details.language == "fr"


def test_registered_heritage_is_not_a_registration() -> None:
    # aquitaine RSS: "s’inscrit dans la grande tradition du théâtre britannique"
    assert extract_registration("Mike Bartlett s’inscrit dans la grande tradition du théâtre "
                                "britannique").required is None
    assert extract_registration("Monument inscrit sur la liste du patrimoine").required is None
