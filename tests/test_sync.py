"""Sync semantics through the local HTTP server, with explicit clocks.

The source is the real OpenAgenda export of Albi (tests/fixtures/openagenda/oa_albi_events.json),
its first 20 events (25 November → 23 December 2023) to keep the run short. At 2023-12-01 12:00
UTC, 16 of them are still to come and 4 are over (counted by hand from their timings). Each test
serves these events, or a subset of them, to simulate what a source does between two harvests.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from schemas.models import Event, HarvestRun, Occurrence, SourceRecord
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, Route
from tissu.pipeline import harvest_all

T1 = dt.datetime(2023, 12, 1, 12, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=6)
T3 = T2 + dt.timedelta(hours=6)
PAST = ["48516406", "94820242", "28861567", "77878711"]  # 25–29 November 2023
ALBI = json.loads((FIXTURES / "openagenda" / "oa_albi_events.json").read_text(encoding="utf-8"))[:20]
FUTURE = [str(e["uid"]) for e in ALBI if str(e["uid"]) not in PAST]


def serve(server, events: list[dict] | dict) -> None:
    server.routes["/albi.json"] = Route(body=json.dumps(events, ensure_ascii=False).encode())


def without(*uids: str) -> list[dict]:
    return [e for e in ALBI if str(e["uid"]) not in uids]


def one_source(settings, entry: dict) -> tuple:
    """Write a registry of ``entry`` alone; return the store's engine and the specs."""
    Path(settings.registry).write_text(yaml.safe_dump({"sources": [entry]}), encoding="utf-8")
    return make_engine(settings.database_url), load_registry(settings.registry)


def setup(server, settings):
    serve(server, ALBI)
    engine, specs = one_source(settings, {
        "id": "albi", "name": "Agenda d'Albi", "format": "openagenda",
        "url": server.url("/albi.json"), "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Ville d'Albi", "type": "service-municipal"}})
    [first] = harvest_all(engine, specs, settings, now=T1)
    assert (first.status, first.events) == ("ok", 20)
    return engine, specs


def last_run(session: Session) -> HarvestRun:
    return session.exec(select(HarvestRun).order_by(HarvestRun.id.desc())).first()


def test_counts_by_hand():
    assert len(ALBI) == 20 and len(FUTURE) == 16


def test_record_seen_again_is_updated_in_place(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    changed = json.loads(json.dumps(ALBI))
    changed[4]["title"]["fr"] = "Plusieurs : un comédien et un pur-sang (complet)"
    serve(http_server, changed)
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert second.status == "ok"
    with Session(engine) as session:
        assert len(session.exec(select(Event)).all()) == 20
        event = session.get(Event, "albi--99923953")
        assert event.title == "Plusieurs : un comédien et un pur-sang (complet)"
        assert (event.first_seen_at, event.updated_at) == (T1, T2)
        untouched = session.get(Event, "albi--37207379")
        assert untouched.updated_at == T1
        record = session.get(SourceRecord, "albi--99923953")
        assert (record.first_seen_at, record.last_seen_at, record.last_changed_at) == (T1, T2, T2)


def test_vanished_events_are_marked_not_deleted_and_future_ones_cancelled(http_server,
                                                                         tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    serve(http_server, without("99923953", "48516406"))  # one future, one past
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert second.status == "ok"
    with Session(engine) as session:
        assert len(session.exec(select(Event)).all()) == 20  # nothing deleted
        gone = session.get(Event, "albi--99923953")
        assert gone.removed_at_source == T2
        assert [o.status for o in session.exec(
            select(Occurrence).where(Occurrence.event_id == gone.id))] == ["cancelled"]
        assert session.get(Event, "albi--48516406").removed_at_source == T2
        assert session.get(Event, "albi--37207379").removed_at_source is None
        assert session.get(SourceRecord, "albi--99923953").removed_at_source == T2
        assert last_run(session).removed == 2
    serve(http_server, ALBI)  # it comes back: live again, occurrences rebuilt
    harvest_all(engine, specs, tmp_settings, now=T3)
    with Session(engine) as session:
        back = session.get(Event, "albi--99923953")
        assert back.removed_at_source is None
        assert [o.status for o in session.exec(
            select(Occurrence).where(Occurrence.event_id == back.id))] == ["confirmed"]


def test_exactly_half_is_not_guarded(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    serve(http_server, without(*FUTURE[:8]))  # 8 of 16: not more than half
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert second.status == "ok"
    with Session(engine) as session:
        assert last_run(session).removed == 8 and last_run(session).guarded == 0


def test_guard_keeps_more_than_half_of_future_events_until_forced(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    serve(http_server, without(*FUTURE[:9], PAST[0]))  # 9 of 16 future, and one past event
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert second.status == "partial"
    assert any("garde-fou : 9 événements à venir sur 16" in w for w in second.warnings)
    with Session(engine) as session:
        run = last_run(session)
        assert (run.guarded, run.removed, run.forced) == (9, 1, False)
        kept = session.get(Event, f"albi--{FUTURE[0]}")
        assert kept.removed_at_source is None
        assert session.get(SourceRecord, f"albi--{FUTURE[0]}").missing_since == T2
        assert session.get(Event, f"albi--{PAST[0]}").removed_at_source == T2  # past: no guard
    # The same bytes again: still held (unchanged content is not re-read).
    [third] = harvest_all(engine, specs, tmp_settings, now=T3)
    assert third.status == "unchanged"
    # Forced through the CLI: the guard is lifted and the source re-read though unchanged.
    from tissu.cli import app

    later = T3 + dt.timedelta(hours=1)
    import time_machine

    with time_machine.travel(later, tick=False):
        result = CliRunner().invoke(app, ["harvest", "--force", "--registry",
                                          str(tmp_settings.registry), "--db",
                                          tmp_settings.database_url])
    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        run = last_run(session)
        assert (run.forced, run.removed, run.guarded, run.status) == (True, 9, 0, "ok")
        assert session.get(Event, f"albi--{FUTURE[0]}").removed_at_source == later
        assert session.get(SourceRecord, f"albi--{FUTURE[0]}").missing_since is None


def test_empty_answer_is_guarded(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    serve(http_server, [])
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert second.status == "partial"
    with Session(engine) as session:
        assert last_run(session).guarded == 16
        removed = session.exec(select(Event.id).where(Event.removed_at_source.is_not(None)))
        assert set(removed.all()) == {f"albi--{uid}" for uid in PAST}  # only the past ones


def test_one_page_of_a_paginated_answer_removes_nothing(http_server, tmp_settings):
    engine, specs = setup(http_server, tmp_settings)
    serve(http_server, {"success": True, "total": 75, "events": ALBI[:5], "after": [1, 2]})
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert second.status == "ok"
    assert any("5 événements sur 75" in w for w in second.warnings)
    with Session(engine) as session:
        assert last_run(session).removed == 0
        assert session.exec(select(Event).where(Event.removed_at_source.is_not(None))).all() == []


def test_a_cut_calendar_removes_nothing_and_reads_as_partial(http_server, tmp_settings):
    """A calendar cut short (a failed upload, a proxy time-out: no END:VCALENDAR) says
    nothing about the events after the cut: the fresh-user trial saw them cancelled."""
    whole = (FIXTURES / "ical" / "ical_upcoming_many.ics").read_bytes()  # 20 VEVENTs
    cut = whole[: whole.rindex(b"BEGIN:VEVENT")]  # the last VEVENT and END:VCALENDAR lost
    assert cut.count(b"BEGIN:VEVENT") == 19 and b"END:VCALENDAR" not in cut
    http_server.routes["/upcoming.ics"] = Route(body=whole)
    engine, specs = one_source(tmp_settings, {
        "id": "upcoming", "name": "Upcoming", "format": "ical",
        "url": http_server.url("/upcoming.ics"), "licence": "MIT",
        "publisher": {"name": "Upcoming", "type": "association"}})
    [first] = harvest_all(engine, specs, tmp_settings, now=T1)
    assert (first.status, first.records) == ("ok", 20)
    http_server.routes["/upcoming.ics"] = Route(body=cut)
    [second] = harvest_all(engine, specs, tmp_settings, now=T2)
    assert (second.status, second.records) == ("partial", 19)
    assert any("END:VCALENDAR manquant" in w for w in second.warnings)
    with Session(engine) as session:
        events = session.exec(select(Event).where(Event.source_id == "upcoming")).all()
        assert len(events) == 20
        assert [e.id for e in events if e.removed_at_source is not None] == []
        assert last_run(session).removed == 0
    http_server.routes["/upcoming.ics"] = Route(body=whole[: whole.rindex(b"BEGIN:VEVENT")]
                                                + b"END:VCALENDAR\r\n")
    [third] = harvest_all(engine, specs, tmp_settings, now=T3)  # whole, one event less
    assert (third.status, third.records) == ("ok", 19)
    with Session(engine) as session:
        assert last_run(session).removed == 1


def test_a_source_past_its_budget_of_sessions_keeps_its_events_without_more(
        http_server, tmp_settings, monkeypatch):
    """The second trial: 200 hourly VEVENTs in a 30 KB file gave 400 000 sessions in 184 s."""
    import normalize.pipeline

    monkeypatch.setattr(normalize.pipeline, "MAX_SOURCE_OCCURRENCES", 5000)
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:h{i}@x\r\nDTSTAMP:20231101T000000Z\r\n"
        f"DTSTART:202312{10 + i:02d}T080000Z\r\nRRULE:FREQ=HOURLY\r\nSUMMARY:Heure {i}\r\n"
        "END:VEVENT\r\n" for i in range(5))
    body = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{events}END:VCALENDAR\r\n".encode()
    http_server.routes["/hourly.ics"] = Route(body=body)
    engine, specs = one_source(tmp_settings, {
        "id": "hourly", "name": "Heures", "format": "ical", "url": http_server.url("/hourly.ics"),
        "licence": "Licence Ouverte 2.0", "publisher": {"name": "X", "type": "association"}})
    [summary] = harvest_all(engine, specs, tmp_settings, now=T1)
    assert summary.events == 5
    assert any("plus de 5000 séances" in w for w in summary.warnings)
    with Session(engine) as session:
        counts = {e.id: len(session.exec(select(Occurrence).where(
            Occurrence.event_id == e.id)).all()) for e in session.exec(select(Event)).all()}
    # three events of 2000 (each capped), then the budget is spent: two events, no sessions
    assert sorted(counts.values()) == [0, 0, 2000, 2000, 2000]


def test_a_source_taken_out_of_the_registry_is_retired_then_back(http_server, tmp_settings):
    """The fresh-user trial replaced the registry, as the README says: the six sample sources
    went on being harvested. A seed source no longer listed is retired (not harvested, said
    once, its stored events kept); listed again, it is read in full."""
    from schemas.models import Source

    engine, specs = setup(http_server, tmp_settings)
    http_server.routes["/other.json"] = Route(body=json.dumps(ALBI[:3]).encode())
    other = {"id": "autre", "name": "Autre agenda", "format": "openagenda",
             "url": http_server.url("/other.json"), "licence": "Licence Ouverte 2.0",
             "publisher": {"name": "Autre", "type": "association"}}
    _engine, only_other = one_source(tmp_settings, other)
    hits = http_server.hits.get("/albi.json")
    summaries = harvest_all(engine, only_other, tmp_settings, now=T2)
    assert [(s.source_id, s.status) for s in summaries] == [("autre", "ok"), ("albi", "retired")]
    assert "albi : n'est plus dans le registre : elle n'est plus collectée" in \
        summaries[1].warnings[0]
    assert http_server.hits.get("/albi.json") == hits  # not fetched
    with Session(engine) as session:
        assert session.get(Source, "albi").status == "retired"
        assert len(session.exec(select(Event).where(Event.source_id == "albi")).all()) == 20
    # said once: the next harvest does not repeat it
    again = harvest_all(engine, only_other, tmp_settings, now=T3)
    assert [s.source_id for s in again] == ["autre"]
    # listed again: active, and read in full (not « unchanged » from an old hash)
    back = harvest_all(engine, [*specs, *only_other], tmp_settings, now=T3)
    assert {(s.source_id, s.status) for s in back} == {("albi", "ok"), ("autre", "unchanged")}
    assert http_server.hits.get("/albi.json") == hits + 1
