"""Opening hours (OSM opening_hours) laid out as the coming week for the directory pages."""

from __future__ import annotations

import datetime as dt

from publish.web.resident_hours import week_schedule

MONDAY = dt.date(2026, 11, 30)


def test_a_weekday_schedule_with_a_lunch_break():
    schedule = week_schedule("Mo-Fr 09:00-12:00,14:00-17:30; Sa 10:00-12:00", MONDAY)
    assert schedule is not None and schedule.days is not None
    by_day = {d.day: d.intervals for d in schedule.days}
    assert by_day[MONDAY] == [(dt.time(9), dt.time(12)), (dt.time(14), dt.time(17, 30))]
    assert by_day[dt.date(2026, 12, 5)] == [(dt.time(10), dt.time(12))]
    assert by_day[dt.date(2026, 12, 6)] == []  # Sunday: closed
    assert len(schedule.days) == 7


def test_an_evening_past_midnight_is_cut_at_midnight():
    schedule = week_schedule("Fr 20:00-02:00", MONDAY)
    by_day = {d.day: d.intervals for d in schedule.days}
    assert by_day[dt.date(2026, 12, 4)] == [(dt.time(20), dt.time(23, 59))]
    assert by_day[dt.date(2026, 12, 5)] == [(dt.time(0), dt.time(2))]


def test_unparsable_hours_are_kept_as_written_and_empty_means_none():
    schedule = week_schedule("le mardi matin, sur rendez-vous", MONDAY)
    assert schedule is not None and schedule.days is None
    assert schedule.raw == "le mardi matin, sur rendez-vous"
    assert week_schedule("  ", MONDAY) is None and week_schedule(None, MONDAY) is None
