"""Event extraction from saved pages (crawlers.extraction), one assertion set per corpus file.

Every file of tests/fixtures/html/ and tests/fixtures/schemaorg/ (copied unedited from the
workplace corpus, see tests/fixtures/PROVENANCE.md) is read here the way the generic spider
reads it: a Scrapy ``HtmlResponse`` (same charset detection), then ``extract_events``. Expected
values were read by hand in the files. UTC values go through ``normalize_json_record`` so that
the time-zone handling is the production one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from connectors.base import ParseResult
from connectors.html import read_crawl_lines
from crawlers.extraction import activity_events, extract_events, parse_when
from crawlers.items import EventItem
from normalize.events import Horizon, RecordView, normalize_json_record
from tests.conftest import FIXTURES, NOW

HTML = FIXTURES / "html"
SCHEMAORG = FIXTURES / "schemaorg"
PAGE = "http://127.0.0.1:8000/agenda/page.html"


def extract(path: Path, url: str = PAGE):
    """The extraction of one saved page served at ``url``."""
    response = HtmlResponse(url, body=path.read_bytes(), headers={"Content-Type": "text/html"})
    return extract_events(response, NOW)


def normalized(item: EventItem, horizon: Horizon | None = None):
    """The item as connectors.html stores it, then normalised (production path)."""
    line = json.dumps({**item.__dict__}, ensure_ascii=False)
    parsed = read_crawl_lines([line], item.page_url or PAGE, 50, ParseResult())
    record = parsed.records[0]
    view = RecordView(record.uid, "", "json", record.payload, record.content_hash,
                      record.uid_repaired)
    horizon = horizon or Horizon(dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                                 dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    return normalize_json_record("site", view, horizon)


def utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


# ------------------------------------------------------------------------------ html corpus


def test_songkick_single_music_event_with_offset() -> None:
    page = extract(HTML / "songkick_tovestyrke.html")
    assert len(page.events) == 1
    event = page.events[0]
    assert (event.title, event.schema_type) == ("Tove Styrke", "MusicEvent")
    assert event.dtstart == "2017-06-12T20:00:00+01:00"
    assert event.location == "Hoxton Square Bar & Kitchen, 2-4 Hoxton Square, N1 6NU London, UK"
    assert event.uid.startswith("https://www.songkick.com/concerts/30166884-tove-styrke")
    assert not event.uid_repaired
    assert normalized(event).event["dtstart_utc"] == utc("2017-06-12T19:00:00+00:00")


def test_songkick_owl_music_parlor_page() -> None:
    page = extract(HTML / "songkick_elysian_fields_brooklyn_owl_music_parlor.html")
    assert [e.title for e in page.events] == ["Elysian Fields"]
    assert normalized(page.events[0]).event["dtstart_utc"] == utc("2015-10-31T23:30:00+00:00")


def test_songkick_artist_page_four_events() -> None:
    page = extract(HTML / "songkick_elysianfields.html")
    assert len(page.events) == 4  # the MusicGroup block is not an event
    assert [e.dtstart for e in page.events] == [
        "2017-06-10T19:30:00-04:00", "2017-04-26T20:00:00-07:00",
        "2016-10-29T21:00:00+02:00", "2016-10-27T20:30:00+02:00",
    ]
    assert "44600 Saint-Nazaire, France" in page.events[2].location


def test_songkick_tour_dates_thirteen_music_events() -> None:
    page = extract(HTML / "songkick_years_and_years_tour_dates.html")
    # 13 MusicEvent blocks; a festival day and a concert share title and day in Manchester but
    # have different pages: two events, not one.
    assert len(page.events) == 13
    paris = [e for e in page.events if "Casino De Paris" in (e.location or "")]
    assert len(paris) == 1
    assert normalized(paris[0]).event["dtstart_utc"] == utc("2015-11-16T18:30:00+00:00")
    festival = [e for e in page.events if e.dtstart == "2015-10-31"]
    assert len(festival) == 1 and festival[0].dtend == "2015-11-01"  # inclusive end + 1 day
    assert normalized(festival[0]).event["all_day"] is True


def test_cook_landbank_json_ld_and_microdata_are_one_item_each() -> None:
    page = extract(HTML / "cook_landbank.html")
    assert len(page.events) == 9  # 9 in JSON-LD + the same 9 in microdata
    assert all(e.syntaxes == ["json-ld", "microdata"] for e in page.events)
    finance = page.events[1]
    assert finance.title == "CCLBA Finance Committee Meeting"
    # JSON-LD says "2019-9-20T08-08-30-00" (broken); microdata "2019-9-20T08:30" wins.
    assert (finance.dtstart, finance.dtend) == ("2019-09-20T08:30:00", "2019-09-20T10:00:00")
    assert finance.uid == ("http://www.cookcountylandbank.org/events/"
                           "cclba-finance-committee-meeting-20190920/")
    assert finance.location.startswith("Cook County Admin Building, 22nd Floor, Conference Room 'B'")
    assert any("2019-9-20T08-08-30-00" in p for p in page.problems)
    assert finance.description.endswith("Members: Jenkins, Ostenburg, Sherwin")  # longest copy
    result = normalized(finance)
    assert result.event["floating"] is True  # no offset on the page: read as Paris time, flagged
    assert any("sans fuseau" in w for w in result.warnings)


def test_chi_ssa_19_empty_json_ld_block_is_reported_and_microdata_kept() -> None:
    page = extract(HTML / "chi_ssa_19_detail.html")
    assert page.problems == ["ligne 35 : bloc JSON-LD vide, ignoré"]
    assert len(page.events) == 1
    event = page.events[0]
    assert event.title == "Howard Street SSA #19 Commissioners Meeting"
    assert (event.dtstart, event.dtend) == ("2019-11-20T08:30:00", "2019-11-20T10:00:00")
    assert event.location == "The Factory Theater, 1623 W. Howard St."


def test_chi_low_income_h_event_with_value_title() -> None:
    page = extract(HTML / "chi_low_income_housing_trust_fund_detail.html")
    assert len(page.events) == 1
    event = page.events[0]
    assert event.title == "Chicago Low-Income Housing Trust Fund - October Allocations Meeting"
    assert (event.dtstart, event.dtend) == ("2018-10-04T10:00:00-05:00",
                                            "2018-10-04T11:00:00-05:00")
    assert event.location == "121 N. La Salle - Room 1006, Chicago, IL, 60602, US"
    assert normalized(event).event["dtstart_utc"] == utc("2018-10-04T15:00:00+00:00")


def test_json_ld_with_control_characters_is_recovered_without_crash() -> None:
    page = extract(HTML / "JSONLD_with_control_characters.html")
    assert page.events == [] and page.problems == []  # read (strict=False), holds no Event


def test_charset_declared_after_1024_bytes() -> None:
    page = extract(HTML / "iso-8859-1-meta-after-1024.html")
    assert page.title == "Frédéric"
    assert page.events == []


def test_reseau_alpha_page_has_no_markup_for_the_generic_spider() -> None:
    page = extract(HTML / "reseau_alpha_abc-formation.html")
    assert page.events == []  # only a BreadcrumbList: this site needs its own spider
    assert page.title.startswith("ABC Formation - Structure d'apprentissage")


def test_hcalendar_two_date_only_events_sharing_a_url() -> None:
    page = extract(HTML / "hcal_multiple.xml")
    assert [(e.dtstart, e.dtend) for e in page.events] == [
        ("2008-01-19", "2008-01-20"), ("2008-02-02", "2008-02-03")]  # hCalendar DTEND exclusive
    assert all(e.uid_repaired and e.uid.startswith("repaired-") for e in page.events)
    assert page.events[0].uid != page.events[1].uid
    assert page.events[0].location == "Cubespace, 622 SE Grand Ave. Portland, OR 97214"


def test_hcalendar_identical_events_are_one() -> None:
    page = extract(HTML / "hcal_two_identical_events.xml")
    assert [(e.title, e.dtstart, e.location) for e in page.events] == [
        ("Bastille Day", "2008-07-14", "Arc de Triomphe")]


def test_hcalendar_venue_without_coordinates() -> None:
    page = extract(HTML / "hcal_event_wo_lat_and_long.xml")
    assert [(e.title, e.dtstart, e.dtend) for e in page.events] == [
        ("Ignite Portland 2010", "2010-06-18T18:00:00", "2010-06-18T21:00:00")]
    assert page.events[0].location == ("Bagdad Theater and Pub, 3702 S.E. Hawthorne Blvd, "
                                       "Portland, OR 97214")


def test_upcoming_pages_v1_and_v2() -> None:
    first = extract(HTML / "hcal_upcoming_v1.html").events
    second = extract(HTML / "hcal_upcoming_v2.html").events
    assert [(e.title, e.dtstart) for e in first] == [
        ("February BarCamp Portland Informal Tech Meetup", "2008-02-28T17:30:00")]
    assert "Legion of Tech" in first[0].categories
    assert [(e.title, e.dtstart, e.dtend) for e in second] == [
        ("Ignite Portland 4", "2008-11-13T19:00:00", "2008-11-13T21:00:00")]


# ------------------------------------------------------------------------- schema.org corpus

HI_DIVE = "The Hi-Dive, 7 S. Broadway, 80209 Denver, CO"


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0012_same_event_in_three_syntaxes(syntax: str) -> None:
    page = extract(SCHEMAORG / f"eg-0012.{syntax}.html")
    assert [(e.title, e.dtstart, e.location, e.status) for e in page.events] == [
        ("Typhoon with Radiation City", "2013-09-14T21:30:00", HI_DIVE, "confirmed")]


def test_eg_0012_uid_is_the_same_hash_whatever_the_syntax() -> None:
    uids = {extract(SCHEMAORG / f"eg-0012.{s}.html").events[0].uid
            for s in ("jsonld", "microdata", "rdfa")}
    assert len(uids) == 1 and next(iter(uids)).startswith("repaired-")


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0171_event_cancelled_is_kept_as_cancelled(syntax: str) -> None:
    events = extract(SCHEMAORG / f"eg-0171.{syntax}.html").events
    assert [(e.title, e.status) for e in events] == [
        ("CANCELLED - Typhoon with Radiation City", "cancelled")]
    result = normalized(events[0])
    assert result.event["status"] == "cancelled"
    assert [o["status"] for o in result.occurrences] == ["cancelled"]


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0173_sold_out_is_still_scheduled(syntax: str) -> None:
    events = extract(SCHEMAORG / f"eg-0173.{syntax}.html").events
    assert [(e.title, e.status) for e in events] == [
        ("SOLD OUT! Typhoon with Radiation City", "confirmed")]


def test_eg_0174_performers_are_not_organizers() -> None:
    events = extract(SCHEMAORG / "eg-0174.jsonld.html").events
    assert [(e.title, e.location, e.organizer) for e in events] == [
        ("Typhoon with Radiation City", HI_DIVE, None)]


def test_eg_0170_mixed_attendance_keeps_the_online_url() -> None:
    events = extract(SCHEMAORG / "eg-0170.jsonld.html").events
    assert len(events) == 1
    event = events[0]
    assert event.online_url == "https://operaonline.stream5.com/"
    assert event.location == ("Snickerpark Stadium, 100 West Snickerpark Dr, 19019 Snickertown, "
                              "PA, US")
    assert event.organizer == "Kira and Morrison Music"
    assert normalized(event).event["dtstart_utc"] == utc("2025-07-22T00:00:00+00:00")


def test_online_only_event_has_its_url_as_location() -> None:
    body = b"""<script type="application/ld+json">{"@context": "https://schema.org",
    "@type": "Event", "name": "Atelier en ligne", "startDate": "2026-12-03T18:00:00+01:00",
    "eventAttendanceMode": "https://schema.org/OnlineEventAttendanceMode",
    "location": {"@type": "VirtualLocation", "url": "https://visio.example.org/atelier"}}
    </script>"""
    event = extract_events(HtmlResponse(PAGE, body=body), NOW).events[0]
    assert event.location == event.online_url == "https://visio.example.org/atelier"


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0189_music_event_subtype(syntax: str) -> None:
    events = extract(SCHEMAORG / f"eg-0189.{syntax}.html").events
    assert [(e.schema_type, e.title, e.dtstart, e.location) for e in events] == [
        ("MusicEvent", "Shostakovich Leningrad", "2014-05-23T20:00:00",
         "Chicago Symphony Center, 220 S. Michigan Ave, Chicago, Illinois, USA")]


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0190_theater_event_subtype(syntax: str) -> None:
    events = extract(SCHEMAORG / f"eg-0190.{syntax}.html").events
    assert [(e.schema_type, e.title, e.dtstart, e.location) for e in events] == [
        ("TheaterEvent", "Julius Caesar at Shakespeare's Globe", "2014-10-01T19:30:00",
         "Shakespeare's Globe, London, UK")]


def test_eg_0191_sports_event_without_date_is_reported() -> None:
    page = extract(SCHEMAORG / "eg-0191.jsonld.html")
    assert page.events == []
    assert page.problems == [
        "SportsEvent « 2013 World Series » (json-ld) : pas de date de début (startDate), ignoré",
        ("SportsEvent « 2013 World Series - Game 1 » (json-ld) : pas de date de début "
         "(startDate), ignoré"),
    ]


def test_eg_0201_two_music_events_in_one_block() -> None:
    events = extract(SCHEMAORG / "eg-0201.jsonld.html").events
    assert [(e.title, e.dtstart) for e in events] == [
        ("B.B. King", "2014-04-12T19:30:00"), ("B.B. King", "2014-04-13T20:00:00")]
    assert events[0].uid != events[1].uid


def test_eg_0240_weekly_schedule_becomes_an_rrule() -> None:
    events = extract(SCHEMAORG / "eg-0240.jsonld.html").events
    assert len(events) == 1
    event = events[0]
    assert event.uid == "http://www.example.org/events/1"
    # 2017-01-01 is a Sunday: the first Wednesday is 4 January.
    assert (event.dtstart, event.dtend, event.tzid) == (
        "2017-01-04T19:00:00", "2017-01-04T20:00:00", "Europe/London")
    assert event.rrule == "FREQ=WEEKLY;BYDAY=WE;UNTIL=20171231T235959Z"
    year_2017 = Horizon(dt.datetime(2017, 1, 1, tzinfo=dt.UTC),
                        dt.datetime(2018, 1, 1, tzinfo=dt.UTC))
    occurrences = normalized(event, year_2017).occurrences
    assert len(occurrences) == 52  # every Wednesday of 2017
    assert occurrences[0]["start_utc"] == utc("2017-01-04T19:00:00+00:00")
    assert occurrences[20]["start_utc"] == utc("2017-05-24T18:00:00+00:00")  # 19:00 BST
    assert occurrences[-1]["start_utc"] == utc("2017-12-27T19:00:00+00:00")


def test_eg_0241_monthly_schedule_without_start_is_anchored_on_the_crawl_day() -> None:
    page = extract(SCHEMAORG / "eg-0241.jsonld.html")
    event = page.events[0]
    assert event.rrule == "FREQ=MONTHLY;BYMONTHDAY=1,15"
    assert event.dtstart_anchored is True
    assert (event.dtstart, event.tzid) == ("2026-12-01T09:00:00", "America/Glace_Bay")
    assert any("sans date de début" in p for p in page.problems)
    horizon = Horizon.around(NOW, 30, 365)
    occurrences = normalized(event, horizon).occurrences
    assert len(occurrences) == 24  # 1st and 15th of Dec 2026 … Nov 2027
    assert occurrences[0]["start_utc"] == utc("2026-12-01T13:00:00+00:00")  # 09:00 AST


def test_eg_0241_anchored_schedule_keeps_its_hash_from_one_day_to_the_next() -> None:
    def record_for(now: dt.datetime):
        response = HtmlResponse(PAGE, body=(SCHEMAORG / "eg-0241.jsonld.html").read_bytes())
        item = extract_events(response, now).events[0]
        line = json.dumps({**item.__dict__})
        return read_crawl_lines([line], PAGE, 50, ParseResult()).records[0]

    today, tomorrow = record_for(NOW), record_for(NOW + dt.timedelta(days=20))
    assert today.payload != tomorrow.payload  # the anchor moved (2026-12-01 → 2026-12-15)
    assert (today.uid, today.content_hash) == (tomorrow.uid, tomorrow.content_hash)


def test_eg_0243_two_schedules_are_two_series() -> None:
    events = extract(SCHEMAORG / "eg-0243.jsonld.html").events
    assert [(e.dtstart[11:], e.dtend[11:], e.rrule) for e in events] == [
        ("09:00:00", "10:00:00", "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"),
        ("14:00:00", "15:00:00", "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"),
    ]
    assert events[0].uid != events[1].uid
    two_weeks = Horizon(NOW, NOW + dt.timedelta(days=14))
    assert [len(normalized(e, two_weeks).occurrences) for e in events] == [10, 10]


def test_eg_0313_event_series_without_date_is_skipped_its_events_kept() -> None:
    page = extract(SCHEMAORG / "eg-0313.jsonld.html")
    assert [(e.uid, e.title, e.dtstart, e.dtend) for e in page.events] == [
        ("http://www.olympic.org/rio-2016-summer-olympics", "The Rio 2016 Summer Olympics",
         "2016-08-05", "2016-08-22"),
        ("http://www.rio2016.com/en/rowing", None, "2016-08-06", "2016-08-14"),
        ("http://www.olympic.org/london-2012-summer-olympics", "The London 2012 Summer Olympics",
         "2012-07-27", "2012-08-13"),
    ]
    assert page.problems == [
        "EventSeries « Olympic Games » (json-ld) : pas de date de début (startDate), ignoré"]
    assert normalized(page.events[1]).event["title"] == "(sans titre)"


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0349_exhibition_inclusive_end_date(syntax: str) -> None:
    # the RDFa copy holds its dates in <time datetime>, which pyRdfa reads only through content
    events = extract(SCHEMAORG / f"eg-0349.{syntax}.html").events
    assert [(e.schema_type, e.dtstart, e.dtend, e.location) for e in events] == [
        ("ExhibitionEvent", "2015-06-13", "2016-02-01", "Victoria and Albert Museum")]
    result = normalized(events[0]).event
    assert (result["start_date"], result["end_date"]) == (dt.date(2015, 6, 13),
                                                          dt.date(2016, 2, 1))


@pytest.mark.parametrize("syntax", ["jsonld", "microdata", "rdfa"])
def test_eg_0461_relative_url_is_resolved_against_the_page(syntax: str) -> None:
    events = extract(SCHEMAORG / f"eg-0461.{syntax}.html").events
    assert [(e.uid, e.location, e.dtstart) for e in events] == [
        ("http://127.0.0.1:8000/agenda/nba-miami-philidelphia-game3.html", "Philadelphia, PA",
         "2016-04-21T20:00:00")]


def test_gancio_activitystreams_event() -> None:
    data = json.loads((SCHEMAORG / "gancio_event_activity.json").read_text(encoding="utf-8"))
    events, problems = activity_events(data, "https://demo.gancio.org/federation/m/1", NOW)
    assert problems == []
    assert [(e.uid, e.title, e.dtstart, e.dtend, e.location, e.categories) for e in events] == [
        ("https://demo.gancio.org/federation/m/1", "Demo event", "2021-07-14T17:30:57+02:00",
         "2021-07-14T18:30:57+02:00", "Colosseo", ["test"])]
    assert events[0].url == "https://demo.gancio.org/event/demo-event"
    assert "📍 Colosseo" in events[0].description
    assert normalized(events[0]).event["dtstart_utc"] == utc("2021-07-14T15:30:57+00:00")


# ------------------------------------------------------------------------------ dates, units


@pytest.mark.parametrize(("text", "expected", "repaired"), [
    ("2015-10-31T19:30:00-0400", "2015-10-31T19:30:00-04:00", False),
    ("20080228T173000", "2008-02-28T17:30:00", False),
    ("20080119", "2008-01-19", False),
    ("2019-9-18T10:00", "2019-09-18T10:00:00", True),
    ("2019-9-18T10-10-00-00", "2019-09-18", True),
    ("2018-10-04 10:00:00-0500", "2018-10-04T10:00:00-05:00", False),
])
def test_parse_when(text: str, expected: str, repaired: bool) -> None:
    value, problem = parse_when(text)
    assert value is not None and value.isoformat() == expected
    assert (problem is not None) is repaired


def test_parse_when_unreadable() -> None:
    assert parse_when("Sat 13 June 2015")[0] is None
    assert parse_when(None) == (None, None)


def test_every_corpus_file_has_a_test_here() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    names = sorted(p.name for p in (*HTML.iterdir(), *SCHEMAORG.iterdir()))
    assert len(names) >= 45
    missing = [n for n in names if n not in source
               and re.sub(r"\.(jsonld|microdata|rdfa)\.html$", ".{syntax}.html", n) not in source]
    assert missing == []
