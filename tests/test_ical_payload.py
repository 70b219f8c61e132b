"""Each iCalendar record's payload is exactly icalendar's serialisation of its VCALENDAR.

connectors.ical builds the payload from parts (a VTIMEZONE shared by many VEVENTs is written
once per file); the stored text, and so every record's content hash, must stay what
``Calendar.to_ical()`` gives, or every stored event would look changed after an upgrade.
"""

from __future__ import annotations

import icalendar

from connectors.ical import _PRODID, parse_ical
from tests.conftest import FIXTURES, SAMPLES


def calendar_text(vevent, timezones) -> str:
    wrapper = icalendar.Calendar()
    wrapper.add("PRODID", _PRODID)
    wrapper.add("VERSION", "2.0")
    for timezone in timezones:
        wrapper.add_component(timezone)
    wrapper.add_component(vevent)
    return wrapper.to_ical().decode("utf-8")


def test_payload_is_icalendar_serialisation_for_every_fixture():
    files = sorted(FIXTURES.rglob("*.ics")) + sorted(SAMPLES.glob("*.ics"))
    checked = with_timezone = 0
    for path in files:
        for record in parse_ical(path.read_bytes(), path.stem).records:
            vevent, timezones = record.parsed
            assert record.payload == calendar_text(vevent, timezones), (path, record.uid)
            checked += 1
            with_timezone += bool(timezones)
    assert checked > 500 and with_timezone > 50


def test_lone_vevent_shortcut_gives_recurring_ical_events_answer(monkeypatch):
    """normalize.events answers "is this lone VEVENT in the horizon?" without building a
    recurring-ical-events query; every fixture gives the same occurrences both ways, at three
    instants (fixtures from 2007 to 2026, so events fall on either side of the horizon)."""
    import datetime as dt
    from collections import defaultdict

    from normalize import events
    from normalize.events import Horizon, RecordView, normalize_ical_group

    shortcut = events._single_in_horizon
    files = sorted(FIXTURES.rglob("*.ics")) + sorted(SAMPLES.glob("*.ics"))
    compared = kept = 0
    for now in (dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC),
                dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 5, 8, 5, tzinfo=dt.UTC)):
        horizon = Horizon.around(now, 30, 365)
        for path in files:
            groups: dict[str, list[RecordView]] = defaultdict(list)
            for record in parse_ical(path.read_bytes(), path.stem).records:
                groups[record.uid].append(RecordView(record.uid, record.recurrence_id, "ical",
                                                     record.payload, record.content_hash))
            for uid, views in groups.items():
                monkeypatch.setattr(events, "_single_in_horizon", shortcut)
                fast = normalize_ical_group("s", uid, views, horizon)
                monkeypatch.setattr(events, "_single_in_horizon", lambda *a: None)
                library = normalize_ical_group("s", uid, views, horizon)
                assert fast.occurrences == library.occurrences, (path, uid)
                compared += 1
                kept += bool(fast.occurrences)
    assert compared > 1500 and 0 < kept < compared


def test_vtimezones_are_looked_up_once_per_calendar(monkeypatch):
    """Each VEVENT's payload embeds the VTIMEZONEs it names; looking them up walked the whole
    calendar once per VEVENT, so a file of N events cost N² (the fresh-user trial: 20 000
    plain events, over 120 s). The calendar is walked for VTIMEZONEs once per parse."""
    walks: list[str] = []
    original = icalendar.Component.walk

    def counting(self, name=None, select=None):
        if name == "VTIMEZONE":
            walks.append(self.name)
        return original(self, name, select) if select is not None else original(self, name)

    monkeypatch.setattr(icalendar.Component, "walk", counting)
    records = parse_ical((SAMPLES / "ical_google.ics").read_bytes(), "portland").records
    with_zone = [r for r in records if "BEGIN:VTIMEZONE" in r.payload]
    assert len(records) == 47 and len(with_zone) == 47  # 41 events and 6 RECURRENCE-IDs
    assert walks == ["VCALENDAR"]
