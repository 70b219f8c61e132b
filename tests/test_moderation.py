"""Moderation: `tissu sources pending|approve|reject|pause|resume`, the working registry,
scheduling on approval, e-mail to the publisher (local SMTP server) or a log line."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from publish.run import publish
from schemas.models import RETIRED, Registration, Source
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES, Route
from tissu import registrations
from tissu.cli import app
from tissu.pipeline import harvest_all, sync_registry
from tissu.scheduler import stored_jobs

FORM = {
    "organisation_name": "Épicerie solidaire des Quatre-Chemins",
    "organisation_type": "association",
    "website": "https://epicerie.example.org/",
    "contact_email": "benevoles@epicerie.example.org",
    "feed_name": "",
    "licence_choice": "licence-ouverte",
    "licence_consent": True,
    "themes": ["alimentation"],
    "quartier": "Quatre-Chemins",
}


def seed(settings, url):
    settings.registry.write_text(yaml.safe_dump({"sources": [{
        "id": "mairie", "name": "Agenda de la mairie", "format": "ical", "url": url,
        "licence": "Licence Ouverte 2.0",
        "publisher": {"name": "Ville de Pantin", "type": "service-municipal"}}]}),
        encoding="utf-8")
    return load_registry(settings.registry)


def submit(engine, settings, url, **changes):
    form, errors = registrations.validate_form({**FORM, "url": url, **changes})
    assert errors == {}
    with Session(engine) as session:
        registration = registrations.submit(session, form, fmt="ical", client_ip="192.0.2.7",
                                            now=NOW, settings=settings)
        return registration.id


def test_form_validation_names_each_faulty_field():
    form, errors = registrations.validate_form({
        **FORM, "url": "ftp://example.org/a.ics", "contact_email": "pas-une-adresse", "licence_consent": False,
        "organisation_type": "club", "organisation_name": ""})
    assert form is None
    assert errors == {"organisation_name": "required", "organisation_type": "choice",
                      "contact_email": "email", "url": "http-url", "licence_consent": "consent"}
    form, errors = registrations.validate_form({**FORM, "url": "https://a.example/x.ics",
                                                "licence_choice": "own", "own_licence": " "})
    assert errors == {"own_licence": "own-licence"}
    form, errors = registrations.validate_form({**FORM, "url": "https://a.example/x.ics",
                                                "licence_choice": "own",
                                                "own_licence": "CC BY-SA 4.0"})
    assert form is not None and form.licence == "CC BY-SA 4.0"


def test_approve_adds_the_source_schedules_it_and_mails_the_publisher(
        http_server, tmp_settings, smtp_server):
    settings = replace(tmp_settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                       smtp_from="tissu@pantin.example")
    http_server.routes["/mairie.ics"] = Route((SAMPLES / "fablab_cottbus.ics").read_bytes())
    http_server.routes["/epicerie.ics"] = Route((SAMPLES / "ical_google.ics").read_bytes())
    specs = seed(settings, http_server.url("/mairie.ics"))
    engine = make_engine(settings.database_url)
    registration_id = submit(engine, settings, http_server.url("/epicerie.ics"))

    decision = registrations.approve(engine, registration_id, now=NOW, settings=settings)
    assert decision.mailed
    source = decision.source
    assert source.id == "epicerie-solidaire-des-quatre-chemins"
    assert (source.origin, source.status, source.format) == ("registration", "active", "ical")
    assert source.contact_email == "benevoles@epicerie.example.org"
    assert source.themes == '["alimentation"]' and source.quartier == "Quatre-Chemins"
    # scheduled: its harvest job is in the working database's job store, due now
    jobs = {job.id: job for job in stored_jobs(engine)}
    assert jobs[f"harvest:{source.id}"].next_run_time == NOW
    assert jobs[f"harvest:{source.id}"].trigger.interval.total_seconds() == 6 * 3600
    # the publisher was told, through the local SMTP server
    (message,) = smtp_server.messages
    assert message["To"] == "benevoles@epicerie.example.org"
    assert message["Subject"] == "Tissu : votre agenda est accepté"
    assert "Agenda d'Épicerie solidaire des Quatre-Chemins" in message.get_content()
    assert source.name == "Agenda d'Épicerie solidaire des Quatre-Chemins"

    # the approved source is harvested along with the seed registry, which stays untouched
    summaries = harvest_all(engine, specs, settings, now=NOW)
    assert {s.source_id: s.status for s in summaries} == {"mairie": "ok", source.id: "ok"}
    assert "epicerie" not in settings.registry.read_text(encoding="utf-8")
    # the contact e-mail never reaches the published database
    out = publish(engine, settings.publish_dir, NOW)
    assert b"benevoles@epicerie.example.org" not in out.database.read_bytes()
    connection = sqlite3.connect(out.database)
    assert connection.execute("SELECT count(*) FROM events WHERE source_id = ?",
                              (source.id,)).fetchone() == (41,)
    connection.close()


def test_cli_pending_approve_reject_and_log_without_smtp(tmp_settings, monkeypatch, caplog):
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.delenv("TISSU_SMTP_HOST", raising=False)
    engine = make_engine(tmp_settings.database_url)
    first = submit(engine, tmp_settings, "https://a.example.org/agenda.ics")
    second = submit(engine, tmp_settings, "https://b.example.org/agenda.ics",
                    organisation_name="Secours populaire", contact_email="sp@example.org")
    runner = CliRunner()
    result = runner.invoke(app, ["sources", "pending"])
    assert result.exit_code == 0, result.output
    assert "Épicerie solidaire" in result.output and "Secours populaire" in result.output

    with caplog.at_level(logging.INFO, logger="tissu.mail"):
        result = runner.invoke(app, ["sources", "reject", str(second), "--reason",
                                     "Ce calendrier ne concerne pas Pantin."])
    assert result.exit_code == 0, result.output
    assert "le message a été journalisé" in result.output
    assert any("sp@example.org" in r.getMessage() and "ne concerne pas Pantin" in r.getMessage()
               for r in caplog.records)

    result = runner.invoke(app, ["sources", "approve", str(first), "--refresh", "1d"])
    assert result.exit_code == 0, result.output
    assert "source « epicerie-solidaire-des-quatre-chemins »" in result.output
    result = runner.invoke(app, ["sources", "approve", str(first)])
    assert result.exit_code == 1 and "déjà traitée" in result.output
    with Session(engine) as session:
        statuses = {r.id: r.status for r in session.exec(select(Registration))}
        assert statuses == {first: "approved", second: "rejected"}
        assert session.get(Source, "epicerie-solidaire-des-quatre-chemins").refresh == "1d"
    result = runner.invoke(app, ["sources", "pending"])
    assert "Aucune inscription en attente" in result.output


def test_same_url_cannot_be_registered_twice(tmp_settings):
    engine = make_engine(tmp_settings.database_url)
    submit(engine, tmp_settings, "https://a.example.org/agenda.ics")
    form, _ = registrations.validate_form({**FORM, "url": "https://a.example.org/agenda.ics"})
    with Session(engine) as session:
        try:
            registrations.submit(session, form, fmt="ical", client_ip="192.0.2.8", now=NOW,
                                 settings=tmp_settings)
        except registrations.ModerationError as exc:
            assert str(exc) == "cette adresse attend déjà la validation d'un modérateur"
        else:
            raise AssertionError("a second registration of the same URL was accepted")


def test_another_spelling_of_a_registered_or_waiting_address_is_refused(tmp_settings):
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        sync_registry(session, seed(tmp_settings, "https://mairie.example.org/agenda.ics"))
    submit(engine, tmp_settings, "https://a.example.org/agenda.ics")
    for url, message in (
            ("HTTPS://Mairie.Example.org:443/agenda.ics/#semaine",
             "cette adresse est déjà publiée par la source « mairie »"),
            ("https://A.example.org/agenda.ics#juin",
             "cette adresse attend déjà la validation d'un modérateur")):
        form, _ = registrations.validate_form({**FORM, "url": url})
        with Session(engine) as session:
            try:
                registrations.submit(session, form, fmt="ical", client_ip="192.0.2.8", now=NOW,
                                     settings=tmp_settings)
            except registrations.ModerationError as exc:
                assert str(exc) == message
            else:
                raise AssertionError(f"{url} was registered a second time")
    # another query names another feed
    assert submit(engine, tmp_settings, "https://a.example.org/agenda.ics?lieu=2")


def test_pause_wins_over_the_seed_registry_and_removes_the_job(tmp_settings, monkeypatch):
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    specs = seed(tmp_settings, "https://mairie.example.org/agenda.ics")
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        sync_registry(session, specs)
    from tissu.scheduler import schedule_source

    with Session(engine) as session:
        schedule_source(engine, session.get(Source, "mairie"), NOW)
    assert [job.id for job in stored_jobs(engine)] == ["harvest:mairie"]
    result = CliRunner().invoke(app, ["sources", "pause", "mairie"])
    assert result.exit_code == 0, result.output
    assert stored_jobs(engine) == []
    with Session(engine) as session:
        sync_registry(session, specs)  # the seed says active; the moderator's pause wins
    with Session(engine) as session:
        assert session.get(Source, "mairie").status == "paused"
    result = CliRunner().invoke(app, ["sources", "resume", "mairie"])
    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        sync_registry(session, specs)
        assert session.get(Source, "mairie").status == "active"
    assert [job.id for job in stored_jobs(engine)] == ["harvest:mairie"]
    result = CliRunner().invoke(app, ["sources", "pause", "inconnue"])
    assert result.exit_code == 2 and "Source inconnue : « inconnue »" in result.output


def test_a_retired_source_cannot_be_resumed_and_a_repeated_pause_changes_nothing(
        tmp_settings, monkeypatch):
    # the trial: « tissu sources resume » of a source removed from the registry made it active
    # (its events published again) and mailed its publisher; a second pause mailed again
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    specs = seed(tmp_settings, "https://mairie.example.org/agenda.ics")
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        sync_registry(session, specs)
        session.get(Source, "mairie").contact_email = "agenda@mairie.example.org"
        session.commit()
    sent: list[str] = []
    monkeypatch.setattr(registrations, "send_mail",
                        lambda settings, to, subject, body: sent.append(subject) or True)
    assert CliRunner().invoke(app, ["sources", "pause", "mairie"]).exit_code == 0
    again = CliRunner().invoke(app, ["sources", "pause", "mairie"])
    assert again.exit_code == 1
    assert "source « mairie » déjà en pause : rien n'est changé" in again.output
    assert CliRunner().invoke(app, ["sources", "resume", "mairie"]).exit_code == 0
    again = CliRunner().invoke(app, ["sources", "resume", "mairie"])
    assert again.exit_code == 1 and "déjà active : rien n'est changé" in again.output
    assert sent == ["Tissu : votre source est mise en pause", "Tissu : votre source est réactivée"]
    with Session(engine) as session:
        sync_registry(session, [])  # removed from data/sources.yaml: retired
    for action in ("resume", "pause"):
        result = CliRunner().invoke(app, ["sources", action, "mairie"])
        assert result.exit_code == 1, result.output
        assert "retirée du registre : rien n'est changé" in result.output
    with Session(engine) as session:
        assert session.get(Source, "mairie").status == RETIRED
    assert len(sent) == 2


def test_a_source_the_registry_pauses_is_not_resumed_from_the_command_line(tmp_settings,
                                                                        monkeypatch):
    # the second trial: « resume » said « réactivée » and mailed, then the next harvest paused
    # it again from the registry file, at each resume
    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.setenv("TISSU_REGISTRY", str(tmp_settings.registry))
    seed(tmp_settings, "https://mairie.example.org/agenda.ics")
    text = tmp_settings.registry.read_text(encoding="utf-8")
    tmp_settings.registry.write_text(text + "  status: paused\n", encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        sync_registry(session, load_registry(tmp_settings.registry))
        assert session.get(Source, "mairie").status == "paused"
    sent: list[str] = []
    monkeypatch.setattr(registrations, "send_mail",
                        lambda settings, to, subject, body: sent.append(subject) or True)
    result = CliRunner().invoke(app, ["sources", "resume", "mairie"])
    assert result.exit_code == 1, result.output
    assert "source « mairie » en pause dans le registre : rien n'est changé" in result.output
    assert "status: paused" in result.output and str(tmp_settings.registry) in \
        result.output.replace("\n", "")
    with Session(engine) as session:
        assert session.get(Source, "mairie").status == "paused"
    assert sent == []


# --- the moderation page (Datasette plugin) ---------------------------------------------------

def _client(tmp_settings, monkeypatch, secret="s3cret-de-test"):
    from datasette.app import Datasette

    monkeypatch.setenv("TISSU_DATABASE_URL", tmp_settings.database_url)
    monkeypatch.setenv("TISSU_MODERATION_SECRET", secret)
    monkeypatch.delenv("TISSU_SMTP_HOST", raising=False)
    from publish.web import moderation

    moderation.LOGINS._hits.clear()
    return Datasette(memory=True)


def _run(coro):
    import asyncio

    return asyncio.run(coro)


async def _session(ds):
    """A browser-like session: cookies kept between requests, CSRF token from each page."""
    import html as html_module
    import re

    import httpx

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=ds.app()),
                               base_url="http://localhost")

    async def post(data):
        page = await client.get("/moderation")
        token = html_module.unescape(
            re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1))
        return await client.post("/moderation", data={**data, "csrftoken": token})

    return client, post


def test_moderation_page_needs_the_secret_then_approves_and_pauses(tmp_settings, monkeypatch):
    ds = _client(tmp_settings, monkeypatch)
    engine = make_engine(tmp_settings.database_url)
    first = submit(engine, tmp_settings, "https://a.example.org/agenda.ics")
    second = submit(engine, tmp_settings, "https://b.example.org/agenda.ics",
                    organisation_name="Secours populaire", contact_email="sp@example.org")

    async def scenario():
        client, post = await _session(ds)
        async with client:
            anonymous = await client.get("/moderation")
            wrong = await post({"action": "login", "secret": "devine"})
            forged = await client.post("/moderation", data={"action": "approve",
                                                            "registration": str(first)})
            login = await post({"action": "login", "secret": "s3cret-de-test"})
            listing = await client.get("/moderation")
            approved = await post({"action": "approve", "registration": str(first),
                                   "refresh": "1d"})
            after_approve = await client.get(approved.headers["location"])
            rejected = await post({"action": "reject", "registration": str(second),
                                   "reason": "Hors de Pantin"})
            paused = await post({"action": "pause",
                                 "source": "epicerie-solidaire-des-quatre-chemins"})
            after_pause = await client.get(paused.headers["location"])
            return (anonymous, wrong, forged, login, listing, after_approve, rejected,
                    after_pause)

    anonymous, wrong, forged, login, listing, after_approve, rejected, after_pause = _run(
        scenario())
    assert anonymous.status_code == 200 and "Secret de modération" in anonymous.text
    assert "benevoles@epicerie.example.org" not in anonymous.text
    assert wrong.status_code == 403 and "Secret incorrect." in wrong.text
    assert forged.status_code == 403  # cookie present, no CSRF token
    assert login.status_code == 302
    assert "HttpOnly" in login.headers["set-cookie"]
    assert "SameSite=strict" in login.headers["set-cookie"]
    assert "benevoles@epicerie.example.org" in listing.text and "En attente (2)" in listing.text
    assert "source « epicerie-solidaire-des-quatre-chemins », collecte planifiée" in \
        html_text(after_approve)
    assert rejected.status_code == 302
    assert "mise en pause" in html_text(after_pause)
    with Session(engine) as session:
        source = session.get(Source, "epicerie-solidaire-des-quatre-chemins")
        assert (source.status, source.refresh, source.paused_by_moderator) == (
            "paused", "1d", True)
        assert session.get(Registration, second).decision_note == "Hors de Pantin"
    assert stored_jobs(engine) == []  # paused: no harvest job


def test_moderation_page_is_off_without_a_secret(tmp_settings, monkeypatch):
    ds = _client(tmp_settings, monkeypatch, secret="")
    response = _run(ds.client.get("/moderation"))
    assert response.status_code == 404
    assert "TISSU_MODERATION_SECRET" in response.text


def test_login_attempts_are_limited(tmp_settings, monkeypatch):
    ds = _client(tmp_settings, monkeypatch)

    async def scenario():
        client, post = await _session(ds)
        async with client:
            return [(await post({"action": "login", "secret": "x"})).status_code
                    for _ in range(11)]

    codes = _run(scenario())
    assert codes == [403] * 10 + [429]


def html_text(response):
    import html as html_module

    return html_module.unescape(response.text)


def test_moderation_messages_are_codes_never_free_text(tmp_settings, monkeypatch):
    ds = _client(tmp_settings, monkeypatch)
    engine = make_engine(tmp_settings.database_url)
    first = submit(engine, tmp_settings, "https://a.example.org/agenda.ics")

    async def scenario():
        client, post = await _session(ds)
        async with client:
            await post({"action": "login", "secret": "s3cret-de-test"})
            answers = {}
            for name, data in {
                    "abc": {"action": "approve", "registration": "abc"},
                    "missing": {"action": "approve", "registration": "999"},
                    "refresh": {"action": "approve", "registration": str(first),
                                "refresh": "souvent"},
                    "no-reason": {"action": "reject", "registration": str(first)},
                    "source": {"action": "pause", "source": "pas-une-source"},
                    "approve": {"action": "approve", "registration": str(first)},
                    "again": {"action": "reject", "registration": str(first),
                              "reason": "doublon"}}.items():
                redirect = await post(data)
                answers[name] = (redirect.headers["location"],
                                 html_text(await client.get(redirect.headers["location"])))
            forged = html_text(await client.get(
                "/moderation?message=Votre+secret+a+expir%C3%A9+:+tapez-le+sur+evil.example"))
            forged_source = html_text(await client.get(
                "/moderation?message=paused&source=%3Cb%3Ehello%3C%2Fb%3E"))
            return answers, forged, forged_source

    answers, forged, forged_source = _run(scenario())
    assert answers["abc"][0] == "/moderation?message=registration-invalid"
    assert "Impossible : numéro d'inscription invalide." in answers["abc"][1]
    assert "invalid literal" not in answers["abc"][1]
    assert "Impossible : cette inscription est introuvable." in answers["missing"][1]
    assert "Impossible : fréquence invalide" in answers["refresh"][1]
    assert "indiquez la raison du refus" in answers["no-reason"][1]
    assert "Impossible : cette source est introuvable." in answers["source"][1]
    assert "pas-une-source" not in answers["source"][0]
    assert "collecte planifiée. (Pas d'e-mail envoyé" in answers["approve"][1]
    assert "Impossible : cette inscription a déjà été traitée." in answers["again"][1]
    assert "evil.example" not in forged and 'role="status"' not in forged
    assert "hello" not in forged_source and 'role="status"' not in forged_source


def test_approve_refuses_a_refresh_the_registry_refuses(http_server, tmp_settings):
    """`tissu sources approve --refresh` checked the bounds (5 minutes to 366 days) but the
    function and the moderation page took « 0m », which would run a harvest every second."""
    http_server.routes["/epicerie.ics"] = Route((SAMPLES / "ical_google.ics").read_bytes())
    engine = make_engine(tmp_settings.database_url)
    registration_id = submit(engine, tmp_settings, http_server.url("/epicerie.ics"))
    for refresh in ("0m", "4m", "400d", "souvent"):
        with pytest.raises(registrations.ModerationError, match=f"fréquence '{refresh}' refusée"):
            registrations.approve(engine, registration_id, now=NOW, settings=tmp_settings,
                                  refresh=refresh)
    decision = registrations.approve(engine, registration_id, now=NOW, settings=tmp_settings,
                                     refresh=" 5m ")
    assert decision.source.refresh == "5m"
