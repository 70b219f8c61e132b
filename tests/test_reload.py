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


def test_a_read_over_its_budget_in_the_loop_is_interrupted_and_run_in_the_pool(tmp_path,
                                                                               monkeypatch):
    from publish.web import resident

    path = tmp_path / "tissu-open.db"
    make_db(path, ["Repair café"])
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT count(*) FROM n")
    ran_in: list[str] = []

    def count(connection):
        import threading

        ran_in.append(threading.current_thread().name)
        return connection.execute(slow).fetchone()[0]

    async def scenario():
        ds = Datasette([], immutables=[str(path)])
        await ds.invoke_startup()
        database = ds.databases["tissu-open"]
        try:
            database.execute_here(count, budget_ms=5)
        except reload.TooLongHere:
            interrupted = True
        else:
            interrupted = False
        quick = database.execute_here(lambda c: c.execute("SELECT 1").fetchone()[0])
        monkeypatch.setattr(reload, "HERE_BUDGET_MS", 5.0)
        return interrupted, quick, await resident._run(ds, count)

    interrupted, quick, counted = asyncio.run(scenario())
    assert interrupted and quick == 1  # the connection is still usable
    assert counted == 3000000
    main = ran_in[0]
    assert ran_in[1] == main and ran_in[2] != main  # tried in the loop, then in the pool
