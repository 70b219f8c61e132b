"""Source health through the local HTTP server, with explicit clocks.

Source: the real OpenAgenda export of Albi (75 events, 2023-11-25 → 2024-06-05), mostly its first
20 events (to 23 December 2023; 16 still to come at 2023-12-01 12:00 UTC, counted by hand).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import yaml
from sqlmodel import Session
from typer.testing import CliRunner

from connectors.health import health_report, source_health
from schemas.models import Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, Route
from tissu.pipeline import harvest_all, sync_registry

T1 = dt.datetime(2023, 12, 1, 12, 0, tzinfo=dt.UTC)
ALL = (FIXTURES / "openagenda" / "oa_albi_events.json").read_bytes()
ALBI = json.dumps(json.loads(ALL)[:20]).encode()


def setup(server, settings, body: bytes = ALBI, status: int = 200):
    server.routes["/albi.json"] = Route(body=body, status=status)
    Path(settings.registry).write_text(yaml.safe_dump({"sources": [{
        "id": "albi", "name": "Agenda d'Albi", "format": "openagenda",
        "url": server.url("/albi.json"), "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Ville d'Albi", "type": "service-municipal"}}]}), encoding="utf-8")
    return make_engine(settings.database_url), load_registry(settings.registry)


def health_at(engine, now: dt.datetime):
    with Session(engine) as session:
        return source_health(session, session.get(Source, "albi"), now)


def test_never_harvested_is_a_warning(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    with Session(engine) as session:
        sync_registry(session, specs)
    health = health_at(engine, T1)
    assert (health.status, health.reason) == ("warning", "pas encore collectée")


def test_healthy_source_and_its_public_columns(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=T1)
    health = health_at(engine, T1)
    assert (health.status, health.reason) == ("ok", "collecte normale")
    assert (health.recent_items, health.events_total, health.events_upcoming) == ([20], 20, 16)
    assert (health.last_attempt_at, health.last_success_at, health.last_changed_at) == (T1, T1, T1)
    with Session(engine) as session:  # stored by the run for the published sources table
        source = session.get(Source, "albi")
        source.contact_email = "benevole@example.org"
        session.add(source)
        session.commit()
        assert (source.health, source.events_upcoming, source.items_recent) == ("ok", 16, "[20]")
    from publish.build import build_database

    database = build_database(engine, tmp_settings.publish_dir)
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        row = dict(connection.execute("SELECT * FROM sources").fetchone())
    assert (row["health"], row["health_reason"], row["events_upcoming"]) == (
        "ok", "collecte normale", 16)
    assert row["last_success_at"] == "2023-12-01T12:00:00Z"
    assert "contact_email" not in row and "benevole@example.org" not in row.values()


def test_failing_then_recovering(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings, body=b"", status=404)
    harvest_all(engine, specs, tmp_settings, now=T1)
    health = health_at(engine, T1)
    assert health.status == "failing" and health.consecutive_failures == 1
    assert health.reason.startswith("la dernière collecte a échoué : ")
    assert "404" in health.reason and not health.reason.startswith("albi :")
    harvest_all(engine, specs, tmp_settings, now=T1 + dt.timedelta(hours=6))
    health = health_at(engine, T1 + dt.timedelta(hours=6))
    assert health.reason.startswith("les 2 dernières collectes ont échoué : ")
    http_server.routes["/albi.json"] = Route(body=ALBI)
    harvest_all(engine, specs, tmp_settings, now=T1 + dt.timedelta(hours=12))
    health = health_at(engine, T1 + dt.timedelta(hours=12))
    assert (health.status, health.consecutive_failures, health.last_error) == ("ok", 0, None)


def test_zero_items_is_a_warning(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings, body=b"[]")
    harvest_all(engine, specs, tmp_settings, now=T1)
    health = health_at(engine, T1)
    assert health.status == "warning"
    assert health.reasons == ["aucun élément lu à la dernière lecture"]


def test_count_dropped_by_more_than_half(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=T1)
    http_server.routes["/albi.json"] = Route(body=json.dumps(json.loads(ALBI)[:8]).encode())
    later = T1 + dt.timedelta(hours=6)
    harvest_all(engine, specs, tmp_settings, now=later)
    health = health_at(engine, later)
    assert health.status == "warning"
    assert health.recent_items == [8, 20]
    assert "nombre d'éléments en forte baisse (20 → 8)" in health.reasons
    assert any(r.startswith("garde-fou : 12 événements") for r in health.reasons)


def test_only_past_events(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    new_year = dt.datetime(2024, 1, 2, 12, 0, tzinfo=dt.UTC)  # the last timing: 23 December
    harvest_all(engine, specs, tmp_settings, now=new_year)
    health = health_at(engine, new_year)
    assert (health.status, health.reasons) == ("warning", ["seulement des événements passés"])
    assert (health.events_total, health.events_upcoming) == (20, 0)


def test_unchanged_for_longer_than_the_setting(http_server, tmp_settings):
    late = json.dumps(json.loads(ALL)[-20:]).encode()  # the last 20: March to June 2024
    engine, specs = setup(http_server, tmp_settings, body=late)
    harvest_all(engine, specs, tmp_settings, now=T1)
    day = T1 + dt.timedelta(days=29)
    [same] = harvest_all(engine, specs, tmp_settings, now=day)
    assert same.status == "unchanged"
    assert health_at(engine, day).status == "ok"
    day = T1 + dt.timedelta(days=31)
    harvest_all(engine, specs, tmp_settings, now=day)
    health = health_at(engine, day)
    assert health.status == "warning"
    assert health.reasons == ["contenu inchangé depuis 31 jours"]
    assert health.last_changed_at == T1 and health.last_attempt_at == day
    with Session(engine) as session:
        tight = source_health(session, session.get(Source, "albi"), T1 + dt.timedelta(days=3),
                              stale_after=dt.timedelta(days=2))
    assert tight.reasons == ["contenu inchangé depuis 3 jours"]


def test_sources_status_command_prints_a_table(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=T1)
    assert [h.source_id for h in health_report(engine, T1)] == ["albi"]
    from tissu.cli import app

    result = CliRunner().invoke(app, ["sources", "status", "--db", tmp_settings.database_url],
                                env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert "État des sources" in result.output
    line = next(line for line in result.output.splitlines() if "albi" in line)
    assert "20" in line and "/ 20" in line


def test_unchanged_attempts_do_not_hide_the_last_read(http_server, tmp_settings):
    """A source read every 30 min whose content never changes: after 60 unchanged attempts
    (HTTP 304) the last read still dates its content, so « contenu inchangé » is still said
    (health used to look for reads among the 50 most recent runs only, and lost it)."""
    from schemas.models import HarvestRun

    engine, specs = setup(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=T1)
    with Session(engine) as session:
        for i in range(60):
            at = T1 + dt.timedelta(days=10, minutes=30 * i)
            session.add(HarvestRun(source_id="albi", started_at=at, finished_at=at,
                                   status="unchanged", http_status=304))
        session.commit()
    day = T1 + dt.timedelta(days=31)
    health = health_at(engine, day)
    assert health.last_changed_at == T1
    assert health.recent_items == [20]
    assert health.reasons == ["seulement des événements passés",
                              "contenu inchangé depuis 31 jours"]


def test_upcoming_count_follows_the_clock_without_a_new_read(http_server, tmp_settings):
    """Nothing is read again, yet « à venir » and « seulement des événements passés » move
    with ``now`` (the 20 Albi events end by 23 December 2023)."""
    engine, specs = setup(http_server, tmp_settings)
    harvest_all(engine, specs, tmp_settings, now=T1)
    with Session(engine) as session:
        from connectors.health import update_health

        source = session.get(Source, "albi")
        assert update_health(session, source, T1).events_upcoming == 16
        later = dt.datetime(2024, 1, 2, 12, 0, tzinfo=dt.UTC)
        health = update_health(session, source, later)
        assert (health.events_total, health.events_upcoming) == (20, 0)
        assert "seulement des événements passés" in health.reasons
        assert (source.events_upcoming, source.health_checked_at) == (0, later)
