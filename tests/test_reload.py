"""Datasette follows an atomically replaced published database without a restart."""

import asyncio
import os
import sqlite3

from datasette.app import Datasette

from publish.web import reload


def make_db(path, titles):
    temp = path.with_suffix(".tmp")
    connection = sqlite3.connect(temp)
    connection.execute("CREATE TABLE events (id TEXT PRIMARY KEY, title TEXT)")
    connection.executemany("INSERT INTO events VALUES (?, ?)", [(t, t) for t in titles])
    connection.commit()
    connection.close()
    os.replace(temp, path)


def test_replaced_file_is_served_after_publish(tmp_path, monkeypatch):
    monkeypatch.setattr(reload, "CHECK_INTERVAL", 0.0)
    path = tmp_path / "tissu-open.db"
    make_db(path, ["Repair café"])

    async def scenario():
        ds = Datasette([], immutables=[str(path)])
        await ds.invoke_startup()
        assert isinstance(ds.databases["tissu-open"], reload.ReloadingDatabase)
        first = await ds.client.get("/tissu-open/events.json?_shape=array")
        make_db(path, ["Repair café", "Distribution alimentaire"])
        second = await ds.client.get("/tissu-open/events.json?_shape=array")
        count = await ds.client.get("/tissu-open.json")
        return first.json(), second.json(), count.status_code

    first, second, status = asyncio.run(scenario())
    assert [row["title"] for row in first] == ["Repair café"]
    assert [row["title"] for row in second] == ["Distribution alimentaire", "Repair café"]
    assert status == 200


def test_the_resident_pages_own_connection_follows_the_replaced_file(tmp_path, monkeypatch):
    monkeypatch.setattr(reload, "CHECK_INTERVAL", 0.0)
    path = tmp_path / "tissu-open.db"
    make_db(path, ["Repair café"])

    def titles(connection):
        return [row[0] for row in connection.execute("SELECT title FROM events ORDER BY id")]

    async def scenario():
        ds = Datasette([], immutables=[str(path)])
        await ds.invoke_startup()
        database = ds.databases["tissu-open"]
        first = database.execute_here(titles)
        make_db(path, ["Repair café", "Distribution alimentaire"])
        return first, database.execute_here(titles), await database.execute_fn(titles)

    first, second, pooled = asyncio.run(scenario())
    assert first == ["Repair café"]
    assert second == pooled == ["Distribution alimentaire", "Repair café"]
