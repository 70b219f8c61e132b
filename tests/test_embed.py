"""The embeddable agenda: the iframe page without JavaScript, the script's data, the size budget."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from publish.web.embed import STATIC, french_when
from tests.conftest import NOW, ROOT, SAMPLES
from tests.test_publish import make_site, stop


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embed")
    site = make_site(tmp, {"lisbon.ics": (
        (SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes(),
        {"quartier": "Quatre-Chemins", "themes": ["seniors-isolement"]})})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
        patch.setenv("TISSU_HOST_DELAY", "0")
        try:
            site.harvest(NOW)
            out = site.publish(NOW)
        finally:
            stop(site)
    return out


def _get(out, path: str, monkeypatch):
    from datasette.app import Datasette

    monkeypatch.setattr("publish.web.embed.clock", lambda: NOW)

    async def run():
        ds = Datasette([str(out.database)], immutables=[])
        return await ds.client.get(path)

    return asyncio.run(run())


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_french_when() -> None:
    assert french_when("2026-11-30T12:30:00+01:00", "2026-11-30T14:00:00+01:00", False) == \
        "lundi 30 novembre, 12 h 30 – 14 h 00"
    assert french_when("2026-12-25", "2026-12-26", True) == "vendredi 25 décembre, toute la journée"


def test_iframe_page_renders_without_javascript(published, monkeypatch) -> None:
    response = _get(published, "/embed?quartier=Quatre-Chemins&limite=3", monkeypatch)
    assert response.status_code == 200
    assert "frame-ancestors *" in response.headers["content-security-policy"]
    page = _Page()
    page.feed(response.text)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags  # works with JavaScript off
    assert ("html", {"lang": "fr", "dir": "ltr"}) in page.tags
    # no third-party request: no external stylesheet, script, image or font
    for tag, attrs in page.tags:
        if tag in {"link", "img", "script", "iframe"}:
            assert not str(attrs.get("href") or attrs.get("src") or "").startswith("http"), tag
    # accessible form: each select has its label
    labels = {a["for"] for t, a in page.tags if t == "label"}
    selects = {a["id"] for t, a in page.tags if t == "select"}
    assert selects == labels == {"tissu-theme", "tissu-quartier"}
    times = [a["datetime"] for t, a in page.tags if t == "time"]
    assert times == ["2026-11-30T12:30:00+01:00", "2026-12-07T12:30:00+01:00",
                     "2026-12-14T12:30:00+01:00"]
    text = " ".join(page.text)
    assert "lundi 30 novembre, 12 h 30 – 14 h 00" in text and "MDS-t" in text
    empty = _get(published, "/embed?quartier=Ailleurs", monkeypatch)
    assert "Aucune séance à venir" in empty.text


def test_script_data_endpoint_and_budget(published, monkeypatch) -> None:
    data = _get(published, "/embed/agenda.json?theme=seniors-isolement&limite=2", monkeypatch)
    assert data.status_code == 200
    assert data.headers["access-control-allow-origin"] == "*"
    body = data.json()
    assert [s["when"] for s in body["sessions"]] == ["lundi 30 novembre, 12 h 30 – 14 h 00",
                                                    "lundi 7 décembre, 12 h 30 – 14 h 00"]
    assert body["page"].startswith("/embed?")
    other = _get(published, "/embed/agenda.json?theme=alimentation", monkeypatch).json()
    assert other["sessions"] == []
    script = _get(published, "/embed/agenda.js", monkeypatch)
    assert script.status_code == 200 and script.headers["etag"]
    assert "/embed/agenda.json" in script.text
    # the script talks only to the server it came from
    assert not re.search(r"https?://", script.text.split("*/", 1)[1])
    size = sum(p.stat().st_size for p in STATIC.glob("*.*") if p.suffix in {".js", ".css"})
    assert size < 20_000


@pytest.mark.skipif(shutil.which("node") is None, reason="node absent")
def test_script_renders_the_data_in_node(published, monkeypatch, tmp_path) -> None:
    """Run agenda.js in Node with a minimal DOM and the real JSON of the data endpoint."""
    data = _get(published, "/embed/agenda.json?quartier=Quatre-Chemins&limite=2",
                monkeypatch).text
    harness = ROOT / "tests" / "fixtures" / "embed_dom.js"
    result = subprocess.run(["node", str(harness), str(STATIC / "agenda.js")], input=data,
                            capture_output=True, text=True, timeout=60, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == ("GET https://tissu.example/embed/agenda.json"
                        "?quartier=Quatre-Chemins&limite=2")
    assert lines[1:] == [
        "h3: MDS-t",
        "time 2026-11-30T12:30:00+01:00: lundi 30 novembre, 12 h 30 – 14 h 00",
        "h3: MDS-t",
        "time 2026-12-07T12:30:00+01:00: lundi 7 décembre, 12 h 30 – 14 h 00",
    ]


def test_embed_follows_lang_like_the_resident_pages(published, monkeypatch) -> None:
    """``/embed?lang=en`` is English, ``lang=ar`` Arabic right to left, French otherwise."""
    french = _Page()
    french.feed(_get(published, "/embed?quartier=Quatre-Chemins&limite=1", monkeypatch).text)
    assert ("html", {"lang": "fr", "dir": "ltr"}) in french.tags
    assert "Tous les thèmes" in french.text

    response = _get(published, "/embed?quartier=Quatre-Chemins&limite=1&lang=en", monkeypatch)
    assert response.status_code == 200
    english = _Page()
    english.feed(response.text)
    assert ("html", {"lang": "en", "dir": "ltr"}) in english.tags
    text = " ".join(english.text)
    assert "Solidarity agenda — Quatre-Chemins" in text
    assert "All themes" in text and "Tous les thèmes" not in text
    assert "Monday 30 November, 12:30\u202fPM – 2:00\u202fPM" in text
    # the language survives the filter form, and the theme list is in English
    assert ("input", {"type": "hidden", "name": "lang", "value": "en"}) in english.tags
    assert "Older people and loneliness" in english.text
    assert "set-cookie" not in response.headers

    arabic = _Page()
    arabic.feed(_get(published, "/embed?quartier=Quatre-Chemins&limite=1&lang=ar",
                     monkeypatch).text)
    assert ("html", {"lang": "ar", "dir": "rtl"}) in arabic.tags
    assert "تقويم التضامن — Quatre-Chemins" in " ".join(arabic.text)
    assert "الاثنين 30 نوفمبر، 12:30 م – 2:00 م" in arabic.text

    unknown = _Page()
    unknown.feed(_get(published, "/embed?lang=xx&limite=1", monkeypatch).text)
    assert ("html", {"lang": "fr", "dir": "ltr"}) in unknown.tags


def test_embed_json_when_labels_follow_lang(published, monkeypatch) -> None:
    body = _get(published, "/embed/agenda.json?theme=seniors-isolement&limite=1&lang=en",
                monkeypatch).json()
    assert [s["when"] for s in body["sessions"]] == ["Monday 30 November, 12:30\u202fPM – 2:00\u202fPM"]
    assert body["filters"]["lang"] == "en" and "lang=en" in body["page"]


def test_sessions_read_through_the_index_range_are_the_same(published) -> None:
    """With the database facts (a bounded range of the start index) or without, same answer."""
    import sqlite3

    from publish.web import resident_data
    from publish.web.embed import select_sessions

    connection = sqlite3.connect(published.database)
    facts = resident_data.database_facts(connection, NOW)
    assert facts.longest_days is not None
    for theme, quartier in ((None, None), ("seniors-isolement", None), (None, "Quatre-Chemins"),
                            (None, "Ailleurs")):
        for limit in (1, 5, 50):
            bounded = select_sessions(connection, NOW, theme, quartier, limit, "fr", facts)
            plain = select_sessions(connection, NOW, theme, quartier, limit, "fr")
            assert bounded == plain
    everything = select_sessions(connection, NOW, None, None, 50, "en", facts)["sessions"]
    assert everything and all(s["end_utc"] >= "2026-11-29T12:00:00Z" for s in everything)
