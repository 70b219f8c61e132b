"""The feed doctor at its limits: slow and big answers, empty files, webcal:// addresses, and
the advice of a reading stopped by the sandbox (a fresh-user trial's findings).

Servers run on 127.0.0.1 only; time is fixed at NOW.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

from typer.testing import CliRunner

from connectors import doctor
from connectors.doctor import _heavy_fix, diagnose, diagnose_content
from connectors.sandbox import Limits
from tests.conftest import NOW, SAMPLES, Route
from tests.test_http import head, raw_server


def only(diagnosis, code):
    found = [p for p in diagnosis.problems if p.code == code]
    assert len(found) == 1, diagnosis.to_text()
    return found[0]


def one_line_a_second(conn: socket.socket) -> None:
    """A calendar sent one line per second (ends after 12 s, so a run without a fix ends)."""
    conn.sendall(head(Content_Type="text/calendar"))
    conn.sendall(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    for i in range(12):
        time.sleep(1)
        conn.sendall(f"X-LINE-{i}:{'x' * 60}\r\n".encode())


def plain_calendar(events: int) -> bytes:
    """``events`` one-hour events without RRULE (10 000 of them are ~1 MB)."""
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:p{i}\r\nDTSTAMP:20261201T000000Z\r\n"
        f"DTSTART:20261210T{i % 20:02d}0000Z\r\nDTEND:20261210T{i % 20 + 1:02d}0000Z\r\n"
        f"SUMMARY:Permanence {i}\r\nEND:VEVENT\r\n" for i in range(events))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{body}END:VCALENDAR\r\n".encode()


def test_a_slow_server_is_cut_at_the_checks_time_budget(tmp_settings, monkeypatch):
    # the trial: one line per second held « Vérifier » and `tissu check` for 120 s (the
    # harvest's TISSU_FETCH_DEADLINE), whatever TISSU_CHECK_TIME_LIMIT said
    monkeypatch.setenv("TISSU_CHECK_TIME_LIMIT", "2")
    with raw_server(one_line_a_second) as url:
        started = time.monotonic()
        diagnosis = diagnose(url, now=NOW, settings=tmp_settings)
        elapsed = time.monotonic() - started
    assert elapsed < 5
    problem = only(diagnosis, "too-slow")
    assert problem.message.startswith("le serveur envoie ce fichier trop lentement : lecture "
                                      "arrêtée au bout de 2 s (téléchargement trop lent : "
                                      "arrêté après ")
    assert "public" not in problem.fix and "réessayez plus tard" in problem.fix
    assert not diagnosis.usable


def test_two_slow_checks_free_their_places_within_the_time_budget(http_server, tmp_settings,
                                                                  monkeypatch):
    # the trial: two such checks running, a third visitor got « trop de vérifications »
    monkeypatch.setattr(doctor, "_RUNNING", threading.BoundedSemaphore(2))
    monkeypatch.setenv("TISSU_CHECK_TIME_LIMIT", "1")
    http_server.routes["/ok.ics"] = Route((SAMPLES / "ical_google.ics").read_bytes())
    with raw_server(one_line_a_second) as slow:
        hostile = [threading.Thread(target=diagnose, args=(slow,),
                                    kwargs={"now": NOW, "settings": tmp_settings})
                   for _ in range(2)]
        for thread in hostile:
            thread.start()
        time.sleep(0.3)  # both places taken
        third = diagnose(http_server.url("/ok.ics"), now=NOW, settings=tmp_settings)
        for thread in hostile:
            thread.join(15)
    assert "busy" not in third.codes(), third.to_text()
    assert third.usable and third.events == 41


def test_a_too_big_answer_is_told_in_human_units_with_fitting_advice(tmp_settings):
    settings = dataclasses.replace(tmp_settings, max_body_bytes=2 * 2**20)
    with raw_server(lambda conn: conn.sendall(head(Content_Length=str(3 * 2**20)))) as url:
        diagnosis = diagnose(url, now=NOW, settings=settings)
    problem = only(diagnosis, "too-large")
    assert problem.message == ("impossible de lire cette adresse : réponse trop volumineuse "
                               "(3 Mo annoncés, limite 2 Mo)")
    assert problem.fix.startswith("Tissu lit des agendas de 2 Mo au plus. Retirez les anciens "
                                  "événements")
    assert "public" not in problem.fix


def test_an_empty_file_is_said_to_be_empty(http_server, tmp_settings):
    http_server.routes["/empty.ics"] = Route(b"", headers={"Content-Type": "text/calendar"})
    diagnosis = diagnose(http_server.url("/empty.ics"), now=NOW, settings=tmp_settings)
    assert diagnosis.codes() == ["empty-file"]
    assert diagnosis.problems[0].message == "le fichier est vide"
    assert not diagnosis.usable


def test_an_end_before_the_start_is_not_also_a_missing_end(http_server, tmp_settings):
    body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            "BEGIN:VEVENT\r\nUID:s2\r\nDTSTAMP:20261201T000000Z\r\n"
            "DTSTART:20261210T100000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:À l'envers\r\n"
            "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:s3\r\nDTSTAMP:20261201T000000Z\r\n"
            "DTSTART:20261211T100000Z\r\nSUMMARY:Sans fin\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()
    http_server.routes["/back.ics"] = Route(body, headers={"Content-Type": "text/calendar"})
    diagnosis = diagnose(http_server.url("/back.ics"), now=NOW, settings=tmp_settings)
    assert only(diagnosis, "end-before-start").examples[0].startswith("s2 : DTEND")
    no_end = only(diagnosis, "no-end")  # only the event that really has no end
    assert no_end.examples == ["« Sans fin »"]
    assert no_end.message.startswith("1 événement sur 2 n'a pas d'heure de fin")


def test_webcal_addresses_are_read_as_https(tmp_settings):
    # the doctor's own advice says webcal:// is https://: it refused it. The local test
    # server speaks plain HTTP, so the https:// fetch fails; the address was read, not refused
    with raw_server(lambda conn: conn.sendall(head("400 Bad Request"))) as url:
        port = url.split(":")[2].split("/")[0]
        for scheme in ("webcal", "WEBCALS"):
            diagnosis = diagnose(f"{scheme}://127.0.0.1:{port}/feed.ics", now=NOW,
                                 settings=tmp_settings)
            assert diagnosis.url == f"https://127.0.0.1:{port}/feed.ics"
            assert diagnosis.notes == [
                "adresse webcal:// lue comme https:// (le même fichier, par le web)"]
            assert "doit commencer par http" not in diagnosis.to_text()
            assert "Remarque : adresse webcal:// lue comme https://" in diagnosis.to_text()


def test_tissu_check_reads_a_webcal_address(tmp_settings, monkeypatch):
    from tissu.cli import app

    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    with raw_server(lambda conn: conn.sendall(head("400 Bad Request"))) as url:
        port = url.split(":")[2].split("/")[0]
        result = CliRunner().invoke(app, ["check", f"webcal://127.0.0.1:{port}/feed.ics",
                                          "--now", NOW.isoformat()])
    assert f"Adresse vérifiée : https://127.0.0.1:{port}/feed.ics" in result.output
    assert "Remarque : adresse webcal:// lue comme https://" in result.output


def test_a_stopped_reading_is_advised_from_what_the_file_holds(tmp_settings):
    # the trial: 10 000 plain events (no RRULE) were blamed on « une répétition sans fin »
    content = plain_calendar(3000)
    assert b"RRULE" not in content
    diagnosis = diagnose_content(content, "https://example.org/big.ics", now=NOW,
                                 settings=tmp_settings, limits=Limits(seconds=0.3))
    problem = only(diagnosis, "time-limit")
    assert problem.fix.startswith("Ce calendrier contient 3000 événements, sans répétition : "
                                  "c'est plus que Tissu ne peut lire d'un coup. Retirez les "
                                  "anciens événements")
    assert "répétition sans fin" not in problem.fix
    # a calendar with RRULE keeps the advice about endless series
    assert "répétition sans fin" in _heavy_fix("ical", content.replace(
        b"END:VEVENT", b"RRULE:FREQ=HOURLY\r\nEND:VEVENT", 1))
    small = _heavy_fix("ical", plain_calendar(10))
    assert small.startswith("Ce calendrier ne contient pas de répétition : retirez les "
                            "anciens événements de votre agenda")
    assert "répétition sans fin" not in _heavy_fix("rss", b"<rss>")
