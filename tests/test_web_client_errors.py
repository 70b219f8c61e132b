"""Addresses with a bad parameter get a clear answer and the right status, without a traceback.

The trial: ``/?page=-1`` and ``/?page=abc`` showed page 1 as if the address were right;
``/?page=999999999999`` answered 200; ``/tissu-open/events?_sort=nope`` answered 500 with a
traceback in the log (publish/web/resident_paging.py, publish/web/not_found.py).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import sys
from pathlib import Path

import pytest

from publish.web import resident, resident_paging

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import NOW, make_datasette, shared_instance


@pytest.fixture(scope="module")
def ds():
    publish_dir = shared_instance()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resident, "clock", lambda: NOW)
        patch.setenv("TISSU_PUBLISH_DIR", str(publish_dir))
        patch.delenv("TISSU_KIOSK", raising=False)
        patch.delenv("TISSU_PUBLIC_URL", raising=False)
        yield make_datasette(publish_dir)


def get(ds, path):
    return asyncio.run(ds.client.get(path))


def text(response) -> str:
    return html.unescape(response.text)


def heading(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", text(response)).group(1)


@pytest.mark.parametrize("value", ["-1", "abc", "0", "+2", "2.5", " 2", "٣", "9" * 19])
def test_a_page_value_that_is_no_page_number_is_a_400_in_french(ds, value):
    from urllib.parse import quote

    response = get(ds, f"/?page={quote(value)}&theme=alimentation")
    assert response.status_code == 400
    page = text(response)
    assert heading(response) == "Numéro de page invalide"
    shown = value if len(value) <= 20 else value[:20] + "…"
    assert (f"« {shown} » n'est pas un numéro de page : les pages de l'agenda sont numérotées "
            "1, 2, 3…") in page
    # the first page of the same selection
    assert '<a href="/?theme=alimentation">Aller à la première page</a>' in page
    assert '<header class="site">' in page
    assert response.headers["cache-control"] == "no-store"


def test_the_refusal_is_translated(ds):
    english = get(ds, "/?page=abc&lang=en")
    assert english.status_code == 400
    assert heading(english) == "Invalid page number"
    assert "“abc” is not a page number: the calendar's pages are numbered 1, 2, 3…" in text(
        english)
    assert '<a href="/?lang=en">Go to the first page</a>' in text(english)
    arabic = get(ds, "/?page=-1&lang=ar")
    assert arabic.status_code == 400
    assert heading(arabic) == "رقم صفحة غير صالح"
    assert '<html lang="ar" dir="rtl">' in arabic.text


@pytest.mark.parametrize("value", ["", "1", "01"])
def test_page_numbers_still_reach_the_agenda(ds, value):
    response = get(ds, f"/?page={value}")  # 8 sessions this week: one page
    assert response.status_code == 200
    assert "8 rendez-vous cette semaine" in text(response)
    assert "Page 1 :" not in text(response)


def test_requested_page_reads_digits_only():
    assert [resident_paging.requested_page(v) for v in (None, "", "1", "007")] == [1, 1, 1, 7]
    for bad in ("0", "-3", "x", "1e3", "²", "9" * 19):
        with pytest.raises(resident_paging.BadPageNumber):
            resident_paging.requested_page(bad)


def test_a_page_past_the_end_is_a_404_with_its_message(ds):
    response = get(ds, "/?page=999999999999")
    assert "Page 999999999999 : il n'y a qu'une page de rendez-vous pour cette semaine." in text(
        response)
    assert response.status_code == 404


def test_a_bad_sort_column_is_a_400_in_french_without_a_traceback(ds, capfd, caplog):
    with caplog.at_level(logging.INFO, logger="tissu.web"):
        response = get(ds, "/tissu-open/events?_sort=nope&source_id=lisbonne")
    assert response.status_code == 400
    assert heading(response) == "Tri impossible"
    page = text(response)
    assert ("Impossible de trier par « nope » : cette colonne n'existe pas dans cette table ou "
            "ne peut pas servir au tri. Choisissez une colonne dans l'en-tête du tableau.") in page
    assert ('<a href="/tissu-open/events?source_id=lisbonne">Afficher la table sans ce tri</a>'
            in page)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Cannot sort" not in out + err
    assert [r.getMessage() for r in caplog.records] == ["400 GET /tissu-open/events"]


def test_a_bad_sort_in_json_and_both_sorts_at_once(ds):
    response = get(ds, "/tissu-open/events.json?_sort_desc=nope")
    assert response.status_code == 400
    body = json.loads(response.text)
    assert body == {"ok": False, "status": 400, "title": "Tri impossible",
                    "error": "Impossible de trier par « nope » : cette colonne n'existe pas dans "
                             "cette table ou ne peut pas servir au tri. Choisissez une colonne "
                             "dans l'en-tête du tableau."}
    both = get(ds, "/tissu-open/events?_sort=title&_sort_desc=title&lang=en")
    assert both.status_code == 400
    assert heading(both) == "Cannot sort"
    assert ("One sort order at a time: _sort (ascending) or _sort_desc (descending), not both."
            in text(both))


def test_a_bad_sort_in_csv_is_plain_text(ds):
    # the trial: a CSV request got the HTML page
    response = get(ds, "/tissu-open/events.csv?_sort_desc=nope")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == ("Tri impossible : Impossible de trier par « nope » : cette colonne "
                             "n'existe pas dans cette table ou ne peut pas servir au tri. "
                             "Choisissez une colonne dans l'en-tête du tableau.\n")


def test_datasette_pages_still_work(ds):
    sorted_page = get(ds, "/tissu-open/events?_sort=title")
    assert sorted_page.status_code == 200
    assert "sorted by title" in sorted_page.text
    rows = json.loads(get(ds, "/tissu-open/events.json?_sort_desc=title&_shape=array").text)
    titles = [row["title"] for row in rows]
    assert titles and titles == sorted(titles, reverse=True)
    assert get(ds, "/tissu-open/nexiste").status_code == 404
