"""Incremental runs: an unchanged source is not normalised again, a changed one is.

Served through the local HTTP server with explicit clocks; the calendar is written here (two
events in Europe/Paris, one weekly series) so that every expected value is known by hand.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import yaml
from sqlmodel import Session, select

from schemas.models import Event, Occurrence, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import Route
from tissu.pipeline import deduplicate_if_needed, harvest_all

T1 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=6)
T3 = T2 + dt.timedelta(hours=6)

CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Test//Tissu//FR
BEGIN:VEVENT
UID:distribution-1@example.org
DTSTAMP:20261101T100000Z
DTSTART;TZID=Europe/Paris:20261205T100000
DTEND;TZID=Europe/Paris:20261205T120000
SUMMARY:{title}
LOCATION:Salle Jacques-Brel
END:VEVENT
BEGIN:VEVENT
UID:atelier-numerique@example.org
DTSTAMP:20261101T100000Z
DTSTART;TZID=Europe/Paris:20261202T140000
DTEND;TZID=Europe/Paris:20261202T160000
RRULE:FREQ=WEEKLY;COUNT=3
SUMMARY:Atelier numérique
END:VEVENT
END:VCALENDAR
"""


def serve(server, title: str = "Distribution alimentaire") -> None:
    body = CALENDAR.format(title=title).replace("\n", "\r\n").encode("utf-8")
    server.routes["/agenda.ics"] = Route(body=body, headers={"Content-Type": "text/calendar"})


def write_registry(settings, server, quartier: str | None = None) -> list:
    entry = {"id": "asso", "name": "Agenda de l'asso", "format": "ical",
             "url": server.url("/agenda.ics"), "licence": "Licence Ouverte 2.0",
             "publisher": {"name": "Asso de Pantin", "type": "association"}}
    if quartier:
        entry["quartier"] = quartier
    Path(settings.registry).write_text(yaml.safe_dump({"sources": [entry]}), encoding="utf-8")
    return load_registry(settings.registry)


def titles(engine) -> dict[str, str]:
    with Session(engine) as session:
        return {e.id: e.title for e in session.exec(select(Event))}


def test_unchanged_body_skips_normalisation_changed_body_does_not(http_server, tmp_settings):
    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    [first] = harvest_all(engine, specs, tmp_settings, now=T1)
    assert (first.status, first.events, first.occurrences, first.normalised) == ("ok", 2, 4, True)

    # Same bytes (the server sends no validators: the content hash tells): nothing rebuilt.
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert (second.status, second.normalised) == ("unchanged", False)
    with Session(engine) as session:
        event = session.get(Event, "asso--distribution-1@example.org")
        assert (event.title, event.updated_at, event.revision) == (
            "Distribution alimentaire", T1, 0)
        assert len(session.exec(select(Occurrence)).all()) == 4
        assert session.get(Source, "asso").health == "ok"

    # The source changes after a skip: the change is read and published.
    serve(http_server, "Distribution alimentaire (annulée)")
    [third] = harvest_all(engine, specs, tmp_settings, now=T3)
    assert (third.status, third.normalised) == ("ok", True)
    with Session(engine) as session:
        event = session.get(Event, "asso--distribution-1@example.org")
        assert (event.title, event.updated_at, event.revision) == (
            "Distribution alimentaire (annulée)", T3, 1)
        series = session.get(Event, "asso--atelier-numerique@example.org")
        assert series.updated_at == T1  # its record did not change
        assert len(session.exec(select(Occurrence)).all()) == 4


def test_unchanged_source_is_normalised_again_after_a_day(http_server, tmp_settings):
    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)
    [later] = harvest_all(engine, specs, tmp_settings, now=T1 + dt.timedelta(hours=25))
    assert (later.status, later.normalised, later.events, later.occurrences) == (
        "unchanged", True, 2, 4)


def test_registry_change_renormalises_an_unchanged_source(http_server, tmp_settings):
    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)
    specs = write_registry(tmp_settings, http_server, quartier="Quatre-Chemins")
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert (second.status, second.normalised) == ("unchanged", True)
    with Session(engine) as session:
        event = session.get(Event, "asso--atelier-numerique@example.org")
        assert event.quartier == "Quatre-Chemins"


def test_force_renormalises(http_server, tmp_settings):
    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)
    [forced] = harvest_all(engine, specs, tmp_settings, now=T2, force=True)
    assert forced.normalised is True


def test_deduplication_runs_only_after_a_change(http_server, tmp_settings):
    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)  # deduplicates, then marks it done
    with Session(engine) as session:
        assert session.get(Source, "asso").deduped_at == T1
    assert deduplicate_if_needed(engine, T2) is False  # nothing normalised since
    serve(http_server, "Distribution alimentaire de Noël")
    harvest_all(engine, specs, tmp_settings, now=T2)
    with Session(engine) as session:
        source = session.get(Source, "asso")
        assert (source.normalized_at, source.deduped_at) == (T2, T2)
    assert deduplicate_if_needed(engine, T3) is False
    assert deduplicate_if_needed(engine, T3, force=True) is True


# --- tissu publish: nothing is rebuilt when the store did not change ---------------------------


def published_runs(settings) -> list[tuple]:
    connection = sqlite3.connect(settings.publish_dir / "tissu-open.db")
    try:
        return connection.execute("SELECT id FROM publish_runs ORDER BY id").fetchall()
    finally:
        connection.close()


def test_publish_is_kept_when_the_store_did_not_change(http_server, tmp_settings):
    from tissu.fingerprint import publish_if_changed, store_fingerprint

    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    out = tmp_settings.publish_dir
    harvest_all(engine, specs, tmp_settings, now=T1)
    first = publish_if_changed(engine, out, T1)
    assert first.published and first.outcome is not None and not first.outcome.errors
    assert len(published_runs(tmp_settings)) == 1
    database_inode = (out / "tissu-open.db").stat().st_ino

    # An unchanged harvest (304 / same bytes) moves only bookkeeping: the fingerprint holds.
    before = store_fingerprint(engine)
    harvest_all(engine, specs, tmp_settings, now=T1 + dt.timedelta(minutes=10))
    assert store_fingerprint(engine) == before
    kept = publish_if_changed(engine, out, T1 + dt.timedelta(minutes=10))
    assert (kept.published, kept.outcome) == (False, None)
    assert (out / "tissu-open.db").stat().st_ino == database_inode  # not rewritten

    # --force, a changed source, an old publication or a missing file: published again.
    assert publish_if_changed(engine, out, T1 + dt.timedelta(minutes=11), force=True).published
    serve(http_server, "Distribution alimentaire (reportée)")
    harvest_all(engine, specs, tmp_settings, now=T1 + dt.timedelta(minutes=20))
    assert store_fingerprint(engine) != before
    changed = publish_if_changed(engine, out, T1 + dt.timedelta(minutes=20))
    assert changed.published
    connection = sqlite3.connect(out / "tissu-open.db")
    try:
        assert ("Distribution alimentaire (reportée)",) in connection.execute(
            "SELECT title FROM events").fetchall()
    finally:
        connection.close()
    assert not publish_if_changed(engine, out, T1 + dt.timedelta(minutes=30)).published
    assert publish_if_changed(engine, out, T1 + dt.timedelta(minutes=90)).published
    (out / "metadata.json").unlink()
    assert publish_if_changed(engine, out, T1 + dt.timedelta(minutes=91)).published
    assert len(published_runs(tmp_settings)) == 5


def test_publish_command_answers_before_loading_the_store(http_server, tmp_settings,
                                                          monkeypatch):
    """« tissu publish » twice: the second run reads the fingerprint with the database's own
    driver and keeps the publication, without rebuilding it."""
    from typer.testing import CliRunner

    from tissu.cli import app
    from tissu.fingerprint import publication_is_current_for

    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.setenv("TISSU_PUBLISH_DIR", str(tmp_settings.publish_dir))
    monkeypatch.setenv("TISSU_REGISTRY", str(tmp_settings.registry))
    monkeypatch.setenv("TISSU_RAW_DIR", str(tmp_settings.raw_dir))
    runner = CliRunner()
    first = runner.invoke(app, ["publish"])
    assert first.exit_code == 0 and "Base publiée" in first.output
    database = tmp_settings.publish_dir / "tissu-open.db"
    inode = database.stat().st_ino
    now = dt.datetime.now(dt.UTC)
    assert publication_is_current_for(tmp_settings.database_url, tmp_settings.publish_dir, now)
    second = runner.invoke(app, ["publish"])
    assert second.exit_code == 0 and "Publication gardée telle quelle" in second.output
    assert database.stat().st_ino == inode
    forced = runner.invoke(app, ["publish", "--force"])
    assert forced.exit_code == 0 and "Base publiée" in forced.output
    assert database.stat().st_ino != inode
    serve(http_server, "Distribution alimentaire (déplacée)")
    harvest_all(engine, specs, tmp_settings, now=T2)
    assert not publication_is_current_for(tmp_settings.database_url,
                                          tmp_settings.publish_dir, now)


def test_a_change_whose_normalisation_failed_is_normalised_at_the_next_run(
        http_server, tmp_settings, monkeypatch):
    import normalize.pipeline

    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)
    serve(http_server, "Distribution alimentaire (reportée)")
    real = normalize.pipeline.normalize_source

    def broken(*args, **kwargs):
        raise RuntimeError("panne simulée")

    monkeypatch.setattr(normalize.pipeline, "normalize_source", broken)
    [failed] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert failed.status == "ok" and "normalisation impossible" in failed.errors[0]
    assert titles(engine)["asso--distribution-1@example.org"] == "Distribution alimentaire"
    monkeypatch.setattr(normalize.pipeline, "normalize_source", real)
    [again] = harvest_all(engine, specs, tmp_settings, now=T3)  # same bytes: "unchanged"
    assert (again.status, again.normalised) == ("unchanged", True)
    assert titles(engine)["asso--distribution-1@example.org"] == (
        "Distribution alimentaire (reportée)")


def test_a_review_decision_makes_deduplication_due(http_server, tmp_settings):
    from schemas.models import DedupeDecision

    serve(http_server)
    specs = write_registry(tmp_settings, http_server)
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, specs, tmp_settings, now=T1)
    assert deduplicate_if_needed(engine, T2) is False
    with Session(engine) as session:
        session.add(DedupeDecision(pair_key="a|b", event_a="a", event_b="b", score=0.8,
                                   decision="same", decided_by="cli", decided_at=T2,
                                   created_at=T1))
        session.commit()
    assert deduplicate_if_needed(engine, T3) is True  # the decision is applied
    assert deduplicate_if_needed(engine, T3 + dt.timedelta(minutes=5)) is False
