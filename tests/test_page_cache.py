"""Rendered resident pages kept in memory (publish/web/page_cache.py): never a wrong page.

A cached page must be the page that rendering afresh would give: for another language, query,
file or moment, another page. Checked against the same pages rendered with the cache off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from publish.web import page_cache, reload, resident

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import NOW, make_datasette, shared_instance

T0 = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)


def entry(body: str, start: dt.datetime = T0, minutes: int = 10) -> page_cache.Entry:
    return page_cache.make_entry(body, 200, start, start + dt.timedelta(minutes=minutes))


def test_entry_is_served_only_inside_its_window():
    cache = page_cache.PageCache()
    assert cache.get("file-1", "k", T0) is None
    cache.put("file-1", "k", entry("<p>semaine</p>"))
    assert cache.get("file-1", "k", T0 + dt.timedelta(minutes=9)).body == b"<p>semaine</p>"
    assert cache.get("file-1", "k", T0 + dt.timedelta(minutes=10)) is None  # a session ended
    assert cache.get("file-1", "k", T0 - dt.timedelta(seconds=1)) is None  # before rendering
    assert cache.get("file-1", "other", T0) is None


def test_another_file_empties_the_cache_and_late_pages_of_the_old_file_are_dropped():
    cache = page_cache.PageCache()
    cache.get("old", "k", T0)
    cache.put("old", "k", entry("ancienne"))
    assert cache.get("new", "k", T0) is None and len(cache) == 0
    cache.put("old", "k", entry("ancienne"))  # rendered from the old file, finished late
    assert cache.get("new", "k", T0) is None
    cache.put("new", "k", entry("nouvelle"))
    assert cache.get("new", "k", T0).body == b"nouvelle"


def test_least_recently_used_pages_leave_first():
    cache = page_cache.PageCache(max_entries=2)
    cache.get("f", "a", T0)
    for key in ("a", "b"):
        cache.put("f", key, entry(key))
    assert cache.get("f", "a", T0) is not None  # "b" is now the least recently used
    cache.put("f", "c", entry("c"))
    assert [k for k in "abc" if cache.get("f", k, T0)] == ["a", "c"]
    small = page_cache.PageCache(max_bytes=80)
    small.get("f", "x", T0)
    small.put("f", "x", entry("x" * 9))
    small.put("f", "y", entry("y" * 11))  # more than an eighth of the budget: not kept
    assert small.get("f", "x", T0) is not None and small.get("f", "y", T0) is None


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """A private copy of the resident instance (tests below replace its file)."""
    publish_dir = tmp_path / "publish"
    shutil.copytree(shared_instance(), publish_dir)
    monkeypatch.setattr(reload, "CHECK_INTERVAL", 0.0)
    monkeypatch.setenv("TISSU_PUBLISH_DIR", str(publish_dir))
    monkeypatch.delenv("TISSU_KIOSK", raising=False)
    monkeypatch.delenv("TISSU_PUBLIC_URL", raising=False)
    monkeypatch.delenv("TISSU_PAGE_CACHE", raising=False)
    page_cache.PAGES.clear()
    moment = {"now": NOW}
    monkeypatch.setattr(resident, "clock", lambda: moment["now"])
    ds = make_datasette(publish_dir)
    asyncio.run(ds.invoke_startup())
    return ds, publish_dir / "tissu-open.db", moment


def fetch(ds, path, headers=None, cookies=None):
    return asyncio.run(ds.client.get(path, headers=headers or {}, cookies=cookies or {}))


def fresh(ds, path, monkeypatch, cookies=None):
    """The page rendered with the cache off."""
    with monkeypatch.context() as patch:
        patch.setenv("TISSU_PAGE_CACHE", "0")
        response = fetch(ds, path, cookies=cookies)
    assert "etag" not in response.headers
    return response.text


def test_language_query_and_cookie_give_their_own_pages(site, monkeypatch):
    ds, _, _ = site
    paths = ["/", "/?lang=en", "/?lang=ar", "/?quartier=Hoche", "/?quartier=Hoche&lang=en",
             "/?taille=grand", "/?borne=1", "/agenda/abonnement?quartier=Hoche",
             "/agenda/evenement/lisbonne--EVENT2", "/agenda/evenement/lisbonne--EVENT2?lang=ar"]
    first = {path: fetch(ds, path).text for path in paths}
    assert len(set(first.values())) == len(paths)
    assert page_cache.PAGES.misses >= len(paths)
    hits = page_cache.PAGES.hits
    for path in paths:  # served again from the cache: the same page as rendered afresh
        assert fetch(ds, path).text == first[path] == fresh(ds, path, monkeypatch), path
    assert page_cache.PAGES.hits == hits + len(paths)
    assert "8 events this week" in first["/?lang=en"]
    assert "1 rendez-vous cette semaine" in first["/?quartier=Hoche"]
    # the language cookie picks its page too, after the French one was cached under "/"
    english = fetch(ds, "/", cookies={"tissu_lang": "en"}).text
    assert "8 events this week" in english and english != first["/"]
    assert english == fresh(ds, "/", monkeypatch, cookies={"tissu_lang": "en"})


def test_language_cookie_is_still_set_from_the_cache(site):
    ds, _, _ = site
    for _ in range(2):
        response = fetch(ds, "/?lang=ar")
        assert "tissu_lang=ar" in response.headers["set-cookie"]
    kiosk = fetch(ds, "/?borne=1&lang=ar")
    assert kiosk.headers["cache-control"] == "no-store" and "set-cookie" not in kiosk.headers


def test_etag_and_304(site):
    ds, _, _ = site
    first = fetch(ds, "/?quartier=Hoche")
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    assert "Cookie" in first.headers["vary"] and first.headers["cache-control"] == "no-cache"
    again = fetch(ds, "/?quartier=Hoche", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = fetch(ds, "/?quartier=Hoche", headers={"if-none-match": '"autre"'})
    assert other.status_code == 200 and other.text == first.text
    assert fetch(ds, "/?quartier=Centre", headers={"if-none-match": etag}).status_code == 200


def test_a_republished_file_is_never_served_from_the_old_cache(site, monkeypatch):
    ds, database, _ = site
    before = fetch(ds, "/?quartier=Hoche")
    assert "MDS-t" in before.text
    assert fetch(ds, "/?quartier=Hoche").text == before.text  # cached
    # publish writes a new file and renames it over the old one (publish/run.py)
    temp = database.with_name("nouvelle.db")
    shutil.copyfile(database, temp)
    connection = sqlite3.connect(temp)
    connection.execute("UPDATE events SET title = 'Café des aidants' WHERE title = 'MDS-t'")
    connection.execute("UPDATE occurrences SET title = NULL WHERE title = 'MDS-t'")
    connection.commit()
    connection.close()
    os.replace(temp, database)
    after = fetch(ds, "/?quartier=Hoche", headers={"if-none-match": before.headers["etag"]})
    assert after.status_code == 200
    assert "Café des aidants" in after.text and "MDS-t" not in after.text
    assert after.headers["etag"] != before.headers["etag"]
    assert after.text == fresh(ds, "/?quartier=Hoche", monkeypatch)


def test_a_cached_week_follows_the_clock(site, monkeypatch):
    """Sessions that end leave the page, filters that run out leave the form, days turn."""
    ds, database, moment = site
    ends = [row[0] for row in sqlite3.connect(database).execute(
        "SELECT DISTINCT end_utc FROM occurrences WHERE end_utc > ? AND start_utc < ? "
        "ORDER BY end_utc", ("2026-11-29T12:00:00Z", "2026-12-05T23:00:00Z"))]
    assert len(ends) >= 3
    first_end = dt.datetime.fromisoformat(ends[0])
    midnight = dt.datetime(2026, 11, 29, 23, 0, tzinfo=dt.UTC)  # Monday 00:00 in Paris
    moments = sorted({NOW, midnight - dt.timedelta(seconds=1), midnight,
                      first_end - dt.timedelta(seconds=1), first_end,
                      dt.datetime.fromisoformat(ends[2]),
                      dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)})
    pages = {}
    for when in moments:
        moment["now"] = when
        for path in ("/", "/?quartier=Centre", "/agenda/abonnement"):
            cached = fetch(ds, path).text
            assert cached == fresh(ds, path, monkeypatch), (when, path)
            assert fetch(ds, path).text == cached
        pages[when] = fetch(ds, "/").text
    # a session left the page when it ended; the week starts on Monday at midnight
    assert pages[first_end - dt.timedelta(seconds=1)] != pages[first_end]
    assert "Du dimanche 29 novembre" in pages[midnight - dt.timedelta(seconds=1)]
    assert "Du lundi 30 novembre" in pages[midnight]
    assert len(set(pages)) >= 5
