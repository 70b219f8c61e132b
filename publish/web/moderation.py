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
from urllib.parse import quote

from datasette.utils.asgi import Response
from sqlmodel import Session, select

from publish.web import pages
from schemas.models import Source, utcnow
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


def _act(action: str, form: dict[str, list[str]]) -> str:
    """Run one moderation action; returns the French message to show."""
    settings = pages.settings()
    engine = pages.engine()

    def field(name: str) -> str:
        return (form.get(name) or [""])[0].strip()

    try:
        if action == "approve":
            decision = registrations.approve(engine, int(field("registration")), now=utcnow(),
                                             settings=settings, refresh=field("refresh") or "6h")
            assert decision.source is not None
            message = f"Inscription acceptée : source « {decision.source.id} », collecte planifiée."
        elif action == "reject":
            decision = registrations.reject(engine, int(field("registration")), now=utcnow(),
                                            settings=settings, reason=field("reason"))
            message = "Inscription refusée."
        elif action in {"pause", "resume"}:
            decision = registrations.set_paused(engine, field("source"), action == "pause",
                                                now=utcnow(), settings=settings)
            message = f"Source « {field('source')} » " + ("mise en pause." if action == "pause"
                                                         else "réactivée.")
        else:
            return "Action inconnue."
    except (registrations.ModerationError, ValueError) as exc:
        return f"Impossible : {exc}"
    if decision.mailed:
        return message + " L'éditeur a été prévenu par e-mail."
    return message + " (Pas d'e-mail envoyé : SMTP non configuré, ou pas de contact.)"


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
        message = await pages.in_thread(_act, action, form)
        return Response.redirect(f"/moderation?message={quote(message)}")
    if not signed_in:
        return pages.render(request, "moderation/login.html", {}, "fr")
    context = await pages.in_thread(_listing)
    context["message"] = request.args.get("message")
    return pages.render(request, "moderation/list.html", context, "fr")


ROUTES = [(r"^/moderation$", moderation_page)]
