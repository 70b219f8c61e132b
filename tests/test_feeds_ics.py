"""iCalendar feeds: series written back as RRULE/EXDATE/RECURRENCE-ID, checked by round trip
through recurring-ical-events and by a second, independent parser (vobject)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import vobject

from tests.conftest import FIXTURES, SAMPLES
from tests.test_publish import make_site, stop

CASES = {
    # weekly series with EXDATEs (Berlin), seen in October 2019
    "exdate": (FIXTURES / "ical" / "issue_20_exdate_ignored.ics",
               dt.datetime(2019, 10, 1, tzinfo=dt.UTC)),
    # monthly series, the 31 Dec instance moved to 17 Dec (RECURRENCE-ID override)
    "moved": (FIXTURES / "ical" / "issue_62_moved_event.ics",
              dt.datetime(2021, 11, 20, tzinfo=dt.UTC)),
    # daily series of three, the second cancelled by an override
    "cancelled": (FIXTURES / "ical" / "issue_18_cancel_status.ics",
                  dt.datetime(2020, 1, 27, tzinfo=dt.UTC)),
    # weekly series in Lisbon across the end of summer time
    "lisbon": (SAMPLES / "issue_48_daylight_aware_repeats.ics",
               dt.datetime(2026, 10, 1, tzinfo=dt.UTC)),
}


def _utc(value: dt.date | dt.datetime) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


@pytest.fixture(scope="module", params=sorted(CASES))
def published(request, tmp_path_factory):
    path, now = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    site = make_site(tmp, {path.name: (path.read_bytes(), {"quartier": "Courtillières",
                                                           "themes": ["vie-de-quartier"]})})
    # module-scoped: set up before the function-scoped autouse fixture that allows loopback
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
        patch.setenv("TISSU_HOST_DELAY", "0")
        try:
            summaries = site.harvest(now)
            out = site.publish(now)
        finally:
            stop(site)
    assert [s.status for s in summaries] == ["ok"]
    return request.param, now, out


def _published_occurrences(db: Path, start: str, end: str) -> dict[str, set[tuple[str, str]]]:
    connection = sqlite3.connect(db)
    try:
        found: dict[str, set[tuple[str, str]]] = {}
        for event_id, start_utc, start_date, all_day, status in connection.execute(
                "SELECT o.event_id, o.start_utc, o.start_date, o.all_day, "
                "CASE WHEN e.status = 'cancelled' THEN 'cancelled' ELSE o.status END "
                "FROM occurrences o JOIN events e ON e.id = o.event_id "
                "WHERE o.end_utc >= ? AND o.start_utc < ?", (start, end)):
            key = start_date if all_day else start_utc
            found.setdefault(f"{event_id}@tissu", set()).add((key, status.upper()))
        return found
    finally:
        connection.close()


def test_feed_round_trip_equals_published_occurrences(published) -> None:
    name, now, out = published
    feed = out.exports["ics"].read_bytes()
    calendar = icalendar.Calendar.from_ical(feed)
    end = now + dt.timedelta(days=120)
    expanded: dict[str, set[tuple[str, str]]] = {}
    for instance in recurring_ical_events.of(calendar).between(now, end):
        key = _utc(instance.decoded("DTSTART"))
        status = str(instance.get("STATUS", "CONFIRMED"))
        expanded.setdefault(str(instance["UID"]), set()).add((key, status))
    expected = _published_occurrences(out.database, _utc(now), _utc(end))
    assert expanded == expected
    assert expanded, name
    # one master VEVENT per series: never exploded into one VEVENT per occurrence
    masters = [e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e]
    assert len(masters) == len(expected)
    assert all("RRULE" in m for m in masters)


def test_feed_properties(published) -> None:
    name, _now, out = published
    calendar = icalendar.Calendar.from_ical(out.exports["ics"].read_bytes())
    assert str(calendar["X-WR-CALNAME"]).startswith("Tissu")
    assert calendar["REFRESH-INTERVAL"].params["VALUE"] == "DURATION"
    assert calendar.decoded("REFRESH-INTERVAL") == dt.timedelta(hours=6)
    assert str(calendar["X-PUBLISHED-TTL"]) == "PT6H"  # once written "6:00:00" by mistake
    zones = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    for event in calendar.walk("VEVENT"):
        for prop in ("UID", "DTSTAMP", "LAST-MODIFIED", "SEQUENCE", "STATUS", "SUMMARY",
                     "CATEGORIES"):
            assert prop in event, (name, prop)
        assert str(event["UID"]).endswith("@tissu")
        tzid = event["DTSTART"].params.get("TZID")
        assert tzid is None or tzid in zones
        assert "Vie de quartier et citoyenneté" in event.get("CATEGORIES").cats
    # the same event in its theme and quartier feeds, listed in feeds.json
    index = json.loads(out.exports["feeds"].read_text(encoding="utf-8"))
    paths = {(f["kind"], f["code"]): f["path"] for f in index}
    assert paths[("theme", "vie-de-quartier")] == "ics/theme/vie-de-quartier.ics"
    assert paths[("quartier", "Courtillières")] == "ics/quartier/courtillieres.ics"
    exports = out.exports["ics"].parent
    for kind in ("theme", "quartier", "organisation"):
        path = next(p for (k, _c), p in paths.items() if k == kind)
        feed = icalendar.Calendar.from_ical((exports / path).read_bytes())
        assert {str(e["UID"]) for e in feed.walk("VEVENT")} == {
            str(e["UID"]) for e in calendar.walk("VEVENT")}
        assert "—" in str(feed["X-WR-CALNAME"])


def test_second_parser_vobject_agrees(published) -> None:
    """vobject (independent of icalendar) reads the feed; its RRULE/EXDATE expansion gives the
    original start (RECURRENCE-ID) of every published occurrence.

    vobject's VTIMEZONE reader ignores RDATE-style transitions (it gives Lisbon +01:00 all
    year), so its wall-clock instants are placed in their zone with zoneinfo.
    """
    name, now, out = published
    text = out.exports["ics"].read_text(encoding="utf-8")
    calendar = vobject.readOne(text)
    end = now + dt.timedelta(days=120)
    connection = sqlite3.connect(out.database)
    try:
        recurrence_ids = {
            (f"{event_id}@tissu", key) for event_id, key in connection.execute(
                "SELECT event_id, recurrence_id FROM occurrences WHERE end_utc >= ? "
                "AND start_utc < ?", (_utc(now), _utc(end)))}
    finally:
        connection.close()
    from_vobject: set[tuple[str, str]] = set()
    overrides: set[tuple[str, str]] = set()
    for vevent in calendar.contents.get("vevent", []):
        uid = vevent.uid.value
        assert vevent.dtstamp.value.tzinfo is not None
        tzid = getattr(getattr(vevent.dtstart.value, "tzinfo", None), "_tzid", None)
        zone = ZoneInfo(tzid) if tzid else dt.UTC

        def key(value: dt.datetime, zone: dt.tzinfo = zone) -> str:
            wall = value.replace(tzinfo=None) if value.tzinfo is not dt.UTC else value
            aware = wall.replace(tzinfo=zone) if wall.tzinfo is None else wall
            return aware.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")

        if hasattr(vevent, "recurrence_id"):
            overrides.add((uid, key(vevent.recurrence_id.value)))
            continue
        for start in vevent.getrruleset(addRDate=True).between(
                now - dt.timedelta(days=2), end):
            from_vobject.add((uid, key(start)))
    assert overrides <= recurrence_ids
    # instances within the window; an override keeps the series slot of its RECURRENCE-ID
    assert recurrence_ids <= from_vobject | overrides
    assert recurrence_ids, name
    if name == "moved":
        assert len(overrides) == 1
    if name == "exdate":
        assert ("issue-20-exdate-ignored--f0f31ddb-6918-46af-a5a1-0a7254fbce71@tissu",
                "20191022T141500Z") not in from_vobject


@pytest.mark.parametrize("text", ["a" * 200, "é" * 100, "x" + "€" * 60, "ab" * 37 + "é", "z"])
def test_fold_matches_icalendar(text: str) -> None:
    from icalendar.parser import Contentline, Parameters
    from icalendar.prop import vText

    from publish.ics import fold

    line = b"DESCRIPTION:" + vText(text).to_ical()
    expected = Contentline.from_parts("DESCRIPTION", Parameters(), vText(text)).to_ical()
    assert fold(line) == expected
    assert all(len(part) <= 75 for part in fold(line).split(b"\r\n"))
    assert fold(line).replace(b"\r\n ", b"") == line


@pytest.mark.parametrize("text", ["a" * 73 + ",b" * 40, "x" * 72 + "\\\\" * 30, "é" * 37 + "a"])
def test_fold_keeps_escapes_together(text: str) -> None:
    test_fold_matches_icalendar(text)


def test_uri_and_organizer_values_survive_a_round_trip() -> None:
    from publish.ics import FeedEvent, calendar_bytes, vevent_bytes

    row = {"id": "src--1", "all_day": 0, "dtstart_utc": "2026-12-01T09:00:00Z",
           "dtend_utc": "2026-12-01T10:00:00Z", "tzid": "Europe/Paris", "title": "Café, thé",
           "url": "https://ex.org/agenda?id=1,2;x", "organizer": 'Asso "Le Lien", Pantin',
           "updated_at": "2026-11-01T00:00:00Z", "status": "confirmed", "themes": "[]",
           "categories": '["Repas"]', "sequence": 1, "revision": 2,
           "latitude": 48.8951, "longitude": 2.4093}
    row["geo"] = (row["latitude"], row["longitude"])  # as select_feed_rows sets it
    data, zone = vevent_bytes(row, [], {})
    calendar = icalendar.Calendar.from_ical(calendar_bytes([FeedEvent("src--1", data, zone)]))
    event = calendar.walk("VEVENT")[0]
    assert str(event["URL"]) == "https://ex.org/agenda?id=1,2;x"
    assert event["ORGANIZER"].params["CN"] == 'Asso "Le Lien", Pantin'
    assert str(event["SUMMARY"]) == "Café, thé"
    assert int(event["SEQUENCE"]) == 3
    assert (event["GEO"].latitude, event["GEO"].longitude) == (48.8951, 2.4093)
    assert event.decoded("DTSTART") == dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert vobject.readOne(calendar.to_ical().decode()).vevent.url.value == row["url"]


def test_feed_events_are_the_bytes_of_each_event_alone(published) -> None:
    """Values shared between events are encoded once per batch: each event's bytes in the
    batch are still exactly those it gets on its own."""
    from publish import ics

    _name, now, out = published
    connection = sqlite3.connect(f"file:{out.database}?mode=ro", uri=True)
    try:
        batch = ics.prepare_feed_events(connection, now)
        rows = {r["id"]: r for r in ics.select_feed_rows(connection, now)}
        labels = {c: fr for c, fr in connection.execute("SELECT code, fr FROM themes")}
        assert batch
        for event in batch:
            row = rows[event.id]
            overrides = ics._overrides(connection, [event.id]).get(event.id, [])
            assert ics.vevent_bytes(row, overrides, labels) == (event.data, event.zone)
    finally:
        connection.close()


@pytest.mark.parametrize(("start_utc", "expected"), [
    # the last minutes of winter time, then the first of summer time (29 March 2026)
    ("2026-03-29T00:59:00Z", b"DTSTART;TZID=Europe/Paris:20260329T015900"),
    ("2026-03-29T01:00:00Z", b"DTSTART;TZID=Europe/Paris:20260329T030000"),
    # 25 October 2026: 02:30 happens twice in Paris (00:30 and 01:30 UTC); RFC 5545 says a
    # TZID time means the first, vobject reads the second: both are written in UTC
    ("2026-10-25T00:30:00Z", b"DTSTART:20261025T003000Z"),
    ("2026-10-25T01:30:00Z", b"DTSTART:20261025T013000Z"),
    ("2026-10-24T23:59:00Z", b"DTSTART;TZID=Europe/Paris:20261025T015900"),
    ("2026-10-25T02:00:00Z", b"DTSTART;TZID=Europe/Paris:20261025T030000"),
    ("2026-12-31T23:30:00Z", b"DTSTART;TZID=Europe/Paris:20270101T003000"),
])
def test_single_event_start_is_its_paris_time(start_utc: str, expected: bytes) -> None:
    from publish.ics import FeedEvent, calendar_bytes, vevent_bytes

    row = {"id": "s--1", "all_day": 0, "dtstart_utc": start_utc, "dtend_utc": None,
           "title": "Permanence", "status": "confirmed", "updated_at": "2026-11-02T08:05:09Z",
           "first_seen_at": "2026-11-01T00:00:00Z"}
    data, zone = vevent_bytes(row, [], {})
    lines = data.split(b"\r\n")
    assert expected in lines and zone == "Europe/Paris"
    if expected.endswith(b"Z"):
        # a second, independent parser agrees on a UTC time; vobject misreads a VTIMEZONE made
        # of RDATE lists (summer times an hour off), so it is not asked about TZID times
        text = calendar_bytes([FeedEvent("s--1", data, zone)]).decode()
        second = vobject.readOne(text).vevent.dtstart.value
        assert second.astimezone(dt.UTC) == dt.datetime.fromisoformat(start_utc)
    assert b"DTSTAMP:20261102T080509Z" in lines and b"CREATED:20261101T000000Z" in lines
    event = icalendar.Calendar.from_ical(b"BEGIN:VCALENDAR\r\n" + data + b"END:VCALENDAR\r\n")
    start = event.walk("VEVENT")[0].decoded("DTSTART")
    assert start.astimezone(dt.UTC) == dt.datetime.fromisoformat(start_utc)


def test_stamps_of_other_iso_forms() -> None:
    from publish.ics import _stamp

    assert _stamp("2026-11-02T08:05:09Z") == "20261102T080509Z"
    assert _stamp("2026-11-02T09:05:09+01:00") == "20261102T080509Z"
    assert _stamp("2026-11-02T08:05:09.250000Z") == "20261102T080509Z"


@pytest.mark.parametrize("text", ["Permanence CAF", "Café, thé; jeux", "a\\Nb", "x\\y",
                                  "ligne 1\r\nligne 2\rfin\n", "Épicerie solidaire — 2 €"])
def test_text_lines_are_escaped_like_vtext(text: str) -> None:
    from icalendar.parser import Contentline, Parameters
    from icalendar.prop import vText

    from publish.ics import _text_line

    expected = Contentline.from_parts("SUMMARY", Parameters(), vText(text)).to_ical()
    assert _text_line("SUMMARY", text) == expected


@pytest.mark.parametrize("name", ["Europe/Paris", "America/New_York", "Australia/Sydney"])
def test_vtimezone_offsets_match_the_zone_around_every_change(name: str) -> None:
    """A reader that trusts our VTIMEZONE (not its own tz database) gets the zone's offset at
    every quarter hour around each change of 2020–2037 (RFC 5545 §3.6.5: onsets in the local
    time before the change; icalendar's own VTIMEZONE was an hour late every spring)."""
    from publish.ics import vtimezone

    real = ZoneInfo(name)
    read = icalendar.Timezone.from_ical(vtimezone(name).to_ical()).to_tz(lookup_tzid=False)
    changes = 0
    instant = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    while instant < dt.datetime(2037, 12, 1, tzinfo=dt.UTC):
        after = instant + dt.timedelta(days=1)
        if after.astimezone(real).utcoffset() != instant.astimezone(real).utcoffset():
            changes += 1
            moment = instant
            while moment <= after:
                assert moment.astimezone(read).utcoffset() == moment.astimezone(real).utcoffset()
                moment += dt.timedelta(minutes=15)
        instant = after
    assert changes == 2 * 18  # two changes a year, 2020–2037
