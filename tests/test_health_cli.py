"""``tissu sources status``: readable at 80 columns, and every warning of a source's last read.

The trial: at 80 columns (output piped) the headers were split « dernièr / e / tentati / ve »
and the reasons wrapped one word per line; only the first warning of the last read was shown.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from schemas.models import HarvestRun, Source
from schemas.store import make_engine
from tissu.cli import app

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
WARNINGS = [f"belleville-quatre-chemins : ligne {n} : TZID inconnu 'Mars/Olympus_Mons' : "
            "heure lue comme celle de Paris" for n in (13, 27, 41)]


def source(ident: str, **fields: object) -> Source:
    return Source(id=ident, name=ident, publisher_name="Asso", publisher_type="association",
                  format="ical", url=f"https://example.org/{ident}.ics", licence="CC-BY",
                  **fields)


@pytest.fixture
def store(tmp_settings):
    engine = make_engine(tmp_settings.database_url)
    earlier = NOW - dt.timedelta(hours=7)
    with Session(engine) as session:
        session.add(source("belleville-quatre-chemins", last_attempt_at=NOW,
                           last_success_at=NOW))
        session.add(source("vacances-scolaires-zone-b", last_attempt_at=NOW,
                           last_success_at=earlier, consecutive_failures=3,
                           last_error="vacances-scolaires-zone-b : HTTP 503 : le serveur ne "
                                      "répond pas [réessai plus tard]"))
        session.add(source("albi", last_attempt_at=NOW, last_success_at=NOW))
        # an older read with other warnings: only the last read's are listed
        session.add(HarvestRun(source_id="belleville-quatre-chemins", started_at=earlier,
                               finished_at=earlier, status="ok", records=5,
                               warnings=json.dumps(["belleville-quatre-chemins : ancien"])))
        session.add(HarvestRun(source_id="belleville-quatre-chemins", started_at=NOW,
                               finished_at=NOW, status="partial", records=4,
                               warnings=json.dumps(WARNINGS),
                               errors=json.dumps(
                                   ["belleville-quatre-chemins : VEVENT n°2 sans DTSTART"])))
        session.add(HarvestRun(source_id="belleville-quatre-chemins",
                               started_at=NOW + dt.timedelta(seconds=1), status="unchanged",
                               http_status=304))
        session.commit()
    return tmp_settings


def status(args: list[str], settings, columns: int):
    return CliRunner().invoke(app, ["sources", "status", *args, "--db",
                                    settings.database_url], env={"COLUMNS": str(columns)})


def test_status_reads_at_80_columns_with_the_reasons_below(store):
    result = status([], store, 80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 for line in lines), result.output
    header = next(line for line in lines if line.startswith("source"))
    assert header.split()[:4] == ["source", "santé", "tentative", "succès"]
    for ident in ("belleville-quatre-chemins", "vacances-scolaires-zone-b", "albi"):
        assert any(line.startswith(ident + " ") for line in lines), ident
    row = next(line for line in lines if line.startswith("vacances-scolaires-zone-b "))
    assert "en panne" in row and row.split()[-1] == "0"  # à venir: a whole count, not cut
    assert header.split()[-2:] == ["à", "venir"]
    # the reasons, under the table, one source per paragraph, words never one per line
    text = " ".join(line.strip() for line in lines)
    assert ("- vacances-scolaires-zone-b (en panne) : les 3 dernières collectes ont échoué : "
            "HTTP 503 : le serveur ne répond pas [réessai plus tard]") in text
    assert ("- belleville-quatre-chemins (à surveiller) : lecture partielle : 1 élément(s) "
            "illisible(s) ; 3 avertissements à la dernière lecture : ligne 13 :") in text
    assert not any(line.strip() in ("raison", "dernièr", "e", "tentati", "ve") for line in lines)
    assert "« tissu sources status SOURCE »" in text
    assert "albi (" not in text  # an ok source has no reason to give


def test_wide_status_keeps_the_reason_on_the_source_line(store):
    result = status([], store, 220)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "vacances-scolaires" in line)
    assert "en panne" in line and "les 3 dernières collectes ont échoué" in line


def test_one_source_lists_every_warning_of_its_last_read(store):
    result = status(["belleville-quatre-chemins"], store, 80)
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("Source belleville-quatre-chemins : à surveiller\n")
    assert "Dernière lecture (partielle) : " in text and ", 4 élément(s)" in text
    assert "  3 avertissements :\n" in text
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    # every warning, each folded under its own text (hanging indent), in the order read
    start = lines.index("  3 avertissements :")
    items = " ".join(line.strip() for line in lines[start + 1:lines.index("  1 erreur :")])
    assert all(line.startswith(("    - ", "      ")) for line in
               lines[start + 1:lines.index("  1 erreur :")])
    assert items == " ".join(
        "- " + w.removeprefix("belleville-quatre-chemins : ") for w in WARNINGS)
    assert "  1 erreur :\n    - VEVENT n°2 sans DTSTART\n" in text
    assert "ancien" not in text  # an older read's warning
    assert "éléments lus (récents) : 4 ← 5" in text


def test_one_failing_source_shows_its_error_and_a_never_read_one_says_so(store):
    result = status(["vacances-scolaires-zone-b"], store, 80)
    assert result.exit_code == 0, result.output
    assert "Source vacances-scolaires-zone-b : en panne" in result.output
    assert "dernière erreur : HTTP 503 : le serveur ne répond pas [réessai plus tard]" in (
        result.output.replace("\n", " "))
    assert "échecs d'affilée : 3" in result.output
    assert "Aucune lecture encore" in result.output


def test_an_unknown_source_is_said_in_french(store):
    result = status(["nulle-part"], store, 80)
    assert result.exit_code == 2
    assert "Source inconnue : « nulle-part »" in result.output


def test_a_paused_or_retired_source_says_so_beside_its_health(store):
    # the trial: a paused source read « ok » like any other
    engine = make_engine(store.database_url)
    with Session(engine) as session:
        session.get(Source, "albi").status = "paused"
        session.get(Source, "vacances-scolaires-zone-b").status = "retired"
        session.commit()
    engine.dispose()
    result = status([], store, 120)
    assert result.exit_code == 0, result.output
    albi = next(line for line in result.output.splitlines() if line.startswith("albi "))
    assert "ok · en pause" in albi
    text = " ".join(line.strip() for line in result.output.splitlines())
    assert "- vacances-scolaires-zone-b (en panne · retirée du registre) :" in text
    one = status(["albi"], store, 80)
    assert one.output.startswith("Source albi : ok · en pause\n")
