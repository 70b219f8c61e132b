"""Real crawls, each in a child process (python -m crawlers.run), against the local test server.

Kept to a few runs (each starts Scrapy, about 2-3 s). Pages are the unedited saved pages of
tests/fixtures/html/; the start page linking them is written here. The crawl clock is passed
explicitly (tests.conftest.NOW).
"""

from __future__ import annotations

import json
from dataclasses import replace

import yaml
from sqlmodel import Session, select

import tissu
from connectors.html import crawl_source
from schemas.models import Event, Occurrence, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, NOW, FakeServer, Route
from tissu.pipeline import harvest_all

HTML = FIXTURES / "html"
ROBOTS = b"User-agent: *\nDisallow: /prive/\n"
INDEX = """<html><head><title>Agenda des associations</title></head><body>
<h1>Agenda</h1>
<a href="/agenda/tove-styrke">Concert</a>
<a href="/agenda/conseils">Conseils de la Land Bank</a>
<a href="/prive/agenda/brouillon">Brouillon</a>
<a href="/a-propos">Qui sommes-nous</a>
<a href="/agenda/annule">Événement retiré</a>
<a rel="next" href="/agenda/page-2">Suivant</a>
</body></html>""".encode()


def page(name: str) -> Route:
    return Route(body=(HTML / name).read_bytes(),
                 headers={"Content-Type": "text/html; charset=utf-8"})


def serve_site(server: FakeServer) -> None:
    server.routes.update({
        "/robots.txt": Route(body=ROBOTS, headers={"Content-Type": "text/plain"}),
        "/agenda": Route(body=INDEX, headers={"Content-Type": "text/html; charset=utf-8"}),
        "/agenda/tove-styrke": page("songkick_tovestyrke.html"),
        "/agenda/conseils": page("cook_landbank.html"),
        "/agenda/page-2": page("hcal_multiple.xml"),
        "/prive/agenda/brouillon": page("songkick_elysianfields.html"),
        "/a-propos": page("iso-8859-1-meta-after-1024.html"),
    })


def test_generic_crawl_follows_event_links_and_obeys_robots(http_server: FakeServer,
                                                             tmp_settings) -> None:
    serve_site(http_server)
    result = crawl_source("site", http_server.url("/agenda"), "html", tmp_settings, NOW)
    assert result.errors == []
    titles = sorted(json.loads(r.payload)["title"] for r in result.records)
    # 1 concert + 9 Land Bank meetings (JSON-LD and microdata merged) + 2 hCalendar events
    assert len(result.records) == 12
    assert titles.count("CCLBA Land Transactions Committee") == 3
    assert "Tove Styrke" in titles and titles.count("Calendar event") == 2
    assert "/prive/agenda/brouillon" not in http_server.hits  # robots.txt disallows it
    assert "/a-propos" not in http_server.hits  # not an event or next-page link
    assert http_server.hits["/robots.txt"] == 1
    assert {r["user-agent"] for r in http_server.requests} == {tissu.USER_AGENT}
    warnings = [str(w) for w in result.warnings]
    assert "1 page(s) non lues : interdites par robots.txt" in warnings
    assert any("2019-9-20T08-08-30-00" in w for w in warnings)  # reported, not fatal
    assert f"{http_server.url('/agenda/annule')} : le serveur a répondu HTTP 404" in warnings


def test_harvest_all_with_html_sources(http_server: FakeServer, tmp_settings) -> None:
    alpha = "/structure/apprentissage-du-francais/abc-formation"
    http_server.routes.update({
        "/robots.txt": Route(body=b"User-agent: *\nAllow: /\n",
                             headers={"Content-Type": "text/plain"}),
        "/concerts": page("songkick_years_and_years_tour_dates.html"),
        alpha: page("reseau_alpha_abc-formation.html"),
    })
    registry = tmp_settings.registry
    publisher = {"name": "Association test", "type": "association"}
    entry = {"publisher": publisher, "licence": "Licence Ouverte 2.0"}
    registry.write_text(yaml.safe_dump({"sources": [
        {"id": "concerts", "name": "Concerts", "format": "html",
         "url": http_server.url("/concerts"), **entry},
        {"id": "cours-de-francais", "name": "Réseau Alpha", "format": "scrapy:reseau_alpha",
         "url": http_server.url(alpha), **entry},
    ]}, allow_unicode=True), encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    settings = replace(tmp_settings, horizon_past_days=400)  # the 2025-2026 courses
    summaries = {s.source_id: s for s in
                 harvest_all(engine, load_registry(registry), settings, now=NOW)}
    assert (summaries["concerts"].status, summaries["concerts"].records) == ("ok", 13)
    assert (summaries["cours-de-francais"].status, summaries["cours-de-francais"].events) == (
        "ok", 7)
    with Session(engine) as session:
        concerts = session.exec(select(Event).where(Event.source_id == "concerts")).all()
        assert len(concerts) == 13
        paris = [e for e in concerts if e.location and "Casino De Paris" in e.location]
        assert [(e.title, e.dtstart_utc.replace(tzinfo=None).isoformat()) for e in paris] == [
            ("Years & Years", "2015-11-16T18:30:00")]
        assert paris[0].source_uid.startswith("http://www.songkick.com/concerts/24790629")
        courses = session.exec(select(Event).where(Event.source_id == "cours-de-francais")).all()
        dds = [e for e in courses if e.title == "DDS (Décodage des silences)"]
        assert len(dds) == 1 and dds[0].rrule.startswith("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
        sessions = session.exec(select(Occurrence).where(Occurrence.event_id == dds[0].id)
                                .order_by(Occurrence.start_utc)).all()
        # 5 Jan - 2 Apr 2026, Monday to Friday 09:00-16:00 Paris: 13 weeks minus Fri 3 Apr
        assert len(sessions) == 13 * 5 - 1
        assert sessions[0].start_local == "2026-01-05T09:00:00+01:00"
        assert sessions[-1].start_local == "2026-04-02T09:00:00+02:00"
        assert session.get(Source, "concerts").last_error is None


def test_unchanged_site_is_not_crawled_again_a_changed_page_is(http_server: FakeServer,
                                                                tmp_settings, monkeypatch) -> None:
    """Second run: every page of the last crawl answers the same, so no crawl (no Scrapy child)
    and no normalisation; once a detail page changes, the next run crawls and reads it."""
    import connectors.html

    serve_site(http_server)
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "site", "name": "Agenda du site", "format": "html",
        "url": http_server.url("/agenda"), "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Associations de Pantin", "type": "association"}}]}),
        encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    specs = load_registry(tmp_settings.registry)
    crawls: list[str] = []
    real_crawl = connectors.html.crawl_source

    def counting_crawl(*args, **kwargs):
        crawls.append(args[0])
        return real_crawl(*args, **kwargs)

    monkeypatch.setattr(connectors.html, "crawl_source", counting_crawl)
    [first] = harvest_all(engine, specs, tmp_settings, now=NOW)
    assert (first.status, first.events, crawls) == ("ok", 12, ["site"])
    with Session(engine) as session:
        pages = json.loads(session.get(Source, "site").crawl_pages)
    urls = {page["url"].removeprefix(http_server.base) for page in pages}
    assert {"/robots.txt", "/agenda", "/agenda/tove-styrke", "/agenda/conseils",
            "/agenda/page-2", "/agenda/annule"} <= urls
    assert all(len(page["sha256"]) == 64 for page in pages)

    [second] = harvest_all(engine, specs, tmp_settings, now=NOW.replace(hour=14))
    assert (second.status, second.normalised, crawls) == ("unchanged", False, ["site"])

    http_server.routes["/agenda/tove-styrke"] = page("songkick_elysianfields.html")
    [third] = harvest_all(engine, specs, tmp_settings, now=NOW.replace(hour=16))
    assert (third.status, third.normalised, crawls) == ("ok", True, ["site", "site"])
    with Session(engine) as session:
        titles = {e.title for e in session.exec(select(Event).where(
            Event.removed_at_source.is_(None)))}  # type: ignore[union-attr]
    assert "Tove Styrke" not in titles
    [forced] = harvest_all(engine, specs, tmp_settings, now=NOW.replace(hour=18), force=True)
    assert forced.status == "ok" and len(crawls) == 3


def test_one_crawl_service_runs_every_crawl_and_reports_a_bad_spider(http_server: FakeServer,
                                                                     tmp_settings) -> None:
    from connectors.html import crawl_service

    serve_site(http_server)
    service = crawl_service()
    first = crawl_source("site", http_server.url("/agenda"), "html", tmp_settings, NOW)
    child = service._process
    assert child is not None and child.poll() is None
    again = crawl_source("site", http_server.url("/agenda"), "html", tmp_settings, NOW)
    assert service._process is child  # Scrapy imported once for both crawls
    assert len(first.records) == len(again.records) == 12
    broken = crawl_source("x", http_server.url("/agenda"), "scrapy:absente", tmp_settings, NOW)
    assert [p.code for p in broken.errors] == ["crawl-failed"]
    assert "araignée inconnue : 'absente'" in str(broken.errors[0])


def test_worker_harvests_a_website_beside_the_other_sources(http_server: FakeServer,
                                                            tmp_settings) -> None:
    from tissu.pipeline import run_worker

    serve_site(http_server)
    http_server.routes["/agenda.ics"] = Route(body=(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//FR\r\nBEGIN:VEVENT\r\n"
        b"UID:permanence@example.org\r\nDTSTAMP:20261101T100000Z\r\n"
        b"DTSTART:20261203T090000Z\r\nDTEND:20261203T110000Z\r\nSUMMARY:Permanence\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"))
    publisher = {"name": "Associations de Pantin", "type": "association"}
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [
        {"id": "site", "name": "Site", "format": "html", "url": http_server.url("/agenda"),
         "licence": "Licence Ouverte 2.0", "publisher": publisher},
        {"id": "cal", "name": "Calendrier", "format": "ical",
         "url": http_server.url("/agenda.ics"), "licence": "Licence Ouverte 2.0",
         "publisher": publisher}]}), encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    summaries = run_worker(engine, tmp_settings, specs=load_registry(tmp_settings.registry),
                           now=lambda: NOW)
    assert sorted((s.source_id, s.status, s.events) for s in summaries) == [
        ("cal", "ok", 1), ("site", "ok", 12)]
    with Session(engine) as session:
        assert len(session.exec(select(Event)).all()) == 13


def test_a_start_page_redirected_elsewhere_is_crawled_again(http_server: FakeServer,
                                                            tmp_settings) -> None:
    serve_site(http_server)
    http_server.routes["/agenda-courant"] = Route(
        status=302, headers={"Location": http_server.url("/agenda")})
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "site", "name": "Agenda du site", "format": "html",
        "url": http_server.url("/agenda-courant"), "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Associations de Pantin", "type": "association"}}]}),
        encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    specs = load_registry(tmp_settings.registry)
    [first] = harvest_all(engine, specs, tmp_settings, now=NOW)
    assert (first.status, first.events) == ("ok", 12)
    [second] = harvest_all(engine, specs, tmp_settings, now=NOW.replace(hour=14))
    assert second.status == "unchanged"
    # the current agenda is now another page: one concert only
    http_server.routes["/agenda-2027"] = Route(body=(
        b'<html><body><a href="/agenda/tove-styrke">Concert</a></body></html>'),
        headers={"Content-Type": "text/html; charset=utf-8"})
    http_server.routes["/agenda-courant"] = Route(
        status=302, headers={"Location": http_server.url("/agenda-2027")})
    [third] = harvest_all(engine, specs, tmp_settings, now=NOW.replace(hour=16), force=False)
    assert third.status in ("ok", "partial") and third.events == 1
