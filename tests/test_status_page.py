"""The public source status page, its Atom feed of incidents, and the e-mails to publishers."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
from dataclasses import replace

import feedparser
import pytest
import yaml
from sqlmodel import Session

from schemas.models import HarvestRun, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES, Route
from tissu.alerts import check_publisher_alerts
from tissu.pipeline import harvest_all


def entry(source_id, url):
    return {"id": source_id, "name": f"Agenda {source_id}", "format": "ical", "url": url,
            "licence": "Licence Ouverte 2.0",
            "publisher": {"name": f"Asso {source_id}", "type": "association"}}


@pytest.fixture
def history(http_server, tmp_settings, monkeypatch):
    """Three sources: one healthy, one failing since NOW, one whose feed dropped to zero."""
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.setenv("TISSU_PUBLIC_URL", "https://tissu.example.org")
    http_server.routes["/lisbon.ics"] = Route(
        (SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes())
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [
        entry("lisbonne", http_server.url("/lisbon.ics")),
        entry("cassee", http_server.url("/missing.ics")),
        entry("videe", http_server.url("/videe.ics"))]}), encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    specs = [s for s in load_registry(tmp_settings.registry) if s.id != "videe"]
    harvest_all(engine, specs, tmp_settings, now=NOW - dt.timedelta(hours=1))
    harvest_all(engine, specs, tmp_settings, now=NOW)
    with Session(engine) as session:
        from tissu.pipeline import sync_registry

        sync_registry(session, load_registry(tmp_settings.registry))
        # the history of "videe": 12 events, 12 again, then an empty calendar
        for hours, events in ((-3, 12), (-2, 12), (-1, 0)):
            at = NOW + dt.timedelta(hours=hours)
            session.add(HarvestRun(source_id="videe", started_at=at, finished_at=at,
                                   status="ok", records=events, events=events))
        videe = session.get(Source, "videe")
        videe.last_attempt_at = videe.last_success_at = NOW - dt.timedelta(hours=1)
        for source_id in ("cassee", "videe"):
            row = session.get(Source, source_id)
            row.contact_email = f"contact@{source_id}.example.org"
            session.add(row)
        session.commit()
    return engine


def get(path):
    from datasette.app import Datasette

    async def go():
        return await Datasette(memory=True).client.get(path)

    return asyncio.run(go())


def test_status_page_marks_every_source_with_text_not_colour_alone(history):
    response = get("/etat-des-sources")
    assert response.status_code == 200
    text = html.unescape(response.text)
    assert "1 en forme, 1 à surveiller, 1 en panne" in text
    failing = text[text.index('id="source-cassee"'):]
    failing = failing[:failing.index("</tr>")]
    assert 'data-status="failing"' in failing
    assert "■</span> En panne" in failing
    assert "les 2 dernières collectes ont échoué" in failing
    assert "jamais" in failing  # never succeeded
    healthy = text[text.index('id="source-lisbonne"'):]
    healthy = healthy[:healthy.index("</tr>")]
    assert 'data-status="ok"' in healthy and "●</span> En forme" in healthy
    assert "29/11/2026 13:00" in healthy  # last success at NOW (12:00 UTC), in Paris time
    emptied = text[text.index('id="source-videe"'):]
    emptied = emptied[:emptied.index("</tr>")]
    assert "12 → 12 → 0" in emptied and "↘" in emptied
    assert "▲</span> À surveiller" in emptied
    # failing first (worst first)
    assert text.index('id="source-cassee"') < text.index('id="source-videe"') < \
        text.index('id="source-lisbonne"')


def test_status_page_in_arabic_is_right_to_left(history):
    text = html.unescape(get("/etat-des-sources?lang=ar").text)
    assert '<html lang="ar" dir="rtl">' in text
    assert "حالة المصادر" in text and "معطّل" in text


def test_atom_feed_lists_incidents(history):
    response = get("/etat-des-sources.atom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert feed.version == "atom10" and not feed.bozo
    titles = [e.title for e in feed.entries]
    assert titles[0] == "Agenda videe : plus aucun événement (il y en avait 12)"
    assert any(t.startswith("Agenda cassee : collecte en échec : le serveur a répondu HTTP 404")
               for t in titles)
    assert feed.entries[0].link == "https://tissu.example.org/etat-des-sources#source-videe"


def test_publishers_are_mailed_once_when_failing_24h_or_empty(history, tmp_settings,
                                                              smtp_server):
    settings = replace(tmp_settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                       public_url="https://tissu.example.org")
    # one hour after the first failure: only the emptied feed is reported
    opened = check_publisher_alerts(history, NOW, settings)
    assert [(a.source_id, a.kind) for a in opened] == [("videe", "empty")]
    assert [m["To"] for m in smtp_server.messages] == ["contact@videe.example.org"]
    assert smtp_server.messages[0]["Subject"] == \
        "Tissu : votre agenda ne contient plus aucun événement"
    # 25 hours after the first failure: the failing feed too, and nothing twice
    later = NOW + dt.timedelta(hours=24)
    opened = check_publisher_alerts(history, later, settings)
    assert [(a.source_id, a.kind) for a in opened] == [("cassee", "failing")]
    message = smtp_server.messages[1]
    assert message["To"] == "contact@cassee.example.org"
    assert "depuis plus de 24 heures" in message["Subject"]
    assert "tissu check http://127.0.0.1:" in message.get_content()
    assert check_publisher_alerts(history, later, settings) == []
    assert len(smtp_server.messages) == 2


def test_recovery_closes_the_alert(history, tmp_settings, http_server):
    settings = replace(tmp_settings, smtp_host="")
    check_publisher_alerts(history, NOW + dt.timedelta(hours=25), settings)
    http_server.routes["/missing.ics"] = Route(
        (SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes())
    specs = [s for s in load_registry(tmp_settings.registry) if s.id == "cassee"]
    harvest_all(history, specs, tmp_settings, now=NOW + dt.timedelta(hours=26))
    check_publisher_alerts(history, NOW + dt.timedelta(hours=26), settings)
    from sqlmodel import select

    from schemas.models import SourceAlert

    with Session(history) as session:
        alert = session.exec(select(SourceAlert).where(SourceAlert.source_id == "cassee")).one()
        assert alert.closed_at == NOW + dt.timedelta(hours=26)
        assert alert.sent_at is None  # SMTP off: logged, not sent
    titles = [e.title for e in feedparser.parse(get("/etat-des-sources.atom").content).entries]
    assert "Agenda cassee : collecte rétablie" in titles
    assert json.loads(json.dumps(titles))  # plain strings


def test_source_whose_last_read_had_warnings_is_to_watch_with_every_warning(
        http_server, tmp_settings, monkeypatch):
    # the Repair Café calendar: an RRULE with FREQ=SOMETIMES and a zone that does not exist
    from tests.test_harvest_warnings import REPAIR_CAFE

    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    http_server.routes["/belleville.ics"] = Route(REPAIR_CAFE)
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [
        entry("belleville", http_server.url("/belleville.ics"))]}), encoding="utf-8")
    harvest_all(make_engine(tmp_settings.database_url), load_registry(tmp_settings.registry),
                tmp_settings, now=NOW)
    text = html.unescape(get("/etat-des-sources").text)
    assert "0 en forme, 1 à surveiller, 0 en panne" in text
    row = text[text.index('id="source-belleville"'):]
    row = row[:row.index("</tr>")]
    assert 'data-status="warning"' in row and "▲</span> À surveiller" in row
    # every warning of the last read, each on its own line (not only the first)
    from tests.test_harvest_warnings import RRULE_WARNING, TZID_WARNING

    assert (f"<li>2 avertissements à la dernière lecture :<ol><li>{RRULE_WARNING} : ignorée"
            f"</li><li>{TZID_WARNING}</li></ol></li>") in row
    assert "collecte normale" not in row


def test_reason_items_list_every_warning_under_the_summary():
    from publish.web.status import reason_items

    warnings = ["ligne 3 : DTSTART illisible", "ligne 9 : fuseau inconnu", "ligne 12 : x"]
    summary = "3 avertissements à la dernière lecture : ligne 3 : DTSTART illisible"
    assert reason_items(["aucun élément lu", summary], warnings) == [
        {"text": "aucun élément lu", "details": []},
        {"text": "3 avertissements à la dernière lecture :", "details": warnings}]
    # one warning: the reason already gives it whole
    one = "1 avertissement à la dernière lecture : ligne 3 : DTSTART illisible"
    assert reason_items([one], warnings[:1]) == [{"text": one, "details": []}]
    # a summary worded otherwise is kept, and no warning is lost
    assert reason_items(["autre résumé"], warnings[:2]) == [
        {"text": "autre résumé", "details": warnings[:2]}]


def add_warned_read(engine, source_id, count):
    """A later read of ``source_id`` that left ``count`` warnings (as a harvest stores them)."""
    warnings = [f"{source_id} : ligne {n} : DTSTART illisible" for n in range(1, count + 1)]
    with Session(engine) as session:
        at = NOW + dt.timedelta(minutes=5)
        session.add(HarvestRun(source_id=source_id, started_at=at, finished_at=at, status="ok",
                               records=12, events=12, warnings=json.dumps(warnings)))
        session.commit()


def row_of(text, source_id):
    row = text[text.index(f'id="source-{source_id}"'):]
    return row[:row.index("</tr>")]


def test_a_source_with_many_warnings_lists_ten_and_counts_the_others(history):
    # a fresh user saw all 204 warnings of one source on the page of every source (33 KB)
    add_warned_read(history, "lisbonne", 204)
    text = html.unescape(get("/etat-des-sources").text)
    row = row_of(text, "lisbonne")
    assert "204 avertissements à la dernière lecture :" in row
    assert row.count("DTSTART illisible</li>") == 10
    assert "<li>ligne 10 : DTSTART illisible</li>" in row
    assert "ligne 11 :" not in row
    assert ('<a href="/etat-des-sources?source=lisbonne#source-lisbonne">'
            "et 194 autres avertissements</a>") in row  # French, the default: no lang
    assert len(get("/etat-des-sources").content) < 10_000
    # that source's own page lists them all, and only that source
    own = html.unescape(get("/etat-des-sources?source=lisbonne").text)
    assert own.count("DTSTART illisible</li>") == 204
    assert "<li>ligne 204 : DTSTART illisible</li>" in own
    assert "autres avertissements" not in own
    assert 'id="source-cassee"' not in own
    assert '<a href="/etat-des-sources">Toutes les sources</a>' in own
    unknown = html.unescape(get("/etat-des-sources?source=nexiste").text)
    assert "Aucune source ne porte ce code." in unknown and "<table>" not in unknown


def test_eleven_warnings_leave_one_other(history):
    add_warned_read(history, "lisbonne", 11)
    row = row_of(html.unescape(get("/etat-des-sources?lang=en").text), "lisbonne")
    assert row.count("DTSTART illisible</li>") == 10
    assert "and 1 more warning</a>" in row


def test_status_page_in_english_or_arabic_says_the_diagnostics_are_french(history):
    english = html.unescape(get("/etat-des-sources?lang=en").text)
    assert "(The diagnostics are written in French.)" in english
    arabic = html.unescape(get("/etat-des-sources?lang=ar").text)
    assert "(التشخيصات مكتوبة بالفرنسية.)" in arabic
    french = html.unescape(get("/etat-des-sources").text)
    assert "écrits en français" not in french


def test_shorten_keeps_the_first_warnings_and_counts_the_rest():
    from publish.web.status import shorten

    items = [{"text": "r", "details": [str(n) for n in range(12)]}, {"text": "s", "details": []}]
    assert shorten(items, 10) == [
        {"text": "r", "details": [str(n) for n in range(10)], "more": 2},
        {"text": "s", "details": [], "more": 0}]


def test_a_paused_source_says_so_and_a_retired_one_is_not_listed(history, tmp_settings):
    # the trial: a paused source showed « En forme / collecte normale », a source removed from
    # the registry was still listed « En forme »
    from tissu.pipeline import sync_registry

    with Session(history) as session:
        lisbonne = session.get(Source, "lisbonne")
        lisbonne.status, lisbonne.paused_by_moderator = "paused", True
        session.add(lisbonne)
        session.commit()
        kept = [s for s in load_registry(tmp_settings.registry) if s.id == "lisbonne"]
        sync_registry(session, kept)  # « cassee » and « videe » removed from the registry
        assert [session.get(Source, i).status for i in ("lisbonne", "cassee", "videe")] == [
            "paused", "retired", "retired"]
    text = html.unescape(get("/etat-des-sources").text)
    assert 'id="source-cassee"' not in text and 'id="source-videe"' not in text
    assert "Collecte en pause : ses derniers événements restent publiés" in row_of(text,
                                                                                   "lisbonne")
    english = html.unescape(get("/etat-des-sources?lang=en").text)
    assert "Harvest paused: its latest events stay published" in row_of(english, "lisbonne")


def test_the_pages_links_keep_kiosk_mode_language_and_large_print(history):
    # the trial: links in the body (to /inscription, to a source's warnings) dropped borne=1
    # and taille=grand, leaving kiosk mode and large print
    add_warned_read(history, "lisbonne", 12)
    text = get("/etat-des-sources?borne=1&taille=grand&lang=en").text
    assert 'href="/inscription?borne=1&amp;lang=en&amp;taille=grand"' in text
    # the second trial: the incidents' Atom feed, raw XML, was a dead end on a kiosk
    assert "etat-des-sources.atom" not in text
    assert 'href="/etat-des-sources.atom"' in get("/etat-des-sources").text
    assert ('href="/etat-des-sources?source=lisbonne&amp;borne=1&amp;lang=en&amp;taille=grand'
            '#source-lisbonne"') in text
