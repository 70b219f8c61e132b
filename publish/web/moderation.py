"""The moderation page ``/moderation``, protected by ``TISSU_MODERATION_SECRET``.

A moderator types the secret once (compared in constant time; at most 10 attempts per client per
15 minutes); a signed, HTTP-only, SameSite=Strict cookie then opens the page until the secret
changes or Datasette restarts. The page lists pending registrations (with their private contact,
for moderators only) and every source; it approves, rejects (with a reason sent to the publisher)
pauses and resumes, through the same functions as ``tissu sources …`` (:mod:`tissu.registrations`).
Every POST carries Datasette's CSRF token. With no secret configured the page answers 404.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from datasette.utils.asgi import Response
from sqlmodel import Session, select

from publish.web import pages
from schemas.models import Registration, Source, utcnow
from schemas.registry import refresh_problem
from tissu import registrations

COOKIE = "tissu_moderation"
SIGN_NAMESPACE = "tissu-moderation"
LOGINS = pages.SlidingWindow(limit=10, window=900)


def _fingerprint(secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), b"tissu-moderation", hashlib.sha256).hexdigest()[:32]


def _signed_in(datasette: Any, request: Any, secret: str) -> bool:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return False
    try:
        data = datasette.unsign(raw, SIGN_NAMESPACE)
    except Exception:  # noqa: BLE001 - a bad or old signature is just "not signed in"
        return False
    return isinstance(data, dict) and hmac.compare_digest(str(data.get("f", "")),
                                                          _fingerprint(secret))


def _listing() -> dict[str, Any]:
    with Session(pages.engine()) as session:
        waiting = registrations.pending(session)
        sources = list(session.exec(select(Source).order_by(Source.id)))  # type: ignore[arg-type]
        for row in [*waiting, *sources]:
            session.expunge(row)
    return {"pending": waiting, "sources": sources}


# What the page says after an action. The redirect carries only a code from this table (and a
# source id, shown only when it names a listed source), never free text: a link cannot make the
# page say anything else to a moderator.
MESSAGES = {
    "approved": "Inscription acceptée : source « {source} », collecte planifiée.",
    "rejected": "Inscription refusée.",
    "paused": "Source « {source} » mise en pause.",
    "resumed": "Source « {source} » réactivée.",
    "registration-invalid": "Impossible : numéro d'inscription invalide.",
    "registration-unknown": "Impossible : cette inscription est introuvable.",
    "registration-decided": "Impossible : cette inscription a déjà été traitée.",
    "refresh-invalid": ("Impossible : fréquence invalide ; écrivez par exemple 30m, 6h ou 1d "
                        "(de 5 minutes à 366 jours)."),
    "reason-missing": "Impossible : indiquez la raison du refus ; elle est envoyée à "
                      "l'association.",
    "source-unknown": "Impossible : cette source est introuvable.",
    "action-unknown": "Action inconnue.",
    "failed": "Impossible : l'action n'a pas abouti ; rechargez la page et réessayez.",
}
MAILED = {"1": " L'éditeur a été prévenu par e-mail.",
          "0": " (Pas d'e-mail envoyé : SMTP non configuré, ou pas de contact.)"}


def _act(action: str, form: dict[str, list[str]]) -> dict[str, str]:
    """Run one moderation action; returns the redirect's query: ``message`` (a key of
    :data:`MESSAGES`), and ``source`` / ``mail`` ("1" or "0") when they apply."""
    settings = pages.settings()
    engine = pages.engine()

    def field(name: str) -> str:
        return (form.get(name) or [""])[0].strip()

    if action not in {"approve", "reject", "pause", "resume"}:
        return {"message": "action-unknown"}
    if action in {"approve", "reject"}:
        raw = field("registration")
        if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
            return {"message": "registration-invalid"}
        number = int(raw)
        if action == "approve" and refresh_problem(field("refresh") or "6h") is not None:
            return {"message": "refresh-invalid"}
        if action == "reject" and not field("reason"):
            return {"message": "reason-missing"}
        with Session(engine) as session:
            registration = session.get(Registration, number)
            if registration is None:
                return {"message": "registration-unknown"}
            if registration.status != "pending":
                return {"message": "registration-decided"}
    else:
        with Session(engine) as session:
            if session.get(Source, field("source")) is None:
                return {"message": "source-unknown"}
    try:
        if action == "approve":
            decision = registrations.approve(engine, number, now=utcnow(), settings=settings,
                                             refresh=field("refresh") or "6h")
            assert decision.source is not None
            answer = {"message": "approved", "source": decision.source.id}
        elif action == "reject":
            decision = registrations.reject(engine, number, now=utcnow(), settings=settings,
                                            reason=field("reason"))
            answer = {"message": "rejected"}
        else:
            decision = registrations.set_paused(engine, field("source"), action == "pause",
                                                now=utcnow(), settings=settings)
            answer = {"message": "paused" if action == "pause" else "resumed",
                      "source": field("source")}
    except (registrations.ModerationError, ValueError):  # decided meanwhile by someone else
        return {"message": "failed"}
    return answer | {"mail": "1" if decision.mailed else "0"}


def message_text(args: Any, source_ids: set[str]) -> str | None:
    """The French text for a redirect's query (``message``, ``source``, ``mail``), or None.

    An unknown code shows nothing; a message naming a source shows only for a listed source.
    """
    template = MESSAGES.get(args.get("message") or "")
    if template is None:
        return None
    if "{source}" in template:
        source = args.get("source") or ""
        if source not in source_ids:
            return None
        template = template.format(source=source)
    return template + MAILED.get(args.get("mail") or "", "")


async def moderation_page(datasette: Any, request: Any) -> Response:
    """``/moderation``: sign in with the secret, then list and decide (see the module)."""
    secret = pages.settings().moderation_secret
    if not secret:
        return pages.render(request, "moderation/disabled.html", {}, "fr", status=404)
    signed_in = _signed_in(datasette, request, secret)
    if request.method == "POST":
        form = await pages.form_data(request)
        action = (form.get("action") or [""])[0]
        if action == "login":
            if not LOGINS.allow(pages.client_ip(request)):
                return pages.render(request, "moderation/login.html",
                                    {"error": "Trop d'essais : réessayez dans 15 minutes."},
                                    "fr", status=429)
            given = (form.get("secret") or [""])[0]
            if not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
                return pages.render(request, "moderation/login.html",
                                    {"error": "Secret incorrect."}, "fr", status=403)
            response = Response.redirect("/moderation")
            response.set_cookie(COOKIE, datasette.sign({"f": _fingerprint(secret)},
                                                       SIGN_NAMESPACE),
                                httponly=True, samesite="strict", path="/moderation")
            return response
        if not signed_in:
            return pages.render(request, "moderation/login.html", {}, "fr", status=403)
        if action == "logout":
            response = Response.redirect("/moderation")
            response.set_cookie(COOKIE, "", max_age=0, httponly=True, samesite="strict",
                                path="/moderation")
            return response
        answer = await pages.in_thread(_act, action, form)
        return Response.redirect(f"/moderation?{urlencode(answer)}")
    if not signed_in:
        return pages.render(request, "moderation/login.html", {}, "fr")
    context = await pages.in_thread(_listing)
    context["message"] = message_text(request.args, {s.id for s in context["sources"]})
    return pages.render(request, "moderation/list.html", context, "fr")


ROUTES = [(r"^/moderation$", moderation_page)]
