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
