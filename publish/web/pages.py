"""Shared plumbing of the registration, moderation and status pages (issue 6).

One Jinja environment over ``publish/web/templates`` (autoescaped), the page language (``?lang=``,
then the ``tissu_lang`` cookie, then French; Arabic is right to left), a small French-first
message table (:data:`MESSAGES`: French, translated through the Babel catalogues), the working
store, and a per-client sliding-window limiter for actions that cost us (checks that fetch a
URL, login attempts).

Forms are protected by Datasette's CSRF middleware (asgi-csrf): every POST form carries the
``csrftoken`` hidden field rendered by :func:`render` from ``request.scope["csrftoken"]``.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import jinja2
from datasette.utils.asgi import Response
from sqlalchemy.engine import Engine

from publish.web.resident_i18n import (
    LANG_COOKIE,
    pick_language,
    translations,
)
from schemas.store import make_engine
from tissu.settings import Settings, get_settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
T = TypeVar("T")


class _Mark:
    """Marks a message for ``make messages``: Babel extracts ``pgettext(context, message)``."""

    @staticmethod
    def pgettext(key: str, french: str) -> str:
        """Return ``french`` unchanged; the translation is looked up by :func:`t`."""
        return french


_mark = _Mark()

#: key → the French text. English and Arabic live in the Babel catalogues
#: (publish/web/locales), with the key as message context (``msgctxt``).
MESSAGES: dict[str, str] = {
    "site": _mark.pgettext("site", "Tissu — l'agenda solidaire de Pantin"),
    "register.title": _mark.pgettext("register.title", "Inscrire l'agenda de votre organisation"),
    "register.intro": _mark.pgettext(
        "register.intro",
        "Deux minutes suffisent, sans compte à créer. Une personne de l'équipe Tissu vérifie "
        "chaque inscription avant publication."),
    "field.organisation_name": _mark.pgettext("field.organisation_name", "Nom de l'organisation"),
    "field.organisation_type": _mark.pgettext("field.organisation_type", "Type d'organisation"),
    "type.association": _mark.pgettext("type.association", "Association"),
    "type.service-municipal": _mark.pgettext("type.service-municipal", "Service municipal"),
    "type.etablissement-public": _mark.pgettext(
        "type.etablissement-public",
        "Établissement public"),
    "type.autre": _mark.pgettext("type.autre", "Autre"),
    "field.website": _mark.pgettext("field.website", "Site web (facultatif)"),
    "field.contact_email": _mark.pgettext("field.contact_email", "E-mail de contact"),
    "help.contact_email": _mark.pgettext(
        "help.contact_email",
        "Privé : jamais publié. Il sert seulement à vous prévenir."),
    "field.url": _mark.pgettext("field.url", "Adresse du calendrier ou du flux"),
    "help.url": _mark.pgettext(
        "help.url",
        "Le lien d'export de votre agenda (.ics de préférence). Si vous n'avez que l'adresse "
        "d'une page, le bouton « Vérifier » vous dira comment trouver le bon lien."),
    "field.feed_name": _mark.pgettext("field.feed_name", "Nom de l'agenda (facultatif)"),
    "field.licence": _mark.pgettext("field.licence", "Licence"),
    "licence.licence-ouverte": _mark.pgettext(
        "licence.licence-ouverte",
        "Ces événements peuvent être publiés sous Licence Ouverte 2.0 (réutilisation libre en "
        "citant la source)."),
    "licence.own": _mark.pgettext("licence.own", "Ils ont déjà leur propre licence, que voici :"),
    "field.licence_consent": _mark.pgettext(
        "field.licence_consent",
        "Je confirme avoir le droit de publier cet agenda et j'accepte qu'il soit repris dans "
        "Tissu sous cette licence."),
    "field.themes": _mark.pgettext("field.themes", "Thèmes par défaut de vos événements"),
    "field.quartier": _mark.pgettext("field.quartier", "Quartier (facultatif)"),
    "quartier.none": _mark.pgettext("quartier.none", "— toute la ville —"),
    "field.honeypot": _mark.pgettext("field.honeypot", "Ne remplissez pas ce champ"),
    "button.check": _mark.pgettext("button.check", "Vérifier"),
    "button.submit": _mark.pgettext("button.submit", "Envoyer l'inscription"),
    "thanks.title": _mark.pgettext("thanks.title", "Merci, c'est reçu !"),
    "thanks.text": _mark.pgettext(
        "thanks.text",
        "Votre inscription attend la validation d'un modérateur. Vous recevrez un e-mail dès "
        "qu'elle sera acceptée."),
    "error.summary": _mark.pgettext(
        "error.summary",
        "Le formulaire contient des erreurs : voyez les champs signalés."),
    "error.required": _mark.pgettext("error.required", "Ce champ est obligatoire."),
    "error.too-short": _mark.pgettext("error.too-short", "Trop court."),
    "error.too-long": _mark.pgettext("error.too-long", "Trop long."),
    "error.email": _mark.pgettext("error.email", "Adresse e-mail invalide."),
    "error.http-url": _mark.pgettext(
        "error.http-url",
        "L'adresse doit commencer par http:// ou https://."),
    "error.consent": _mark.pgettext("error.consent", "Cochez cette case pour continuer."),
    "error.choice": _mark.pgettext("error.choice", "Choisissez une valeur de la liste."),
    "error.own-licence": _mark.pgettext("error.own-licence", "Indiquez le nom de votre licence."),
    "error.invalid": _mark.pgettext("error.invalid", "Valeur invalide."),
    "error.rate": _mark.pgettext(
        "error.rate",
        "Trop d'envois depuis cette connexion. Réessayez dans une heure."),
    "error.not-usable": _mark.pgettext(
        "error.not-usable",
        "Cette adresse ne peut pas être inscrite telle quelle : lisez le diagnostic ci-dessous."),
    "doctor.title": _mark.pgettext("doctor.title", "Diagnostic de votre agenda"),
    "doctor.french": _mark.pgettext("doctor.french", "(Le diagnostic est écrit en français.)"),
    "doctor.format": _mark.pgettext("doctor.format", "Format trouvé"),
    "doctor.counts": _mark.pgettext("doctor.counts", "Événements"),
    "doctor.upcoming": _mark.pgettext("doctor.upcoming", "séances à venir"),
    "doctor.next": _mark.pgettext(
        "doctor.next",
        "Les prochaines séances, telles qu'elles seront publiées"),
    "doctor.ok": _mark.pgettext(
        "doctor.ok",
        "Aucun problème trouvé : vous pouvez envoyer l'inscription."),
    "doctor.problem": _mark.pgettext("doctor.problem", "Problème"),
    "doctor.warning": _mark.pgettext("doctor.warning", "À corriger"),
    "doctor.fix": _mark.pgettext("doctor.fix", "Comment faire"),
    "status.title": _mark.pgettext("status.title", "État des sources"),
    "status.intro": _mark.pgettext(
        "status.intro",
        "Chaque agenda collecté par Tissu, et s'il est en bonne santé. Les incidents sont "
        "aussi publiés en flux Atom."),
    "status.atom": _mark.pgettext("status.atom", "Flux Atom des incidents"),
    "status.source": _mark.pgettext("status.source", "Source"),
    "status.health": _mark.pgettext("status.health", "État"),
    "status.last_success": _mark.pgettext("status.last_success", "Dernière collecte réussie"),
    "status.trend": _mark.pgettext("status.trend", "Événements lus (dernières lectures)"),
    "status.reason": _mark.pgettext("status.reason", "Détail"),
    "status.never": _mark.pgettext("status.never", "jamais"),
    "status.ok": _mark.pgettext("status.ok", "En forme"),
    "status.paused": _mark.pgettext(
        "status.paused", "Collecte en pause : ses derniers événements restent publiés"),
    "status.warning": _mark.pgettext("status.warning", "À surveiller"),
    "status.failing": _mark.pgettext("status.failing", "En panne"),
    "status.none": _mark.pgettext("status.none", "Aucune source pour l'instant."),
    "status.counts": _mark.pgettext(
        "status.counts",
        "{ok} en forme, {warning} à surveiller, {failing} en panne"),
    "status.register": _mark.pgettext("status.register", "Inscrire un agenda"),
    "status.french": _mark.pgettext("status.french", "(Les diagnostics sont écrits en français.)"),
    "status.more_one": _mark.pgettext("status.more_one", "et 1 autre avertissement"),
    "status.more": _mark.pgettext("status.more", "et {n} autres avertissements"),
    "status.all": _mark.pgettext("status.all", "Toutes les sources"),
    "status.unknown": _mark.pgettext("status.unknown", "Aucune source ne porte ce code."),
}
def t(lang: str, key: str, **values: object) -> str:
    """The message ``key`` in ``lang`` (French when untranslated), formatted with ``values``.

    Translations come from the Babel catalogues of the resident pages (``msgctxt`` = ``key``,
    ``msgid`` = the French text); an unknown key is returned as is.
    """
    french = MESSAGES.get(key)
    if french is None:
        return key
    text = str(translations(lang).pgettext(key, french)) if lang != "fr" else french
    return text.format(**values) if values else text


@lru_cache(maxsize=8)
def environment(lang: str = "fr") -> jinja2.Environment:
    """The Jinja environment of these pages in ``lang`` (autoescaped HTML), over the whole
    ``templates`` folder, with the resident catalogues' gettext installed: the registration and
    status pages extend the resident layout (``resident/base.html``), whose header and footer
    say ``_("…")``. One environment per language keeps concurrent requests apart."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "xml"]),
                             extensions=["jinja2.ext.i18n"], trim_blocks=True,
                             lstrip_blocks=True)
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def language(request: Any, form: dict[str, list[str]] | None = None) -> str:
    """The page language: a ``lang`` form field, ``?lang=``, the ``tissu_lang`` cookie, French."""
    posted = (form or {}).get("lang", [None])[0]
    return pick_language(posted or request.args.get("lang"), request.cookies.get(LANG_COOKIE))


def render(request: Any, template: str, context: dict[str, Any], lang: str = "fr",
           status: int = 200, datasette: Any = None) -> Response:
    """Render ``template`` with the language helpers and the CSRF token, as an HTML response.

    The context holds what the resident layout needs (:meth:`publish.web.resident.Page.context`:
    language and large-print switches that keep the current address, the menu, kiosk mode), in
    ``lang`` (which may come from a posted form), plus ``t(key)`` (:data:`MESSAGES`), ``path``
    and ``csrftoken``. The language and size chosen by ``?lang=`` or ``?taille=`` are remembered
    in the same cookies as on the resident pages. ``datasette`` is needed only by templates that
    build absolute addresses (none yet). The answer is never cached (``no-store``).
    """
    from publish.web.resident import Page  # here: resident imports the whole page machinery

    page = Page(datasette, request)
    page.lang = lang
    token = request.scope.get("csrftoken")
    base = {
        **page.context(""),
        "t": lambda key, **kw: t(lang, key, **kw), "path": request.path,
        "csrftoken": token() if callable(token) else "",
    }
    html = environment(lang).get_template(template).render({**base, **context})
    response = page.finish(Response.html(html, status=status))
    response.headers["Content-Language"] = lang
    response.headers["Cache-Control"] = "no-store"
    return response


async def form_data(request: Any) -> dict[str, list[str]]:
    """The POSTed ``application/x-www-form-urlencoded`` fields, each a list (checkboxes)."""
    body = await request.post_body()
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def client_ip(request: Any) -> str:
    """The client's address as the ASGI server gives it: behind a proxy at an address uvicorn
    trusts (``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default), the ``X-Forwarded-For`` client;
    else the peer's address. ``"inconnu"`` when the server gives none."""
    client = request.scope.get("client")
    return str(client[0]) if client else "inconnu"


def settings() -> Settings:
    """Settings from the environment (``tissu serve`` passes the working store's URL)."""
    return get_settings()


@lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    return make_engine(url)


def engine() -> Engine:
    """The working store's engine (one per database URL and process)."""
    return _engine(settings().database_url)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work (database, network) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class SlidingWindow:
    """At most ``limit`` hits per key within ``window`` seconds, in this process."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record a hit for ``key``; False (and not recorded) when over the limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True
