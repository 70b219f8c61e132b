"""Resident pages in a real browser: Playwright drives Debian's Chromium (``/usr/bin/chromium``).

axe-core (axe-playwright-python) on every resident page in French and Arabic; a keyboard-only
path to an event and its subscription; right-to-left Arabic with URL and e-mail fields kept
left-to-right; no horizontal scrolling at 320 px and at 200 % zoom; the QR code decodes to the
feed address; the kiosk goes back home after its idle time.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # resident_instance, by path
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="Debian's Chromium is missing (.ci/run installs it: apt-get install -y chromium)",
)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site():
    from resident_instance import (
        NOW,
        SERVICE_ID,
        ThreadServer,
        make_datasette,
        shared_instance,
    )

    from publish.web import resident

    publish_dir = shared_instance()
    service_id = SERVICE_ID
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resident, "clock", lambda: NOW)
        patch.setenv("TISSU_PUBLISH_DIR", str(publish_dir))  # what /exports/ serves
        for name in ("TISSU_KIOSK", "TISSU_PUBLIC_URL", "TISSU_KIOSK_IDLE_SECONDS"):
            patch.delenv(name, raising=False)
        with ThreadServer(make_datasette(publish_dir).app()) as server:
            yield server.base, service_id


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="fr-FR")
    page = context.new_page()
    yield page
    context.close()


def resident_pages(service_id: str) -> list[str]:
    return [
        "/",
        "/?theme=numerique&quartier=Centre&date=2026-12-07",
        "/?borne=1",
        "/?taille=grand",
        "/agenda/evenement/lisbonne--EVENT2",
        "/agenda/evenement/lisbonne--EVENT2?borne=1",
        "/agenda/abonnement?theme=numerique",
        "/agenda/affiche?quartier=Centre",
        "/recherche",
        "/recherche?q=linux",
        "/recherche?q=zzzz",
        "/annuaire",
        "/annuaire/organisation/association-fablab",
        "/annuaire/services",
        f"/annuaire/service/{service_id}",
        "/agenda/evenement/absent",
    ]


def test_axe_finds_no_violation_on_any_resident_page_in_french_and_arabic(site, page):
    from axe_playwright_python.sync_playwright import Axe

    base, service_id = site
    axe = Axe()
    failures = []
    for lang in ("fr", "ar"):
        for path in resident_pages(service_id):
            url = base + path + ("&" if "?" in path else "?") + f"lang={lang}"
            page.goto(url)
            assert page.locator("html").get_attribute("lang") == lang
            results = axe.run(page)
            if results.violations_count:
                failures.append((url, results.generate_report()))
    assert not failures, "\n\n".join(f"{u}\n{r}" for u, r in failures)


def focus_is_visible(page) -> bool:
    return page.evaluate("""() => {
        const el = document.activeElement;
        if (!el || el === document.body) return false;
        const s = getComputedStyle(el);
        const r = el.getBoundingClientRect();
        const outlined = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
        return (outlined || s.boxShadow !== 'none') && r.width > 0 && r.height > 0;
    }""")


def tab_to(page, predicate_js: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        assert focus_is_visible(page), page.evaluate("document.activeElement.outerHTML")
        if page.evaluate(predicate_js):
            return
    raise AssertionError(f"never reached {predicate_js} with Tab")


def test_keyboard_only_path_to_an_event_and_its_subscription(site, page):
    base, _ = site
    page.goto(base + "/")
    page.keyboard.press("Tab")
    skip = page.evaluate("[document.activeElement.className, document.activeElement.textContent]")
    assert skip == ["skip", "Aller au contenu"]
    assert focus_is_visible(page)
    box = page.evaluate("JSON.parse(JSON.stringify(document.activeElement.getBoundingClientRect()))")
    assert box["y"] >= 0  # the skip link comes into view when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "contenu"
    # open the filters, choose the Hoche quartier, submit: all with the keyboard
    tab_to(page, "document.activeElement.tagName === 'SUMMARY'")
    page.keyboard.press("Enter")
    tab_to(page, "document.activeElement.id === 'f-quartier'")
    page.keyboard.type("Hoche")  # typing selects the matching option of a closed select
    assert page.evaluate("document.activeElement.value") == "Hoche"
    tab_to(page, "document.activeElement.type === 'submit'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "quartier=Hoche" in page.url
    assert "1 rendez-vous cette semaine" in page.content()
    tab_to(page, "document.activeElement.textContent === 'MDS-t'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.startswith(base + "/agenda/evenement/lisbonne--EVENT2")
    assert page.locator("h1").inner_text() == "MDS-t"
    tab_to(page, "document.activeElement.textContent.startsWith(\"S'abonner aux rendez-vous\")")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/agenda/abonnement" in page.url
    tab_to(page, "document.activeElement.textContent === \"S'abonner dans mon agenda\"")
    href = page.evaluate("document.activeElement.getAttribute('href')")
    assert href.startswith("webcal://127.0.0.1:") and href.endswith(
        "/exports/ics/theme/seniors-isolement.ics")


def test_arabic_is_right_to_left_with_urls_and_emails_left_to_right(site, page):
    base, service_id = site
    page.goto(base + "/agenda/abonnement?lang=ar")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    field = page.locator("#adresse-https")
    assert field.evaluate("e => getComputedStyle(e).direction") == "ltr"
    assert field.input_value().startswith("http://127.0.0.1:")
    # in RTL the main column's text starts on the right
    heading = page.locator("h1").bounding_box()
    main = page.locator("main").bounding_box()
    assert heading["x"] + heading["width"] > main["x"] + main["width"] - 40
    page.goto(base + f"/annuaire/service/{service_id}?lang=ar")
    email = page.locator("a[href^='mailto:']")
    assert email.inner_text() == "contact@example.org"
    assert email.evaluate("e => getComputedStyle(e).direction") == "ltr"
    website = page.locator("a[href='https://epicerie.example.org/']")
    assert website.evaluate("e => getComputedStyle(e).direction") == "ltr"
    assert "الثلاثاء" in page.locator("table.horaires").inner_text()  # Tuesday, opening hours


def no_horizontal_overflow(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_no_horizontal_scrolling_at_320_px_nor_at_200_percent_zoom(site, browser):
    base, service_id = site
    narrow = browser.new_context(viewport={"width": 320, "height": 640})
    # 200 % zoom of a 1280 px window lays out like 640 CSS px at device scale 2
    zoomed = browser.new_context(viewport={"width": 640, "height": 400}, device_scale_factor=2)
    try:
        for context in (narrow, zoomed):
            page = context.new_page()
            for lang in ("fr", "ar"):
                for path in resident_pages(service_id):
                    page.goto(base + path + ("&" if "?" in path else "?") + f"lang={lang}")
                    assert no_horizontal_overflow(page), (context, path, lang)
            page.goto(base + "/?taille=grand&borne=1")
            assert no_horizontal_overflow(page)
    finally:
        narrow.close()
        zoomed.close()


def test_home_page_weight_in_the_browser_is_under_50_kb(site, page):
    base, _ = site
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(base + "/?lang=ar")
    page.wait_for_load_state("load")
    sizes = {r.url: len(r.body()) for r in responses
             if r.request.resource_type in ("document", "stylesheet", "script")}
    assert any(u.endswith("resident.css") for u in sizes)
    assert sum(sizes.values()) <= 50 * 1024, sizes


def test_subscription_qr_code_decodes_to_the_feed_address(site, page):
    import zxingcpp
    from PIL import Image

    base, _ = site
    page.goto(base + "/agenda/abonnement?quartier=Centre")
    png = page.locator("figure.qr svg").screenshot()
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert code.text == base + "/exports/ics/quartier/centre.ics"
    assert code.text == page.locator("#adresse-https").input_value()


def test_kiosk_goes_back_home_after_its_idle_time(site, browser, monkeypatch):
    base, _ = site
    monkeypatch.setenv("TISSU_KIOSK_IDLE_SECONDS", "6")  # the shortest allowed
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(base + "/agenda/evenement/lisbonne--EVENT2?borne=1&lang=ar")
        assert context.cookies() == []
        page.wait_for_selector("#borne-alerte:not([hidden])", timeout=6000)
        assert page.evaluate("document.activeElement.id") == "borne-rester"
        page.keyboard.press("Enter")  # "I am here": the countdown starts again
        assert page.locator("#borne-alerte").is_hidden()
        page.wait_for_url(base + "/?borne=1", timeout=10000)
        assert page.locator("html").get_attribute("lang") == "fr"  # nothing kept
        assert context.cookies() == []
    finally:
        context.close()


def test_poster_prints_on_a4(site, page, tmp_path: Path):
    base, _ = site
    page.goto(base + "/agenda/affiche?quartier=Centre")
    page.emulate_media(media="print")
    assert page.locator("header.site").is_hidden() and page.locator(".consignes").is_hidden()
    assert page.locator(".affiche h2").inner_text() == "Cette semaine à Centre"
    pdf = page.pdf(prefer_css_page_size=True)
    assert pdf.startswith(b"%PDF")
    [width, height] = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf).groups()
    assert (round(float(width)), round(float(height))) == (595, 842)  # A4 in points


CONTRAST_JS = """() => {
    const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
    const background = el => { for (; el; el = el.parentElement) {
        const c = getComputedStyle(el).backgroundColor;
        if (!c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return c; }
        return 'rgb(255, 255, 255)'; };
    return [...document.querySelectorAll('header.site a')].map(a => {
        const [l1, l2] = [lum(getComputedStyle(a).color), lum(background(a))].sort((x, y) => y - x);
        return [a.textContent, (l1 + 0.05) / (l2 + 0.05)]; });
}"""


def test_header_links_keep_their_contrast_when_they_are_the_current_page(site, page):
    # axe-core left a white-on-white "current page" link unreported (marked incomplete)
    base, _ = site
    for path in ("/", "/annuaire?lang=ar"):
        page.goto(base + path)
        ratios = page.evaluate(CONTRAST_JS)
        assert len(ratios) >= 8
        assert all(ratio >= 4.5 for _, ratio in ratios), ratios


def test_kiosk_touch_targets_are_large(site, browser):
    base, service_id = site
    context = browser.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
    try:
        page = context.new_page()
        for path in ("/?borne=1", "/agenda/evenement/lisbonne--EVENT2?borne=1",
                     f"/annuaire/service/{service_id}?borne=1", "/agenda/abonnement?borne=1"):
            page.goto(base + path)
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            small = page.evaluate("""() => [...document.querySelectorAll(
                    'a, button, select, input, summary')]
                .filter(e => e.offsetParent !== null && !e.classList.contains('skip'))
                .map(e => [e.outerHTML.slice(0, 60), e.getBoundingClientRect().height])
                .filter(([, h]) => h < 44)""")
            assert small == [], (path, small)
    finally:
        context.close()
