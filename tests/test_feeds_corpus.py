"""Every RSS/Atom/JSON Feed file of the corpus, with counts and spot values checked by hand in
the files; event dates from hCalendar, ev:, xCal and WordPress event plugins; wrong encodings."""

from __future__ import annotations

import datetime as dt
import functools
import json

import pytest

from connectors.feeds import parse_feed, repair_encoding
from normalize.events import Horizon, RecordView, normalize_json_record
from tests.conftest import FIXTURES, SAMPLES

UTC = dt.UTC
WIDE = Horizon(dt.datetime(1990, 1, 1, tzinfo=UTC), dt.datetime(2040, 1, 1, tzinfo=UTC))


def data_of(name: str) -> bytes:
    for folder in (FIXTURES / "feeds", SAMPLES):
        if (folder / name).exists():
            return (folder / name).read_bytes()
    raise FileNotFoundError(name)


@functools.cache
def parsed(name: str):
    """parse_feed of a corpus file, once per session (mf2py reads the 204 hCalendar items of
    the SPIP feed in several seconds)."""
    return parse_feed(data_of(name), "t")


def payloads(result) -> list[dict]:
    return [json.loads(r.payload) for r in result.records]


# (file, detected format, feed title, events, news, warning codes) — items counted by hand
# (grep -c "<item" / "<entry"); none of these files may produce an error.
CORPUS = [
    ("agenda_region_aquitaine_spip_rss.xml", "rss", "Agenda région Aquitaine", 204, 0, []),
    ("bozo_invalid-bytes-with-bom.xml", "rss", "Valid UTF8: ѨInvalid UTF8: España", 0, 0,
     ["encoding", "bozo"]),
    ("double-encoded-html.xml", "rss", "", 0, 1, ["no-uid"]),
    ("encoding_WINDOWS-1251.xml", "rss", "iBash.Org.Ru", 0, 50, []),
    ("golem_encoding_ISO-8859-1.xml", "rss", "Golem.de", 0, 40, []),
    ("jsonfeed_example.json", "jsonfeed", "My Example Feed", 0, 2, []),
    ("rdf_UTF8.xml", "rss", "heise online News", 0, 60, []),
    ("rss_item_link_corrupted_ampersands.xml", "rss", "", 0, 1, ["bozo"]),
    ("small_atom.xml", "atom", "Recent Commits to v2:main", 0, 20, []),
    ("utf-8-bom.xml", "rss", "", 0, 0, []),
    ("windows-1252-incorrect-prolog.xml", "rss", "Euro €", 0, 0, ["encoding"]),
]


@pytest.mark.parametrize(("name", "fmt", "title", "events", "news", "warnings"), CORPUS,
                         ids=[c[0] for c in CORPUS])
def test_every_corpus_feed(name, fmt, title, events, news, warnings):
    result = parsed(name)
    assert result.errors == []
    assert result.detected_format == fmt
    assert result.title == title
    assert (result.events, result.news) == (events, news)
    assert [p.code for p in result.warnings] == warnings


def test_spip_hcalendar_dates_and_html_entities():
    result = parsed("agenda_region_aquitaine_spip_rss.xml")
    first = payloads(result)[0]
    assert first["title"] == "Initations aux échasses"  # &#233; in <title>
    assert first["dtstart"] == "2011-12-31T17:30:00"  # abbr.dtstart, not pubDate's "Z"
    assert first["dtend"] == "2013-12-31T17:30:00"
    assert first["location"] == "40440 Ondres"
    assert first["url"] == "http://agenda.aquitaine.fr/Initations-aux-echasses.html"
    record = result.records[0]
    event = normalize_json_record("t", RecordView(record.uid, "", "json", record.payload,
                                                  record.content_hash), WIDE)
    assert event.event["dtstart_utc"] == dt.datetime(2011, 12, 31, 16, 30, tzinfo=UTC)
    assert event.event["floating"] is True
    assert "l’école primaire" in event.event["description"]  # &#8217; decoded


def test_news_items_are_never_dated_with_pubdate():
    result = parse_feed(data_of("rdf_UTF8.xml"), "t")
    first = payloads(result)[0]
    assert first["title"] == "OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen"
    assert "dtstart" not in first
    assert first["summary"].startswith("Wer gerade einen neuen OLED-Fernseher gekauft hat")


def test_windows_1251_feed_is_decoded():
    result = parse_feed(data_of("encoding_WINDOWS-1251.xml"), "t")
    assert payloads(result)[0]["title"] == "Цитата #17703"


def test_declared_windows_1252_but_utf8_bytes():
    data = data_of("windows-1252-incorrect-prolog.xml")
    fixed, problems = repair_encoding(data)
    assert b'encoding="utf-8"' in fixed and problems[0].code == "encoding"
    assert "windows-1252" in problems[0].message
    assert parse_feed(data, "t").title == "Euro €"  # not "Euro â‚¬"


def test_bom_then_invalid_utf8_bytes_read_one_by_one():
    # Title bytes: "Valid UTF8: " D1 A8 (U+0468) "Invalid UTF8: Espa" F1 "a"
    result = parse_feed(data_of("bozo_invalid-bytes-with-bom.xml"), "t")
    assert result.title == "Valid UTF8: ѨInvalid UTF8: España"
    assert result.warnings[1].line == 11  # the unclosed </rss at the end


def test_double_encoded_html_entities():
    # <description>&#226;&#128;&#166;</description>: UTF-8 bytes of "…" as Latin-1 entities
    result = parse_feed(data_of("double-encoded-html.xml"), "t")
    assert payloads(result) == [{"summary": "…", "title": None, "url": None}]
    assert result.records[0].uid_repaired is True


def test_corrupted_ampersands_and_missing_title():
    result = parse_feed(data_of("rss_item_link_corrupted_ampersands.xml"), "t")
    assert payloads(result)[0]["url"] == "http://link/get?a=1&b=2"
    assert result.warnings[0].line == 13


def test_json_feed_items():
    result = parse_feed(data_of("jsonfeed_example.json"), "t")
    assert [r.uid for r in result.records] == ["2", "1"]
    second, first = payloads(result)
    assert second == {"title": "post 2", "url": "https://example.org/second-item",
                      "summary": "This is a second item."}
    assert first["summary"] == "Hello, world!"  # <script> removed
    assert first["url"] == "https://example.org/initial-post"


def test_atom_entries_keep_their_ids():
    result = parse_feed(data_of("small_atom.xml"), "t")
    assert result.records[0].uid.startswith("tag:github.com,2008:Grit::Commit/6d97f8b4")
    assert payloads(result)[0]["title"] == "Parse podcast categories"


# ------------------------------------ event namespaces and WordPress plugins (small feeds
# written after the plugins' own templates: WSU's The Events Calendar hook, Events Manager's
# templates/rss.php; the corpus has no such feed)

EV_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:ev="http://purl.org/rss/1.0/modules/event/">
<channel><title>Asso</title><link>https://asso.example/</link>
<item><title>Permanence d&#8217;accès aux droits</title><link>https://asso.example/event/p/</link>
<guid>https://asso.example/?post_type=tribe_events&amp;p=12</guid>
<pubDate>Mon, 02 Nov 2026 09:00:00 +0000</pubDate>
<ev:startdate>2026-12-07 14:00:00</ev:startdate><ev:enddate>2026-12-07 17:00:00</ev:enddate>
<ev:location>Maison de quartier des Quatre-Chemins</ev:location></item>
</channel></rss>"""

XCAL_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:xcal="urn:ietf:params:xml:ns:xcal">
<channel><title>Mairie</title><link>https://mairie.example/</link>
<item><title>Forum des associations</title><guid>forum-2026</guid>
<xcal:dtstart>2026-09-12T10:00:00+02:00</xcal:dtstart>
<xcal:dtend>2026-09-12T18:00:00+02:00</xcal:dtend></item>
</channel></rss>"""

EM_FEED = """<?xml version='1.0' encoding='utf-8' ?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title>Événements</title><link>https://asso.example/events/</link>
<description>Agenda</description><docs>http://blogs.law.harvard.edu/tech/rss</docs>
<atom:link href="https://asso.example/events/feed/" rel="self" type="application/rss+xml" />
<item><title>Repair café</title><link>https://asso.example/events/repair-cafe/</link>
<guid>https://asso.example/events/repair-cafe/</guid>
<pubDate>Sat, 05 Dec 2026 14:00:00 CET</pubDate>
<description><![CDATA[Apportez vos objets]]></description></item>
</channel></rss>"""


def test_ev_namespace():
    result = parse_feed(EV_FEED.encode(), "t")
    [event] = payloads(result)
    assert event["title"] == "Permanence d’accès aux droits"
    assert (event["dtstart"], event["dtend"]) == ("2026-12-07 14:00:00", "2026-12-07 17:00:00")
    assert event["location"] == "Maison de quartier des Quatre-Chemins"


def test_xcal_namespace():
    [event] = payloads(parse_feed(XCAL_FEED.encode(), "t"))
    assert event["dtstart"] == "2026-09-12T10:00:00+02:00"


def test_wordpress_events_feed_pubdate_is_the_event_start():
    result = parse_feed(EM_FEED.encode(), "t")
    [event] = payloads(result)
    assert event["dtstart"] == "2026-12-05T13:00:00+00:00"  # 14:00 CET
    assert [p.code for p in result.warnings] == ["pubdate-start"]
    # the same items in an ordinary blog feed stay news
    blog = EM_FEED.replace("/events/feed/", "/feed/").replace("/events/</link>", "/</link>")
    assert parse_feed(blog.encode(), "t").news == 1
    assert parse_feed(blog.encode(), "t", pubdate_is_start=True).events == 1
