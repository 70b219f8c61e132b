"""/inscription and /etat-des-sources wear the resident layout: the same header, menu, language
and large-print switches and footer as the agenda's pages (publish/web/pages.py ``render``).

The trial: both pages had only a line of language links and a link home, no menu.
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
from pathlib import Path

import pytest

from publish.web import resident

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from resident_instance import NOW, make_datasette, shared_instance


@pytest.fixture
def ds(tmp_settings, monkeypatch):
    """The published samples (for the agenda's pages) and an empty working store."""
    publish_dir = shared_instance()
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.setenv("TISSU_PUBLISH_DIR", str(publish_dir))
    monkeypatch.delenv("TISSU_KIOSK", raising=False)
    monkeypatch.setattr(resident, "clock", lambda: NOW)
    return make_datasette(publish_dir)


def get(ds, path, cookies=None):
    return asyncio.run(ds.client.get(path, cookies=cookies or {}))


def header(page: str) -> str:
    """The ``<header class="site">`` element, links' query strings as written."""
    return re.search(r'<header class="site">.*?</header>', page, re.DOTALL).group(0)


def menu(page: str) -> list[str]:
    nav = re.search(r"<nav aria-label=[^>]*>(.*?)</nav>", header(page), re.DOTALL).group(1)
    return re.findall(r'<a href="([^"]+)"', nav)


AGENDA_MENU = ["/", "/recherche", "/annuaire", "/annuaire/services", "/agenda/abonnement"]


@pytest.mark.parametrize("path", ["/inscription", "/etat-des-sources"])
def test_the_pages_have_the_resident_header_and_menu(ds, path):
    response = get(ds, path)
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert menu(page) == AGENDA_MENU
    assert '<a href="/">Tissu</a> <span>l\'agenda solidaire de Pantin</span>' in header(page)
    switches = re.findall(r'<li><a href="([^"]+)" lang="(\w+)"', header(page))
    assert switches == [(f"{path}?lang=fr", "fr"), (f"{path}?lang=en", "en"),
                        (f"{path}?lang=ar", "ar")]
    assert f'<a href="{path}?taille=grand" class="taille">Grands caractères</a>' in page
    assert '<footer class="site">' in page
    assert '/-/static-plugins/tissu/resident/resident.css' in page
    # the same header as the agenda's own pages, piece for piece (but the current page)
    organisations = html.unescape(get(ds, "/annuaire").text)
    assert menu(organisations) == AGENDA_MENU
    assert header(page).replace(path, "/annuaire").replace(
        '"/annuaire"', '"/annuaire" aria-current="page"', 1) == header(organisations)


@pytest.mark.parametrize("path", ["/inscription", "/etat-des-sources"])
def test_the_header_follows_the_language_and_keeps_it_in_its_links(ds, path):
    response = get(ds, f"{path}?lang=ar")
    page = html.unescape(response.text)
    assert '<html lang="ar" dir="rtl">' in page
    assert menu(page)[0] == "/?lang=ar"
    assert "lang=ar" in response.headers.get("set-cookie", "")  # remembered, as on the agenda
    english = html.unescape(get(ds, f"{path}?lang=en&taille=grand").text)
    assert '<html lang="en" dir="ltr" class="grand">' in english
    assert menu(english)[1] == "/recherche?lang=en&taille=grand"


def test_a_posted_language_wins_in_the_header(ds):
    # the form's hidden « lang » field (no ?lang=): the header speaks the form's language
    from tests.test_registration import post_form

    response = post_form(ds, {"lang": "en", "action": "check", "url": "ftp://example.org/x"})
    page = html.unescape(response.text)
    assert '<html lang="en" dir="ltr">' in page
    assert menu(page)[0] == "/?lang=en"


def test_moderation_keeps_its_plain_back_office_layout(ds, monkeypatch):
    monkeypatch.delenv("TISSU_MODERATION_SECRET", raising=False)
    page = get(ds, "/moderation").text
    assert "Modération désactivée" in page and '<header class="site">' not in page
