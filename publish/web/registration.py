"""The registration page ``/inscription``: a publisher registers a feed, without an account.

GET shows the form (French first; ``?lang=en`` or ``?lang=ar``, Arabic right to left). POST with
``action=check`` runs the feed doctor (:func:`connectors.doctor.diagnose`) on the URL and shows what
will be published and what to fix; ``action=submit`` validates the form
(:func:`tissu.registrations.validate_form`), checks the anti-spam defences — a honeypot field that
people never see, a per-IP rate limit counted in the working store, a per-IP limit on checks
(:class:`tissu.registrations.CheckLimiter`: 10 an hour, 3 a minute, one at a time, shared by
« Vérifier » and submissions; a refused check says which, :func:`check_refusal`) — runs the doctor again (parsing in a sandboxed child:
:mod:`connectors.sandbox`), and stores the registration as pending (:func:`tissu.registrations.submit`).
Nothing is published before a moderator approves it.

Status codes: 200 form or thanks, 400 invalid form, 409 URL already registered, 422 URL not usable
as a feed, 429 too many submissions or checks. A ``webcal://`` (``webcals://``) address is read
as ``https://``. POSTs need Datasette's CSRF token.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import yaml
from datasette.utils.asgi import Response
from sqlmodel import Session

from connectors.doctor import diagnose
from connectors.http import web_url
from normalize.themes import load_vocabulary
from publish.web import pages
from publish.web.resident_i18n import translations
from schemas.models import utcnow
from tissu import registrations

HONEYPOT = "commentaire"
FIELDS = ("organisation_name", "organisation_type", "website", "contact_email", "url",
          "feed_name", "licence_choice", "own_licence", "quartier")
TYPES = ("association", "service-municipal", "etablissement-public", "autre")
QUARTIERS_FILE = Path(__file__).resolve().parents[2] / "data" / "quartiers.yaml"
_LIMITERS: dict[tuple[int, float], registrations.CheckLimiter] = {}
_WARM = threading.Event()

#: Why :class:`tissu.registrations.CheckLimiter` refused a check → (message key, French text).
#: English and Arabic live in the Babel catalogues (msgctxt = the key), like :data:`pages.MESSAGES`.
CHECK_REFUSALS: dict[str, tuple[str, str]] = {
    "burst": ("error.check-burst", pages._mark.pgettext(
        "error.check-burst",
        "Trop de vérifications cette minute depuis cette connexion : réessayez dans une "
        "minute.")),
    "rate": ("error.check-rate", pages._mark.pgettext(
        "error.check-rate",
        "Trop de vérifications cette heure depuis cette connexion : réessayez dans une heure.")),
    "running": ("error.check-running", pages._mark.pgettext(
        "error.check-running",
        "Une vérification est déjà en cours depuis cette connexion : attendez son résultat, "
        "puis réessayez.")),
}


def check_refusal(lang: str, reason: str) -> str:
    """The page's message for a check refused by the limiter, ``reason`` being what
    :meth:`tissu.registrations.CheckLimiter.acquire` returned (``burst``, ``rate``,
    ``running``), in ``lang`` (French when untranslated). It names the limit that was hit:
    a check is not a submission (``error.rate``)."""
    key, french = CHECK_REFUSALS.get(reason, CHECK_REFUSALS["rate"])
    return french if lang == "fr" else str(translations(lang).pgettext(key, french))


def check_limiter(settings: Any) -> registrations.CheckLimiter:
    """This process's :class:`tissu.registrations.CheckLimiter` for ``settings`` (one per
    limit and window, kept between requests): checks of « Vérifier » and of submissions.
    """
    limiter = registrations.CheckLimiter.from_settings(settings)
    return _LIMITERS.setdefault((limiter.limit, limiter.window), limiter)


def _warm_up_checks() -> None:
    """Start the doctor's sandbox (a fork server and a warmed child, ~1–2 s of imports) in the
    background the first time someone opens the form, so that their « Vérifier » is quick;
    a server where nobody registers never pays for it. Never raises."""
    if _WARM.is_set():
        return
    _WARM.set()

    def warm() -> None:
        from connectors.doctor import prepare_checks

        with contextlib.suppress(Exception):
            prepare_checks()

    threading.Thread(target=warm, name="tissu-check-warm-up", daemon=True).start()


async def _checked(request: Any, lang: str, values: dict[str, Any], settings: Any, ip: str,
                   url: str) -> Any:
    """Run the doctor on ``url`` under the client's check limits; a 429 page when refused."""
    limiter = check_limiter(settings)
    client = registrations.client_hash(ip, settings.moderation_secret)
    refused = limiter.acquire(client)
    if refused is not None:
        return _page(request, lang, values, message=check_refusal(lang, refused), status=429)
    try:
        return await pages.in_thread(diagnose, url, settings=settings, engine=pages.engine())
    finally:
        limiter.release(client)


def quartiers() -> list[str]:
    """Names of Pantin's quartiers (``data/quartiers.yaml``), in file order."""
    try:
        document = yaml.safe_load(QUARTIERS_FILE.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [str(q["name"]) for q in document.get("quartiers", []) if q.get("name")]


def themes(lang: str) -> list[tuple[str, str]]:
    """(code, label in ``lang``) of the theme vocabulary, without the fallback ``autre``."""
    return [(code, getattr(theme, lang, theme.fr)) for code, theme in load_vocabulary().items()
            if code != "autre"]


def _values(form: dict[str, list[str]]) -> dict[str, Any]:
    values: dict[str, Any] = {name: (form.get(name) or [""])[0].strip() for name in FIELDS}
    known = {code for code, _label in themes("fr")}
    values["themes"] = [code for code in form.get("themes", []) if code in known]
    values["licence_consent"] = (form.get("licence_consent") or [""])[0] == "on"
    values["licence_choice"] = values["licence_choice"] or "licence-ouverte"
    return values


def _page(request: Any, lang: str, values: dict[str, Any], *, errors: dict[str, str] | None = None,
          diagnosis: Any = None, message: str | None = None, status: int = 200) -> Response:
    return pages.render(request, "registration/form.html", {
        "values": values, "errors": errors or {}, "diagnosis": diagnosis, "message": message,
        "types": TYPES, "themes": themes(lang), "quartiers": quartiers(), "honeypot": HONEYPOT,
    }, lang, status)


async def registration_page(datasette: Any, request: Any) -> Response:
    """``/inscription``: the form, the "Vérifier" step and the submission (see the module)."""
    if request.method != "POST":
        lang = pages.language(request)
        _warm_up_checks()
        return _page(request, lang, _values({}))
    form = await pages.form_data(request)
    lang = pages.language(request, form)
    values = _values(form)
    settings = pages.settings()
    ip = pages.client_ip(request)
    if (form.get(HONEYPOT) or [""])[0].strip():
        # a robot filled the invisible field: answer as if all went well, store nothing
        return pages.render(request, "registration/thanks.html", {}, lang)
    action = (form.get("action") or ["check"])[0]
    if action == "submit":
        return await _submit(request, lang, values, settings, ip)
    typed = values["url"]
    values["url"] = web_url(typed)  # the doctor reads it so, and says it in its notes
    if not values["url"].lower().startswith(("http://", "https://")):
        return _page(request, lang, values, errors={"url": "http-url"}, status=400)
    diagnosis = await _checked(request, lang, values, settings, ip, typed)
    if isinstance(diagnosis, Response):
        return diagnosis
    return _page(request, lang, values, diagnosis=diagnosis)


async def _submit(request: Any, lang: str, values: dict[str, Any], settings: Any,
                  ip: str) -> Response:
    form, errors = registrations.validate_form({**values, "language": lang})
    if form is None:
        return _page(request, lang, values, errors=errors, status=400)
    engine = pages.engine()
    now = utcnow()
    hashed = registrations.client_hash(ip, settings.moderation_secret)

    def limited() -> bool:
        with Session(engine) as session:
            return registrations.rate_limited(session, hashed, now, settings)

    if await pages.in_thread(limited):
        return _page(request, lang, values, message=pages.t(lang, "error.rate"), status=429)
    diagnosis = await _checked(request, lang, values, settings, ip, form.url)
    if isinstance(diagnosis, Response):
        return diagnosis
    if not diagnosis.usable:
        return _page(request, lang, values, diagnosis=diagnosis,
                     message=pages.t(lang, "error.not-usable"), status=422)

    def store() -> None:
        with Session(engine) as session:
            registrations.submit(session, form, fmt=diagnosis.format, client_ip=ip, now=now,
                                 settings=settings)

    try:
        await pages.in_thread(store)
    except registrations.ModerationError as exc:
        return _page(request, lang, values, message=str(exc), status=409)
    return pages.render(request, "registration/thanks.html", {"diagnosis": diagnosis}, lang)


ROUTES = [(r"^/inscription$", registration_page)]
