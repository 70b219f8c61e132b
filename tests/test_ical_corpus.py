"""Every iCalendar file of the corpus, and each of its difficulties, with counts and spot values
checked by hand in the files (line numbers are those of the files as published)."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from zoneinfo import ZoneInfo

import icalendar
import pytest

from connectors.ical import parse_ical
from normalize.events import Horizon, NormalizedEvent, RecordView, normalize_ical_group
from tests.conftest import FIXTURES, SAMPLES

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")
WIDE = Horizon(dt.datetime(1990, 1, 1, tzinfo=UTC), dt.datetime(2040, 1, 1, tzinfo=UTC))


def data_of(name: str) -> bytes:
    for folder in (FIXTURES / "ical", SAMPLES):
        if (folder / name).exists():
            return (folder / name).read_bytes()
    raise FileNotFoundError(name)


def normalize(data: bytes, horizon: Horizon = WIDE):
    result = parse_ical(data, "t")
    groups: dict[str, list[RecordView]] = defaultdict(list)
    for r in result.records:
        groups[r.uid].append(RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                                        r.content_hash, r.uid_repaired))
    events = {uid: normalize_ical_group("t", uid, group, horizon) for uid, group in groups.items()}
    return result, events


@functools.cache
def corpus(name: str):
    """parse + normalise a corpus file over WIDE, once per test session (the big files take
    seconds: recurring_override.ics has 202 VEVENTs, ical_google.ics infinite weekly series)."""
    return normalize(data_of(name))


def only(events: dict[str, NormalizedEvent]) -> NormalizedEvent:
    assert len(events) == 1
    return next(iter(events.values()))


def codes(problems) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in problems]


# (file, records, events after grouping by UID, errors, warning codes) — records = VEVENTs kept
# (duplicates removed), counted in each file with grep "^BEGIN:VEVENT" / "^RECURRENCE-ID".
CORPUS = [
    ("Germany_Holidays.ics", 34, 34, 0, []),
    ("Zone-B.ics", 61, 61, 0, []),
    ("basic_latin1.ics", 95, 95, 0, ["encoding"]),
    ("big_bad_calendar.ics", 0, 0, 20, ["truncated", "fallback"]),
    ("blank_line_mid.ics", 0, 0, 0, ["empty"]),
    ("broken_dtstart.ics", 0, 0, 1, []),
    ("broken_ical.ics", 1, 1, 0, ["empty-parameter"]),
    ("chi_low_income_housing_trust_fund.ics", 30, 30, 0, ["fallback", "bad-vtimezone"]),
    ("discourse_no_dtend.ics", 4, 4, 0, []),
    ("duration_instead_of_dtend.ics", 1, 1, 0, []),
    ("fablab_cottbus.ics", 28, 28, 0, []),
    ("google_2024.ics", 3, 3, 0, []),
    ("ical_google.ics", 47, 41, 0, []),
    ("ical_multiple_calendars.ics", 1, 1, 0, ["duplicate", "duplicate"]),
    ("ical_upcoming_many.ics", 20, 20, 0, []),
    ("ical_z.ics", 1, 1, 0, ["no-uid"]),
    ("invalid_duration.ics", 1, 1, 0, ["bad-property"]),
    ("issue_101_icalendar_chokes_on_umlauts_in_organizer.ics", 1, 1, 0, ["no-vcalendar"]),
    ("issue_1081_invalid_rrule_freq.ics", 1, 1, 0, ["bad-rrule"]),
    ("issue_164_duplicated_event.ics", 2, 1, 0, ["duplicate"]),
    ("issue_18_cancel_status.ics", 2, 1, 0, []),
    ("issue_20_exdate_ignored.ics", 1, 1, 0, []),
    ("issue_218_bad_tzid.ics", 1, 1, 0, []),
    ("issue_223_thunderbird.ics", 3, 1, 0, []),
    ("issue_28_rrule_with_UTC_endinginZ.ics", 5, 2, 0, []),
    ("issue_350.ics", 1, 1, 0, []),
    ("issue_48_daylight_aware_repeats.ics", 1, 1, 0, []),
    ("issue_61_time_zone_error.ics", 1, 1, 0, ["bad-folding"]),
    ("issue_62_moved_event.ics", 2, 1, 0, []),
    ("issue_722_missing_timezones.ics", 1, 1, 2, ["no-uid"]),
    ("meetup.ics", 1, 1, 0, []),
    ("ms_tz.ics", 1, 1, 0, []),
    ("no_uid.ics", 1, 1, 0, ["no-uid"]),
    ("non_ascii_uid.ics", 1, 1, 0, []),
    ("recurrenceid_ms.ics", 2, 1, 0, []),
    ("recurring_events_moved.ics", 5, 2, 0, []),
    ("recurring_override.ics", 202, 136, 0, []),
    ("rrule_until_all_day_ms.ics", 1, 1, 0, []),
    ("x_wr_timezone_simple_events_issue_59.ics", 2, 2, 0, []),
]


@pytest.mark.parametrize(("name", "records", "uids", "errors", "warnings"), CORPUS,
                         ids=[c[0] for c in CORPUS])
def test_every_corpus_calendar(name, records, uids, errors, warnings):
    result, events = corpus(name)
    assert len(result.records) == records
    assert len(events) == uids
    assert len(result.errors) == errors
    assert [p.code for p in result.warnings] == warnings
    assert all(p.line for p in result.errors)  # every unusable VEVENT is reported with its line
    assert result.events == records


# ------------------------------------------------------------------------- time zones


def test_windows_time_zone_names_from_exchange():
    # recurring_override.ics: DTSTART;TZID=W. Europe Standard Time:20210907T090000
    _result, events = corpus("recurring_override.ics")
    starts = [e for e in events.values()
              if e.event["dtstart_utc"] == dt.datetime(2021, 9, 7, 7, 0, tzinfo=UTC)]
    assert starts and {e.event["tzid"] for e in starts} == {"Europe/Berlin"}
    zones = {e.event["tzid"] for e in events.values()}
    assert zones == {"Europe/Berlin", "Europe/Zurich", None}  # None: all-day events


def test_romance_standard_time_is_paris():
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:Microsoft Exchange Server 2010\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Romance Standard Time\r\nBEGIN:STANDARD\r\n"
        "DTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\n"
        "TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\n"
        "END:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:rst-1\r\nSUMMARY:Permanence\r\n"
        "DTSTART;TZID=Romance Standard Time:20260707T140000\r\n"
        "DTEND;TZID=Romance Standard Time:20260707T170000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    event = only(normalize(text.encode())[1]).event
    assert event["tzid"] == "Europe/Paris"
    assert event["dtstart_utc"] == dt.datetime(2026, 7, 7, 12, 0, tzinfo=UTC)
    assert event["dtend_utc"] == dt.datetime(2026, 7, 7, 15, 0, tzinfo=UTC)


def test_custom_vtimezone_keeps_its_instant_and_does_not_lie_about_its_name():
    # issue_218: TZID:UTC+11 defined with TZOFFSETFROM = TZOFFSETTO = +1100; 23:00 local.
    event = only(normalize(data_of("issue_218_bad_tzid.ics"))[1])
    assert event.event["dtstart_utc"] == dt.datetime(2017, 2, 28, 12, 0, tzinfo=UTC)
    assert event.event["dtend_utc"] == dt.datetime(2017, 2, 28, 12, 30, tzinfo=UTC)
    assert event.event["tzid"] == "Etc/GMT-11"  # IANA for UTC+11; never Europe/Paris
    assert event.event["floating"] is False
    assert event.event["status"] == "confirmed"  # STATUS:Confirmed, lower case in the file
    assert any("UTC+11" in w and "VTIMEZONE" in w for w in event.warnings)


def test_custom_vtimezone_with_daylight_saving_has_no_iana_name():
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Mairie locale\r\n"
        "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n"
        "TZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\n"
        "TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:c-1\r\nDTSTART;TZID=Mairie locale:20260707T100000"
        "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    event = only(normalize(text.encode())[1])
    assert event.event["dtstart_utc"] == dt.datetime(2026, 7, 7, 8, 0, tzinfo=UTC)
    assert event.event["tzid"] is None
    assert any("aucun nom IANA" in w for w in event.warnings)


def test_unknown_tzid_without_vtimezone_is_read_as_paris_and_said_so():
    text = ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART;TZID=Nowhere/Atlantis:"
            "20260707T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    event = only(normalize(text.encode())[1])
    assert event.event["dtstart_utc"] == dt.datetime(2026, 7, 7, 8, 0, tzinfo=UTC)
    assert event.event["floating"] is True
    assert any("Nowhere/Atlantis" in w and "heure de Paris" in w for w in event.warnings)


def test_tzid_referenced_without_vtimezone_and_rdate_period():
    # issue_722: DTSTART New York 08:00 (12:00Z), DTEND Los Angeles 08:00 (15:00Z), an RDATE
    # PERIOD 2024-09-13 12:00 Berlin for 2 h; the other two VEVENTs have no DTSTART.
    result, events = normalize(data_of("issue_722_missing_timezones.ics"))
    assert codes(result.errors) == [(9, "no-dtstart"), (15, "no-dtstart")]
    event = only(events)
    assert event.event["tzid"] == "America/New_York"
    assert event.event["dtstart_utc"] == dt.datetime(2014, 8, 29, 12, 0, tzinfo=UTC)
    assert event.event["dtend_utc"] == dt.datetime(2014, 8, 29, 15, 0, tzinfo=UTC)
    assert [(o["start_utc"], o["end_utc"]) for o in event.occurrences] == [
        (dt.datetime(2014, 8, 29, 12, 0, tzinfo=UTC), dt.datetime(2014, 8, 29, 15, 0, tzinfo=UTC)),
        (dt.datetime(2024, 9, 13, 10, 0, tzinfo=UTC), dt.datetime(2024, 9, 13, 12, 0, tzinfo=UTC)),
    ]


def test_x_wr_timezone_reinterprets_google_utc_times():
    _result, events = normalize(data_of("x_wr_timezone_simple_events_issue_59.ics"))
    noon = events["3bc4jff97631or97ntnk75n4se@google.com"].event
    assert noon["title"] == "Google Calendar says this is noon to 1PM on 12/22/2021"
    assert noon["dtstart_utc"] == dt.datetime(2021, 12, 22, 17, 0, tzinfo=UTC)  # 12:00 EST
    assert noon["tzid"] == "America/New_York"


def test_utc_times_with_x_wr_timezone_keep_their_instant():
    # ical_z: "Time 0800-0900 GMT" written as 080000Z while X-WR-TIMEZONE says US/Pacific.
    event = only(normalize(data_of("ical_z.ics"))[1]).event
    assert event["title"] == "Time 0800-0900 GMT"
    assert event["dtstart_utc"] == dt.datetime(2010, 7, 1, 8, 0, tzinfo=UTC)
    assert event["dtend_utc"] == dt.datetime(2010, 7, 1, 9, 0, tzinfo=UTC)
    assert event["tzid"] == "US/Pacific"


def test_x_wr_timezone_with_value_parameter_and_date_only_start():
    # meetup: X-WR-TIMEZONE;VALUE=TEXT:US/Eastern, DTSTART:30110811 (sic, year 3011).
    _result, events = normalize(data_of("meetup.ics"))
    event = only(events)
    assert event.event["all_day"] is True
    assert event.event["start_date"] == dt.date(3011, 8, 11)
    assert event.event["location"] == "Green Dragon Bistro and Brewpub"
    assert event.occurrences == []  # far outside any horizon


def test_floating_times_follow_x_wr_timezone_when_given():
    text = (b"BEGIN:VCALENDAR\r\nX-WR-TIMEZONE:America/New_York\r\nBEGIN:VEVENT\r\nUID:f\r\n"
            b"DTSTART:20260707T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    event = only(normalize(text)[1])
    assert event.event["dtstart_utc"] == dt.datetime(2026, 7, 7, 14, 0, tzinfo=UTC)  # EDT
    assert (event.event["tzid"], event.event["floating"], event.warnings) == (
        "America/New_York", False, [])


def test_floating_times_without_any_zone_are_read_as_paris_and_flagged():
    # ical_upcoming_many (Upcoming.org, 2008): 10 of its 20 VEVENTs have floating DTSTARTs.
    _result, events = corpus("ical_upcoming_many.ics")
    floating = [e for e in events.values() if e.event["floating"]]
    assert len(floating) == 10
    assert all(e.event["tzid"] == "Europe/Paris" for e in floating)
    assert all(any("heure sans fuseau" in w for w in e.warnings) for e in floating)


@pytest.mark.parametrize("with_vtimezone", [False, True])
def test_weekly_paris_event_stays_at_15h_across_both_dst_changes(with_vtimezone):
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//test//FR")
    calendar.add("VERSION", "2.0")
    event = icalendar.Event()
    event.add("UID", "atelier-numerique@pantin.example")
    event.add("SUMMARY", "Atelier numérique")
    event.add("DTSTART", dt.datetime(2026, 3, 3, 15, 0, tzinfo=PARIS))  # a Tuesday
    event.add("DTEND", dt.datetime(2026, 3, 3, 17, 0, tzinfo=PARIS))
    event.add("RRULE", {"FREQ": "WEEKLY", "UNTIL": dt.datetime(2026, 11, 24, 14, 0, tzinfo=UTC)})
    calendar.add_component(event)
    if with_vtimezone:
        calendar.add_missing_timezones()
        assert calendar.walk("VTIMEZONE")
    horizon = Horizon(dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
    series = only(normalize(calendar.to_ical(), horizon)[1])
    by_day = {o["start_local"][:10]: o for o in series.occurrences}
    assert len(series.occurrences) == 39  # 3 March … 24 November 2026, every Tuesday
    assert {o["start_local"][11:19] for o in series.occurrences} == {"15:00:00"}
    assert {o["end_local"][11:19] for o in series.occurrences} == {"17:00:00"}
    # last Sunday of March: 29 March 2026; of October: 25 October 2026
    assert by_day["2026-03-24"]["start_utc"] == dt.datetime(2026, 3, 24, 14, 0, tzinfo=UTC)
    assert by_day["2026-03-31"]["start_utc"] == dt.datetime(2026, 3, 31, 13, 0, tzinfo=UTC)
    assert by_day["2026-10-20"]["start_utc"] == dt.datetime(2026, 10, 20, 13, 0, tzinfo=UTC)
    assert by_day["2026-10-27"]["start_utc"] == dt.datetime(2026, 10, 27, 14, 0, tzinfo=UTC)
    assert series.event["tzid"] == "Europe/Paris"


# ---------------------------------------------------------------- dates, durations, ends


def test_all_day_dates_stay_dates():
    _result, events = normalize(data_of("Germany_Holidays.ics"))
    assert all(e.event["all_day"] and e.event["dtstart_utc"] is None for e in events.values())
    days = sorted(e.event["start_date"] for e in events.values())
    assert days[0].year >= 2000 and len(days) == 34


def test_no_dtend_defaults_rfc5545_3_6_1():
    # discourse_no_dtend: the first VEVENT (line 76) has a DATE-TIME DTSTART and no DTEND:
    # it ends when it starts. The others have DTEND.
    _result, events = normalize(data_of("discourse_no_dtend.ics"))
    open_lab = events["0ab03762-6e6d-40d7-9ceb-b49844ba61a4"].event
    assert open_lab["title"] == "2019-01-17 openLab"
    assert open_lab["dtstart_utc"] == open_lab["dtend_utc"] == dt.datetime(
        2019, 1, 17, 17, 0, 25, tzinfo=UTC)
    hemp = events["d7069eb4-e82c-40af-9486-fb5bb332c328"].event  # DTEND 18:30:14 Berlin
    assert hemp["dtend_utc"] == dt.datetime(2019, 2, 28, 17, 30, 14, tzinfo=UTC)
    # a DATE start without DTEND lasts one day
    text = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20260714\r\n" \
           b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    day = only(normalize(text)[1]).event
    assert (day["start_date"], day["end_date"]) == (dt.date(2026, 7, 14), dt.date(2026, 7, 15))


def test_duration_instead_of_dtend():
    # DTSTART;TZID=America/Los_Angeles:20120630T060000 + DURATION:P1D
    event = only(normalize(data_of("duration_instead_of_dtend.ics"))[1]).event
    assert event["dtstart_utc"] == dt.datetime(2012, 6, 30, 13, 0, tzinfo=UTC)
    assert event["dtend_utc"] == dt.datetime(2012, 7, 1, 13, 0, tzinfo=UTC)
    assert event["tzid"] == "America/Los_Angeles"


def test_impractical_duration_is_dropped_with_a_warning():
    result, events = normalize(data_of("invalid_duration.ics"))
    assert codes(result.warnings) == [(4, "bad-property")]
    assert "DURATION" in result.warnings[0].message
    event = only(events).event
    assert event["dtstart_utc"] == event["dtend_utc"] == dt.datetime(2024, 1, 1, tzinfo=UTC)


def test_invalid_rrule_freq_keeps_the_single_event():
    result, events = normalize(data_of("issue_1081_invalid_rrule_freq.ics"))
    assert "RRULE" in result.warnings[0].message
    event = only(events)
    assert event.event["rrule"] is None and event.event["title"] == "Test Event"
    assert [o["start_utc"] for o in event.occurrences] == [dt.datetime(2025, 1, 1, 10, tzinfo=UTC)]


# ------------------------------------------------------------------------- recurrence


def test_rrule_until_in_utc_with_all_day_series_and_moved_occurrences():
    # issue_28: every other Thursday, all day, UNTIL=20200916T230000Z; three overrides whose
    # RECURRENCE-ID is a midnight DATE-TIME (GMT Standard Time) move Thursday to Friday.
    _result, events = normalize(data_of("issue_28_rrule_with_UTC_endinginZ.ics"))
    black = next(e for e in events.values() if e.event["title"] == "Refuse black bin")
    days = [o["start_date"] for o in black.occurrences]
    assert len(days) == 12
    assert days[0] == dt.date(2020, 4, 2) and days[-1] == dt.date(2020, 9, 4)
    moved = {o["recurrence_id"]: o["start_date"] for o in black.occurrences
             if o["start_date"].weekday() == 4}
    assert moved == {"20200416": dt.date(2020, 4, 17), "20200528": dt.date(2020, 5, 29),
                     "20200903": dt.date(2020, 9, 4)}
    blue = next(e for e in events.values() if e.event["title"] == "Blue Recycle bin")
    assert [o["start_date"] for o in blue.occurrences][-1] == dt.date(2020, 9, 10)  # UNTIL 23 Sep 23:00Z
    assert len(blue.occurrences) == 12


def test_exdate_including_one_equal_to_dtstart():
    # issue_20: Tuesdays 16:15 Berlin from 15 Oct 2019 until 4 Feb 2020 15:14:59Z (16
    # Tuesdays), EXDATE removes 9 of them, the first being DTSTART itself.
    event = only(normalize(data_of("issue_20_exdate_ignored.ics"))[1])
    days = [o["start_local"][:10] for o in event.occurrences]
    assert days == ["2019-10-29", "2019-11-12", "2019-12-10", "2020-01-07", "2020-01-14",
                    "2020-01-21", "2020-01-28"]
    assert "2019-10-15T14:15:00Z" in event.event["exdate"]
    assert event.event["dtend_utc"] - event.event["dtstart_utc"] == dt.timedelta(minutes=90)


def test_exdate_as_date_time_on_an_all_day_series():
    # rrule_until_all_day_ms: Fridays from 19 March 2021, UNTIL 2 May 22:00Z, EXDATE 30 April.
    event = only(normalize(data_of("rrule_until_all_day_ms.ics"))[1])
    assert [o["start_date"].day for o in event.occurrences] == [19, 26, 2, 9, 16, 23]
    assert all(o["end_date"] - o["start_date"] == dt.timedelta(days=2) for o in event.occurrences)


def test_recurrence_id_overrides_moved_occurrences():
    _result, events = normalize(data_of("recurring_events_moved.ics"))
    test7 = events["5d4c6843-9300-4f91-8d88-6094d4b0b840"]
    assert [o["title"] for o in test7.occurrences] == [None, "test7 - edited", None]
    new = events["a0c78729-30b1-4ba3-a86e-6aedd995d788"]
    # daily 02:00 Berlin; 8 March moved to 01:00 and 9 March to 03:00
    assert [o["start_local"][11:16] for o in new.occurrences] == ["02:00", "01:00", "03:00",
                                                                   "02:00"]


def test_exchange_override_of_an_all_day_series():
    # recurrenceid_ms: RECURRENCE-ID;TZID=W. Europe Standard Time:20210409T000000 moves the
    # Friday 9 April 2021 to Saturday 10 April.
    horizon = Horizon(dt.datetime(2021, 4, 1, tzinfo=UTC), dt.datetime(2021, 4, 20, tzinfo=UTC))
    event = only(normalize(data_of("recurrenceid_ms.ics"), horizon)[1])
    assert [(o["recurrence_id"], o["start_date"]) for o in event.occurrences] == [
        ("20210402", dt.date(2021, 4, 2)), ("20210407", dt.date(2021, 4, 7)),
        ("20210409", dt.date(2021, 4, 10)), ("20210414", dt.date(2021, 4, 14)),
        ("20210416", dt.date(2021, 4, 16))]


def test_cancelled_instance_and_sequence():
    event = only(normalize(data_of("issue_18_cancel_status.ics"))[1])
    assert [o["status"] for o in event.occurrences] == ["confirmed", "cancelled", "confirmed"]
    thunderbird = only(normalize(data_of("issue_223_thunderbird.ics"))[1])
    assert thunderbird.event["sequence"] == 1
    rows = {o["start_local"][:10]: o for o in thunderbird.occurrences}
    assert len(rows) == 5
    assert rows["2025-04-24"]["start_utc"] == dt.datetime(2025, 4, 24, 10, 0, tzinfo=UTC)  # 11:00
    assert rows["2025-04-25"]["location"] == "new place"


def test_event_level_status():
    text = ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART:20260707T100000Z\r\n"
            "RRULE:FREQ=DAILY;COUNT=2\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\n"
            "UID:t\r\nDTSTART:20260707T100000Z\r\nSTATUS:TENTATIVE\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")
    _result, events = normalize(text.encode())
    assert events["s"].event["status"] == "cancelled"
    assert [o["status"] for o in events["s"].occurrences] == ["cancelled", "cancelled"]
    assert events["t"].event["status"] == "tentative"


def test_duplicates_keep_the_latest_revision():
    text = ("BEGIN:VCALENDAR\r\n"
            "BEGIN:VEVENT\r\nUID:a\r\nSEQUENCE:2\r\nDTSTAMP:20260101T000000Z\r\n"
            "DTSTART:20260707T100000Z\r\nSUMMARY:version 2\r\nEND:VEVENT\r\n"
            "BEGIN:VEVENT\r\nUID:a\r\nSEQUENCE:1\r\nDTSTAMP:20260301T000000Z\r\n"
            "DTSTART:20260707T100000Z\r\nSUMMARY:version 1\r\nEND:VEVENT\r\n"
            "BEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20260301T000000Z\r\n"
            "DTSTART:20260707T100000Z\r\nSUMMARY:newer stamp\r\nEND:VEVENT\r\n"
            "BEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20260201T000000Z\r\n"
            "DTSTART:20260707T100000Z\r\nSUMMARY:older stamp\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")
    result, events = normalize(text.encode())
    assert events["a"].event["title"] == "version 2"
    assert events["b"].event["title"] == "newer stamp"
    assert codes(result.warnings) == [(9, "duplicate"), (22, "duplicate")]


def test_duplicated_override_in_one_file():
    # issue_164: the same RECURRENCE-ID VEVENT (line 15) appears again at line 29.
    result, events = normalize(data_of("issue_164_duplicated_event.ics"))
    assert codes(result.warnings) == [(29, "duplicate")]
    assert sorted(r.recurrence_id for r in result.records) == ["", "2024-08-26"]
    event = only(events)
    keys = [o["recurrence_id"] for o in event.occurrences]
    assert len(keys) == len(set(keys))


def test_multiple_vcalendars_in_one_file():
    # Three VCALENDARs (lines 1, 38, 75) each with the same UID and SEQUENCE: one event, the
    # last version kept, the two repeats reported.
    result, events = normalize(data_of("ical_multiple_calendars.ics"))
    assert codes(result.warnings) == [(64, "duplicate"), (101, "duplicate")]
    event = only(events).event
    assert event["title"] == "Coffee with Kim"
    assert event["dtstart_utc"] == dt.datetime(2010, 4, 8, 7, 0, tzinfo=UTC)  # 00:00 PDT
    two = (data_of("ical_multiple_calendars.ics").replace(
        b"654C6EC3-542C-469A-8267-12C35E5A6BCA\nDTSTART;TZID=US/Pacific:20100408T000000\n"
        b"DTSTAMP:20100409T033746Z\nSUMMARY:Coffee with Mike",
        b"other-uid\nDTSTART;TZID=US/Pacific:20100408T000000\n"
        b"DTSTAMP:20100409T033746Z\nSUMMARY:Coffee with Mike"))
    assert len(normalize(two)[0].records) == 2  # VEVENTs of every VCALENDAR are read


# --------------------------------------------------------------------- identity, text


def test_missing_uid_is_deterministic_flagged_and_stable():
    data = data_of("no_uid.ics")
    first = parse_ical(data, "t")
    second = parse_ical(data.replace(b"DTSTAMP:20210516T144840Z", b"DTSTAMP:20260101T000000Z"),
                        "t")
    assert first.records[0].uid == second.records[0].uid == "repaired-84fa503917f468a4"
    assert first.records[0].uid_repaired is True
    assert codes(first.warnings) == [(21, "no-uid")]
    event = only(normalize(data)[1]).event
    assert event["uid_repaired"] is True and event["id"] == "t--repaired-84fa503917f468a4"
    assert event["title"] == "Free" and event["start_date"] == dt.date(2021, 5, 20)


def test_non_ascii_uid_is_kept():
    event = only(normalize(data_of("non_ascii_uid.ics"))[1]).event
    assert event["source_uid"] == "🙉🙈👀"
    assert event["uid_repaired"] is False


def test_bom_changes_nothing():
    data = data_of("issue_62_moved_event.ics")
    plain, with_bom = parse_ical(data, "t"), parse_ical(b"\xef\xbb\xbf" + data, "t")
    assert [r.content_hash for r in plain.records] == [r.content_hash for r in with_bom.records]
    assert not with_bom.warnings and not with_bom.errors


def test_bare_vevent_without_vcalendar_is_wrapped():
    # issue_101: a VEVENT alone (CRLF), umlauts in LOCATION and in ORGANIZER's CN.
    result, events = normalize(data_of("issue_101_icalendar_chokes_on_umlauts_in_organizer.ics"))
    assert codes(result.warnings) == [(None, "no-vcalendar")]
    assert result.records[0].line == 1
    event = only(events).event
    assert event["title"] == "wichtiger termin 1"
    assert event["location"] == "im büro"
    assert event["organizer"] == "acme, ädmin"
    assert event["dtstart_utc"] == dt.datetime(2013, 4, 16, 10, 0, tzinfo=UTC)


def test_line_folded_without_a_space_is_joined_back():
    # issue_61 line 211: "l Latham;CUTYPE=INDIVIDUAL:mailto:…" continues "…;CN=Danie" (line 210)
    result, events = normalize(data_of("issue_61_time_zone_error.ics"))
    assert codes(result.warnings) == [(211, "bad-folding")]
    payload = result.records[0].payload.replace("\r\n ", "")  # unfold
    assert "CN=Daniel Latham;CUTYPE" in payload and "\nL LATHAM" not in payload.upper()
    event = only(events).event
    assert event["title"] == "test" and event["start_date"] == dt.date(2021, 12, 15)
    assert event["sequence"] == 5


def test_empty_parameter_is_repaired():
    # broken_ical line 4: DTSTART;;VALUE=DATE-TIME:20140409T093000 (floating: read as Paris)
    result, events = normalize(data_of("broken_ical.ics"))
    assert codes(result.warnings) == [(4, "empty-parameter")]
    event = only(events)
    assert event.event["title"] == "An Event with too many semicolons"
    assert event.event["dtstart_utc"] == dt.datetime(2014, 4, 9, 7, 30, tzinfo=UTC)
    assert event.event["floating"] is True


def test_vevents_without_usable_dtstart_are_reported_with_their_line():
    big = parse_ical(data_of("big_bad_calendar.ics"), "t")
    assert codes(big.errors) == [(line, "no-dtstart") for line in range(2, 42, 2)]
    assert (41, "truncated") in codes(big.warnings)  # END:VCALENDAR is missing
    broken = parse_ical(data_of("broken_dtstart.ics"), "t")
    assert codes(broken.errors) == [(4, "bad-dtstart")]
    assert "INVALID-DATE" in broken.errors[0].message


def test_blank_line_in_the_middle_is_tolerated():
    result = parse_ical(data_of("blank_line_mid.ics"), "t")
    assert result.errors == [] and codes(result.warnings) == [(None, "empty")]


def test_broken_file_keeps_every_readable_vevent():
    # Cut a calendar inside its 10th VEVENT and break the DTSTART of its 3rd.
    data = data_of("fablab_cottbus.ics")
    starts = [i for i in range(len(data)) if data.startswith(b"BEGIN:VEVENT", i)]
    third_dtstart = data.index(b"DTSTART", starts[2])
    broken = (data[:third_dtstart] + b"DTSTART;VALUE=DATE:2018BAD\r\n"
              + data[data.index(b"\n", third_dtstart) + 1: starts[9] + 40])
    result = parse_ical(broken, "t")
    cut = [i for i in range(len(broken)) if broken.startswith(b"BEGIN:VEVENT", i)]
    lines = broken[: cut[2]].count(b"\n") + 1, broken[: cut[9]].count(b"\n") + 1
    assert len(result.records) == 8  # 9 complete VEVENTs, one with a broken DTSTART
    assert [(p.line, p.code) for p in result.errors] == [(lines[0], "bad-dtstart"),
                                                         (lines[1], "truncated")]


def test_latin1_and_html_description():
    result, events = normalize(data_of("basic_latin1.ics"))
    assert codes(result.warnings) == [(None, "encoding")]
    assert any("ü" in (e.event["title"] + (e.event["description"] or ""))
               for e in events.values())


def test_x_properties_and_quoted_parameters():
    # issue_350: SUMMARY with quotes, LOCATION "online", Europe/Berlin 19:30 on 22 Feb 2022.
    event = only(normalize(data_of("issue_350.ics"))[1]).event
    assert event["title"] == 'Termin 4353 und"so"'
    assert event["location"] == "online"
    assert event["dtstart_utc"] == dt.datetime(2022, 2, 22, 18, 30, tzinfo=UTC)


def test_google_2024_export_with_count():
    _result, events = normalize(data_of("google_2024.ics"))
    assert {e.event["tzid"] for e in events.values()} <= {"Europe/Zurich", None}
    assert sum(len(e.occurrences) for e in events.values()) == 32


def test_exchange_all_day_with_windows_vtimezone():
    event = only(normalize(data_of("ms_tz.ics"))[1]).event
    assert event["all_day"] is True and event["tzid"] is None
    assert (event["start_date"], event["end_date"]) == (dt.date(2021, 3, 24), dt.date(2021, 3, 27))


def test_repeated_single_properties_keep_the_first():
    # Found by tests/test_fuzz.py: a cut merged two Exchange VEVENTs of issue_28 into one,
    # which then had two DTSTART, two SUMMARY, two UID… (RFC 5545 §3.6.1: at most once).
    data = data_of("issue_28_rrule_with_UTC_endinginZ.ics")
    start = data.index(b"X-MICROSOFT-CDO-INTENDEDSTATUS")
    merged = data[:start] + data[data.index(b"BEGIN:VEVENT", start) + len(b"BEGIN:VEVENT\r\n"):]
    result, events = normalize(merged)
    repeated = [p for p in result.warnings if p.code == "repeated-property"]
    assert {p.message.split()[1] for p in repeated} >= {"DTSTART", "SUMMARY", "UID"}
    black = next(e for e in events.values() if e.event["title"] == "Refuse black bin")
    assert black.event["start_date"] == dt.date(2020, 4, 2)
    assert black.event["rrule"].startswith("FREQ=WEEKLY;UNTIL=20200916T230000Z")
    assert any("2 règles RRULE" in w for w in black.warnings)


def test_utf8_file_with_a_stray_latin1_byte_keeps_its_utf8():
    # issue_101 is UTF-8 ("im b\xc3\xbcro", "\xc3\xa4dmin"); make its ü a lone Latin-1 byte.
    data = data_of("issue_101_icalendar_chokes_on_umlauts_in_organizer.ics")
    mixed = data.replace(b"b\xc3\xbcro", b"b\xfcro")
    assert mixed != data
    result, events = normalize(mixed)
    assert "encoding" in [p.code for p in result.warnings]
    event = only(events).event
    assert event["location"] == "im büro"
    assert event["organizer"] == "acme, ädmin"  # not "acme, Ã¤dmin"


def test_a_vtimezone_with_two_tzids_is_named_without_python_text():
    """The Chicago sample (WordPress The Events Calendar) writes one VTIMEZONE with two TZID
    lines; icalendar raises AttributeError (« 'list' object has no attribute 'strip' »), which
    was shown as is in the harvest output, `tissu sources status` and the status page."""
    result = parse_ical((SAMPLES / "chi_low_income_housing_trust_fund.ics").read_bytes(), "chi")
    messages = [(p.line, p.code, p.message) for p in result.warnings + result.errors]
    assert messages == [
        (None, "fallback", ("fichier mal formé (le lecteur iCalendar a échoué sur une propriété "
                           "en double ou mal placée) ; lecture événement par événement")),
        (12, "bad-vtimezone", ("VTIMEZONE illisible ignoré (il porte 2 TZID (lignes 13, 20) : "
                              "un VTIMEZONE décrit un seul fuseau)"))]
    assert len(result.records) == 30
    assert not any("attribute" in m for _l, _c, m in messages)
