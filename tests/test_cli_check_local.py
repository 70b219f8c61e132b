"""``tissu check PATH`` diagnoses a local file as the harvest would read it (tissu.cli.check).

The trial: ``tissu check data/samples/ical_google.ics`` answered « l'adresse doit commencer par
http:// ou https:// » (exit 1), while the registry accepts a path for a source.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session
from typer.testing import CliRunner

from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, ROOT, SAMPLES
from tissu.cli import app, local_file, read_local_file
from tissu.pipeline import sync_registry

GOOGLE = SAMPLES / "ical_google.ics"  # data/samples/PROVENANCE.md


@pytest.fixture
def check(tmp_settings, monkeypatch):
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)

    def run(*args: str):
        return CliRunner().invoke(app, ["check", *args, "--now", NOW.isoformat()],
                                  env={"COLUMNS": "80"})
    return run


def test_a_local_calendar_is_diagnosed_like_a_downloaded_one(check, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = check("data/samples/ical_google.ics")  # the trial's input
    assert result.exit_code == 0, result.output
    assert "doit commencer par http" not in result.output
    assert f"Adresse vérifiée : {GOOGLE.resolve()}" in result.output
    assert "Format trouvé : calendrier iCalendar (.ics)" in result.output
    assert "Événements : 41 ; séances à venir" in result.output
    assert "mardi 1er décembre 2026, 04:00 → 06:00 : Dorkbot PDX" in result.output


def test_a_file_url_and_json_output(check):
    result = check(GOOGLE.resolve().as_uri(), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["format"], report["events"], report["usable"]) == ("ical", 41, True)


def test_a_registered_local_source_is_said_already_registered(check, tmp_settings):
    # the registry keeps a local source as its absolute path: the same file is recognised
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "portland", "name": "Portland", "format": "ical", "url": "ical_google.ics",
        "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Calagator", "type": "association"}}]}), encoding="utf-8")
    (tmp_settings.registry.parent / "ical_google.ics").write_bytes(GOOGLE.read_bytes())
    with Session(make_engine(tmp_settings.database_url)) as session:
        sync_registry(session, load_registry(tmp_settings.registry))
    result = check(str(tmp_settings.registry.parent / "ical_google.ics"))
    assert "cet agenda est déjà inscrit (source « portland »)" in result.output


@pytest.mark.parametrize(("argument", "said"), [
    ("nulle-part.ics", ("Impossible : fichier introuvable : « nulle-part.ics » (vérifiez le "
                        "chemin, ou donnez une adresse https://).")),
    ("example.org/agenda.ics", ("Impossible : fichier introuvable : « example.org/agenda.ics » "
                                "(une adresse web commence par https://).")),
])
def test_a_missing_file_is_one_french_line_on_stderr(check, argument, said, tmp_path,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = check(argument)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == said
    assert result.stdout == ""


def test_a_folder_is_refused(check, tmp_path):
    result = check(str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Impossible : « {tmp_path} » est un dossier")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(check, tmp_path):
    # the trial: « tissu check .trial/fifo » waited until killed 60 s later
    pipe = tmp_path / "agenda.ics"
    os.mkfifo(pipe)
    result = check(str(pipe))
    assert result.exit_code == 2
    assert "n'est pas un fichier ordinaire (tube ou périphérique)" in result.stderr


def test_an_unreadable_file_is_said(tmp_path, monkeypatch, capsys):
    import typer

    locked = tmp_path / "agenda.ics"
    locked.write_bytes(GOOGLE.read_bytes())

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refused)  # the tests may run as root
    with pytest.raises(typer.Exit) as ended:
        read_local_file(locked, 1024 * 1024)
    assert ended.value.exit_code == 2
    assert capsys.readouterr().err.strip() == (f"Impossible : fichier illisible : « {locked} » "
                                               "(droits de lecture refusés à cet utilisateur).")


def test_a_file_over_the_harvest_limit_is_refused(check, monkeypatch):
    monkeypatch.setenv("TISSU_MAX_BODY_BYTES", "1000")
    result = check(str(GOOGLE))
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Impossible : fichier trop volumineux : « {GOOGLE} » (plus "
                                     "de 1000 octets, la limite de la collecte) : retirez-en les "
                                     "anciens événements.")


@pytest.mark.parametrize(("argument", "path"), [
    ("https://example.org/a.ics", None),
    ("webcal://example.org/a.ics", None),
    ("HTTPS://example.org/a.ics", None),
    ("data/samples/a.ics", Path("data/samples/a.ics")),
    ("file:///srv/a%20b.ics", Path("/srv/a b.ics")),
    ("file://localhost/srv/a.ics", Path("/srv/a.ics")),
    ("file://autre.example/srv/a.ics", None),  # another machine's file: left to the doctor
])
def test_which_arguments_are_local_files(argument, path):
    assert local_file(argument) == path
