"""Unknown addresses: Tissu's own 404 page (or Datasette's JSON), and no traceback in the log.

A fresh-user trial found that every 404 (``/wp-login.db``, ``/foo``, ``/tissu-open/nexiste``)
printed 165–184 lines of traceback (Datasette's default ``handle_exception`` prints every
exception with ``rich``) and showed Datasette's English « Error 404 » page.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import sys
from pathlib import Path

import pytest

from publish.web import not_found, resident

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import NOW, make_datasette, shared_instance

UNKNOWN = ["/wp-login.db", "/foo", "/tissu-open/nexiste", "/nexiste/pas", "/tissu-open/events/x"]


@pytest.fixture(scope="module")
def datasette():
    publish_dir = shared_instance()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resident, "clock", lambda: NOW)
        patch.delenv("TISSU_KIOSK", raising=False)
        yield make_datasette(publish_dir)


def get(ds, path, cookies=None):
    return asyncio.run(ds.client.get(path, cookies=cookies or {}))


@pytest.mark.parametrize("path", UNKNOWN)
def test_an_unknown_address_writes_no_traceback(datasette, path, capfd):
    response = get(datasette, path)
    assert response.status_code == 404
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "KeyError" not in out + err
    assert "DatasetteError" not in out + err


def test_another_error_still_goes_to_datasette_with_its_traceback(datasette, capfd):
    # a page size that is no number: Datasette's own 400 (BadRequest), neither a 404 nor a
    # refused sort (tests/test_web_client_errors.py), left alone
    response = get(datasette, "/tissu-open/events?_size=abc")
    assert response.status_code == 400
    assert "_size must be a positive integer" in response.text
    out, err = capfd.readouterr()
    assert "Traceback" in out + err
    assert not not_found.is_not_found(RuntimeError("boom"))
    assert not not_found.is_bad_sort(RuntimeError("Cannot sort table by x"))


@pytest.mark.parametrize("path", UNKNOWN)
def test_an_unknown_address_shows_tissus_french_404_with_a_link_home(datasette, path):
    response = get(datasette, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = html.unescape(response.text)
    assert '<html lang="fr" dir="ltr">' in page
    assert "<h1>Page introuvable</h1>" in page
    assert "Cette adresse ne correspond à aucune page de Tissu." in page
    assert '<a href="/">Retour à l\'agenda</a>' in page
    assert "Error 404" not in page and "Database not found" not in page


def test_the_404_page_follows_the_language_of_the_query_then_the_cookie(datasette):
    english = html.unescape(get(datasette, "/foo?lang=en").text)
    assert '<html lang="en" dir="ltr">' in english and "<h1>Page not found</h1>" in english
    assert "This address matches no Tissu page." in english
    assert '<a href="/?lang=en">Back to the events</a>' in english
    arabic = get(datasette, "/tissu-open/nexiste", cookies={"tissu_lang": "ar"})
    assert arabic.status_code == 404
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert "هذا العنوان لا يطابق أي صفحة في Tissu." in html.unescape(arabic.text)


@pytest.mark.parametrize("path,error", [("/foo.json", "Database not found"),
                                        ("/tissu-open/nexiste.json", "Table not found")])
def test_a_json_404_stays_json(datasette, path, error, capfd):
    response = get(datasette, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(response.text) == {"ok": False, "error": error, "status": 404,
                                         "title": None}
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_known_pages_are_unchanged(datasette):
    assert get(datasette, "/").status_code == 200
    assert get(datasette, "/tissu-open/events.json?_size=1").status_code == 200
    # Datasette's own redirect of a trailing slash still happens before any 404
    assert get(datasette, "/tissu-open/").status_code == 302


def test_a_failing_404_page_falls_back_to_datasettes_answer_and_is_logged(datasette, monkeypatch,
                                                                          caplog):
    def broken(page):
        raise RuntimeError("template manquant")

    monkeypatch.setattr(resident, "unknown_address", broken)
    with caplog.at_level(logging.ERROR, logger="tissu.web"):
        response = get(datasette, "/foo")
    assert response.status_code == 404
    assert "Database not found" in response.text  # Datasette's own page
    assert any(r.exc_info and "template manquant" in str(r.exc_info[1]) for r in caplog.records)
