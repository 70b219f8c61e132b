"""Spiders' callbacks on saved pages, without a reactor (fast), and the crawl-output reader.

The crawl clock is fixed by the spiders' ``now`` argument (tests.conftest.NOW); the real
crawls through a local server are in tests/test_crawlers_crawl.py.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from scrapy import Request
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

import tissu
from connectors.base import ParseResult
from connectors.html import read_crawl_lines, spider_for
from crawlers.items import EventItem, PageReport
from crawlers.pipelines import EventValidationPipeline
from crawlers.spiders.base import failure_message
from crawlers.spiders.generic import GenericEventSpider
from crawlers.spiders.reseau_alpha import ReseauAlphaSpider, french_date
from normalize.events import Horizon, RecordView, normalize_json_record
from tests.conftest import FIXTURES, NOW

BASE = "http://127.0.0.1:8000"
INDEX = """<html><head><title>Agenda</title>
<link rel="next" href="/agenda?page=2"></head><body>
<a href="/agenda/tove-styrke">Concert</a>
<a href="/agenda/tove-styrke#billets">Concert (billets)</a>
<a href="/evenement/conseil">Conseil</a>
<a href="/a-propos">Qui sommes-nous</a>
<a href="/documents/agenda.pdf">Programme PDF</a>
<a href="https://ailleurs.example.org/agenda/x">Ailleurs</a>
<a href="/liste-complete">Page suivante</a>
<a href="mailto:contact@example.org">Écrire</a>
</body></html>""".encode()


def spider(cls=GenericEventSpider, url: str = f"{BASE}/agenda"):
    return cls(url=url, now=NOW.isoformat())


def test_generic_spider_follows_same_site_event_and_next_links_only() -> None:
    response = HtmlResponse(f"{BASE}/agenda", body=INDEX)
    output = list(spider().parse(response))
    requests = [o.url for o in output if isinstance(o, Request)]
    assert requests == [
        f"{BASE}/agenda?page=2",  # rel=next
        f"{BASE}/liste-complete",  # "Page suivante"
        f"{BASE}/agenda/tove-styrke",
        f"{BASE}/evenement/conseil",
    ]
    reports = [o for o in output if isinstance(o, PageReport)]
    assert [(r.title, r.events, r.status) for r in reports] == [("Agenda", 0, 200)]


def test_generic_spider_yields_events_then_report_and_follows_same_site_event_urls() -> None:
    body = (FIXTURES / "schemaorg" / "eg-0461.jsonld.html").read_bytes()
    output = list(spider().parse(HtmlResponse(f"{BASE}/agenda", body=body)))
    events = [o for o in output if isinstance(o, EventItem)]
    assert [e.title for e in events] == ["Miami Heat at Philadelphia 76ers - Game 3 (Home Game 1)"]
    # the event's own page is on the same site: followed as a detail page
    assert [o.url for o in output if isinstance(o, Request)] == [
        f"{BASE}/nba-miami-philidelphia-game3.html"]


def test_generic_spider_reads_activitystreams_json() -> None:
    body = (FIXTURES / "schemaorg" / "gancio_event_activity.json").read_bytes()
    response = Response(f"{BASE}/federation/m/1", body=body,
                        headers={"Content-Type": "application/activity+json"})
    output = list(spider().parse(response))
    assert [(o.uid, o.dtstart) for o in output if isinstance(o, EventItem)] == [
        ("https://demo.gancio.org/federation/m/1", "2021-07-14T17:30:57+02:00")]
    assert [o.events for o in output if isinstance(o, PageReport)] == [1]


def test_generic_spider_reports_a_binary_answer() -> None:
    response = Response(f"{BASE}/affiche.png", body=b"\x89PNG",
                        headers={"Content-Type": "image/png"})
    assert list(spider().parse(response)) == [PageReport(
        url=f"{BASE}/affiche.png", status=200,
        error="ce n'est pas une page HTML (image/png)")]


def test_spider_requires_a_start_url() -> None:
    with pytest.raises(ValueError, match="url"):
        GenericEventSpider(now=NOW.isoformat())


def test_failure_messages_are_plain_french() -> None:
    request = Request(f"{BASE}/x")
    not_found = HtmlResponse(f"{BASE}/x", status=404, body=b"", request=request)
    assert failure_message(Failure(HttpError(not_found))) == (404, "le serveur a répondu HTTP 404")
    robots = Failure(IgnoreRequest("Forbidden by robots.txt"))
    assert failure_message(robots) == (
        0, "page interdite aux robots par le fichier robots.txt du site")
    refused = Failure(IgnoreRequest("adresse refusée : adresse privée 10.0.0.1"))
    assert failure_message(refused) == (0, "adresse refusée : adresse privée 10.0.0.1")


def test_validation_pipeline_drops_events_without_usable_start() -> None:
    pipeline = EventValidationPipeline(get_crawler(GenericEventSpider))
    good = EventItem(uid="u", dtstart="2026-12-03T18:00:00")
    assert pipeline.process_item(good) is good
    with pytest.raises(DropItem, match="date de début"):
        pipeline.process_item(EventItem(uid="u", dtstart="bientôt"))
    with pytest.raises(DropItem, match="identifiant"):
        pipeline.process_item(EventItem(uid="", dtstart="2026-12-03"))
    report = PageReport(url="x")
    assert pipeline.process_item(report) is report


# ----------------------------------------------------------------------------- Réseau Alpha

ALPHA_URL = f"{BASE}/structure/apprentissage-du-francais/abc-formation"
COURSES = ("https://www.reseau-alpha.org/structure/apprentissage-du-francais/abc-formation/"
           "formation/")


def alpha_items() -> tuple[list[EventItem], list[PageReport], list[Request]]:
    body = (FIXTURES / "html" / "reseau_alpha_abc-formation.html").read_bytes()
    output = list(spider(ReseauAlphaSpider, ALPHA_URL).parse(HtmlResponse(ALPHA_URL, body=body)))
    return ([o for o in output if isinstance(o, EventItem)],
            [o for o in output if isinstance(o, PageReport)],
            [o for o in output if isinstance(o, Request)])


def occurrences(item: EventItem, horizon: Horizon) -> list[dict]:
    payload = read_crawl_lines([json.dumps(item.__dict__)], ALPHA_URL, 50, ParseResult())
    record = payload.records[0]
    view = RecordView(record.uid, "", "json", record.payload, record.content_hash)
    return normalize_json_record("reseau-alpha", view, horizon).occurrences


def test_reseau_alpha_courses_are_weekly_series() -> None:
    items, reports, requests = alpha_items()
    assert len(items) == 7  # the 7 courses on the page, one time slot each
    assert requests == []  # no other structure page linked on this site's host
    assert reports[0].events == 7
    first = items[0]
    assert first.title == ("TAAC-TIC Technique Accélérée d’Acquisition des Connaissances par "
                           "Technologies de l’Information et de la Communication")
    assert first.uid == COURSES + (
        "francais-a-visee-professionnelle/e6cfe-taac-tic-technique-acceleree-d-acquisition-des-"
        "connaissances-par-technologies-de-l-information-et-de-la-communication")
    assert (first.dtstart, first.dtend, first.tzid) == (
        "2025-12-04T09:00:00", "2025-12-04T12:00:00", "Europe/Paris")
    # "4 déc. 2025 - 5 mars 2026", Lundi/Mardi/Jeudi/Vendredi 09:00-12:00
    assert first.rrule == "FREQ=WEEKLY;BYDAY=MO,TU,TH,FR;UNTIL=20260305T225959Z"
    assert first.location == "ABC Formation, 3, Allée du lavoir, 95130 - Franconville"
    assert first.organizer == "ABC FORMATION"
    assert first.description.startswith("Places disponibles.\nObjectifs visés : Devenir autonome")
    assert "Public attendu : Scolarisé (3ans et +) en langue française" in first.description
    dds = items[2]
    assert (dds.title, dds.dtstart, dds.rrule) == (
        "DDS (Décodage des silences)", "2026-01-05T09:00:00",
        "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20260402T215959Z")


def test_reseau_alpha_course_occurrences_in_utc_across_dst() -> None:
    items, _reports, _requests = alpha_items()
    whole = Horizon(dt.datetime(2025, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
    first = occurrences(items[0], whole)
    # 4-5 Dec, 12 full weeks (8 Dec … 27 Feb) of 4 days, then 2, 3 and 5 March.
    assert len(first) == 2 + 12 * 4 + 3
    assert first[0]["start_utc"] == dt.datetime(2025, 12, 4, 8, 0, tzinfo=dt.UTC)
    assert first[-1]["start_utc"] == dt.datetime(2026, 3, 5, 8, 0, tzinfo=dt.UTC)
    afternoon = occurrences(items[4], whole)  # 10 Mar - 4 Jun 2026, 13:00-16:00 Paris
    assert afternoon[0]["start_local"] == "2026-03-10T13:00:00+01:00"
    assert afternoon[0]["start_utc"] == dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    after_dst = [o for o in afternoon if o["start_utc"] > dt.datetime(2026, 3, 30, tzinfo=dt.UTC)]
    assert after_dst[0]["start_local"] == "2026-03-30T13:00:00+02:00"
    assert after_dst[0]["start_utc"] == dt.datetime(2026, 3, 30, 11, 0, tzinfo=dt.UTC)
    assert afternoon[-1]["start_local"] == "2026-06-04T13:00:00+02:00"


def test_reseau_alpha_course_without_hours_is_an_all_day_period() -> None:
    items, reports, _requests = alpha_items()
    hygipro = items[5]
    assert hygipro.title == "Hygi'pro Parcours de formation préqualifiant Propreté et hygiène"
    assert (hygipro.dtstart, hygipro.dtend, hygipro.rrule) == ("2026-02-24", "2026-07-22", None)
    assert any("pas d'horaires" in p for p in reports[0].problems)


def test_french_short_dates() -> None:
    assert french_date("4 déc. 2025") == dt.date(2025, 12, 4)
    assert french_date("24 févr. 2026") == dt.date(2026, 2, 24)
    assert french_date("21 juil. 2026") == dt.date(2026, 7, 21)
    assert french_date("31 truc 2026") is None


# --------------------------------------------------------------------- crawl output reading


def lines(*objects: dict) -> list[str]:
    return [json.dumps(o) for o in objects]


def test_events_found_on_listing_and_detail_pages_are_merged() -> None:
    short = {"kind": "event", "uid": "https://x.org/e/1", "dtstart": "2026-12-03T18:00:00",
             "title": "Repair café", "description": "Court", "syntaxes": ["json-ld"],
             "page_url": "https://x.org/agenda"}
    detail = dict(short, description="Une description bien plus longue", location="Salle",
                  page_url="https://x.org/e/1")
    result = read_crawl_lines(lines(
        short, detail,
        {"kind": "page", "url": "https://x.org/agenda", "status": 200},
        {"kind": "stats", "finish_reason": "finished", "stats": {}},
    ), "https://x.org/agenda", 50, ParseResult())
    assert result.errors == []
    assert len(result.records) == 1
    payload = json.loads(result.records[0].payload)
    assert (payload["description"], payload["location"]) == ("Une description bien plus longue",
                                                              "Salle")


def test_start_page_failure_and_limits_are_errors() -> None:
    failed = read_crawl_lines(lines(
        {"kind": "page", "url": "https://x.org/agenda", "status": 404,
         "error": "le serveur a répondu HTTP 404"},
        {"kind": "stats", "finish_reason": "finished", "stats": {}},
    ), "https://x.org/agenda/", 50, ParseResult())
    assert [str(e) for e in failed.errors] == [
        "https://x.org/agenda : le serveur a répondu HTTP 404"]
    limited = read_crawl_lines(lines(
        {"kind": "page", "url": "https://x.org/agenda", "status": 200},
        {"kind": "page", "url": "https://x.org/prive", "error": "page interdite aux robots"},
        {"kind": "stats", "finish_reason": "closespider_pagecount",
         "stats": {"robotstxt/forbidden": 1}},
    ), "https://x.org/agenda", 2, ParseResult())
    assert [str(e) for e in limited.errors] == [
        "collecte incomplète : limite de 2 pages atteinte"]
    assert [str(w) for w in limited.warnings] == [
        "https://x.org/prive : page interdite aux robots",
        "1 page(s) non lues : interdites par robots.txt",
    ]
    broken = read_crawl_lines(["{pas du json"], "https://x.org/", 50, ParseResult())
    assert [str(e) for e in broken.errors] == ["ligne 1 : ligne de collecte illisible"]


def test_spider_names_of_registry_formats() -> None:
    assert spider_for("html") == "generic"
    assert spider_for("scrapy:reseau_alpha") == "reseau_alpha"
    with pytest.raises(ValueError, match="invalide"):
        spider_for("scrapy:../../etc")


def test_text_response_for_json_feeds_goes_to_the_json_reader() -> None:
    body = (FIXTURES / "schemaorg" / "gancio_event_activity.json").read_bytes()
    response = TextResponse(f"{BASE}/m/1", body=body, encoding="utf-8",
                            headers={"Content-Type": "application/json"})
    output = list(spider().parse(response))
    assert [o.title for o in output if isinstance(o, EventItem)] == ["Demo event"]


# ------------------------------------------------------------------- settings, guard, registry


def test_crawl_settings_are_polite_and_bounded() -> None:
    from crawlers.run import crawl_settings

    settings = crawl_settings(output="x.jsonl", max_pages=3, depth=1, timeout=20, delay=0)
    assert settings.getbool("ROBOTSTXT_OBEY") and settings.getbool("AUTOTHROTTLE_ENABLED")
    assert settings.get("USER_AGENT") == tissu.USER_AGENT
    assert not settings.getbool("TELNETCONSOLE_ENABLED")
    assert not settings.getbool("REMOTE_CONTROL_ENABLED")
    assert (settings.getint("CLOSESPIDER_PAGECOUNT"), settings.getint("DEPTH_LIMIT"),
            settings.getint("CLOSESPIDER_TIMEOUT")) == (3, 1, 20)
    defaults = crawl_settings()
    assert (defaults.getint("CLOSESPIDER_PAGECOUNT"), defaults.getint("DEPTH_LIMIT"),
            defaults.getfloat("DOWNLOAD_DELAY")) == (50, 2, 1.0)


@pytest.mark.parametrize("url", ["http://10.0.0.1/agenda", "http://169.254.169.254/latest",
                                 "file:///etc/passwd", "http://user:pw@127.0.0.1/"])
def test_url_guard_refuses_private_and_odd_urls(url: str) -> None:
    from crawlers.middlewares import UrlGuardMiddleware

    guard = UrlGuardMiddleware(get_crawler(GenericEventSpider))
    with pytest.raises(IgnoreRequest, match="adresse refusée"):
        guard.process_request(Request(url))


def test_url_guard_lets_loopback_through_only_when_allowed(monkeypatch) -> None:
    from crawlers.middlewares import UrlGuardMiddleware

    guard = UrlGuardMiddleware(get_crawler(GenericEventSpider))
    assert guard.process_request(Request(f"{BASE}/agenda")) is None  # conftest allows loopback
    monkeypatch.delenv("TISSU_ALLOW_LOOPBACK_FETCH")
    with pytest.raises(IgnoreRequest, match="adresse refusée"):
        guard.process_request(Request(f"{BASE}/agenda"))


def registry_with(tmp_path, fmt: str, url: str = "https://www.example.org/agenda"):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  - id: site\n    name: Site\n    publisher: {name: X, type: association}\n"
        f"    format: '{fmt}'\n    url: {url}\n    licence: Licence Ouverte 2.0\n",
        encoding="utf-8")
    return path


def test_registry_accepts_html_and_known_spiders(tmp_path) -> None:
    from schemas.registry import load_registry

    assert load_registry(registry_with(tmp_path, "html"))[0].format == "html"
    assert load_registry(registry_with(tmp_path, "scrapy:reseau_alpha"))[0].format == (
        "scrapy:reseau_alpha")


@pytest.mark.parametrize(("fmt", "message"), [
    ("scrapy:inconnue", "araignée inconnue 'inconnue' (connues : generic, reseau_alpha)"),
    ("scrapy:Reseau-Alpha", "nom d'araignée invalide 'Reseau-Alpha'"),
    ("scrapy:", "nom d'araignée invalide ''"),
])
def test_registry_refuses_unknown_or_malformed_spiders(tmp_path, fmt: str, message: str) -> None:
    from schemas.registry import RegistryError, load_registry

    with pytest.raises(RegistryError) as caught:
        load_registry(registry_with(tmp_path, fmt))
    assert "entrée n°1 (id='site') : champ 'format'" in str(caught.value)
    assert message in str(caught.value)


def test_crawl_of_a_local_path_is_refused_without_starting_scrapy(tmp_settings) -> None:
    from connectors.html import crawl_source

    result = crawl_source("site", "/srv/agenda.html", "html", tmp_settings, NOW)
    assert [str(e) for e in result.errors] == [
        "une collecte de site demande une adresse http(s) : /srv/agenda.html"]
    assert result.records == []
