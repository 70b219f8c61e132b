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
