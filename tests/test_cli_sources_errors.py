"""``tissu sources …`` refuses what it cannot do with one exit code (2) and one French line on
stderr (tissu.cli.refuse, tissu.cli.unknown_source).

The trial: ``tissu sources pause nexiste`` exited 1 (« Impossible : source « nexiste »
introuvable ») where ``tissu sources status nexiste`` exited 2 (« Source inconnue »).
"""

from __future__ import annotations

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from schemas.models import Registration, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW
from tissu import registrations
from tissu.cli import USAGE_ERROR, app
from tissu.pipeline import sync_registry

UNKNOWN = "Source inconnue : « nexiste » (« tissu sources status » les liste toutes)."
FORM = {
    "organisation_name": "Épicerie solidaire des Quatre-Chemins",
    "organisation_type": "association",
    "contact_email": "benevoles@epicerie.example.org",
    "licence_choice": "licence-ouverte",
    "licence_consent": True,
    "themes": ["alimentation"],
    "url": "https://epicerie.example.org/agenda.ics",
}


@pytest.fixture
def store(tmp_settings, monkeypatch):
    """A working store holding the source « mairie » and one pending registration (its id)."""
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.delenv("TISSU_SMTP_HOST", raising=False)
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "mairie", "name": "Agenda de la mairie", "format": "ical",
        "url": "https://mairie.example.org/agenda.ics", "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Ville de Pantin", "type": "service-municipal"}}]}),
        encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        sync_registry(session, load_registry(tmp_settings.registry))
    form, errors = registrations.validate_form(FORM)
    assert errors == {}
    with Session(engine) as session:
        registration = registrations.submit(session, form, fmt="ical", client_ip="192.0.2.7",
                                            now=NOW, settings=tmp_settings)
        return engine, registration.id


def invoke(*args: str):
    return CliRunner().invoke(app, ["sources", *args], env={"COLUMNS": "80"})


@pytest.mark.parametrize("command", ["pause", "resume", "status"])
def test_an_unknown_source_is_the_same_refusal_for_every_command(store, command):
    result = invoke(command, "nexiste")
    assert result.exit_code == USAGE_ERROR == 2, result.output
    assert result.stderr.strip() == UNKNOWN
    assert result.stdout == ""


def test_a_known_source_is_still_paused_and_resumed(store):
    engine, _ = store
    assert invoke("pause", "mairie").exit_code == 0
    with Session(engine) as session:
        assert session.get(Source, "mairie").status == "paused"
    assert invoke("resume", "mairie").exit_code == 0
    with Session(engine) as session:
        assert session.get(Source, "mairie").status == "active"


@pytest.mark.parametrize("args", [("approve", "999"), ("reject", "999", "--reason", "hors Pantin")])
def test_an_unknown_registration_is_a_usage_error_and_changes_nothing(store, args):
    engine, _ = store
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("Impossible : inscription n°999 introuvable (« tissu "
                                     "sources pending » liste celles en attente).")
    with Session(engine) as session:
        assert [r.status for r in session.exec(select(Registration))] == ["pending"]


def test_an_empty_reason_of_refusal_is_refused_before_the_store(store):
    engine, waiting = store
    result = invoke("reject", str(waiting), "--reason", "   ")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("Impossible : indiquez la raison du refus (--reason) : elle "
                                     "est envoyée à l'association.")
    with Session(engine) as session:
        assert session.get(Registration, waiting).status == "pending"


def test_a_registration_already_decided_exits_1_on_stderr(store):
    # the command was right; the registration's state forbids it: not a usage error
    _, waiting = store
    assert invoke("reject", str(waiting), "--reason", "hors Pantin").exit_code == 0
    result = invoke("approve", str(waiting))
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"Impossible : inscription n°{waiting} déjà traitée (rejected)"


def test_bad_numbers_and_refresh_go_to_stderr_with_code_2(store):
    result = invoke("approve", "abc")
    assert result.exit_code == 2 and result.stdout == ""
    assert "numéro d'inscription invalide (« abc »)" in result.stderr
    result = invoke("approve", "1", "--refresh", "0m")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Impossible : fréquence '0m' refusée : ")
