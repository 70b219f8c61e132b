"""Normalisation warnings carry a stable code (and the TZID they name); the doctor reads the
codes, not the French text.

Inputs: real corpus files (tests/fixtures/PROVENANCE.md) and the calendars the doctor's own
tests use (tests/test_harvest_warnings.REPAIR_CAFE, tests/test_doctor). Time is fixed at NOW.
"""

from __future__ import annotations

import json
import pickle
from collections import defaultdict

import pytest

from connectors import parser_for
from connectors.doctor import examine_content
from normalize import events
from normalize.events import Horizon, NormalizeWarning, RecordView, normalize_ical_group
from tests.conftest import FIXTURES, NOW
from tests.test_harvest_warnings import REPAIR_CAFE, TZID_WARNING

HORIZON = Horizon.around(NOW, 30, 365)
# the calendar of tests/test_doctor.py's too-dense / end-before-start case
DENSE_AND_BACKWARD = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
    "BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261205T100000Z\r\n"
    "DTEND:20261205T100001Z\r\nSUMMARY:Chaque seconde\r\nRRULE:FREQ=SECONDLY\r\n"
    "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:s2\r\nDTSTAMP:20261201T000000Z\r\n"
    "DTSTART:20261210T100000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:À l'envers\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def warnings_of(content: bytes) -> list[NormalizeWarning]:
    """Every normalisation warning of a calendar's events, in UID order."""
    parsed = parser_for("ical")(content, "test")
    groups: dict[str, list[RecordView]] = defaultdict(list)
    for r in parsed.records:
        if r.kind == "event":
            groups[r.uid].append(RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                                            r.content_hash, r.uid_repaired, parsed=r.parsed))
    found: list[NormalizeWarning] = []
    for uid in sorted(groups):
        found.extend(normalize_ical_group("test", uid, groups[uid], HORIZON).warnings)
    return found


def codes(warnings: list[NormalizeWarning]) -> list[tuple[str, str, str | None]]:
    return [(w.code, w.uid, w.tzid) for w in warnings]


def test_real_calendars_give_coded_warnings_with_the_same_text():
    # Upcoming.org export: floating local times
    upcoming = warnings_of((FIXTURES / "ical" / "ical_upcoming_many.ics").read_bytes())
    assert len(upcoming) == 10 and {w.code for w in upcoming} == {"floating-time"}
    assert upcoming[0] == (f"{upcoming[0].uid} : heure sans fuseau, lue à l'heure de Paris")
    # TZID « UTC+11 », no IANA name, defined by the file's VTIMEZONE: the TZID is carried
    [custom] = warnings_of((FIXTURES / "ical" / "issue_218_bad_tzid.ics").read_bytes())
    assert codes([custom]) == [("custom-timezone", "1961094_636238800000000000", "UTC+11")]
    assert custom == ("1961094_636238800000000000 : fuseau « UTC+11 » défini par le fichier "
                      "(VTIMEZONE) : heures converties avec cette définition (Etc/GMT-11)")
    # a TZID nobody defines (Mars/Olympus_Mons): the text the harvest shows, byte for byte
    [unknown] = warnings_of(REPAIR_CAFE)
    assert codes([unknown]) == [("unknown-timezone",
                                 "repair-cafe-2026-12@belleville.example.org",
                                 "Mars/Olympus_Mons")]
    assert f"belleville : {unknown}" == f"belleville : {TZID_WARNING}"
    dense, backward = warnings_of(DENSE_AND_BACKWARD)
    assert codes([dense, backward]) == [("too-dense", "s1", None),
                                        ("end-before-start", "s2", None)]
    assert dense == ("s1 : série trop dense : seules 2000 séances sont gardées, les premières "
                     "à partir d'aujourd'hui")
    assert backward == ("s2 : DTEND (2026-12-01 10:00:00+00:00) avant DTSTART "
                        "(2026-12-10 10:00:00+00:00) : fin ignorée")


def test_a_warning_keeps_its_code_through_pickle_and_json_gives_its_text():
    [unknown] = warnings_of(REPAIR_CAFE)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps([unknown], protocol))[0]
        assert type(copy) is NormalizeWarning, protocol
        assert (copy, copy.code, copy.uid, copy.tzid) == (
            unknown, "unknown-timezone", unknown.uid, "Mars/Olympus_Mons"), protocol
    assert json.loads(json.dumps([unknown], ensure_ascii=False)) == [TZID_WARNING]
    prefixed = unknown.prefixed("belleville")
    assert prefixed == f"belleville : {TZID_WARNING}"
    assert (prefixed.code, prefixed.tzid) == ("unknown-timezone", "Mars/Olympus_Mons")


def test_warnings_prepared_in_a_parsing_child_come_back_with_their_codes():
    # the harvest normalises in parsing children (connectors.base.ParsePool); their warnings
    # come back pickled
    from connectors.base import ParsePool

    with ParsePool(1) as pool:
        result = pool.parse(("connectors.ical", "parse_ical"), DENSE_AND_BACKWARD, "dense", 60,
                            ("normalize.pipeline", "prepare_events",
                             {"source_id": "dense", "themes": None, "quartier": None,
                              "horizon": HORIZON,
                              "enrich": False}))
    assert result.prepared is not None
    got = {uid: codes(event.warnings) for uid, event in result.prepared.events.items()}
    assert got == {"s1": [("too-dense", "s1", None)], "s2": [("end-before-start", "s2", None)]}


def test_a_sources_outcome_keeps_the_codes_of_its_warnings(tmp_settings, monkeypatch):
    from sqlmodel import Session, SQLModel, create_engine

    import normalize.pipeline
    from connectors.harvest import store_records
    from normalize.pipeline import normalize_source
    from schemas.models import Source

    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        source = Source(id="belleville", name="x", publisher_name="x", publisher_type="autre",
                        format="ical", url="https://example.org/a.ics", licence="")
        session.add(source)
        session.commit()
        content = REPAIR_CAFE + DENSE_AND_BACKWARD
        store_records(session, "belleville", parser_for("ical")(content, "belleville"), NOW,
                      complete=True)
        outcome = normalize_source(session, source, HORIZON, NOW)
        assert all(isinstance(w, NormalizeWarning) for w in outcome.warnings)
        assert sorted(w.code for w in outcome.warnings) == ["end-before-start", "too-dense",
                                                            "unknown-timezone"]
        assert all(w.startswith(f"belleville : {w.uid} : ") for w in outcome.warnings)
        # the source's budget of sessions is a coded warning of the source too
        monkeypatch.setattr(normalize.pipeline, "MAX_SOURCE_OCCURRENCES", 3)
        outcome = normalize_source(session, source, HORIZON, NOW)
        [budget] = [w for w in outcome.warnings if w.code == "source-budget"]
        assert budget == ("belleville : plus de 3 séances : les événements suivants sont gardés "
                          "sans leurs séances")


@pytest.fixture
def reworded(monkeypatch):
    """Every normalisation warning reworded (same code, uid and TZID): the doctor must not
    depend on the French text."""
    def warning(code, uid, text, tzid=None):
        return NormalizeWarning(f"{uid} — avertissement {code}", code, uid, tzid)

    monkeypatch.setattr(events, "_warning", warning)
    monkeypatch.setattr(events, "TOO_DENSE", "{uid} — avertissement too-dense ({n})")


def test_the_doctor_advises_from_codes_not_from_the_text(reworded, tmp_settings):
    diagnosis, _upcoming = examine_content(DENSE_AND_BACKWARD, "https://example.org/a.ics",
                                           now=NOW, settings=tmp_settings)
    by_code = {p.code: p for p in diagnosis.problems}
    assert by_code["too-dense"].message.startswith(
        "1 série se répète plus souvent que Tissu ne publie")
    assert by_code["too-dense"].examples == ["s1 — avertissement too-dense (2000)"]
    assert by_code["end-before-start"].examples == ["s2 — avertissement end-before-start"]
    assert "no-end" not in by_code  # the event with a backward end is known by its uid
    # the unknown TZID comes from the warning's data, not from the stored VEVENT
    diagnosis, _upcoming = examine_content(REPAIR_CAFE, "https://example.org/b.ics", now=NOW,
                                           settings=tmp_settings)
    problem = next(p for p in diagnosis.problems if p.code == "unknown-timezone")
    assert problem.message.startswith("1 événement sur 2 donne un fuseau horaire inconnu "
                                      "(« Mars/Olympus_Mons »)")
    assert problem.examples == ["« Repair Café de décembre » (fuseau « Mars/Olympus_Mons »)"]
    assert "no-timezone" not in diagnosis.codes()


def test_the_doctor_sees_no_timezone_problem_when_the_code_says_otherwise(monkeypatch,
                                                                          tmp_settings):
    # the same text under another code is not an unknown zone: the code decides
    def warning(code, uid, text, tzid=None):
        if code == "unknown-timezone":
            code, tzid = "other", None
        return NormalizeWarning(f"{uid} : {text}", code, uid, tzid)

    monkeypatch.setattr(events, "_warning", warning)
    diagnosis, _upcoming = examine_content(REPAIR_CAFE, "https://example.org/b.ics", now=NOW,
                                           settings=tmp_settings)
    assert "unknown-timezone" not in diagnosis.codes()
    assert "no-timezone" in diagnosis.codes()  # a floating time, with no zone the doctor knows


def test_the_doctor_says_when_a_calendar_reaches_the_sessions_of_a_source(monkeypatch,
                                                                          tmp_settings):
    # normalize.pipeline keeps at most MAX_SOURCE_OCCURRENCES sessions per source; the doctor
    # tells it from the code of the pipeline's warning (source-budget), not from its text
    import normalize.pipeline
    from tests.conftest import SAMPLES

    content = (SAMPLES / "ical_google.ics").read_bytes()
    diagnosis, _upcoming = examine_content(content, "https://example.org/c.ics", now=NOW,
                                           settings=tmp_settings)
    assert "too-dense" not in diagnosis.codes()
    monkeypatch.setattr(normalize.pipeline, "MAX_SOURCE_OCCURRENCES", 5)
    diagnosis, _upcoming = examine_content(content, "https://example.org/c.ics", now=NOW,
                                           settings=tmp_settings)
    [problem] = [p for p in diagnosis.problems if p.code == "too-dense"]
    assert problem.message == ("ce calendrier dépasse les 5 séances que Tissu publie au plus "
                               "pour un agenda : des événements sont gardés sans leurs séances")
    assert problem.examples == [("Tissu publie au plus 5 séances par agenda : au-delà, les "
                                "événements sont gardés sans leurs séances")]
