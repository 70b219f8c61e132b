"""Faults a new user found by hand, kept as tests (one Datasette instance across requests)."""

import asyncio

from datasette.app import Datasette

from tests.conftest import NOW
from tests.test_exports import published, served  # noqa: F401  (fixtures used by name)


def run_requests(out, paths):
    async def scenario():
        ds = Datasette([str(out.database)], immutables=[])
        await ds.invoke_startup()
        return [await ds.client.get(path) for path in paths]

    return asyncio.run(scenario())


def test_filtered_calendar_leaves_datasette_connections_usable(served):  # noqa: F811
    paths = ["/exports/agenda.ics?theme=numerique"] * 6 + [
        "/api/events.json?limit=5", "/tissu-open/events.json?_size=2"] * 5
    responses = run_requests(served, paths)
    assert [r.status_code for r in responses] == [200] * len(paths)


def test_control_characters_in_feed_filters_are_not_a_server_error(served):  # noqa: F811
    theme, quartier, known = run_requests(
        served, ["/exports/agenda.ics?theme=a%0aB", "/exports/agenda.ics?quartier=a%0d%0ab",
                 "/exports/agenda.ics?quartier=Centre%0d%0a"])
    # unknown codes: a French 404, not a server error
    assert theme.status_code == 404 and "thème inconnu" in theme.text
    assert quartier.status_code == 404 and "quartier inconnu" in quartier.text
    # a known code followed by a line break is the known code
    assert known.status_code == 200 and b"BEGIN:VCALENDAR" in known.content


def test_api_parameter_errors_are_french(served):  # noqa: F811
    cases = {
        "/api/events.json?limit=abc": "limit",
        "/api/events.json?limit=-1": "limit",
        "/api/events.json?limit=1001": "limit",
        "/api/events.json?modified_since=hier": "modified_since",
        "/api/events.json?modified_since=2026-13-45": "modified_since",
        "/api/events.json?cursor=%%%": "cursor",
    }
    responses = run_requests(served, list(cases))
    for (path, name), response in zip(cases.items(), responses, strict=True):
        assert response.status_code == 400, path
        message = response.json()["error"]
        assert f"paramètre « {name} » invalide" in message, path
        assert "invalid literal" not in message and "must be" not in message


def test_far_dates_on_resident_pages_are_ignored(served, monkeypatch):  # noqa: F811
    monkeypatch.setattr("publish.web.resident.clock", lambda: NOW, raising=False)
    responses = run_requests(served, ["/?date=9999-12-31", "/?date=0001-01-01",
                                      "/agenda/affiche?date=9999-12-31", "/?date=2026-99-99"])
    assert [r.status_code for r in responses] == [200, 200, 200, 200]


def test_directory_order_folds_accents():
    import sqlite3

    from publish.web.resident_data import organisations

    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE organisations (id TEXT PRIMARY KEY, name TEXT)")
    connection.executemany("INSERT INTO organisations VALUES (?, ?)", [
        ("r", "Région Aquitaine"), ("e", "Épicerie solidaire de Pantin"), ("a", "Asso Zèbre")])
    assert [o["name"] for o in organisations(connection)] == [
        "Asso Zèbre", "Épicerie solidaire de Pantin", "Région Aquitaine"]
