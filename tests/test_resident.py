"""Resident pages served in process (Datasette client) from samples published at a fixed time."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import sqlite3
import sys
from html.parser import HTMLParser
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events

from publish.web import resident, resident_data

# The test instance helper lives beside the browser tests; imported by path so that no other
# top-level ``tests`` or ``browser`` package on the machine can shadow it.
sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import NOW, SERVICE_ID, make_datasette, shared_instance

CSS = Path(resident.__file__).parent / "static" / "resident" / "resident.css"
BUDGET = 50 * 1024


@pytest.fixture(scope="module")
def instance():
    publish_dir = shared_instance()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resident, "clock", lambda: NOW)
        patch.setenv("TISSU_PUBLISH_DIR", str(publish_dir))  # what /exports/ serves
        patch.delenv("TISSU_KIOSK", raising=False)
        patch.delenv("TISSU_PUBLIC_URL", raising=False)
        yield make_datasette(publish_dir), publish_dir / "tissu-open.db"


def get(instance, path, cookies=None):
    ds, _ = instance
    return asyncio.run(ds.client.get(path, cookies=cookies or {}))


class Links(HTMLParser):
    """Collects every href/src/action and the ``<html>`` attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.html: dict[str, str | None] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "html":
            self.html = attributes
        for name in ("href", "src", "action"):
            if attributes.get(name):
                self.urls.append(attributes[name])


def parse(text: str) -> Links:
    parser = Links()
    parser.feed(text)
    return parser


def test_home_lists_this_weeks_sessions_by_day_in_french(instance):
    response = get(instance, "/")
    assert response.status_code == 200
    page = response.text
    assert parse(page).html == {"lang": "fr", "dir": "ltr"}
    assert "Du dimanche 29 novembre au samedi 5 décembre" in page
    # 8 sessions between Sunday noon and Saturday night (Europe/Paris), see the SQL below
    _, db = instance
    expected = sqlite3.connect(db).execute(
        "SELECT count(*) FROM occurrences WHERE end_utc > '2026-11-29T12:00:00Z' "
        "AND start_utc < '2026-12-05T23:00:00Z'").fetchone()[0]
    assert expected == 8
    assert "8 rendez-vous cette semaine" in page
    # the Lisbon weekly meeting, Monday 11:30 UTC = 12:30 in Paris
    monday = page.index("<h2>lundi 30 novembre</h2>")
    assert page.index("MDS-t", monday) < page.index("<h2>mardi 1er décembre</h2>")
    assert '<time datetime="2026-11-30T12:30:00+01:00">12:30</time>' in page
    # theme labels come from the published themes table (data/vocab/themes.yaml)
    assert '<option value="numerique">Numérique</option>' in page
    assert "<option>Quatre-Chemins</option>" in page


def test_filters_by_quartier_and_theme(instance):
    page = get(instance, "/?quartier=Hoche").text
    assert "1 rendez-vous cette semaine" in page and "MDS-t" in page
    assert "Dorkbot PDX" not in page
    page = get(instance, "/?theme=emploi-insertion").text
    assert "6 rendez-vous cette semaine" in page and "MDS-t" not in page
    assert "Sélection : Thème : Emploi et insertion" in page or "Sélection : Thème : Emploi" in page


def test_date_filter_shows_the_seven_days_from_that_date(instance):
    page = get(instance, "/?date=2026-12-07&quartier=Hoche").text
    assert "Du lundi 7 décembre au dimanche 13 décembre" in page
    assert "1 rendez-vous cette semaine" in page
    assert 'href="/?quartier=Hoche&amp;date=2026-11-30" rel="prev"' in page
    # a malformed date is ignored: today is shown
    assert "Du dimanche 29 novembre" in get(instance, "/?date=29/11").text


@pytest.mark.parametrize("date, said", [
    ("29/11", ("La date « 29/11 » n'a pas été comprise (à écrire AAAA-MM-JJ) : voici la semaine "
              "à partir d'aujourd'hui, dimanche 29 novembre.")),
    ("2026-02-30", "La date « 2026-02-30 » n'a pas été comprise"),
    ("0001-01-03", ("La date « 0001-01-03 » est hors de la période de l'agenda (années 2000 à "
                   "2100) : voici la semaine à partir d'aujourd'hui, dimanche 29 novembre.")),
    ("9999-12-31", "La date « 9999-12-31 » est hors de la période de l'agenda"),
])
def test_a_date_not_used_is_said_with_the_week_shown_instead(instance, date, said):
    page = get(instance, f"/?date={date}&quartier=Hoche").text
    assert "Du dimanche 29 novembre au samedi 5 décembre" in page
    alert = re.search(r'<p class="alerte" role="alert">(.*?)</p>', page).group(1)
    assert said in alert.replace("&#39;", "'")
    # the links of the page show this week, without the date given
    assert 'href="/?quartier=Hoche&amp;date=2026-12-06" rel="next"' in page


def test_a_date_not_understood_is_said_in_english_and_arabic_and_escaped(instance):
    english = get(instance, "/?date=0001-01-03&lang=en").text
    assert "The date “0001-01-03” is outside the agenda's range (years 2000 to 2100)" in english
    arabic = get(instance, "/?date=%3Cb%3Ex&lang=ar").text
    assert "لم نفهم التاريخ « &lt;b&gt;x »" in arabic and "<b>x" not in arabic
    # a good date or none: nothing to say
    for path in ("/", "/?date=2026-12-07", "/?date="):
        assert 'class="alerte"' not in get(instance, path).text


def test_language_switch_sets_a_cookie_and_arabic_is_rtl(instance):
    response = get(instance, "/?lang=ar")
    assert parse(response.text).html == {"lang": "ar", "dir": "rtl"}
    assert "tissu_lang=ar" in response.headers["set-cookie"]
    assert "مواعيد التضامن لهذا الأسبوع" in response.text
    assert "8 مواعيد هذا الأسبوع" in response.text  # Arabic plural "few" (3–10)
    # the cookie alone brings Arabic back
    again = get(instance, "/annuaire", cookies={"tissu_lang": "ar"})
    assert parse(again.text).html["dir"] == "rtl"
    assert "set-cookie" not in again.headers
    english = get(instance, "/?lang=en").text
    assert "8 events this week" in english and "From Sunday, 29 November" not in english
    # an unknown language falls back to French
    assert parse(get(instance, "/?lang=xx").text).html["lang"] == "fr"


def test_large_print_switch(instance):
    response = get(instance, "/?taille=grand")
    assert '<html lang="fr" dir="ltr" class="grand">' in response.text
    assert "tissu_taille=grand" in response.headers["set-cookie"]
    assert "Caractères normaux" in response.text
    assert "html.grand{font-size:137.5%}" in CSS.read_text()


def test_home_page_weighs_at_most_50_kb_with_its_css_and_js(instance):
    for path in ("/", "/?lang=ar&taille=grand", "/?date=2027-01-11", "/?borne=1"):
        response = get(instance, path)
        total = len(response.content)
        for url in parse(response.text).urls:
            if url.startswith("/-/static-plugins/"):
                asset = get(instance, url)
                assert asset.status_code == 200, url
                total += len(asset.content)
        assert total <= BUDGET, (path, total)


def test_home_is_paginated_so_a_busy_week_stays_in_budget(instance, monkeypatch):
    monkeypatch.setattr(resident, "HOME_PAGE_ROWS", 3)
    page = get(instance, "/").text
    assert page.count('<li><a href="/agenda/evenement/') == 3
    assert 'href="/?page=2">Suite de la semaine</a>' in page
    second = get(instance, "/?page=2").text
    assert second.count('<li><a href="/agenda/evenement/') == 3


def test_a_page_past_the_end_of_the_week_says_so_and_links_to_the_last(instance, monkeypatch):
    # a fresh user tried /?page=999999999999: « 8 rendez-vous cette semaine » then « Aucun
    # rendez-vous trouvé pour cette semaine »
    monkeypatch.setattr(resident, "HOME_PAGE_ROWS", 3)  # 8 sessions: 3 pages
    offsets = []
    listing = resident_data.week_listing

    def week_listing(connection, filters, now, offset, *args, **kwargs):
        offsets.append(offset)
        return listing(connection, filters, now, offset, *args, **kwargs)

    monkeypatch.setattr(resident_data, "week_listing", week_listing)
    for asked in ("999999999999", "4"):
        page = html.unescape(get(instance, f"/?page={asked}").text)
        assert "8 rendez-vous cette semaine" in page
        assert (f"Page {asked} : il n'y a que 3 pages de rendez-vous pour cette semaine. "
                '<a href="/?page=3">Aller à la dernière page</a>') in page
        assert "Aucun rendez-vous trouvé" not in page
        assert "Suite de la semaine" not in page
    assert max(offsets) <= (resident.MAX_HOME_PAGE - 1) * 3  # no OFFSET of 3 000 billion rows
    # one page only: a link to the first page, in the visitor's language
    monkeypatch.setattr(resident, "HOME_PAGE_ROWS", 60)
    page = html.unescape(get(instance, "/?page=2&lang=en").text)
    assert ("Page 2: there is only one page of events this week. "
            '<a href="/?lang=en">Go to the first page</a>') in page
    # an empty week past its first page is just empty
    page = html.unescape(get(instance, "/?page=2&date=2030-01-07").text)
    assert "Aucun rendez-vous trouvé pour cette semaine" in page and "Page 2 :" not in page


def test_event_page_and_its_calendar_file(instance):
    page = get(instance, "/agenda/evenement/lisbonne--EVENT2").text
    assert '<h1 dir="auto">MDS-t</h1>' in page
    assert "lundi 30 novembre 2026, <time" in page
    assert 'href="/agenda/evenement/lisbonne--EVENT2/evenement.ics"' in page
    response = get(instance, "/agenda/evenement/lisbonne--EVENT2/evenement.ics")
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    calendar = icalendar.Calendar.from_ical(response.content)
    [vevent] = [e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e]
    assert str(vevent["UID"]) == "lisbonne--EVENT2@tissu" and "RRULE" in vevent
    sessions = recurring_ical_events.of(calendar).between(NOW, NOW + dt.timedelta(days=7))
    assert [s["DTSTART"].dt.astimezone(dt.UTC) for s in sessions] == [
        dt.datetime(2026, 11, 30, 11, 30, tzinfo=dt.UTC)]


def test_event_ids_with_slashes_and_at_signs_round_trip(instance):
    home = get(instance, "/").text
    # the title keeps the language detected for the event (RGAA 8.7), here English
    link = re.search(r'href="(/agenda/evenement/portland[^"]+)"><span dir="auto" lang="en">'
                     r'Dorkbot PDX</span>', home).group(1)
    assert "%40google.com" in link
    assert '<h1 dir="auto" lang="en">Dorkbot PDX</h1>' in get(instance, link).text
    # no lang attribute when the event is in the page's language
    assert '<span dir="auto" lang="en">Dorkbot PDX</span>' not in get(instance, "/?lang=en").text
    assert get(instance, "/agenda/evenement/nope--missing").status_code == 404
    assert "Page introuvable" in get(instance, "/agenda/evenement/nope--missing").text
    assert get(instance, "/agenda/evenement/nope--missing/evenement.ics").status_code == 404


def test_subscribe_page_gives_webcal_https_instructions_and_qr(instance):
    page = get(instance, "/agenda/abonnement?theme=numerique&quartier=Centre").text
    # two filters: no exported file holds that selection: the live calendar
    https = "http://localhost/exports/agenda.ics?theme=numerique&amp;quartier=Centre"
    assert f'value="{https}" readonly dir="ltr"' in page
    assert 'href="webcal://localhost/exports/agenda.ics?theme=numerique&amp;quartier=Centre"' in page
    live = icalendar.Calendar.from_ical(
        get(instance, "/exports/agenda.ics?theme=numerique&quartier=Centre").content)
    assert "Dorkbot PDX" in {str(e["SUMMARY"]) for e in live.walk("VEVENT")}
    assert "Repair Café" not in {str(e["SUMMARY"]) for e in live.walk("VEVENT")}  # Quatre-Chemins
    # one filter: the per-theme feed written by publish.exports, which holds only that theme
    single = get(instance, "/agenda/abonnement?theme=seniors-isolement").text
    assert 'href="webcal://localhost/exports/ics/theme/seniors-isolement.ics"' in single
    feed = icalendar.Calendar.from_ical(
        get(instance, "/exports/ics/theme/seniors-isolement.ics").content)
    assert {str(e["SUMMARY"]) for e in feed.walk("VEVENT")} == {"MDS-t"}
    # a theme without coming events has no file: fall back to the query-string form
    none = get(instance, "/agenda/abonnement?theme=logement").text
    assert 'href="webcal://localhost/exports/agenda.ics?theme=logement"' in none
    for heading in ("Sur iPhone ou iPad", "Sur Android (Google Agenda)", "Avec Outlook"):
        assert f"<h2>{heading}</h2>" in page
    assert '<svg role="img" aria-label="QR code de l&#39;adresse de l&#39;agenda' in page or \
        '<svg role="img" aria-label="QR code de l\'adresse de l\'agenda' in page
    assert "Sélection : Thème : Numérique ; Quartier : Centre" in page
    # the feed named by the page exists
    assert get(instance, "/exports/agenda.ics").status_code == 200


def test_public_url_setting_makes_absolute_feed_links(instance, monkeypatch):
    monkeypatch.setenv("TISSU_PUBLIC_URL", "https://agenda.pantin.example/")
    page = get(instance, "/agenda/abonnement").text
    assert 'href="webcal://agenda.pantin.example/exports/agenda.ics"' in page


def test_kiosk_mode_keeps_links_inside_sets_no_cookie_and_resets(instance):
    response = get(instance, "/?borne=1&lang=ar")
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    links = parse(response.text)
    assert "borne" in (links.html.get("class") or "")
    for url in links.urls:
        assert url.startswith(("/", "#")), url
        if url.startswith(("/agenda/", "/annuaire", "/?")):
            assert "borne=1" in url, url
    assert 'data-idle="120"' in response.text and 'data-home="/?borne=1"' in response.text
    event = get(instance, "/agenda/evenement/lisbonne--EVENT2?borne=1").text
    assert "evenement.ics" not in parse(event).urls[-1]
    assert not any(u.endswith(".ics") for u in parse(event).urls)
    assert '<svg role="img"' in event  # a QR code instead of a download
    subscribe = get(instance, "/agenda/abonnement?borne=1").text
    assert not any(u.startswith(("webcal:", "http")) for u in parse(subscribe).urls)
    organisation = get(instance, "/annuaire/organisation/association-fablab?borne=1").text
    assert "https://fablab.example.org/" in organisation
    assert 'href="https://fablab.example.org/"' not in organisation


def test_kiosk_for_a_whole_instance(instance, monkeypatch):
    monkeypatch.setenv("TISSU_KIOSK", "1")
    monkeypatch.setenv("TISSU_KIOSK_IDLE_SECONDS", "45")
    page = get(instance, "/annuaire").text
    assert 'data-idle="45"' in page and 'data-home="/"' in page
    assert "borne=1" not in page  # no need to carry it


def test_poster_lists_the_quartiers_week_with_a_qr_code_to_its_feed(instance, monkeypatch):
    page = get(instance, "/agenda/affiche?quartier=Centre").text
    assert "Cette semaine à Centre" in page
    assert page.count("<li>") - page.count('<li><a') >= 6  # six Portland sessions
    assert "MDS-t" not in page
    assert "http://localhost/exports/ics/quartier/centre.ics" in page
    css = CSS.read_text()
    assert "@page{size:A4" in css and "@media print" in css
    monkeypatch.setattr(resident, "weasyprint_available", lambda: False)
    assert "affiche.pdf" not in get(instance, "/agenda/affiche?quartier=Centre").text
    missing = get(instance, "/agenda/affiche.pdf?quartier=Centre")
    assert missing.status_code == 404 and "imprimez l&#39;affiche" in missing.text


@pytest.mark.skipif(not resident.weasyprint_available(), reason="WeasyPrint is not installed")
def test_poster_pdf_through_weasyprint(instance):
    response = get(instance, "/agenda/affiche.pdf?quartier=Centre")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")


def test_directory_of_organisations_and_their_events(instance):
    page = get(instance, "/annuaire").text
    assert '<a href="/annuaire/organisation/association-fablab">Association fablab</a>' in page
    org = get(instance, "/annuaire/organisation/association-lisbonne").text
    assert "<h1>Association lisbonne</h1>" in org and "MDS-t" in org
    assert get(instance, "/annuaire/organisation/absent").status_code == 404
    services = get(instance, "/annuaire/services").text
    assert f'<a href="/annuaire/service/{SERVICE_ID}">Épicerie solidaire</a>' in services
    assert "<p>Association fablab · Pantin</p>" in services
    service = get(instance, f"/annuaire/service/{SERVICE_ID}").text
    assert '<th scope="row">mardi 1er décembre</th><td>14:00 – 18:00</td>' in service
    assert '<th scope="row">lundi 30 novembre</th><td>fermé</td>' in service
    assert "1 rue de l&#39;Exemple 93500 Pantin" in service
    fablab = get(instance, "/annuaire/organisation/association-fablab").text
    assert "Épicerie solidaire" in fablab


def test_services_are_read_whatever_their_column_names(tmp_path):
    db = tmp_path / "t.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE organisations (id TEXT PRIMARY KEY, name TEXT);"
        "INSERT INTO organisations VALUES ('ccas', 'CCAS de Pantin');"
        "CREATE TABLE services (id TEXT PRIMARY KEY, structure_id TEXT, nom TEXT,"
        " horaires_accueil TEXT, adresse TEXT, code_postal TEXT, commune TEXT, courriel TEXT);"
        "INSERT INTO services VALUES ('s1', 'ccas', 'Domiciliation',"
        " 'Mo-Fr 09:00-12:00', '84-88 avenue du Général Leclerc', '93500', 'Pantin',"
        " 'ccas@example.org');")
    rows = resident_data.services(connection, "ccas")
    assert [r["_name"] for r in rows] == ["Domiciliation"]
    assert rows[0]["_opening_hours"] == "Mo-Fr 09:00-12:00"
    assert rows[0]["_address"] == "84-88 avenue du Général Leclerc 93500 Pantin"
    assert rows[0]["_email"] == "ccas@example.org"
    assert resident_data.services(connection, "other") == []


def test_queries_tolerate_a_database_without_the_new_columns(tmp_path):
    connection = sqlite3.connect(tmp_path / "old.db")
    connection.executescript(
        "CREATE TABLE events (id TEXT, title TEXT, status TEXT, location TEXT, organizer TEXT,"
        " removed_at_source TEXT);"
        "CREATE TABLE occurrences (id TEXT, event_id TEXT, title TEXT, all_day INTEGER,"
        " start_utc TEXT, end_utc TEXT, start_local TEXT, start_date TEXT, end_date TEXT,"
        " status TEXT, location TEXT);"
        "INSERT INTO events VALUES ('a--1', 'Permanence', 'confirmed', 'Mairie', NULL, NULL);"
        "INSERT INTO occurrences VALUES ('a--1--x', 'a--1', NULL, 0, '2026-11-30T09:00:00Z',"
        " '2026-11-30T11:00:00Z', '2026-11-30T10:00:00+01:00', NULL, NULL, 'confirmed', NULL);")
    filters = resident_data.Filters(theme="sante", quartier="Hoche", free=True)
    found = resident_data.week_occurrences(connection, filters, NOW)
    assert [o.title for o in found] == ["Permanence"]  # filters on missing columns are no-ops
    assert found[0].start == dt.datetime(2026, 11, 30, 10, 0, tzinfo=resident_data.PARIS)
    assert resident_data.filter_choices(connection, "fr", NOW) == {
        "theme": [], "quartier": [], "public": []}
    assert not resident_data.supports_free(connection)


def test_free_filter_uses_the_gratuit_column(tmp_path):
    connection = sqlite3.connect(tmp_path / "free.db")
    connection.executescript(
        "CREATE TABLE events (id TEXT, title TEXT, status TEXT, location TEXT, organizer TEXT,"
        " removed_at_source TEXT, gratuit INTEGER, is_canonical INTEGER);"
        "CREATE TABLE occurrences (id TEXT, event_id TEXT, title TEXT, all_day INTEGER,"
        " start_utc TEXT, end_utc TEXT, start_local TEXT, start_date TEXT, end_date TEXT,"
        " status TEXT, location TEXT);"
        "INSERT INTO events VALUES ('a--1', 'Colis', 'confirmed', NULL, NULL, NULL, 1, 1),"
        " ('a--2', 'Repas', 'confirmed', NULL, NULL, NULL, 0, 1),"
        " ('b--9', 'Colis (doublon)', 'confirmed', NULL, NULL, NULL, 1, 0);"
        "INSERT INTO occurrences SELECT id || '--o', id, NULL, 0, '2026-12-01T09:00:00Z',"
        " '2026-12-01T10:00:00Z', NULL, NULL, NULL, 'confirmed', NULL FROM events;")
    everything = resident_data.week_occurrences(connection, resident_data.Filters(), NOW)
    assert [o.title for o in everything] == ["Colis", "Repas"]  # duplicates are not shown
    free = resident_data.week_occurrences(connection, resident_data.Filters(free=True), NOW)
    assert [(o.title, o.free) for o in free] == [("Colis", True)]


def test_all_day_sessions_begun_before_the_week_show_on_its_first_day():
    occurrence = resident_data.Occurrence(
        "x", "e", "Vacances", True, None, None, dt.date(2026, 11, 20), dt.date(2026, 12, 6),
        False, "", "")
    grouped = resident_data.group_by_day([occurrence], dt.date(2026, 11, 29))
    assert grouped == [(dt.date(2026, 11, 29), [occurrence])]


def test_a_crowded_week_with_long_texts_stays_within_the_budget(tmp_path, monkeypatch):
    """Worst case: many sessions with long titles and places; pagination keeps 50 KB."""
    db = tmp_path / "tissu-open.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE events (id TEXT, title TEXT, status TEXT, location TEXT, organizer TEXT,"
        " removed_at_source TEXT, themes TEXT, quartier TEXT, gratuit INTEGER);"
        "CREATE TABLE occurrences (id TEXT, event_id TEXT, title TEXT, all_day INTEGER,"
        " start_utc TEXT, end_utc TEXT, start_local TEXT, start_date TEXT, end_date TEXT,"
        " status TEXT, location TEXT);")
    title = "Distribution alimentaire et petit-déjeuner solidaire " * 3
    place = "Maison de quartier des Quatre-Chemins, 42 avenue Édouard-Vaillant, 93500 Pantin"
    for n in range(300):
        start = NOW + dt.timedelta(hours=1 + n // 2)
        connection.execute(
            "INSERT INTO events VALUES (?, ?, 'confirmed', ?, NULL, NULL, ?, ?, 1)",
            (f"source-longue--evenement-{n:04d}@example.org", f"{title} {n}", place,
             '["alimentation", "sante", "seniors-isolement"]', "Quatre-Chemins"))
        connection.execute(
            "INSERT INTO occurrences VALUES (?, ?, NULL, 0, ?, ?, NULL, NULL, NULL,"
            " 'confirmed', NULL)",
            (f"o{n}", f"source-longue--evenement-{n:04d}@example.org",
             resident_data.utc_text(start), resident_data.utc_text(start + dt.timedelta(hours=2))))
    connection.commit()
    connection.close()
    monkeypatch.setattr(resident, "clock", lambda: NOW)
    ds = make_datasette(tmp_path)
    for path in ("/", "/?lang=ar&taille=grand"):
        response = asyncio.run(ds.client.get(path))
        assert "page=2" in response.text  # the rest is on the next page
        css = asyncio.run(ds.client.get("/-/static-plugins/tissu/resident/resident.css"))
        assert len(response.content) + len(css.content) <= BUDGET, len(response.content)


def _published_like(path):
    """Events and occurrences as publish/build.py writes them (``live``, ``quartier`` copied)."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE events (id TEXT PRIMARY KEY, title TEXT, status TEXT, location TEXT,"
        " organizer TEXT, removed_at_source TEXT, is_canonical INTEGER, themes TEXT,"
        " quartier TEXT);"
        "CREATE TABLE occurrences (id TEXT PRIMARY KEY, event_id TEXT, title TEXT,"
        " all_day INTEGER, start_utc TEXT, end_utc TEXT, start_local TEXT, start_date TEXT,"
        " end_date TEXT, status TEXT, location TEXT, quartier TEXT, live INTEGER);"
        "CREATE INDEX o_week ON occurrences (start_utc, end_utc, live, quartier, event_id,"
        " start_local);"
        "INSERT INTO events VALUES"
        " ('a', 'Atelier', 'confirmed', NULL, NULL, NULL, 1, '[\"sante\"]', 'Hoche'),"
        " ('b', 'Braderie', 'confirmed', NULL, NULL, NULL, 1, '[\"famille\"]', 'Centre'),"
        " ('c', 'Retiré', 'confirmed', NULL, NULL, '2026-11-28', 1, '[\"emploi\"]', 'Hoche'),"
        " ('d', 'Doublon', 'confirmed', NULL, NULL, NULL, 0, '[\"famille\"]', 'Centre');")
    rows = [("a--long", "a", "2026-11-20T09:00:00Z", "2026-12-02T10:00:00Z"),
            ("a--old", "a", "2026-11-01T09:00:00Z", "2026-11-01T10:00:00Z"),
            ("b--1", "b", "2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z"),
            ("b--late", "b", "2027-01-10T08:00:00Z", "2027-01-10T09:00:00Z"),
            ("c--1", "c", "2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z"),
            ("d--1", "d", "2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z")]
    rows += [(f"a--{n}", "a", f"2026-{day}T09:00:00Z", f"2026-{day}T10:00:00Z")
             for n, day in enumerate(["11-30", "12-01", "12-02", "12-03", "12-04"], start=1)]
    connection.executemany(
        "INSERT INTO occurrences SELECT ?, e.id, NULL, 0, ?, ?, NULL, NULL, NULL, 'confirmed',"
        " NULL, e.quartier, CASE WHEN e.removed_at_source IS NULL AND"
        " COALESCE(e.is_canonical, 1) = 1 THEN 1 ELSE 0 END FROM events e WHERE e.id = ?",
        [(o, start, end, e) for o, e, start, end in rows])
    connection.commit()
    return connection


@pytest.mark.parametrize("cached", [False, True])
def test_week_page_pages_in_sql_and_counts_the_whole_week(tmp_path, cached):
    connection = _published_like(tmp_path / "week.db")
    facts = resident_data.database_facts(connection, NOW) if cached else None
    if cached:
        assert facts.longest_days == 14  # a--long lasts 12 days 1 hour
    hoche = resident_data.Filters(quartier="Hoche")
    first, total = resident_data.week_page(connection, hoche, NOW, 0, 2, facts)
    assert ([o.occurrence_id for o in first], total) == (["a--long", "a--1"], 6)
    second, total = resident_data.week_page(connection, hoche, NOW, 2, 2, facts)
    assert ([o.occurrence_id for o in second], total) == (["a--2", "a--3"], 6)
    everything, total = resident_data.week_page(connection, resident_data.Filters(), NOW, 0, 50,
                                                facts)
    assert [o.occurrence_id for o in everything] == [
        "a--long", "a--1", "b--1", "a--2", "a--3", "a--4", "a--5"]  # not removed, no duplicate
    assert total == 7
    themed, total = resident_data.week_page(
        connection, resident_data.Filters(theme="famille"), NOW, 0, 50, facts)
    assert ([o.occurrence_id for o in themed], total) == (["b--1"], 1)


def test_filter_choices_from_facts_read_earlier_match_a_fresh_read(tmp_path):
    connection = _published_like(tmp_path / "choices.db")
    facts = resident_data.database_facts(connection, NOW)

    def codes(choices):
        return {kind: [c.value for c in values] for kind, values in choices.items()}

    at_now = codes(resident_data.filter_choices(connection, "fr", NOW, facts))
    assert sorted(at_now["theme"]) == ["famille", "sante"]  # 'emploi' was removed at source
    assert at_now["quartier"] == ["Centre", "Hoche"]
    later = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)  # every session of 'a' is over
    from_facts = codes(resident_data.filter_choices(connection, "fr", later, facts))
    assert from_facts == codes(resident_data.filter_choices(connection, "fr", later))
    assert from_facts == {"theme": ["famille"], "quartier": ["Centre"], "public": []}
    # facts read after the moment asked about are not trusted: read again
    newer = resident_data.database_facts(connection, later)
    assert codes(resident_data.filter_choices(connection, "fr", NOW, newer)) == at_now


def test_theme_filter_matches_whole_codes_of_the_json_list(tmp_path):
    connection = sqlite3.connect(tmp_path / "themes.db")
    connection.executescript(
        "CREATE TABLE events (id TEXT, title TEXT, status TEXT, location TEXT, organizer TEXT,"
        " removed_at_source TEXT, themes TEXT);"
        "CREATE TABLE occurrences (id TEXT, event_id TEXT, title TEXT, all_day INTEGER,"
        " start_utc TEXT, end_utc TEXT, start_local TEXT, start_date TEXT, end_date TEXT,"
        " status TEXT, location TEXT);"
        "INSERT INTO events VALUES ('a', 'Colis', NULL, NULL, NULL, NULL, '[\"alimentation\"]'),"
        " ('b', 'Épicerie', NULL, NULL, NULL, NULL, '[ \"sante\", \"alimentation\" ]'),"
        " ('c', 'Jardin', NULL, NULL, NULL, NULL, '[\"alimentation-durable\"]'),"
        " ('d', 'Repas', NULL, NULL, NULL, NULL, '[\"ALIMENTATION\"]');"
        "INSERT INTO occurrences SELECT id || '--o', id, NULL, 0, '2026-12-01T09:00:00Z',"
        " '2026-12-01T10:00:00Z', NULL, NULL, NULL, 'confirmed', NULL FROM events;")
    found = resident_data.week_occurrences(connection, resident_data.Filters(
        theme="alimentation"), NOW)
    assert [o.title for o in found] == ["Colis", "Épicerie"]


def test_a_crowd_after_a_publication_reads_the_database_facts_once(instance, monkeypatch):
    import time

    ds, _ = instance
    read = []
    facts = resident_data.database_facts

    def slow_facts(connection, now):
        read.append(now)
        time.sleep(0.2)  # the others arrive meanwhile
        return facts(connection, now)

    monkeypatch.setattr(resident_data, "database_facts", slow_facts)
    resident._FACTS.clear()
    resident.page_cache.PAGES.clear()

    async def crowd():
        paths = ["/?quartier=Hoche", "/?theme=x", "/recherche?q=MDS", "/", "/?lang=ar"]
        return await asyncio.gather(*(ds.client.get(p) for p in paths))

    pages = asyncio.run(crowd())
    assert [p.status_code for p in pages] == [200] * 5
    assert len(read) == 1 and not resident._FACTS_READING, read
    assert "MDS-t" in pages[2].text
