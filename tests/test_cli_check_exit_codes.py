"""``tissu check``'s exit code follows one rule (tissu.cli.check_exit_code), said by --help and
the README: 0 usable, nothing to correct; 1 read, but something shown to correct; 2 nothing could
be read, or a bad command.

The trial: « À corriger » printed yet exit 0 (all events past, already registered, events
without end); 1 instead of 2 when nothing could be read from a web address (404, connection
refused, loopback refused, TLS failure); ``--db`` naming a store that does not exist answered
« Aucun problème » without comparing; ``--now abc`` showed a Python traceback.
"""

from __future__ import annotations

import re
import socket

import pytest
import yaml
from sqlmodel import Session
from typer.testing import CliRunner

from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, NOW, ROOT, SAMPLES, Route
from tissu.cli import app
from tissu.pipeline import sync_registry

GOOGLE = SAMPLES / "ical_google.ics"  # data/samples/PROVENANCE.md
ZONE_B = SAMPLES / "Zone-B.ics"  # school holidays 2025-2026: every event is past on NOW
NO_END = FIXTURES / "ical" / "discourse_no_dtend.ics"  # tests/fixtures/PROVENANCE.md


@pytest.fixture
def check(tmp_settings, monkeypatch):
    """``tissu check ARGS…`` in this process on the test's own working store."""
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)

    def run(*args: str):
        return CliRunner().invoke(app, ["check", *args], env={"COLUMNS": "80"})
    return run


def _findings(output: str) -> list[str]:
    return re.findall(r"^(Problème|À corriger) : ", output, re.MULTILINE)


# --- 0: usable, nothing to correct -----------------------------------------------------------
def test_a_calendar_with_nothing_to_correct_exits_0(check):
    result = check(str(GOOGLE), "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert "Aucun problème trouvé : ce calendrier peut être inscrit tel quel." in result.output
    assert _findings(result.output) == []


def test_the_same_calendar_from_a_web_address_exits_0(check, http_server):
    http_server.routes["/agenda.ics"] = Route(GOOGLE.read_bytes(),
                                              headers={"Content-Type": "text/calendar"})
    result = check(http_server.url("/agenda.ics"), "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert "Événements : 41 ; séances à venir" in result.output


# --- 1: read, but something shown to correct ------------------------------------------------
def test_a_calendar_whose_events_are_all_past_exits_1(check):
    result = check(str(ZONE_B), "--now", NOW.isoformat())
    assert result.exit_code == 1, result.output
    assert ("À corriger : tous les événements sont passés (le dernier commence le 04/07/2026) "
            ": rien ne sera affiché dans l'agenda") in result.output
    assert _findings(result.output) == ["À corriger"]


def test_events_without_an_end_exit_1(check):
    # on 2019-01-01 every event is still to come: the missing end is the only finding
    result = check(str(NO_END), "--now", "2019-01-01T00:00:00+00:00")
    assert result.exit_code == 1, result.output
    assert ("À corriger : 1 événement sur 4 n'a pas d'heure de fin : il sera affiché sans "
            "durée") in result.output
    assert _findings(result.output) == ["À corriger"]


def test_a_calendar_already_registered_exits_1(check, tmp_settings):
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "portland", "name": "Portland", "format": "ical", "url": "ical_google.ics",
        "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Calagator", "type": "association"}}]}), encoding="utf-8")
    copy = tmp_settings.registry.parent / "ical_google.ics"
    copy.write_bytes(GOOGLE.read_bytes())
    with Session(make_engine(tmp_settings.database_url)) as session:
        sync_registry(session, load_registry(tmp_settings.registry))
    result = check(str(copy), "--now", NOW.isoformat())
    assert result.exit_code == 1, result.output
    assert "À corriger : cet agenda est déjà inscrit (source « portland »)" in result.output


def test_a_web_page_that_is_no_calendar_exits_1(check, http_server):
    page = FIXTURES / "html" / "cook_landbank.html"  # tests/fixtures/PROVENANCE.md
    http_server.routes["/agenda"] = Route(page.read_bytes(),
                                          headers={"Content-Type": "text/html"})
    result = check(http_server.url("/agenda"), "--now", NOW.isoformat())
    assert result.exit_code == 1, result.output
    assert "Format trouvé : page web" in result.output
    assert _findings(result.output)


# --- 2: nothing could be read -----------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on leaving: nothing listens there


def test_an_http_404_exits_2(check, http_server):
    result = check(http_server.url("/absent.ics"), "--now", NOW.isoformat())
    assert result.exit_code == 2, result.output
    assert "Problème : impossible de lire cette adresse" in result.output
    assert "404" in result.output
    assert "Format trouvé" not in result.output


def test_a_refused_connection_exits_2(check):
    result = check(f"http://127.0.0.1:{_closed_port()}/agenda.ics", "--now", NOW.isoformat())
    assert result.exit_code == 2, result.output
    assert "Problème : impossible de lire cette adresse" in result.output


def test_a_loopback_address_refused_exits_2(check, http_server, monkeypatch):
    monkeypatch.delenv("TISSU_ALLOW_LOOPBACK_FETCH")  # production: loopback is refused
    http_server.routes["/agenda.ics"] = Route(GOOGLE.read_bytes())
    result = check(http_server.url("/agenda.ics"), "--now", NOW.isoformat())
    assert result.exit_code == 2, result.output
    assert "Problème : adresse refusée" in result.output
    assert http_server.hits == {}


def test_a_tls_failure_exits_2(check, http_server):
    # https:// to a server that speaks plain HTTP: the TLS handshake fails
    http_server.routes["/agenda.ics"] = Route(GOOGLE.read_bytes())
    url = http_server.url("/agenda.ics").replace("http://", "https://")
    result = check(url, "--now", NOW.isoformat())
    assert result.exit_code == 2, result.output
    assert "Problème : impossible de lire cette adresse" in result.output


def test_a_missing_local_file_exits_2(check, tmp_path):
    result = check(str(tmp_path / "absent.ics"), "--now", NOW.isoformat())
    assert result.exit_code == 2, result.output


# --- 2: a bad command, one French line, no traceback ----------------------------------------
@pytest.mark.parametrize(("now", "said"), [
    ("abc", ("Impossible : --now illisible (« abc ») : un instant ISO 8601 avec son fuseau "
             "est attendu, par exemple 2026-11-29T12:00Z.")),
    ("2026-11-29T12:00", ("Impossible : --now sans fuseau (« 2026-11-29T12:00 ») : "
                          "ajoutez-le, par exemple 2026-11-29T12:00Z ou "
                          "2026-11-29T13:00+01:00.")),
])
def test_a_bad_now_is_one_french_line(check, now, said):
    result = check(str(GOOGLE), "--now", now)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == said
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_db_that_does_not_exist_is_refused_not_created(check, tmp_path):
    absent = tmp_path / "absent" / "x.db"
    result = check(str(GOOGLE), "--now", NOW.isoformat(), "--db", f"sqlite:///{absent}")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"Impossible : base de travail introuvable : « {absent} » (aucun fichier à cet endroit "
        ": vérifiez --db ; sans --db, la base de travail habituelle est lue).")
    assert result.stdout == ""
    assert not absent.parent.exists()


def test_a_db_that_is_no_database_is_refused(check, tmp_path):
    text = tmp_path / "notes.db"
    text.write_bytes((ROOT / "README.md").read_bytes())
    result = check(str(GOOGLE), "--now", NOW.isoformat(), "--db", f"sqlite:///{text}")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Impossible : base de travail injoignable : "
                                    f"« sqlite:///{text} »")
    assert "\n" not in result.stderr.strip()


# --- the rule, said the same way in --help and the README -----------------------------------
RULE = ("0 utilisable tel quel, rien à corriger ; 1 lu, mais au moins un point « Problème » ou "
        "« À corriger » (ou ce n'est ni un calendrier ni un flux) ; 2 rien n'a pu être lu "
        "(fichier introuvable ou illisible, adresse refusée, erreur HTTP, serveur injoignable) "
        "ou commande mal formée (--now illisible, --db introuvable ou injoignable)")


def test_help_and_readme_say_the_rule():
    help_text = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "200"}).output
    flat = " ".join(help_text.replace("│", " ").split())
    assert RULE in flat
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"code de sortie {RULE}" in readme
