"""Harvest warnings reach people: the run row, `tissu harvest`, `tissu sources status`, health.

The calendar is a Nextcloud export of a neighbourhood association, written by hand like those of
the fresh-user trial: one event in a time zone that does not exist (``Mars/Olympus_Mons``), one
weekly workshop whose RRULE says ``FREQ=SOMETIMES``. Served over 127.0.0.1; time fixed at NOW.
"""

from __future__ import annotations

import json

import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from connectors.health import source_health
from schemas.models import HarvestRun, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, Route
from tissu.pipeline import harvest_all

REPAIR_CAFE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Nextcloud calendar v4.7.6//EN
X-WR-CALNAME:Repair Café Belleville
BEGIN:VEVENT
UID:repair-cafe-2026-12@belleville.example.org
DTSTAMP:20261120T090000Z
DTSTART;TZID=Mars/Olympus_Mons:20261210T100000
DTEND;TZID=Mars/Olympus_Mons:20261210T120000
SUMMARY:Repair Café de décembre
LOCATION:Maison des associations, 12 rue de Belleville, Paris
END:VEVENT
BEGIN:VEVENT
UID:atelier-velo-hebdo@belleville.example.org
DTSTAMP:20261120T090000Z
DTSTART;TZID=Europe/Paris:20261203T180000
DTEND;TZID=Europe/Paris:20261203T200000
RRULE:FREQ=SOMETIMES;COUNT=6
SUMMARY:Atelier vélo participatif
LOCATION:Cour du 23 rue Ramponeau, Paris
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n").encode()

RRULE_WARNING = "ligne 13 : propriété RRULE illisible (Expected frequency, got: SOMETIMES)"
TZID_WARNING = ("repair-cafe-2026-12@belleville.example.org : fuseau « Mars/Olympus_Mons » "
                "inconnu et non défini dans le fichier : heure lue à l'heure de Paris")


def registry(server, settings, body: bytes = REPAIR_CAFE):
    server.routes["/belleville.ics"] = Route(body, headers={"Content-Type": "text/calendar"})
    settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "belleville", "name": "Repair Café Belleville", "format": "ical",
        "url": server.url("/belleville.ics"), "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Belleville en transition", "type": "association"}}]}),
        encoding="utf-8")
    return make_engine(settings.database_url), load_registry(settings.registry)


def test_unknown_tzid_warning_is_kept_on_the_run_row(http_server, tmp_settings):
    engine, specs = registry(http_server, tmp_settings)
    [summary] = harvest_all(engine, specs, tmp_settings, now=NOW)
    assert summary.status == "ok" and len(summary.warnings) == 2
    with Session(engine) as session:
        [run] = session.exec(select(HarvestRun)).all()
        stored = json.loads(run.warnings)
    # what the table counts is what is stored: parser warning, then normalisation warning
    assert stored == summary.warnings
    assert stored[0].startswith(f"belleville : {RRULE_WARNING}")
    assert stored[1] == f"belleville : {TZID_WARNING}"


def test_health_says_to_watch_a_source_whose_last_read_had_warnings(http_server, tmp_settings):
    engine, specs = registry(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=NOW)
    with Session(engine) as session:
        source = session.get(Source, "belleville")
        health = source_health(session, source, NOW)
        assert health.status == "warning"
        assert health.reasons == [
            f"2 avertissements à la dernière lecture : {RRULE_WARNING} : ignorée"]
        # stored for the published sources table too
        assert source.health == "warning" and source.health_reason == health.reason


def test_harvest_prints_each_sources_warnings_after_the_table(http_server, tmp_settings):
    registry(http_server, tmp_settings)
    from tissu.cli import app

    result = CliRunner().invoke(app, ["harvest", "--registry", str(tmp_settings.registry),
                                      "--db", tmp_settings.database_url],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    output = result.output
    assert "Avertissements de belleville (2) :" in output
    assert f"  - {RRULE_WARNING} : ignorée" in output
    assert f"  - {TZID_WARNING}" in output
    assert output.index("Collecte par source") < output.index("Avertissements de belleville")
    assert "autres" not in output  # only 2: nothing left out


def test_harvest_shows_five_warnings_per_source_and_counts_the_rest(http_server, tmp_settings):
    # the same Repair Café held on 8 Saturdays, every one in the unknown zone: 8 warnings
    text = REPAIR_CAFE.decode()
    block = text[text.index("BEGIN:VEVENT"):text.index("END:VEVENT") + len("END:VEVENT\r\n")]
    blocks = [block.replace("repair-cafe-2026-12@", f"repair-cafe-{n}@")
              .replace("20261210T", f"202612{10 + n:02d}T") for n in range(8)]
    body = text[:text.index("BEGIN:VEVENT")] + "".join(blocks) + "END:VCALENDAR\r\n"
    registry(http_server, tmp_settings, body.encode())
    from tissu.cli import app

    result = CliRunner().invoke(app, ["harvest", "--registry", str(tmp_settings.registry),
                                      "--db", tmp_settings.database_url],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "Avertissements de belleville (8) :" in result.output
    shown = [line for line in result.output.splitlines() if "Mars/Olympus_Mons" in line]
    assert len(shown) == 5
    assert "  … et 3 autres" in result.output


def test_sources_status_says_a_source_with_warnings_is_to_watch(http_server, tmp_settings):
    engine, specs = registry(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=NOW)
    from tissu.cli import app

    result = CliRunner().invoke(app, ["sources", "status", "--db", tmp_settings.database_url],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "belleville" in line)
    assert "à surveiller" in line and "collecte normale" not in line
    assert "2 avertissements à la dernière lecture : ligne 13 : propriété RRULE" in line


def test_a_read_that_skips_normalisation_keeps_its_warnings(http_server, tmp_settings):
    """Google rewrites DTSTAMP at every fetch: new bytes, same records, so normalisation is
    skipped — the unknown time zone is still reported for that read."""
    import datetime as dt

    engine, specs = registry(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=NOW)
    restamped = REPAIR_CAFE.replace(b"DTSTAMP:20261120T090000Z", b"DTSTAMP:20261121T090000Z")
    http_server.routes["/belleville.ics"] = Route(restamped,
                                                  headers={"Content-Type": "text/calendar"})
    [again] = harvest_all(engine, specs, tmp_settings, now=NOW + dt.timedelta(hours=1))
    assert not again.normalised  # same records: events not rebuilt
    assert f"belleville : {TZID_WARNING}" in again.warnings
    with Session(engine) as session:
        runs = session.exec(select(HarvestRun).order_by(HarvestRun.id)).all()
        assert len(runs) == 2
        assert f"belleville : {TZID_WARNING}" in json.loads(runs[-1].warnings)
        health = source_health(session, session.get(Source, "belleville"),
                               NOW + dt.timedelta(hours=1))
        assert health.status == "warning"
