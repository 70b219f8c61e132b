"""Serving defaults set by the plugin at start-up (publish/web/serving.py)."""

import asyncio
import sqlite3

from datasette.app import Datasette

from publish.web import reload, serving


def _database(path):
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE events (id TEXT PRIMARY KEY, title TEXT)")
    connection.commit()
    connection.close()
    return str(path)


def test_facet_suggestions_off_and_facet_time_capped(tmp_path):
    ds = Datasette([], immutables=[_database(tmp_path / "tissu-open.db")])
    asyncio.run(ds.invoke_startup())
    assert ds.setting("suggest_facets") is False
    assert ds.setting("facet_time_limit_ms") == serving.FACET_TIME_LIMIT_MS == 100
    assert isinstance(ds.databases["tissu-open"], reload.ReloadingDatabase)
    settings = asyncio.run(ds.client.get("/-/settings.json")).json()
    assert settings["suggest_facets"] is False


def test_an_operators_setting_is_kept(tmp_path):
    ds = Datasette([], immutables=[_database(tmp_path / "tissu-open.db")],
                   settings={"facet_time_limit_ms": 500})
    asyncio.run(ds.invoke_startup())
    assert ds.setting("facet_time_limit_ms") == 500
    assert ds.setting("suggest_facets") is False
