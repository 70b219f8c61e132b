"""The registration flow end to end with Datasette's test client: form (fr/en/ar), CSRF, the
"Vérifier" step, honeypot, rate limit, moderation, harvest, publication, contact kept private."""

from __future__ import annotations

import asyncio
import html
import re
import sqlite3

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from schemas.models import Registration
from tests.conftest import FIXTURES, NOW, SAMPLES, Route
from tissu import registrations
from tissu.settings import get_settings

# a real Google Calendar export with a weekly meeting that still recurs (data/samples)
LISBON = SAMPLES / "issue_48_daylight_aware_repeats.ics"

FORM = {
    "organisation_name": "Épicerie solidaire des Quatre-Chemins",
    "organisation_type": "association",
    "website": "https://epicerie.example.org/",
    "contact_email": "benevoles@epicerie.example.org",
    "licence_choice": "licence-ouverte",
    "licence_consent": "on",
    "themes": ["alimentation"],
    "quartier": "Quatre-Chemins",
    "lang": "fr",
}


@pytest.fixture
def site(tmp_settings, monkeypatch, http_server):
    """A Datasette with our plugin, whose working store is a temporary database."""
    from datasette.app import Datasette

    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.setenv("TISSU_PUBLISH_DIR", str(tmp_settings.publish_dir))
    monkeypatch.setenv("TISSU_REGISTRATION_RATE_LIMIT", "2")
    http_server.routes["/agenda.ics"] = Route(LISBON.read_bytes(),
                                              headers={"Content-Type": "text/calendar"})
    http_server.routes["/page.html"] = Route(
        (FIXTURES / "html" / "cook_landbank.html").read_bytes(),
        headers={"Content-Type": "text/html"})
    from publish.web import registration

    registration._LIMITERS.clear()
    return Datasette(memory=True)


def body(response):
    """The page text with HTML entities decoded."""
    return html.unescape(response.text)


def call(ds, method, path, **kwargs):
    async def go():
        return await getattr(ds.client, method)(path, **kwargs)

    return asyncio.run(go())


def post_form(ds, data, path="/inscription"):
    """GET the form for a CSRF token and cookie, then POST ``data`` with them."""
    page = call(ds, "get", path)
    token = html.unescape(re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1))
    return call(ds, "post", path, data={**data, "csrftoken": token},
                cookies={"ds_csrftoken": page.cookies["ds_csrftoken"]})


def registrations_in(settings):
    from schemas.store import make_engine

    with Session(make_engine(settings.database_url)) as session:
        return list(session.exec(select(Registration)))


def test_form_in_french_english_and_arabic(site):
    french = call(site, "get", "/inscription")
    assert french.status_code == 200
    assert '<html lang="fr" dir="ltr">' in body(french)
    assert "Inscrire l'agenda de votre organisation" in body(french)
    assert "Privé : jamais publié" in body(french)
    assert 'name="commentaire"' in body(french)  # the honeypot is in the page
    assert "Alimentation" in body(french) and "Quatre-Chemins" in body(french)
    english = call(site, "get", "/inscription?lang=en")
    assert "Register your organisation's calendar" in body(english)
    arabic = call(site, "get", "/inscription?lang=ar")
    assert '<html lang="ar" dir="rtl">' in body(arabic)
    assert "سجّلوا رزنامة جهتكم" in body(arabic)


def test_post_without_the_csrf_token_is_refused(site, http_server, tmp_settings):
    # asgi-csrf protects requests that carry cookies (a forged cross-site POST would)
    page = call(site, "get", "/inscription")
    cookies = {"ds_csrftoken": page.cookies["ds_csrftoken"]}
    data = {**FORM, "url": http_server.url("/agenda.ics"), "action": "submit"}
    missing = call(site, "post", "/inscription", data=data, cookies=cookies)
    assert missing.status_code == 403
    forged = call(site, "post", "/inscription", data={**data, "csrftoken": "forged"},
                  cookies=cookies)
    assert forged.status_code == 403
    assert registrations_in(tmp_settings) == []


def test_check_step_shows_what_will_be_published(site, http_server):
    response = post_form(site, {**FORM, "url": http_server.url("/agenda.ics"),
                                "action": "check"})
    assert response.status_code == 200
    assert "calendrier iCalendar (.ics)" in body(response)
    assert "Les prochaines séances, telles qu'elles seront publiées" in body(response)
    assert "Aucun problème trouvé" in body(response)
    # the form keeps what was typed
    assert 'value="benevoles@epicerie.example.org"' in body(response)


def test_check_step_explains_a_web_page_in_the_chosen_language(site, http_server):
    response = post_form(site, {**FORM, "lang": "ar", "url": http_server.url("/page.html"),
                                "action": "check"}, path="/inscription?lang=ar")
    assert response.status_code == 200
    assert 'dir="rtl"' in body(response) and "تشخيص رزنامتكم" in body(response)
    assert 'data-code="web-page"' in body(response)
    assert "cette adresse est une page web" in body(response)


def test_registration_end_to_end_through_moderation_to_publication(site, http_server,
                                                                   tmp_settings):
    from datasette.app import Datasette

    from publish.run import publish
    from schemas.store import make_engine
    from tissu import registrations
    from tissu.pipeline import run_source

    response = post_form(site, {**FORM, "url": http_server.url("/agenda.ics"),
                                "action": "submit"})
    assert response.status_code == 200, response.text
    assert "Merci, c'est reçu !" in body(response)
    (registration,) = registrations_in(tmp_settings)
    assert registration.status == "pending" and registration.format == "ical"
    assert registration.contact_email == "benevoles@epicerie.example.org"
    assert registration.themes == '["alimentation"]' and registration.language == "fr"
    assert "127.0.0.1" not in registration.client_hash and len(registration.client_hash) == 64

    engine = make_engine(tmp_settings.database_url)
    decision = registrations.approve(engine, registration.id, now=NOW, settings=tmp_settings)
    summary = run_source(engine, decision.source.id, tmp_settings, NOW)
    assert (summary.status, summary.events) == ("ok", 1)
    out = publish(engine, tmp_settings.publish_dir, NOW)
    assert b"benevoles@epicerie.example.org" not in out.database.read_bytes()

    async def published():
        ds = Datasette([str(out.database)], immutables=[])
        return await ds.client.get(
            f"/tissu-open/sources.json?_shape=array&id={decision.source.id}")

    (row,) = asyncio.run(published()).json()
    assert row["publisher_name"] == "Épicerie solidaire des Quatre-Chemins"
    assert row["licence"] == "Licence Ouverte 2.0"
    assert "contact_email" not in row
    connection = sqlite3.connect(out.database)
    assert connection.execute("SELECT count(*) FROM events WHERE source_id = ? AND quartier = ?",
                              (decision.source.id, "Quatre-Chemins")).fetchone() == (1,)
    connection.close()


def test_honeypot_pretends_success_and_stores_nothing(site, http_server, tmp_settings):
    response = post_form(site, {**FORM, "url": http_server.url("/agenda.ics"),
                                "action": "submit", "commentaire": "Buy cheap pills"})
    assert response.status_code == 200
    assert "Merci" in body(response)
    assert registrations_in(tmp_settings) == []


def test_per_ip_rate_limit(site, http_server, tmp_settings):
    for number in range(2):
        http_server.routes[f"/a{number}.ics"] = Route(LISBON.read_bytes())
        response = post_form(site, {**FORM, "url": http_server.url(f"/a{number}.ics"),
                                    "action": "submit"})
        assert response.status_code == 200, response.text
    http_server.routes["/a2.ics"] = Route(LISBON.read_bytes())
    response = post_form(site, {**FORM, "url": http_server.url("/a2.ics"), "action": "submit"})
    assert response.status_code == 429
    assert "Trop d'envois depuis cette connexion" in body(response)
    assert len(registrations_in(tmp_settings)) == 2


def test_invalid_form_names_each_field(site):
    response = post_form(site, {"lang": "en", "organisation_name": "", "url": "ftp://example.org/x",
                                "contact_email": "nope", "action": "submit"},
                         path="/inscription?lang=en")
    assert response.status_code == 400
    assert "The form has errors" in body(response)
    assert 'id="contact_email-error">Invalid e-mail address.' in body(response)
    assert 'id="url-error">The address must start with http:// or https://.' in body(response)
    assert 'id="licence_consent-error">Tick this box to continue.' in body(response)
    assert 'aria-invalid="true"' in body(response)


def test_web_page_cannot_be_submitted(site, http_server, tmp_settings):
    response = post_form(site, {**FORM, "url": http_server.url("/page.html"),
                                "action": "submit"})
    assert response.status_code == 422
    assert "ne peut pas être inscrite telle quelle" in body(response)
    assert registrations_in(tmp_settings) == []


def test_names_lose_their_markup():
    # the fresh-user trial registered « Asso <b>test</b> »: the tags stayed in the name, in
    # feeds.json and in the source id (asso-b-test-b)
    from tissu.registrations import RegistrationForm

    common = {"organisation_type": "association", "contact_email": "contact@asso.fr",
              "url": "https://asso.example/agenda.ics", "licence_choice": "licence-ouverte",
              "licence_consent": True}
    form = RegistrationForm(organisation_name="Asso <b>test</b>", feed_name="<i></i>",
                            quartier="Quatre-<script>x</script>Chemins", **common)
    assert (form.organisation_name, form.feed_name, form.quartier) == (
        "Asso test", None, "Quatre-Chemins")
    with pytest.raises(ValidationError):
        RegistrationForm(organisation_name="<b></b>", **common)
    # tags written as entities (the second trial) are not decoded back into tags
    encoded = RegistrationForm(
        organisation_name="Asso &lt;script&gt;alert(1)&lt;/script&gt; &#60;img src=x&#62;",
        **common)
    assert encoded.organisation_name == "Asso"


# --- limits on the doctor's checks (tissu.registrations.CheckLimiter) ------------------------
def test_checks_are_limited_per_client_tighter_than_before_but_not_below_registrations(
        tmp_settings):
    from tissu.registrations import CheckLimiter

    limiter = CheckLimiter.from_settings(tmp_settings)
    # 5 registrations per hour → 10 checks per hour (the web page allowed 20)
    assert (limiter.limit, limiter.window) == (10, 3600)
    assert tmp_settings.registration_rate_limit <= limiter.limit < 20
    now = 1000.0
    for number in range(10):
        assert limiter.acquire("client-a", now=now) is None, number
        limiter.release("client-a")
        now += 61  # past the one-minute burst window
    assert limiter.acquire("client-a", now=now) == "rate"
    assert limiter.acquire("client-b", now=now) is None  # another client is not concerned
    # an hour after the first check, it counts no more
    assert limiter.acquire("client-a", now=1000.0 + 3600.5) is None


def test_a_client_gets_three_checks_a_minute_and_one_at_a_time():
    from tissu.registrations import CheckLimiter

    limiter = CheckLimiter(10, 3600)
    assert limiter.acquire("ip", now=0.0) is None
    assert limiter.acquire("ip", now=1.0) == "running"  # the first one is not over
    limiter.release("ip")
    for moment in (2.0, 3.0):
        assert limiter.acquire("ip", now=moment) is None
        limiter.release("ip")
    assert limiter.acquire("ip", now=4.0) == "burst"
    assert limiter.acquire("ip", now=60.5) is None  # the first left the minute


def test_the_check_limit_follows_the_settings_and_idle_clients_are_forgotten(tmp_settings,
                                                                            monkeypatch):
    from dataclasses import replace

    from tissu.registrations import CheckLimiter

    assert CheckLimiter.from_settings(replace(tmp_settings, registration_rate_limit=2)).limit == 4
    monkeypatch.setenv("TISSU_CHECK_RATE_LIMIT", "7")
    assert CheckLimiter.from_settings(get_settings()).limit == 7
    monkeypatch.setenv("TISSU_CHECK_RATE_LIMIT", "sept")
    with pytest.raises(ValueError, match="TISSU_CHECK_RATE_LIMIT doit être un nombre entier"):
        get_settings()  # read with the other settings, at start
    limiter = CheckLimiter(10, 60)
    for number in range(300):  # one check each from 300 addresses, a second apart
        assert limiter.acquire(f"ip-{number}", now=float(number)) is None
        limiter.release(f"ip-{number}")
    assert limiter.clients() < 300  # those idle for over the window are dropped


def test_the_site_keeps_answering_while_a_hostile_calendar_is_checked(site, http_server,
                                                                      monkeypatch):
    # 100 series repeating every hour (15 KB): 45 s of work inside the web server before
    import time

    from tests.test_sandbox import hourly_calendar

    monkeypatch.setenv("TISSU_CHECK_TIME_LIMIT", "2")
    http_server.routes["/hourly.ics"] = Route(hourly_calendar(100),
                                              headers={"Content-Type": "text/calendar"})

    async def scenario():
        page = await site.client.get("/inscription")
        token = html.unescape(re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1))
        started = time.monotonic()
        check = asyncio.create_task(site.client.post(
            "/inscription", data={**FORM, "url": http_server.url("/hourly.ics"),
                                  "action": "check", "csrftoken": token},
            cookies={"ds_csrftoken": page.cookies["ds_csrftoken"]}))
        await asyncio.sleep(0.3)
        answers = []
        while not check.done():
            asked = time.monotonic()
            response = await site.client.get("/inscription")
            answers.append((response.status_code, time.monotonic() - asked))
            await asyncio.sleep(0.1)
        return await check, answers, time.monotonic() - started

    checked, answers, seconds = asyncio.run(scenario())
    assert checked.status_code == 200
    assert 'data-code="time-limit"' in checked.text
    assert "limite de temps 2 s dépassée" in body(checked)
    assert "à venir" not in body(checked)  # counts unknown, not « 0 — 0 à venir »
    assert seconds < 15
    assert len(answers) >= 3 and all(status == 200 for status, _ in answers)
    assert max(delay for _, delay in answers) < 1.5, answers


def test_web_checks_use_the_check_limits(site, http_server):
    """« Vérifier » on the page is counted by CheckLimiter: three checks a minute from one
    address, the fourth answers 429 (the page used to allow 20 an hour in a burst)."""
    for _ in range(3):
        response = post_form(site, {**FORM, "url": http_server.url("/agenda.ics"),
                                    "action": "check"})
        assert response.status_code == 200, response.text
        assert "calendrier iCalendar (.ics)" in body(response)
    response = post_form(site, {**FORM, "url": http_server.url("/agenda.ics"), "action": "check"})
    assert response.status_code == 429
    # the trial: « Trop d'envois … Réessayez dans une heure » for the 3-a-minute check limit
    assert ("Trop de vérifications cette minute depuis cette connexion : réessayez dans une "
            "minute.") in body(response)
    assert "Trop d'envois" not in body(response)
    # an address that is not http(s) is refused before it counts as a check
    from publish.web import registration

    registration._LIMITERS.clear()
    for _ in range(4):
        response = post_form(site, {**FORM, "url": "ftp://example.org/x", "action": "check"})
        assert response.status_code == 400
    response = post_form(site, {**FORM, "url": http_server.url("/agenda.ics"), "action": "check"})
    assert response.status_code == 200


def test_a_refused_check_names_the_limit_it_hit_in_each_language(site, http_server,
                                                                  monkeypatch):
    monkeypatch.setenv("TISSU_CHECK_RATE_LIMIT", "1")  # one check an hour
    url = http_server.url("/agenda.ics")
    assert post_form(site, {**FORM, "url": url, "action": "check"}).status_code == 200
    refused = {lang: post_form(site, {**FORM, "url": url, "action": "check", "lang": lang})
               for lang in ("fr", "en", "ar")}
    assert {response.status_code for response in refused.values()} == {429}
    assert ("Trop de vérifications cette heure depuis cette connexion : réessayez dans une "
            "heure.") in body(refused["fr"])
    assert ("Too many checks from this connection this hour: please try again in an hour."
            in body(refused["en"]))
    assert "عدد كبير من عمليات التحقق من هذا الاتصال خلال هذه الساعة" in body(refused["ar"])


def test_check_refusals_have_their_own_words():
    from publish.web.registration import check_refusal
    from tissu.registrations import CheckLimiter

    limiter = CheckLimiter(10, 3600)
    assert limiter.acquire("client", now=0.0) is None
    reason = limiter.acquire("client", now=1.0)  # the first one still runs
    assert reason == "running"
    assert check_refusal("fr", reason) == ("Une vérification est déjà en cours depuis cette "
                                           "connexion : attendez son résultat, puis réessayez.")
    assert check_refusal("en", reason) == ("A check from this connection is already running: "
                                           "wait for its result, then try again.")
    assert check_refusal("en", "burst") == ("Too many checks from this connection this "
                                            "minute: please try again in a minute.")
    assert check_refusal("ar", "running").startswith("هناك عملية تحقق جارية")


def test_a_webcal_address_is_checked_and_registered_as_https(site, http_server):
    # the doctor's advice says webcal:// is https://; the form refused it (« doit commencer
    # par http:// ou https:// »). The local server speaks HTTP only: the https fetch fails,
    # but the address is read, and the page says how
    address = http_server.url("/agenda.ics").replace("http://", "webcal://")
    response = post_form(site, {**FORM, "url": address, "action": "check"})
    assert response.status_code == 200, response.text
    text = body(response)
    assert "adresse webcal:// lue comme https://" in text
    assert "doit commencer par http" not in text
    assert f'value="{address.replace("webcal://", "https://")}"' in text
    form, errors = registrations.validate_form({**FORM, "url": "WEBCALS://example.org/a.ics",
                                                "language": "fr"})
    assert errors == {} and form is not None and form.url == "https://example.org/a.ics"
