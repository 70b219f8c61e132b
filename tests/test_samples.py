"""Each bundled real sample parses to counts and spot values checked by hand in the files."""

import datetime as dt
from collections import defaultdict

from connectors.feeds import parse_feed
from connectors.ical import parse_ical
from normalize.events import (
    Horizon,
    RecordView,
    normalize_ical_group,
    normalize_json_record,
)
from tests.conftest import SAMPLES

UTC = dt.UTC
WIDE = Horizon(dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 1, tzinfo=UTC))


def events_by_uid(name: str, horizon: Horizon = WIDE):
    result = parse_ical((SAMPLES / name).read_bytes(), "s")
    groups = defaultdict(list)
    for r in result.records:
        groups[r.uid].append(RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                                        r.content_hash, r.uid_repaired))
    return result, {uid: normalize_ical_group("s", uid, g, horizon) for uid, g in groups.items()}


def test_zone_b_school_holidays_all_day():
    result, events = events_by_uid("Zone-B.ics")
    assert len(result.records) == 61 and not result.errors
    noel = events["20250114T124632Z-Zone-B@data.education.gouv.fr"].event
    assert noel["title"] == "Vacances de Noël"
    assert noel["all_day"] is True
    assert noel["start_date"] == dt.date(2017, 12, 23)
    assert noel["end_date"] == dt.date(2018, 1, 8)  # exclusive, as in the file
    assert noel["dtstart_utc"] is None


def test_fablab_cottbus_events_manager_export():
    result, events = events_by_uid("fablab_cottbus.ics")
    assert len(result.records) == 28 and not result.errors
    event = events["ai1ec-1862@blog.fablab-cottbus.de"].event
    assert event["title"] == "Lab geschlossen: Wir sind auf dem Karlstraßenfest"
    assert event["location"] == "Karlstraßenfest"
    assert event["start_date"] == dt.date(2018, 6, 9)
    assert event["description"].startswith("Wir sind auf dem Karlstraßenfest – kommt uns")


def test_google_calendar_export_monthly_rrule_until():
    result, events = events_by_uid("ical_google.ics")
    assert len(result.records) == 47
    assert len(events) == 41  # 6 VEVENTs are RECURRENCE-ID overrides of other UIDs
    xpdx = events["5rc84iqjlrn7q56vr6uin8vcvk@google.com"]
    assert xpdx.event["title"] == "XPDX (eXtreme Programming) at CubeSpace"
    # 18:30 America/Los_Angeles (PDT, UTC-7) on 2007-10-24
    assert xpdx.event["dtstart_utc"] == dt.datetime(2007, 10, 25, 1, 30, tzinfo=UTC)
    assert xpdx.event["tzid"] == "America/Los_Angeles"
    # FREQ=MONTHLY;BYDAY=4WE until 2008-01-24T03:30Z: Oct 24, Nov 28, Dec 26 2007, Jan 23 2008
    starts = [o["start_local"][:10] for o in xpdx.occurrences]
    assert starts == ["2007-10-25", "2007-11-29", "2007-12-27", "2008-01-24"]
    assert xpdx.occurrences[1]["start_utc"] == dt.datetime(2007, 11, 29, 2, 30, tzinfo=UTC)


def test_lisbon_weekly_keeps_local_hour_across_dst():
    horizon = Horizon(dt.datetime(2020, 10, 12, tzinfo=UTC), dt.datetime(2020, 11, 3, tzinfo=UTC))
    _result, events = events_by_uid("issue_48_daylight_aware_repeats.ics", horizon)
    occurrences = events["EVENT2"].occurrences
    # Mondays 11:30 Europe/Lisbon: WEST (UTC+1) before 25 Oct 2020, WET (UTC+0) after.
    assert [o["start_utc"] for o in occurrences] == [
        dt.datetime(2020, 10, 12, 10, 30, tzinfo=UTC),
        dt.datetime(2020, 10, 19, 10, 30, tzinfo=UTC),
        dt.datetime(2020, 10, 26, 11, 30, tzinfo=UTC),
        dt.datetime(2020, 11, 2, 11, 30, tzinfo=UTC),
    ]
    assert events["EVENT2"].event["description"].startswith("https://videoconf-colibri.zoom.us/")


def test_the_events_calendar_export_with_broken_vtimezone_is_recovered():
    result, events = events_by_uid("chi_low_income_housing_trust_fund.ics")
    assert len(result.records) == 30 and not result.errors
    assert any("VTIMEZONE" in str(w) for w in result.warnings)
    outreach = [e for e in events.values() if e.event["title"] == "Outreach Meeting"]
    first = min(outreach, key=lambda e: e.event["dtstart_utc"]).event
    # 08:30 America/Chicago (CDT, UTC-5) on 2024-05-09
    assert first["dtstart_utc"] == dt.datetime(2024, 5, 9, 13, 30, tzinfo=UTC)
    assert first["tzid"] == "America/Chicago"


def test_spip_rss_with_hcalendar_events():
    result = parse_feed((SAMPLES / "agenda_region_aquitaine_spip_rss.xml").read_bytes(), "a")
    assert result.detected_format == "rss"
    assert (result.events, result.news) == (204, 0)
    record = next(r for r in result.records
                  if r.uid == "http://agenda.aquitaine.fr/Initations-aux-echasses.html")
    normalized = normalize_json_record("a", RecordView(record.uid, "", "json", record.payload,
                                                       record.content_hash), WIDE)
    event = normalized.event
    assert event["title"] == "Initations aux échasses"
    # abbr title="2011-12-31T17:30:00" has no zone: read as Europe/Paris (UTC+1), flagged
    assert event["dtstart_utc"] == dt.datetime(2011, 12, 31, 16, 30, tzinfo=UTC)
    assert event["floating"] is True
    assert event["location"] == "40440 Ondres"
    assert event["organizer"] is None  # only an e-mail address: never published
    assert "Folklore Landais" in event["description"]
    assert "<p" not in event["description"]


def test_news_items_are_not_events():
    from tests.conftest import FIXTURES

    data = (FIXTURES / "feeds" / "golem_encoding_ISO-8859-1.xml").read_bytes()
    result = parse_feed(data)
    assert result.events == 0 and result.news == 40
    assert all('"dtstart"' not in r.payload for r in result.records)
