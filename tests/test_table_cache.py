"""Datasette's full-text search pages of the immutable published file, served again from
memory (publish/web/table_cache.py): byte for byte what Datasette computes, never for pages
that may read the clock or depend on who asks, and forgotten when another file is published."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from publish.web import page_cache, resident, table_cache

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import shared_instance


@pytest.fixture
def served(monkeypatch):
    """``get(path, **kwargs)`` against a Datasette serving the shared published file as
    ``tissu serve`` does (immutable, with its metadata); the cache starts empty."""
    from datasette.app import Datasette

    publish_dir = shared_instance()
    monkeypatch.delenv("TISSU_PAGE_CACHE", raising=False)
    ds = Datasette(immutables=[str(publish_dir / "tissu-open.db")],
                   metadata=json.loads((publish_dir / "metadata.json").read_text("utf-8")))
    table_cache.TABLE_PAGES.clear()
    table_cache.TABLE_PAGES.hits = table_cache.TABLE_PAGES.misses = 0

    def get(path, **kwargs):
        return asyncio.run(ds.client.get(path, **kwargs))

    return get


def untimed(body: bytes) -> bytes:
    """A page without the time its queries took (Datasette's footer, JSON ``query_ms``)."""
    body = re.sub(rb"requ\xc3\xaates : [0-9.]+ ms", b"", body)
    return re.sub(rb'"query_ms": [0-9.e-]+', b"", body)


SEARCHES = ["/tissu-open/events?_search=MDS", "/tissu-open/events.json?_search=group",
            "/tissu-open/events.json?_search=group&_shape=array&_size=20",
            "/tissu-open/events?_search_title=group&_facet=quartier"]


@pytest.mark.parametrize("path", SEARCHES)
def test_a_table_page_is_served_again_byte_for_byte(served, monkeypatch, path):
    first = served(path)
    assert first.status_code == 200 and len(table_cache.TABLE_PAGES) == 1
    again = served(path)
    assert table_cache.TABLE_PAGES.hits == 1
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    monkeypatch.setenv("TISSU_PAGE_CACHE", "0")  # the same page computed by Datasette now
    assert untimed(served(path).content) == untimed(first.content)
    assert table_cache.TABLE_PAGES.hits == 1


@pytest.mark.parametrize("path", [
    "/tissu-open/upcoming",  # a view: reads the clock ('now')
    "/tissu-open/cette_semaine",  # a canned query: reads the clock
    "/tissu-open?sql=select+strftime('%25s','now')",
    "/tissu-open/events?_search=MDS&_timelimit=500",
    "/tissu-open/events.csv?_search=MDS",
    "/tissu-open/nosuchtable",
    "/recherche?q=MDS",  # the resident pages have their own cache
    # Datasette's plain table pages stay Datasette's (the W3 benchmark's reference)
    "/tissu-open/occurrences?_sort=start_utc&status=confirmed",
    "/tissu-open/events?_search=",
    "/tissu-open/events.json?_searchmode=raw",
])
def test_pages_that_may_change_with_the_same_file_are_not_kept(served, path):
    served(path)
    served(path)
    assert len(table_cache.TABLE_PAGES) == 0 and table_cache.TABLE_PAGES.hits == 0


def test_requests_with_credentials_are_computed_by_datasette(served):
    served("/tissu-open/events?_search=MDS")
    served("/tissu-open/events?_search=MDS", cookies={"ds_actor": "x"})
    served("/tissu-open/events?_search=MDS", headers={"Authorization": "Bearer x"})
    assert table_cache.TABLE_PAGES.hits == 0
    served("/tissu-open/events?_search=MDS", cookies={"lang": "ar"})  # a resident's cookie
    assert table_cache.TABLE_PAGES.hits == 1


def test_another_published_file_empties_it(served, monkeypatch):
    served("/tissu-open/events?_search=MDS")
    identity = resident._file_identity
    monkeypatch.setattr(resident, "_file_identity",
                        lambda datasette: (*identity(datasette), "republished"))
    served("/tissu-open/events?_search=MDS")
    assert table_cache.TABLE_PAGES.hits == 0 and table_cache.TABLE_PAGES.misses == 2


def test_a_page_with_facets_timed_out_is_kept_a_minute_only(served, monkeypatch):
    # Datasette writes class="facets-timed-out" when facet_time_limit_ms cut a facet short;
    # here every page is taken for one
    monkeypatch.setattr(table_cache, "_TIMED_OUT", (b"<html",))
    before = dt.datetime.now(dt.UTC)
    served("/tissu-open/events?_search=MDS")
    [entry] = table_cache.TABLE_PAGES._entries.values()
    assert before < entry.valid_until <= dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=table_cache.TIMED_OUT_SECONDS)
    assert page_cache.PAGES is not table_cache.TABLE_PAGES


def test_a_crowd_asking_for_a_page_not_kept_yet_makes_datasette_compute_it_once(monkeypatch):
    from datasette.app import Datasette

    publish_dir = shared_instance()
    ds = Datasette(immutables=[str(publish_dir / "tissu-open.db")],
                   metadata=json.loads((publish_dir / "metadata.json").read_text("utf-8")))
    table_cache.TABLE_PAGES.clear()
    computed = []
    compute = table_cache._compute

    async def counted(*args):
        computed.append(args[1]["path"])
        await asyncio.sleep(0.2)  # a slow page: the others arrive meanwhile
        return await compute(*args)

    monkeypatch.setattr(table_cache, "_compute", counted)

    async def crowd(path):
        return await asyncio.gather(*(ds.client.get(path) for _ in range(6)))

    pages = asyncio.run(crowd("/tissu-open/events?_search=group"))
    assert computed == ["/tissu-open/events"]
    assert {p.status_code for p in pages} == {200} and len({p.content for p in pages}) == 1
    # an expired copy from the same file is served while one request computes it again
    [(key, entry)] = table_cache.TABLE_PAGES._entries.items()
    table_cache.TABLE_PAGES._entries[key] = replace(entry, valid_until=entry.rendered_at
                                                    + dt.timedelta(microseconds=1))
    pages = asyncio.run(crowd("/tissu-open/events?_search=group"))
    assert len(computed) == 2
    assert sum(p.content == entry.body for p in pages) == 5  # the computing one is fresh
    assert {untimed(p.content) for p in pages} == {untimed(entry.body)}
    assert not table_cache._COMPUTING
