"""The feed doctor: one plain-French message per difficulty of the corpus, served over 127.0.0.1.

Fixtures are real corpus files (tests/fixtures/PROVENANCE.md); time is fixed at NOW.
"""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from connectors.doctor import diagnose, french_when
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, NOW, SAMPLES, Route
from tissu.pipeline import harvest_all


def serve(server, path: str, file, content_type: str = "text/calendar") -> str:
    server.routes[path] = Route(file.read_bytes(), headers={"Content-Type": content_type})
    return server.url(path)


def only(diagnosis, code):
    found = [p for p in diagnosis.problems if p.code == code]
    assert len(found) == 1, diagnosis.to_text()
    return found[0]


def test_healthy_calendar_shows_format_count_and_next_five(http_server, tmp_settings):
    url = serve(http_server, "/portland.ics", SAMPLES / "ical_google.ics")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    assert diagnosis.format == "ical" and diagnosis.usable
    assert diagnosis.events == 41
    assert diagnosis.problems == []
    # the next five occurrences as published: Europe/Paris local times, sorted
    assert [(p.start_local, p.title) for p in diagnosis.preview] == [
        ("2026-12-01T04:00:00+01:00", "Dorkbot PDX"),
        ("2026-12-02T03:00:00+01:00", "Mac Filmmakers Group"),
        ("2026-12-02T04:00:00+01:00", "Ruby Brigade"),
        ("2026-12-03T02:30:00+01:00", "PortlandWikiWednesday"),
        ("2026-12-04T02:30:00+01:00", "Final Cut Pro Users Group"),
    ]
    text = diagnosis.to_text()
    assert "Les 5 prochaines séances, telles qu'elles seront publiées :" in text
    assert "mardi 1er décembre 2026, 04:00 → 06:00 : Dorkbot PDX" in text
    assert "Aucun problème trouvé" in text


def test_floating_times_are_reported_as_missing_time_zone(http_server, tmp_settings):
    url = serve(http_server, "/upcoming.ics", FIXTURES / "ical" / "ical_upcoming_many.ics")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "no-timezone")
    assert problem.message.startswith("10 événements sur 20 ont une heure sans fuseau horaire")
    assert "Europe/Paris" in problem.fix
    assert problem.examples[0] == "« Substance Summit »"


def test_events_without_end_are_reported(http_server, tmp_settings):
    url = serve(http_server, "/discourse.ics", FIXTURES / "ical" / "discourse_no_dtend.ics")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "no-end")
    assert problem.message == ("1 événement sur 4 n'a pas d'heure de fin : il sera affiché "
                               "sans durée")
    assert problem.examples == ["« 2019-01-17 openLab »"]
    assert "heure de fin" in problem.fix


def test_only_past_events_are_reported_with_the_last_date(http_server, tmp_settings):
    url = serve(http_server, "/discourse.ics", FIXTURES / "ical" / "discourse_no_dtend.ics")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "only-past")
    assert problem.message == ("tous les événements sont passés (le dernier commence le "
                               "11/05/2019) : rien ne sera affiché dans l'agenda")
    assert diagnosis.upcoming == 0 and diagnosis.preview == []
    assert diagnosis.usable  # a warning, not a refusal


def test_web_page_instead_of_feed_lists_links_and_how_to_for_every_tool(http_server,
                                                                       tmp_settings):
    url = serve(http_server, "/agenda.html", FIXTURES / "html" / "cook_landbank.html",
                "text/html; charset=utf-8")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    assert diagnosis.format == "html" and not diagnosis.usable
    problem = only(diagnosis, "web-page")
    assert problem.severity == "error"
    assert problem.examples == [("flux trouvé sur la page (souvent sans dates d'événements) : "
                                "http://www.cookcountylandbank.org/feed/")]
    assert "WordPress" in problem.fix and "/feed/" in problem.fix
    for tool in ("Google Agenda", "Nextcloud ou Framagenda", "Outlook", "Mobilizon", "Gancio",
                 "OpenAgenda", "WordPress avec The Events Calendar"):
        assert f"[{tool}" in problem.fix, tool
    assert "?ical=1" in problem.fix and "/feed/ics" in problem.fix and "basic.ics" in problem.fix


def test_web_page_with_an_ics_link_offers_that_link(http_server, tmp_settings):
    url = serve(http_server, "/event.html", FIXTURES / "html" / "chi_ssa_19_detail.html",
                "text/html")
    problem = only(diagnose(url, now=NOW, settings=tmp_settings), "web-page")
    assert ("lien de calendrier trouvé sur la page : https://business.rpba.org/events/ical/"
            "howard-street-ssa-19-commissioners-meeting-11-20-2019-6350.ics") in problem.examples
    assert problem.fix.startswith("Essayez d'abord le lien de calendrier trouvé sur la page")


def test_latin1_calendar_is_reported_as_wrong_encoding(http_server, tmp_settings):
    url = serve(http_server, "/latin1.ics", FIXTURES / "ical" / "basic_latin1.ics")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "encoding")
    assert problem.message.startswith("le fichier n'est pas en UTF-8")
    assert "UTF-8" in problem.fix
    assert diagnosis.events == 95


def test_feed_declaring_windows_1252_but_written_in_utf8(http_server, tmp_settings):
    url = serve(http_server, "/feed.xml", FIXTURES / "feeds" / "windows-1252-incorrect-prolog.xml",
                "application/rss+xml")
    problem = only(diagnose(url, now=NOW, settings=tmp_settings), "encoding")
    assert problem.message.startswith("le flux déclare l'encodage windows-1252 mais il est "
                                      "écrit en UTF-8")
    assert 'encoding="UTF-8"' in problem.fix


def test_feed_with_invalid_utf8_bytes(http_server, tmp_settings):
    url = serve(http_server, "/bozo.xml", FIXTURES / "feeds" / "bozo_invalid-bytes-with-bom.xml",
                "application/rss+xml")
    problem = only(diagnose(url, now=NOW, settings=tmp_settings), "encoding")
    assert problem.message.startswith("le flux annonce l'UTF-8 mais contient des octets")


def test_news_feed_without_event_dates(http_server, tmp_settings):
    url = serve(http_server, "/rdf.xml", FIXTURES / "feeds" / "rdf_UTF8.xml", "application/rdf+xml")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "no-event-dates")
    assert problem.message.startswith("ce flux contient 60 articles mais aucune date")
    assert diagnosis.events == 0 and diagnosis.news == 60 and not diagnosis.usable


def test_unreadable_event_is_named_with_its_line(http_server, tmp_settings):
    url = serve(http_server, "/broken.ics", FIXTURES / "ical" / "broken_dtstart.ics")
    problem = only(diagnose(url, now=NOW, settings=tmp_settings), "parse-error")
    assert problem.examples == [("ligne 4 : DTSTART illisible (Expected datetime, date, or time. "
                                "Got: 'INVALID-DATE') : événement ignoré")]


def registered_portland(http_server, tmp_settings):
    """The Portland sample calendar served, registered as source « portland » and harvested."""
    url = serve(http_server, "/portland.ics", SAMPLES / "ical_google.ics")
    tmp_settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "portland", "name": "Portland", "format": "ical", "url": url,
        "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Portland user groups", "type": "association"}}]}),
        encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    harvest_all(engine, load_registry(tmp_settings.registry), tmp_settings, now=NOW)
    return url, engine


def test_events_already_published_by_another_source(http_server, tmp_settings):
    url, engine = registered_portland(http_server, tmp_settings)
    copy = serve(http_server, "/copy.ics", SAMPLES / "ical_google.ics")
    diagnosis = diagnose(copy, now=NOW, settings=tmp_settings, engine=engine)
    problem = only(diagnosis, "duplicate")
    assert problem.examples[0].endswith("déjà publié par la source « portland »")
    assert problem.message.endswith(" événements sont déjà publiés par une autre source")
    # re-checking the registered source itself is not a duplicate of itself
    again = diagnose(url, now=NOW, settings=tmp_settings, engine=engine, exclude_source="portland")
    assert "duplicate" not in again.codes()


def test_unreachable_url_and_wrong_scheme(http_server, tmp_settings):
    missing = diagnose(http_server.url("/missing.ics"), now=NOW, settings=tmp_settings)
    assert only(missing, "fetch").message == (
        f"impossible de lire cette adresse : le serveur a répondu HTTP 404 pour "
        f"{http_server.url('/missing.ics')}")
    ftp = diagnose("ftp://example.org/a.ics", now=NOW, settings=tmp_settings)
    assert "webcal://" in only(ftp, "fetch").fix
    # nothing was read: no « Format trouvé : format inconnu » before the real problem
    for failed in (missing, ftp):
        assert not failed.fetched
        assert "Format trouvé" not in failed.to_text()
    http_server.routes["/read.ics"] = Route((SAMPLES / "ical_google.ics").read_bytes())
    found = diagnose(http_server.url("/read.ics"), now=NOW, settings=tmp_settings)
    assert found.fetched
    assert "Format trouvé : calendrier iCalendar (.ics)" in found.to_text()


def test_french_when_all_day_is_exclusive_end():
    assert french_when("2026-12-19", "2026-12-20", True) == "samedi 19 décembre 2026"
    assert french_when("2026-12-19", "2027-01-04", True) == (
        "du samedi 19 décembre 2026 au dimanche 3 janvier 2027")


def test_cli_check_prints_the_report_and_fails_on_a_web_page(http_server, tmp_settings,
                                                             monkeypatch):
    from tissu.cli import app

    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    good = serve(http_server, "/portland.ics", SAMPLES / "ical_google.ics")
    page = serve(http_server, "/agenda.html", FIXTURES / "html" / "cook_landbank.html", "text/html")
    runner = CliRunner()
    result = runner.invoke(app, ["check", good, "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert "Format trouvé : calendrier iCalendar (.ics)" in result.output
    assert "Dorkbot PDX" in result.output
    result = runner.invoke(app, ["check", page, "--now", NOW.isoformat()])
    assert result.exit_code == 1
    assert "cette adresse est une page web" in result.output


def test_private_and_metadata_addresses_are_refused_in_plain_french(tmp_settings, monkeypatch):
    import socket

    def no_connect(*args, **kwargs):
        raise AssertionError("the doctor tried to connect to a refused address")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    for url in ("http://10.0.0.7/agenda.ics", "http://169.254.169.254/latest/meta-data/",
                "http://[::ffff:192.168.1.1]/agenda.ics"):
        diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
        problem = only(diagnosis, "unsafe-url")
        assert problem.message.startswith("adresse refusée : "), problem.message
        assert problem.message.count("adresse refusée") == 1
        assert "adresse publique" in problem.fix
        assert not diagnosis.usable


def test_french_when_first_of_month_and_times():
    # « 1er » for the first of the month (CLDR cannot say it), Babel's names elsewhere.
    assert french_when("2026-12-01", None, True) == "mardi 1er décembre 2026"
    assert french_when("2027-01-11T09:30:00", "2027-01-11T12:00:00", False).startswith(
        "lundi 11 janvier 2027, 09:30")


# --- The parser's warnings are problems too (the harvest sees them; so must the doctor) ---------

def test_truncated_calendar_is_reported_not_passed(http_server, tmp_settings):
    # the Portland calendar (data/samples/ical_google.ics) cut off before its 24th VEVENT, as
    # a host that stops sending half-way delivers it: no END:VCALENDAR
    whole = (SAMPLES / "ical_google.ics").read_bytes()
    cut = whole[:whole.index(b"BEGIN:VEVENT", len(whole) // 2)]
    http_server.routes["/portland.ics"] = Route(cut, headers={"Content-Type": "text/calendar"})
    diagnosis = diagnose(http_server.url("/portland.ics"), now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "truncated")
    assert problem.message.startswith("le fichier s'arrête avant la fin (END:VCALENDAR manquant)")
    assert problem.examples == ["ligne 399 : END:VCALENDAR manquant : fichier tronqué ?"]
    assert "END:VCALENDAR" in problem.fix and problem.severity == "warning"
    assert "fallback" not in diagnosis.codes()  # the re-read is a consequence, not news
    text = diagnosis.to_text()
    assert "Aucun problème trouvé" not in text
    assert "À corriger : le fichier s'arrête avant la fin" in text


def test_rrule_with_an_unknown_frequency_says_the_series_keeps_one_session(http_server,
                                                                          tmp_settings):
    from tests.test_harvest_warnings import REPAIR_CAFE

    http_server.routes["/belleville.ics"] = Route(REPAIR_CAFE)
    diagnosis = diagnose(http_server.url("/belleville.ics"), now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "bad-rrule")
    assert problem.message == ("la règle de répétition (RRULE) de 1 événement est illisible : "
                               "seule la première séance de celui-ci sera publiée")
    assert problem.examples == [("ligne 13 : propriété RRULE illisible (Expected frequency, got: "
                                "SOMETIMES) : ignorée")]
    assert "FREQ doit valoir DAILY, WEEKLY, MONTHLY ou YEARLY" in problem.fix
    # what is published: the workshop once, not six times
    assert [p.title for p in diagnosis.preview].count("Atelier vélo participatif") == 1


def test_unknown_tzid_is_not_called_a_missing_time_zone(http_server, tmp_settings):
    from tests.test_harvest_warnings import REPAIR_CAFE

    http_server.routes["/belleville.ics"] = Route(REPAIR_CAFE)
    diagnosis = diagnose(http_server.url("/belleville.ics"), now=NOW, settings=tmp_settings)
    assert "no-timezone" not in diagnosis.codes()
    problem = only(diagnosis, "unknown-timezone")
    assert problem.message.startswith("1 événement sur 2 donne un fuseau horaire inconnu "
                                      "(« Mars/Olympus_Mons ») que le fichier ne définit pas")
    assert problem.examples == ["« Repair Café de décembre » (fuseau « Mars/Olympus_Mons »)"]
    assert "Europe/Paris" in problem.fix and "VTIMEZONE" in problem.fix
    # a calendar with truly floating times still gets the « sans fuseau » finding alone
    url = serve(http_server, "/upcoming.ics", FIXTURES / "ical" / "ical_upcoming_many.ics")
    assert "unknown-timezone" not in diagnose(url, now=NOW, settings=tmp_settings).codes()


def test_rss_with_broken_xml_is_reported(http_server, tmp_settings):
    url = serve(http_server, "/feed.xml",
                FIXTURES / "feeds" / "rss_item_link_corrupted_ampersands.xml",
                "application/rss+xml")
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
    problem = only(diagnosis, "bozo")
    assert problem.message.startswith("le flux n'est pas du XML correct")
    assert problem.examples == [("ligne 13 : flux mal formé, lu quand même (SAXParseException: "
                                 "<unknown>:13:0: unclosed token)")]
    assert "&amp;" in problem.fix


def test_doctor_names_a_too_dense_series_and_an_end_before_the_start(http_server, tmp_settings):
    # the second trial: « Aucun problème trouvé » for an endless FREQ=SECONDLY series
    body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            "BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261205T100000Z\r\n"
            "DTEND:20261205T100001Z\r\nSUMMARY:Chaque seconde\r\nRRULE:FREQ=SECONDLY\r\n"
            "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:s2\r\nDTSTAMP:20261201T000000Z\r\n"
            "DTSTART:20261210T100000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:À l'envers\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()
    http_server.routes["/dense.ics"] = Route(body, headers={"Content-Type": "text/calendar"})
    diagnosis = diagnose(http_server.url("/dense.ics"), now=NOW, settings=tmp_settings)
    dense = only(diagnosis, "too-dense")
    assert dense.message.startswith("1 série se répète plus souvent que Tissu ne publie")
    assert dense.examples[0].startswith("s1 : série trop dense")
    backward = only(diagnosis, "end-before-start")
    assert backward.message.startswith("1 événement finit avant d'avoir commencé")
    assert "no-end" not in diagnosis.codes()  # it has a DTEND: only the first is said
    assert "Aucun problème" not in diagnosis.to_text()


def test_checking_a_registered_feed_says_it_is_registered_not_a_duplicate(http_server,
                                                                        tmp_settings):
    # the second trial: « déjà publié par la source src-1-warn » for the very same calendar
    url, engine = registered_portland(http_server, tmp_settings)
    diagnosis = diagnose(url, now=NOW, settings=tmp_settings, engine=engine)
    problem = only(diagnosis, "already-registered")
    assert problem.message.startswith("cet agenda est déjà inscrit (source « portland »)")
    assert "duplicate" not in diagnosis.codes()


def test_a_registered_calendar_is_recognised_under_another_spelling_of_its_address(
        http_server, tmp_settings):
    # the trial: `tissu check` recognised a registered calendar by its exact URL only
    url, engine = registered_portland(http_server, tmp_settings)
    http_server.routes["/portland.ics/"] = http_server.routes["/portland.ics"]
    for spelling in (url + "#semaine", url + "/", url.replace("http://", "HTTP://")):
        diagnosis = diagnose(spelling, now=NOW, settings=tmp_settings, engine=engine)
        assert only(diagnosis, "already-registered").message.startswith(
            "cet agenda est déjà inscrit (source « portland »)"), spelling
        assert "duplicate" not in diagnosis.codes(), spelling
    # another query is another feed (a server may filter by it): not recognised as registered
    other = diagnose(url + "?categorie=2", now=NOW, settings=tmp_settings, engine=engine)
    assert "already-registered" not in other.codes()
    assert only(other, "duplicate").examples[0].endswith("déjà publié par la source « portland »")
