from pathlib import Path

import pytest

from schemas.registry import RegistryError, load_registry

ROOT = Path(__file__).resolve().parent.parent

VALID = """
sources:
  - id: secours-pantin
    name: Agenda du Secours
    publisher: {name: Secours populaire Pantin, type: association, website: https://example.org}
    format: ical
    url: https://example.org/agenda.ics
    licence: Licence Ouverte 2.0
    themes: [alimentation]
    quartier: Quatre-Chemins
    refresh: 6h
  - id: local-file
    name: Fichier local
    publisher: {name: Mairie, type: service-municipal}
    format: rss
    url: samples/x.xml
    licence: CC-BY
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_registry_is_valid_and_points_at_real_files():
    specs = load_registry(ROOT / "data" / "sources.yaml")
    assert len(specs) >= 5
    formats = [s.format for s in specs]
    assert formats.count("ical") >= 3 and "rss" in formats
    for spec in specs:
        assert Path(spec.url).is_file(), spec.url


def test_valid_registry_resolves_relative_paths(tmp_path):
    specs = load_registry(write(tmp_path, VALID))
    assert specs[0].refresh_seconds == 6 * 3600
    assert specs[0].status == "active"
    assert specs[1].url == str((tmp_path / "samples" / "x.xml").resolve())


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("type: association", "type: club", "entrée n°1 (id='secours-pantin') : champ 'publisher.type'"),
        ("format: rss", "format: pdf", "entrée n°2 (id='local-file') : champ 'format'"),
        ("format: rss", "format: pdf", "valeurs possibles"),
        ("id: secours-pantin", "id: Secours Pantin", "champ 'id'"),
        ("refresh: 6h", "refresh: souvent", "champ 'refresh'"),
        ("url: https://example.org/agenda.ics", "url: ftp://example.org/a.ics", "champ 'url'"),
        ("    licence: CC-BY\n", "", "entrée n°2 (id='local-file') : champ 'licence'"),
        ("id: local-file", "id: secours-pantin", "identifiant déjà utilisé"),
        ("url: samples/x.xml", "url: /etc/passwd", "reste dans le dossier du registre"),
        ("url: samples/x.xml", "url: ../../../../etc/passwd", "reste dans le dossier du registre"),
        ("    licence: CC-BY\n", "", "champ 'licence' : champ obligatoire absent"),
        ("themes: [alimentation]", "themes: alimentation", "une liste est attendue"),
        ("refresh: 6h", "refresh: 6h\n    couleur: rouge", "champ 'couleur' : champ inconnu"),
        ("format: rss", "format: pdf", "scrapy:<nom"),
    ],
)
def test_malformed_registry_names_entry_and_field(tmp_path, old, new, expected):
    assert old in VALID
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, VALID.replace(old, new)))
    assert expected in str(info.value)


def test_registry_without_sources_list(tmp_path):
    with pytest.raises(RegistryError, match="sources:"):
        load_registry(write(tmp_path, "source: []\n"))


def test_registry_bad_yaml_gives_line(tmp_path):
    with pytest.raises(RegistryError, match="ligne"):
        load_registry(write(tmp_path, "sources:\n  - id: [unclosed\n"))


BROKEN_QUOTE = """\
sources:
  - id: epicerie
    name: "Agenda de l'épicerie
    url: https://epicerie.example.org/agenda.ics
    format: ics
    licence: etalab-2.0
    themes: [alimentation]
"""


@pytest.mark.parametrize(("text", "where", "explanation"), [
    (BROKEN_QUOTE, "ligne 3, colonne 11", "guillemets ouverts ici et jamais refermés"),
    ("sources:\n  - id: [unclosed\n    url: x\n", "ligne 2, colonne 9",
     "crochet « [ » ouvert ici et jamais refermé"),
    ("sources:\n  - id: a\n    name\n    url: x\n", "ligne 3, colonne 5",
     "deux-points « : » manquant"),
    ("sources:\n  - id: a\n    name: Agenda: Pantin\n", "ligne 3, colonne 17",
     "deux-points « : » inattendu"),
    ("sources:\n  - id: a\n\turl: x\n", "ligne 3, colonne 1", "tabulation"),
    ("sources:\n  - id: a\n    url: x\n   format: ics\n", "ligne 4, colonne 4",
     "indentation incohérente"),
])
def test_registry_yaml_error_points_at_the_line_to_fix_in_french(tmp_path, text, where,
                                                                  explanation):
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    message = str(caught.value)
    assert message.startswith(f"{path} {where} : YAML invalide : {explanation}"), message
    assert "while scanning" not in message and "while parsing" not in message
    assert message.count("PyYAML : ") == 1


SECOND = """\
  - id: epicerie
    name: Agenda de l'épicerie
    publisher: {name: Épicerie solidaire, type: association}
    format: ical
    url: URL
    licence: Licence Ouverte 2.0
"""


@pytest.mark.parametrize("same", [
    "https://example.org/agenda.ics",
    "HTTPS://Example.ORG:443/agenda.ics",  # case of scheme and host, default port
    "https://example.org/agenda.ics/",  # final slash
    "https://example.org/agenda.ics#semaine",  # fragment, never sent to the server
    "https://example.org/%61genda.ics",  # an escaped unreserved character
])
def test_two_sources_with_one_address_are_refused_naming_both(tmp_path, same):
    # the trial: two registry sources with one URL were accepted (each event published twice)
    path = write(tmp_path, VALID + SECOND.replace("URL", same))
    shown = same.replace("HTTPS://", "https://")  # the scheme is kept in lower case
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    assert str(caught.value) == (
        f"{path} : entrée n°3 (id='epicerie', ligne 18) : champ 'url' : même adresse que "
        f"l'entrée n°1 (id='secours-pantin', ligne 3) : {shown} ; une source ne s'inscrit "
        "qu'une fois : gardez une seule des deux entrées")


@pytest.mark.parametrize("other", [
    "http://example.org/agenda.ics",  # another scheme
    "https://example.org/agenda.ics?lang=fr",  # a query
    "https://example.org:8443/agenda.ics",  # another port
    "https://example.org/Agenda.ics",  # paths are case-sensitive
])
def test_different_addresses_are_two_sources(tmp_path, other):
    specs = load_registry(write(tmp_path, VALID + SECOND.replace("URL", other)))
    assert [s.id for s in specs] == ["secours-pantin", "local-file", "epicerie"]


def test_one_local_file_may_feed_two_sources(tmp_path):
    # bundled samples and tests point two sources at one file to make duplicates on purpose
    specs = load_registry(write(tmp_path, VALID + SECOND.replace("URL", "./samples/x.xml")))
    assert specs[1].url == specs[2].url


@pytest.mark.parametrize(("url", "canonical"), [
    ("HTTPS://Example.ORG:443/Agenda/?b=2&a=1#x", "https://example.org/Agenda?b=2&a=1"),
    ("http://example.org", "http://example.org/"),
    ("http://example.org:80/", "http://example.org/"),
    ("http://example.org:8080/a%2fb%7e/", "http://example.org:8080/a%2Fb~"),
    ("https://[2001:DB8::1]:443/a.ics", "https://[2001:db8::1]/a.ics"),
    ("https://agenda.example.org./a.ics", "https://agenda.example.org/a.ics"),
    ("https://example.org/a.ics?q=%7e", "https://example.org/a.ics?q=~"),
    ("samples/x.xml", "samples/x.xml"),  # a local path is left as it is
    ("https://example.org:99999/a.ics", "https://example.org:99999/a.ics"),  # invalid port
])
def test_canonical_url(url, canonical):
    from schemas.registry import canonical_url

    assert canonical_url(url) == canonical


def test_a_binary_registry_is_said_not_utf8_text_naming_the_file_and_byte(tmp_path):
    # the trial: bytes \x00\xff\xfe… ended in a UnicodeDecodeError traceback
    path = tmp_path / "sources.yaml"
    path.write_bytes(b"sources:\n  - id: a\n\x00\xff\xfe\x01binaire")
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    assert str(caught.value) == (
        f"{path} : ce n'est pas du texte UTF-8 (octet 0xff illisible, octet n°21 du fichier, "
        "ligne 3) : le registre doit être un fichier YAML enregistré en UTF-8")


def test_a_latin1_registry_is_said_not_utf8(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_bytes(VALID.replace("Agenda du Secours", "Agenda de l'épicerie").encode("latin-1"))
    with pytest.raises(RegistryError, match=r"pas du texte UTF-8 \(octet 0xe9 .* ligne 4\)"):
        load_registry(path)


def test_unknown_format_lists_the_values_in_french(tmp_path):
    with pytest.raises(RegistryError) as caught:
        load_registry(write(tmp_path, VALID.replace("format: rss", "format: pdf")))
    assert str(caught.value).endswith(
        "champ 'format' : valeur non reconnue ; valeurs possibles : 'ical', 'rss', 'atom', "
        "'openagenda', 'datainclusion', 'html' ou 'scrapy:<nom de l'araignée>'")
    assert " or " not in str(caught.value)


def test_other_literal_fields_list_their_values_in_french(tmp_path):
    with pytest.raises(RegistryError) as caught:
        load_registry(write(tmp_path, VALID.replace("refresh: 6h", "refresh: 6h\n    status: off")))
    assert str(caught.value).endswith(
        "champ 'status' : valeur non reconnue ; valeurs possibles : 'active' ou 'paused'")
    with pytest.raises(RegistryError) as caught:
        load_registry(write(tmp_path, VALID.replace("type: association", "type: club")))
    assert str(caught.value).endswith(
        "valeurs possibles : 'association', 'service-municipal', 'etablissement-public' ou "
        "'autre'")


def test_a_duplicate_id_names_both_entries_and_their_lines(tmp_path):
    path = write(tmp_path, VALID.replace("id: local-file", "id: secours-pantin"))
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    assert str(caught.value) == (
        f"{path} : entrée n°2 (id='secours-pantin', ligne 12) : champ 'id' : identifiant déjà "
        "utilisé par l'entrée n°1 (ligne 3) : donnez-lui un autre identifiant")


def test_an_accented_host_and_its_punycode_are_one_address(tmp_path):
    # the trial: https://päntin.fr/… and its IDNA form were accepted as two sources
    path = write(tmp_path, VALID.replace("https://example.org/agenda.ics",
                                         "https://päntin.fr/agenda.ics")
                 + SECOND.replace("URL", "https://xn--pntin-gra.fr/agenda.ics"))
    with pytest.raises(RegistryError, match="même adresse que l'entrée n°1"):
        load_registry(path)
    # another accent is another host
    specs = load_registry(write(tmp_path, VALID.replace("https://example.org/agenda.ics",
                                                        "https://päntin.fr/agenda.ics")
                                + SECOND.replace("URL", "https://xn--pntin-bsa.fr/agenda.ics")))
    assert len(specs) == 3


@pytest.mark.parametrize(("url", "canonical"), [
    ("https://PÄNTIN.fr/agenda.ics", "https://xn--pntin-gra.fr/agenda.ics"),
    ("https://ville-päntin.fr.:443/a.ics", "https://xn--ville-pntin-r8a.fr/a.ics"),
    ("https://xn--pntin-gra.fr/agenda.ics", "https://xn--pntin-gra.fr/agenda.ics"),
])
def test_canonical_url_encodes_accented_hosts(url, canonical):
    from schemas.registry import canonical_url

    assert canonical_url(url) == canonical


@pytest.mark.parametrize(("url", "stored"), [
    ("webcal://example.org/agenda.ics", "https://example.org/agenda.ics"),
    ("webcals://example.org/agenda.ics", "https://example.org/agenda.ics"),
    ("WEBCAL://example.org/agenda.ics", "https://example.org/agenda.ics"),
])
def test_webcal_addresses_are_stored_as_https(tmp_path, url, stored):
    # the trial: webcal:// (the calendar link of many sites) was refused
    specs = load_registry(write(tmp_path, VALID.replace("https://example.org/agenda.ics", url)))
    assert specs[0].url == stored and specs[0].is_remote


def test_a_webcal_address_is_the_same_source_as_its_https_form(tmp_path):
    path = write(tmp_path, VALID + SECOND.replace("URL", "webcal://example.org/agenda.ics"))
    with pytest.raises(RegistryError, match="même adresse que l'entrée n°1"):
        load_registry(path)


@pytest.mark.parametrize(("refresh", "message"), [
    ("0m", "0m est trop court : au moins 5 minutes entre deux collectes"),
    ("4m", "4m est trop court : au moins 5 minutes"),
    ("0h", "0h est trop court"),
    ("0d", "0d est trop court"),
    ("367d", "367d est trop long : au plus 366 jours"),
    ("99999999d", "99999999d est trop long"),
])
def test_a_refresh_too_short_or_too_long_is_refused_in_french(tmp_path, refresh, message):
    with pytest.raises(RegistryError) as caught:
        load_registry(write(tmp_path, VALID.replace("refresh: 6h", f"refresh: {refresh}")))
    assert "champ 'refresh' : " + message in str(caught.value)


@pytest.mark.parametrize(("refresh", "seconds"), [("5m", 300), ("30m", 1800), ("1d", 86400),
                                                   ("366d", 366 * 86400)])
def test_refresh_from_five_minutes_to_a_year_is_accepted(tmp_path, refresh, seconds):
    specs = load_registry(write(tmp_path, VALID.replace("refresh: 6h", f"refresh: {refresh}")))
    assert specs[0].refresh_seconds == seconds
