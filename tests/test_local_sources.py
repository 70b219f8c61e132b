"""Seed-registry sources that are local paths (the registry accepts them): a path that is no
readable regular file fails that source in French, and every run ends recorded."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import replace

import pytest

import connectors.harvest
from connectors.http import FetchError, fetch
from schemas.registry import RegistryError, load_registry
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES
from tissu.pipeline import harvest_all

ENTRY = """sources:
  - id: {id}
    name: Agenda local
    publisher: {{name: Maison de quartier, type: association}}
    format: ical
    url: {url}
    licence: Licence Ouverte 2.0
"""


def _harvest(tmp_settings, tmp_path, url: str):
    registry = tmp_path / "sources.yaml"
    registry.write_text(ENTRY.format(id="local", url=url), encoding="utf-8")
    settings = replace(tmp_settings, database_url=f"sqlite:///{tmp_path / 'tissu.db'}",
                       registry=registry, raw_dir=tmp_path / "raw")
    engine = make_engine(settings.database_url)
    [summary] = harvest_all(engine, load_registry(registry), settings, now=NOW, processes=0)
    engine.dispose()
    store = sqlite3.connect(tmp_path / "tissu.db")
    runs = store.execute("SELECT status, errors FROM harvestrun").fetchall()
    store.close()
    return summary, runs


def test_a_folder_as_a_sources_path_fails_that_source_in_french(tmp_settings, tmp_path):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("reads one SQLite store")
    folder = tmp_path / "agendas"
    folder.mkdir()
    # the trial: « IsADirectoryError(21, 'Is a directory') », and a run left « running »
    summary, runs = _harvest(tmp_settings, tmp_path, "agendas")
    assert summary.status == "failed"
    assert summary.errors == [f"local : « {folder} » est un dossier, pas un fichier"]
    assert [status for status, _ in runs] == ["failed"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_refused_without_being_opened(tmp_path):
    pipe = tmp_path / "agenda.ics"
    os.mkfifo(pipe)  # opening it would wait for a writer: the harvest hung
    with pytest.raises(FetchError, match="n'est pas un fichier ordinaire"):
        fetch(str(pipe))


def test_an_unexpected_error_closes_the_run_it_left_running(tmp_settings, tmp_path,
                                                            monkeypatch):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("reads one SQLite store")

    def broken_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(connectors.harvest, "save_raw", broken_disk)
    (tmp_path / "agenda.ics").write_bytes((SAMPLES / "ical_google.ics").read_bytes())
    summary, runs = _harvest(tmp_settings, tmp_path, "agenda.ics")
    assert summary.status == "failed"
    assert summary.errors == [("local : erreur interne de la collecte (OSError : [Errno 28] "
                               "No space left on device)")]
    assert [(status, json.loads(errors)) for status, errors in runs] == [
        ("failed", summary.errors)]


def test_a_folder_given_as_the_registry_is_a_french_error(tmp_path):
    with pytest.raises(RegistryError, match="c'est un dossier ; donnez le fichier du registre"):
        load_registry(tmp_path)
