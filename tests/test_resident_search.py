"""``/recherche``: full-text search of the coming events, checked against a plain reading."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from publish.web import page_cache, resident, resident_data

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import NOW, make_datasette, shared_instance


@pytest.fixture(scope="module")
def database():
    return shared_instance() / "tissu-open.db"


def reference(db: Path, text: str, now: dt.datetime, limit: int) -> list[tuple[str, str]]:
    """Every matching published event's next session, read the long way: (event id, start)."""
    connection = sqlite3.connect(db)
    query = resident_data.fts_query(text)
    matching = {row[0] for row in connection.execute(
        "SELECT e.id FROM events e WHERE e.rowid IN "
        "(SELECT rowid FROM events_fts WHERE events_fts MATCH ?)", (query,))}
    moment = resident_data.utc_text(now)
    nexts: dict[str, str] = {}
    for event_id, start, end, live in connection.execute(
            "SELECT event_id, start_utc, end_utc, live FROM occurrences"):
        if event_id in matching and live == 1 and end > moment \
                and (event_id not in nexts or start < nexts[event_id]):
            nexts[event_id] = start
    ordered = sorted((start, event_id) for event_id, start in nexts.items())
    return [(event_id, start) for start, event_id in ordered[:limit]]


def test_fts_query_keeps_words_only():
    assert resident_data.fts_query('aide  "alimentaire"!') == '"aide" "alimentaire"'
    assert resident_data.fts_query('NEAR(a b) OR "x*') == '"NEAR" "a" "b" "OR" "x"'
    assert resident_data.fts_query("  ;; ") == ""
    assert resident_data.fts_query("café العربية") == '"café" "العربية"'
    assert len(resident_data.fts_query("a " * 30).split()) == resident_data.SEARCH_MAX_WORDS


@pytest.mark.parametrize("path", ["few", "all matches read", "checked chunk by chunk"])
@pytest.mark.parametrize("text", ["group", "MDS", "dorkbot", "linux", "user", "pdx", "zzzz"])
def test_search_finds_the_next_session_of_each_matching_event(database, monkeypatch, path,
                                                              text):
    # the three ways of reading, chosen by the number of matches, give the same answer
    if path != "few":
        monkeypatch.setattr(resident_data, "_FEW_MATCHES", 0)
        # small chunks, so that the walk goes on over many of them and their seams
        monkeypatch.setattr(resident_data, "_WALK_FIRST", 2)
        monkeypatch.setattr(resident_data, "_WALK_CHUNK", 5)
        monkeypatch.setattr(resident_data, "_WALK_CHUNKS", 10_000)
    if path == "all matches read":  # read at once after the first chunk, whatever it found
        monkeypatch.setattr(resident_data, "_CHECK_RATE", 2.0)
    if path == "checked chunk by chunk":
        monkeypatch.setattr(resident_data, "_MANY_MATCHES", 0)
        monkeypatch.setattr(resident_data, "_CHECK_RATE", 2.0)  # the count says: too many
    connection = sqlite3.connect(database)
    for limit in (1, 3, 10, 40):
        found = resident_data.search_upcoming(connection, text, NOW, limit)
        expected = reference(database, text, NOW, limit + 1)
        got = [(o.event_id, resident_data.utc_text(o.start) if o.start else None)
               for o in found.rows]
        assert [event_id for event_id, _ in got] == [e for e, _ in expected[:limit]], \
            (text, limit)
        assert found.more == (len(expected) > limit)
        for occurrence, (_, start) in zip(found.rows, expected, strict=False):
            assert occurrence.start is None or resident_data.utc_text(occurrence.start) == start
        if found.rows:
            assert found.changes_at == min(dt.datetime.fromisoformat(o.end_utc)
                                           for o in found.rows)
    if text != "zzzz":
        assert reference(database, text, NOW, 50), text  # the query does find something


@pytest.mark.parametrize("text", ["group", "MDS", "dorkbot", "linux", "user", "pdx", "zzzz"])
def test_a_walk_cut_short_reads_the_matches_event_by_event_or_says_more_may_come(
        database, monkeypatch, text):
    # the matches lie beyond the sessions the walk may read (_WALK_CHUNKS chunks)
    monkeypatch.setattr(resident_data, "_FEW_MATCHES", 0)
    monkeypatch.setattr(resident_data, "_WALK_FIRST", 1)
    monkeypatch.setattr(resident_data, "_WALK_CHUNK", 1)
    monkeypatch.setattr(resident_data, "_WALK_CHUNKS", 2)
    monkeypatch.setattr(resident_data, "_CHECK_RATE", 2.0)  # all matches read at chunk 2
    connection = sqlite3.connect(database)
    for limit in (1, 3, 10):
        expected = reference(database, text, NOW, limit + 1)
        found = resident_data.search_upcoming(connection, text, NOW, limit)
        assert [o.event_id for o in found.rows] == [e for e, _ in expected[:limit]], text
        assert found.more == (len(expected) > limit)
    # without every match known (too many to read at once): the first found, and "more"
    monkeypatch.setattr(resident_data, "_MANY_MATCHES", 0)
    monkeypatch.setattr(resident_data, "_WALK_CHUNKS", 1)
    for limit in (1, 3, 10):
        expected = reference(database, text, NOW, limit + 1)
        found = resident_data.search_upcoming(connection, text, NOW, limit)
        got = [o.event_id for o in found.rows]
        assert got == [e for e, _ in expected[:len(got)]], text
        assert found.more or len(expected) == len(got) == 0


def test_search_page(monkeypatch):
    monkeypatch.setattr(resident, "clock", lambda: NOW)
    monkeypatch.delenv("TISSU_KIOSK", raising=False)
    page_cache.PAGES.clear()
    ds = make_datasette(shared_instance())

    def get(path):
        return asyncio.run(ds.client.get(path))

    empty = get("/recherche")
    assert empty.status_code == 200 and 'name="q"' in empty.text
    assert "Aucun rendez-vous" not in empty.text
    found = get("/recherche?q=MDS")
    assert found.status_code == 200
    assert "MDS-t" in found.text and "Les prochains rendez-vous qui contiennent « MDS »" in found.text
    assert '<h2>lundi 30 novembre</h2>' in found.text
    nothing = get("/recherche?q=zzzz")
    assert "Aucun rendez-vous à venir ne contient « zzzz »" in nothing.text
    hostile = get('/recherche?q=%22NEAR(%20OR%20*')  # FTS5 syntax is not passed through
    assert hostile.status_code == 200
    arabic = get("/recherche?q=MDS&lang=ar")
    assert '<html lang="ar" dir="rtl">' in arabic.text and "MDS-t" in arabic.text
    assert '<input type="hidden" name="lang" value="ar">' in arabic.text
    home = get("/")
    assert '<a href="/recherche">Rechercher</a>' in home.text


def test_week_and_search_pages_share_one_day_list(monkeypatch):
    # the day headings and session rows are written once (_macros.html: day_list), so a
    # session found by a search is shown exactly as in the week
    from publish.web import resident_i18n

    for name in ("home.html", "search.html"):
        template = (resident_i18n.TEMPLATES_DIR / name).read_text(encoding="utf-8")
        assert "day_list(days, theme_labels)" in template and 'class="liste"' not in template
    monkeypatch.setattr(resident, "clock", lambda: NOW)
    monkeypatch.delenv("TISSU_KIOSK", raising=False)
    page_cache.PAGES.clear()
    ds = make_datasette(shared_instance())
    week = asyncio.run(ds.client.get("/")).text
    found = asyncio.run(ds.client.get("/recherche?q=MDS")).text
    rows = re.findall(r'<li(?: class="annule")?><a href="[^"]*/evenement/[^"]*">.*?</li>\n', found,
                      re.DOTALL)
    assert rows and '<h2>lundi 30 novembre</h2>\n<ul class="liste">\n<li' in found
    shown_in_week = [row for row in rows if row in week]
    assert shown_in_week, "a session of this week found by the search is written as in the week"


def test_search_page_says_more_may_come_when_the_walk_found_none_yet(monkeypatch):
    # matches exist, but none among the sessions the walk may read, and too many to read
    # them all: the page asks for another word instead of saying that nothing matches
    for name, value in (("_FEW_MATCHES", 0), ("_MANY_MATCHES", 0), ("_WALK_FIRST", 1),
                        ("_WALK_CHUNK", 1), ("_WALK_CHUNKS", 1), ("_CHECK_RATE", 2.0)):
        monkeypatch.setattr(resident_data, name, value)
    monkeypatch.setattr(resident, "clock", lambda: NOW)
    monkeypatch.delenv("TISSU_KIOSK", raising=False)
    page_cache.PAGES.clear()
    ds = make_datasette(shared_instance())
    text = asyncio.run(ds.client.get("/recherche?q=group")).text
    assert "D'autres rendez-vous correspondent : ajoutez un mot pour préciser." in text
    assert "Aucun rendez-vous" not in text
