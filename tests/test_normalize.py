"""Normalisation v1 on real corpus files: EXDATE, RECURRENCE-ID, cancelled, floating, X-WR-TIMEZONE."""

import datetime as dt
from collections import defaultdict

from connectors.ical import parse_ical
from normalize.events import Horizon, RecordView, normalize_ical_group
from normalize.text import html_to_text
from normalize.times import resolve_tzid
from tests.conftest import FIXTURES

UTC = dt.UTC


def normalize_file(name: str, horizon: Horizon):
    result = parse_ical((FIXTURES / "ical" / name).read_bytes(), "t")
    groups = defaultdict(list)
    for r in result.records:
        groups[r.uid].append(RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                                        r.content_hash, r.uid_repaired))
    return {uid: normalize_ical_group("t", uid, g, horizon) for uid, g in groups.items()}


def test_exdate_removes_instances_including_dtstart():
    horizon = Horizon(dt.datetime(2019, 10, 1, tzinfo=UTC), dt.datetime(2020, 3, 1, tzinfo=UTC))
    event = normalize_file("issue_20_exdate_ignored.ics", horizon)[
        "f0f31ddb-6918-46af-a5a1-0a7254fbce71"]
    # Tuesdays 16:15 Europe/Berlin, 15 Oct 2019 → UNTIL 4 Feb 2020 15:14:59Z (excluded);
    # nine EXDATEs, the first equal to DTSTART, leave seven.
    assert [o["start_local"] for o in event.occurrences] == [
        "2019-10-29T16:15:00+01:00",
        "2019-11-12T16:15:00+01:00",
        "2019-12-10T16:15:00+01:00",
        "2020-01-07T16:15:00+01:00",
        "2020-01-14T16:15:00+01:00",
        "2020-01-21T16:15:00+01:00",
        "2020-01-28T16:15:00+01:00",
    ]
    # DURATION:PT1H30M
    first = event.occurrences[0]
    assert first["end_utc"] - first["start_utc"] == dt.timedelta(hours=1, minutes=30)
    assert event.event["rrule"].startswith("FREQ=WEEKLY")


def test_recurrence_id_moves_one_instance():
    horizon = Horizon(dt.datetime(2021, 11, 1, tzinfo=UTC), dt.datetime(2022, 3, 1, tzinfo=UTC))
    events = normalize_file("issue_62_moved_event.ics", horizon)
    assert list(events) == ["38m812jicsrer5gorh3mlp7qhc@google.com"]
    occurrences = events["38m812jicsrer5gorh3mlp7qhc@google.com"].occurrences
    # last Friday 21:30 Berlin; the 31 Dec instance moved to 17 Dec.
    assert [(o["start_utc"], o["recurrence_id"]) for o in occurrences] == [
        (dt.datetime(2021, 11, 26, 20, 30, tzinfo=UTC), "20211126T203000Z"),
        (dt.datetime(2021, 12, 17, 20, 30, tzinfo=UTC), "20211231T203000Z"),
        (dt.datetime(2022, 1, 28, 20, 30, tzinfo=UTC), "20220128T203000Z"),
        (dt.datetime(2022, 2, 25, 20, 30, tzinfo=UTC), "20220225T203000Z"),
    ]
    ids = [o["id"] for o in occurrences]
    assert len(set(ids)) == 4
    assert ids[1] == "t--38m812jicsrer5gorh3mlp7qhc@google.com--20211231T203000Z"


def test_cancelled_instance_is_kept_as_cancelled():
    horizon = Horizon(dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2020, 2, 28, tzinfo=UTC))
    event = normalize_file("issue_18_cancel_status.ics", horizon)[
        "b65c2b5b-b785-4edc-9560-e0379036d1f2"]
    assert [(o["start_utc"].day, o["status"]) for o in event.occurrences] == [
        (28, "confirmed"), (29, "cancelled"), (30, "confirmed")]
    assert event.event["status"] == "confirmed"


def test_floating_times_are_read_as_paris_and_flagged():
    horizon = Horizon(dt.datetime(2008, 1, 1, tzinfo=UTC), dt.datetime(2009, 12, 31, tzinfo=UTC))
    events = normalize_file("ical_upcoming_many.ics", horizon)
    summit = events["http://upcoming.yahoo.com/event/834270/"]
    assert summit.event["title"] == "Substance Summit"
    assert summit.event["floating"] is True and summit.event["tzid"] == "Europe/Paris"
    assert summit.event["dtstart_utc"] == dt.datetime(2008, 7, 9, 13, 30, tzinfo=UTC)
    assert summit.event["organizer"] == "stlandau"
    assert summit.warnings


def test_x_wr_timezone_reinterprets_utc_times():
    horizon = Horizon(dt.datetime(2021, 1, 1, tzinfo=UTC), dt.datetime(2022, 12, 31, tzinfo=UTC))
    events = normalize_file("x_wr_timezone_simple_events_issue_59.ics", horizon)
    tzids = {e.event["tzid"] for e in events.values()}
    assert tzids == {"America/New_York"}


def test_latin1_calendar_is_decoded():
    result = parse_ical((FIXTURES / "ical" / "basic_latin1.ics").read_bytes(), "t")
    assert len(result.records) == 95
    assert any("UTF-8" in str(w) for w in result.warnings)
    assert any("graue Restmülltonne" in r.payload for r in result.records)


def test_stable_ids_and_hashes_across_parses():
    data = (FIXTURES / "ical" / "issue_62_moved_event.ics").read_bytes()
    first = parse_ical(data, "t")
    second = parse_ical(data, "t")
    assert [(r.uid, r.recurrence_id, r.content_hash) for r in first.records] == [
        (r.uid, r.recurrence_id, r.content_hash) for r in second.records]


def test_html_to_text_removes_markup_and_decodes_entities():
    assert html_to_text('<p>Distribution&nbsp;<b>alimentaire</b></p><p>Salle&#233;</p>'
                        '<script>alert(1)</script>') == "Distribution alimentaire\nSalleé"


def test_windows_timezone_names_map_to_iana():
    assert resolve_tzid("Romance Standard Time") == "Europe/Paris"
    assert resolve_tzid("W. Europe Standard Time") == "Europe/Berlin"
    assert resolve_tzid("/Europe/Paris") == "Europe/Paris"
    assert resolve_tzid("Nowhere/Atlantis") is None


def test_organizer_e_mail_addresses_are_never_published():
    from normalize.text import organizer_name

    # the organizer field of the Région Aquitaine SPIP feed (data/samples)
    assert organizer_name("loupiac@vins-loupiac.com|chateaupeyruchet@wanadoo.") is None
    assert organizer_name("Secours populaire <contact@example.org>") == "Secours populaire"
    assert organizer_name("mailto:contact@example.org") is None
    assert organizer_name("Maison de quartier des Courtillières") == (
        "Maison de quartier des Courtillières")
    assert organizer_name("acme, ädmin") == "acme, ädmin"


def _normalize_text(text: str, horizon: Horizon):
    result = parse_ical(text.replace("\n", "\r\n").encode(), "t")
    groups = defaultdict(list)
    for r in result.records:
        groups[r.uid].append(RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                                        r.content_hash, r.uid_repaired))
    return {uid: normalize_ical_group("t", uid, g, horizon) for uid, g in groups.items()}


def _series(rule: str, start: str = "20261205T100000Z", end: str = "20261205T100001Z") -> str:
    # the 210-byte file of the fresh-user trial, with the rule varied
    return ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:s1\n"
            f"DTSTAMP:20261201T000000Z\nDTSTART:{start}\nDTEND:{end}\nSUMMARY:Série\n"
            f"RRULE:{rule}\nEND:VEVENT\nEND:VCALENDAR\n")


def test_an_endless_dense_series_is_cut_at_the_cap_with_a_warning():
    from normalize.events import MAX_OCCURRENCES

    horizon = Horizon(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2027, 12, 1, tzinfo=UTC))
    for rule, step in (("FREQ=SECONDLY", dt.timedelta(seconds=1)),
                       ("FREQ=MINUTELY", dt.timedelta(minutes=1)),
                       ("FREQ=DAILY;BYHOUR=0,1,2,3;BYMINUTE=0,10,20,30,40,50",
                        dt.timedelta(minutes=10))):
        event = _normalize_text(_series(rule), horizon)["s1"]
        starts = [o["start_utc"] for o in event.occurrences]
        assert len(starts) == MAX_OCCURRENCES, rule
        assert starts[0] == dt.datetime(2026, 12, 5, 10, tzinfo=UTC)  # the first ones are kept
        if rule.startswith("FREQ=DAILY"):
            assert starts[1] == dt.datetime(2026, 12, 6, 0, 0, tzinfo=UTC)  # DTSTART, then BY*
        else:
            assert starts[1] - starts[0] == step
        assert any("série trop dense" in w for w in event.warnings), rule


def test_a_dense_series_under_the_cap_is_whole_and_silent():
    horizon = Horizon(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2027, 12, 1, tzinfo=UTC))
    # opening hours: 09:00 and 14:00 each day for ten days; hourly with a COUNT
    twice = _normalize_text(_series("FREQ=DAILY;COUNT=20;BYHOUR=9,14;BYMINUTE=0;BYSECOND=0",
                                    start="20261207T090000Z", end="20261207T100000Z"),
                            horizon)["s1"]
    assert len(twice.occurrences) == 20 and not any("dense" in w for w in twice.warnings)
    assert twice.occurrences[1]["start_utc"] == dt.datetime(2026, 12, 7, 14, tzinfo=UTC)
    hourly = _normalize_text(_series("FREQ=HOURLY;COUNT=5"), horizon)["s1"]
    assert [o["start_utc"].hour for o in hourly.occurrences] == [10, 11, 12, 13, 14]
    # the horizon still bounds a dense series: nothing after its end
    short = Horizon(dt.datetime(2026, 12, 5, tzinfo=UTC), dt.datetime(2026, 12, 5, 12, tzinfo=UTC))
    minutes = _normalize_text(_series("FREQ=MINUTELY"), short)["s1"]
    assert len(minutes.occurrences) == 120


def test_an_end_before_the_start_is_ignored_for_the_event_and_its_occurrence():
    # the fresh-user trial: the event was clamped to 10 → 10 December, its occurrence swapped
    # into a nine-day session starting on 1 December
    horizon = Horizon(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2027, 12, 1, tzinfo=UTC))
    event = _normalize_text(_series("FREQ=DAILY;COUNT=2", start="20261210T100000Z",
                                    end="20261201T100000Z"), horizon)["s1"]
    start = dt.datetime(2026, 12, 10, 10, tzinfo=UTC)
    assert (event.event["dtstart_utc"], event.event["dtend_utc"]) == (start, start)
    assert [(o["start_utc"], o["end_utc"]) for o in event.occurrences] == [
        (start, start), (start + dt.timedelta(days=1), start + dt.timedelta(days=1))]
    assert any("DTEND" in w and "avant DTSTART" in w for w in event.warnings)


def test_a_dense_series_started_years_ago_is_read_near_the_horizon():
    # the second trial: FREQ=MINUTELY since 2010 never finished (killed after 300 s, 580 MB)
    horizon = Horizon(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2027, 12, 1, tzinfo=UTC))
    minutes = _normalize_text(_series("FREQ=MINUTELY", start="20100101T000000Z",
                                      end="20100101T000030Z"), horizon)["s1"]
    assert [o["start_utc"] for o in minutes.occurrences[:2]] == [
        dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 11, 1, 0, 1, tzinfo=UTC)]
    assert minutes.occurrences[0]["end_utc"] == dt.datetime(2026, 11, 1, 0, 0, 30, tzinfo=UTC)
    # the phase of an interval is kept: every 7 minutes from 00:03 on 1 January 2020, at 9 h
    sevens = _normalize_text(_series("FREQ=MINUTELY;INTERVAL=7;BYHOUR=9",
                                     start="20200101T000300Z", end="20200101T000400Z"),
                             horizon)["s1"]
    starts = [o["start_utc"] for o in sevens.occurrences[:3]]
    origin = dt.datetime(2020, 1, 1, 0, 3, tzinfo=UTC)
    assert all((s - origin) % dt.timedelta(minutes=7) == dt.timedelta(0) for s in starts)
    assert all(s.hour == 9 for s in starts) and starts[0].date() == dt.date(2026, 11, 1)
    # an hourly series since 1900 gives the same hours as one started the day before
    old = _normalize_text(_series("FREQ=HOURLY", start="19000101T001500Z",
                                  end="19000101T004500Z"), horizon)["s1"]
    recent = _normalize_text(_series("FREQ=HOURLY", start="20261030T001500Z",
                                     end="20261030T004500Z"), horizon)["s1"]
    assert [(o["start_utc"], o["end_utc"]) for o in old.occurrences] == [
        (o["start_utc"], o["end_utc"]) for o in recent.occurrences]


def test_a_dense_count_series_started_years_ago_is_not_expanded():
    # the third trial: FREQ=MINUTELY;COUNT=5000000 since 2020 kept a harvest busy 71 s a VEVENT
    horizon = Horizon(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2027, 12, 1, tzinfo=UTC))
    event = _normalize_text(_series("FREQ=MINUTELY;COUNT=5000000", start="20200101T000000Z",
                                    end="20200101T000030Z"), horizon)["s1"]
    assert event.occurrences == []
    assert event.warnings == [("s1 : série trop longue à calculer (une séance chaque minute "
                               "depuis le 01/01/2020) : ses séances ne sont pas publiées")]
    assert event.event["rrule"] == "FREQ=MINUTELY;COUNT=5000000"  # the source's rule is kept


def test_a_capped_endless_series_keeps_its_coming_sessions():
    # the third trial: an endless FREQ=SECONDLY series since 2015 kept 2000 sessions on the
    # first day of the window, a month back, so nothing was upcoming and « tout est passé »
    now = dt.datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    horizon = Horizon.around(now, 30, 365)
    seconds = _normalize_text(_series("FREQ=SECONDLY", start="20150101T000000Z",
                                      end="20150101T000001Z"), horizon)["s1"]
    starts = [o["start_utc"] for o in seconds.occurrences]
    assert len(starts) == 2000 and starts[0] == now and starts[-1] == now + dt.timedelta(
        seconds=1999)
    hourly = _normalize_text(_series("FREQ=HOURLY", start="20261101T003000Z",
                                     end="20261101T010000Z"), horizon)["s1"]
    starts = [o["start_utc"] for o in hourly.occurrences]
    assert len(starts) == 2000 and starts[0] == dt.datetime(2026, 12, 4, 20, 30, tzinfo=UTC)
    assert any("série trop dense" in w for w in hourly.warnings)
