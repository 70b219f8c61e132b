"""Registrations of feeds by publishers, and their moderation (issue 6).

A publisher fills the registration page (no account); the submission is validated by
:class:`RegistrationForm`, checked against a honeypot and a per-IP rate limit, and stored as a
:class:`schemas.models.Registration` with status ``pending``. A moderator then approves it (a
:class:`schemas.models.Source` row with ``origin='registration'`` is added to the working
database's registry and scheduled; ``data/sources.yaml`` stays the seed), rejects it, or later
pauses the source. The publisher is told by e-mail (:mod:`tissu.mail`).

The contact e-mail is private: it is stored in ``Registration.contact_email`` and
``Source.contact_email``, neither of which is a public column (``publish/columns.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from connectors.http import web_url
from normalize.pipeline import slugify
from normalize.text import one_line
from schemas.models import RETIRED, Registration, Source
from schemas.registry import PublisherType, canonical_url, refresh_problem
from tissu.french import de
from tissu.mail import send_mail
from tissu.settings import Settings

LICENCE_OUVERTE = "Licence Ouverte 2.0"
_EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


class ModerationError(ValueError):
    """A moderation action is impossible; the message is plain French."""


class RegistrationForm(BaseModel):
    """What the registration page asks for. Every text is stripped; empty optionals are None.

    ``licence_choice``: ``licence-ouverte`` (the source agrees to Licence Ouverte 2.0) or
    ``own`` (``own_licence`` then names the source's own licence). ``themes`` are theme codes.
    ``url`` is an http(s) address; ``webcal://`` and ``webcals://`` are taken as ``https://``
    and the scheme of ``url`` and ``website`` is lower-cased (:func:`connectors.http.web_url`).
    """

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")
    organisation_name: str = Field(min_length=2, max_length=200)
    organisation_type: PublisherType
    website: str | None = Field(default=None, max_length=500)
    contact_email: str = Field(max_length=254)
    url: str = Field(min_length=8, max_length=2000)
    feed_name: str | None = Field(default=None, max_length=200)
    licence_choice: Literal["licence-ouverte", "own"]
    own_licence: str | None = Field(default=None, max_length=200)
    licence_consent: bool
    themes: list[str] = Field(default_factory=list, max_length=10)
    quartier: str | None = Field(default=None, max_length=100)
    language: Literal["fr", "en", "ar"] = "fr"

    @field_validator("organisation_name", "feed_name", "own_licence", "quartier", mode="before")
    @classmethod
    def _plain_text(cls, value: object, info: ValidationInfo) -> object:
        # names are shown in pages, feeds and source ids: markup is dropped, not kept escaped
        if not isinstance(value, str):
            return value
        text: str | None = value
        for _ in range(3):  # « &lt;b&gt; » decodes to a tag: clean until nothing changes
            cleaned = one_line(text)
            if cleaned == text:
                break
            text = cleaned
        return text or ("" if info.field_name == "organisation_name" else None)

    @field_validator("website", "feed_name", "own_licence", "quartier", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("website", "url", mode="before")
    @classmethod
    def _scheme(cls, value: object) -> object:
        # webcal(s):// (a calendar app's subscription link) as https://, HTTPS:// as https://
        return web_url(value) if isinstance(value, str) else value

    @field_validator("website", "url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("http-url")
        return value

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL_RE.match(value):
            raise ValueError("email")
        return value

    @field_validator("licence_consent")
    @classmethod
    def _consent(cls, value: bool) -> bool:
        if not value:
            raise ValueError("consent")
        return value

    @field_validator("themes")
    @classmethod
    def _themes(cls, value: list[str]) -> list[str]:
        return [t for t in dict.fromkeys(v.strip() for v in value) if re.match(r"^[a-z0-9-]+$", t)]

    @property
    def licence(self) -> str:
        """The licence text stored with the source."""
        if self.licence_choice == "own":
            return self.own_licence or ""
        return LICENCE_OUVERTE


def validate_form(data: dict[str, object]) -> tuple[RegistrationForm | None, dict[str, str]]:
    """Validate raw form fields.

    Returns:
        ``(form, {})`` when valid, else ``(None, {field: error code})`` where the code is one of
        ``required``, ``too-long``, ``too-short``, ``email``, ``http-url``, ``consent``,
        ``choice``, ``own-licence`` (translated by the page).
    """
    try:
        form = RegistrationForm.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            kind = error["type"]
            message = str(error.get("msg", ""))
            if kind == "missing":
                code = "required"
            elif kind == "string_too_short":
                code = "required" if not (data.get(name) or "") else "too-short"
            elif kind in {"string_too_long", "too_long"}:
                code = "too-long"
            elif kind in {"literal_error", "enum"}:
                code = "choice"
            elif kind in {"bool_parsing", "bool_type"}:
                code = "consent"
            else:
                code = message.removeprefix("Value error, ") or "invalid"
            errors.setdefault(name, code)
        return None, errors
    if form.licence_choice == "own" and not form.own_licence:
        return None, {"own_licence": "own-licence"}
    return form, {}


def client_hash(ip: str, secret: str) -> str:
    """Keyed SHA-256 of a client IP address (the address itself is never stored)."""
    key = (secret or "tissu-registrations").encode("utf-8")
    return hmac.new(key, ip.encode("utf-8"), hashlib.sha256).hexdigest()


def rate_limited(session: Session, hashed_ip: str, now: dt.datetime, settings: Settings) -> bool:
    """True when this client already sent ``registration_rate_limit`` registrations in the window.

    The count is read from the working store, so it holds across processes and restarts.
    """
    since = now - dt.timedelta(seconds=settings.registration_rate_window)
    count = session.exec(
        select(func.count()).select_from(Registration).where(
            Registration.client_hash == hashed_ip,
            Registration.submitted_at >= since,  # type: ignore[operator]
        )
    ).one()
    return int(count) >= settings.registration_rate_limit


#: Checks per client within the registrations' window, for each registration allowed: a
#: publisher checks, fixes the calendar, checks again; each registration runs one check too.
CHECKS_PER_REGISTRATION = 2


class CheckLimiter:
    """Limits on the feed doctor's checks (« Vérifier », and the check of a submission) per client.

    A check fetches a stranger's address and reads it in a sandboxed child for up to
    ``TISSU_CHECK_TIME_LIMIT`` seconds and ``TISSU_CHECK_MEMORY_MB`` (:mod:`connectors.sandbox`):
    it costs far more than storing a registration. One client (a key: use
    :func:`client_hash` of the IP address) gets:

    * at most ``limit`` checks per ``window`` seconds — by default
      :data:`CHECKS_PER_REGISTRATION` × ``registration_rate_limit`` over
      ``registration_rate_window`` (10 per hour), ``TISSU_CHECK_RATE_LIMIT`` to change it;
    * at most ``burst`` checks per ``burst_window`` seconds (3 per minute);
    * one check at a time.

    Counted in this process's memory (like the web server's other limits), not in the store:
    a restart forgets them. Idle clients are forgotten after ``window``.
    """

    def __init__(self, limit: int, window: float, *, burst: int = 3,
                 burst_window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.burst, self.burst_window = burst, burst_window
        self._hits: dict[str, deque[float]] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._calls = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckLimiter:
        """The limiter for ``settings`` (see the class): ``settings.check_rate_limit``
        (``TISSU_CHECK_RATE_LIMIT``) checks per window, else :data:`CHECKS_PER_REGISTRATION`
        times the registrations allowed."""
        limit = settings.check_rate_limit or \
            CHECKS_PER_REGISTRATION * settings.registration_rate_limit
        return cls(limit, settings.registration_rate_window)

    def acquire(self, client: str, now: float | None = None) -> str | None:
        """Start a check for ``client``: None when allowed (counted, and running until
        :meth:`release`), else why not: ``running`` (one is under way), ``burst`` (too many
        this minute) or ``rate`` (too many in the window). ``now``: monotonic seconds.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            self._calls += 1
            if self._calls % 256 == 0:
                self._forget_idle(now)
            if client in self._running:
                return "running"
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return "rate"
            if sum(1 for hit in hits if hit > now - self.burst_window) >= self.burst:
                return "burst"
            hits.append(now)
            self._running.add(client)
            return None

    def release(self, client: str) -> None:
        """End the check started by :meth:`acquire` (call it in a ``finally``)."""
        with self._lock:
            self._running.discard(client)

    def _forget_idle(self, now: float) -> None:
        for client in [c for c, hits in self._hits.items()
                       if c not in self._running and (not hits or hits[-1] <= now - self.window)]:
            del self._hits[client]

    def clients(self) -> int:
        """How many clients are remembered (for tests and monitoring)."""
        with self._lock:
            return len(self._hits)


def submit(session: Session, form: RegistrationForm, *, fmt: str, client_ip: str,
           now: dt.datetime, settings: Settings) -> Registration:
    """Store a valid registration as ``pending``.

    Args:
        fmt: the format found by the doctor (``ical`` | ``rss`` | ``atom``).
        client_ip: the submitter's address; only its keyed hash is stored.

    Raises:
        ModerationError: the same feed is already registered or waiting (message in French);
            addresses are compared by :func:`schemas.registry.canonical_url` (case of the
            scheme and host, default port, final ``/``, fragment).
    """
    address = canonical_url(form.url)
    taken = next((source_id for source_id, url in session.exec(select(Source.id, Source.url))
                  if canonical_url(url) == address), None)
    if taken is not None:
        raise ModerationError(f"cette adresse est déjà publiée par la source « {taken} »")
    waiting = session.exec(select(Registration.url).where(Registration.status == "pending"))
    if any(canonical_url(url) == address for url in waiting):
        raise ModerationError("cette adresse attend déjà la validation d'un modérateur")
    registration = Registration(
        submitted_at=now, organisation_name=form.organisation_name,
        organisation_type=form.organisation_type, website=form.website,
        contact_email=form.contact_email, url=form.url, format=fmt, feed_name=form.feed_name,
        licence=form.licence, themes=json.dumps(form.themes, ensure_ascii=False),
        quartier=form.quartier, language=form.language,
        client_hash=client_hash(client_ip, settings.moderation_secret),
    )
    session.add(registration)
    session.commit()
    session.refresh(registration)
    return registration


def pending(session: Session) -> list[Registration]:
    """Registrations waiting for a moderator, oldest first."""
    return list(session.exec(select(Registration).where(Registration.status == "pending")
                             .order_by(Registration.submitted_at)))  # type: ignore[arg-type]


def _unique_source_id(session: Session, name: str) -> str:
    base = slugify(name)[:60].strip("-") or "source"
    candidate, number = base, 2
    while session.get(Source, candidate) is not None:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def _pending_registration(session: Session, registration_id: int) -> Registration:
    registration = session.get(Registration, registration_id)
    if registration is None:
        raise ModerationError(f"inscription n°{registration_id} introuvable")
    if registration.status != "pending":
        raise ModerationError(f"inscription n°{registration_id} déjà traitée "
                              f"({registration.status})")
    return registration


@dataclass
class Decision:
    """What a moderation action did: the registration, the source, whether mail was sent."""

    registration: Registration | None
    source: Source | None
    mailed: bool


def approve(engine: Engine, registration_id: int, *, now: dt.datetime, settings: Settings,
            refresh: str = "6h", note: str | None = None) -> Decision:
    """Approve a pending registration: add its source to the registry and schedule it.

    The new :class:`Source` has ``origin='registration'``, ``status='active'`` and a slug made
    from the organisation name (``-2``, ``-3`` … when taken). Its harvest job is written to the
    scheduler's job store (first run at ``now``); the publisher gets an e-mail.

    Raises:
        ModerationError: unknown or already decided registration, or a ``refresh`` the registry
            would refuse (:func:`schemas.registry.refresh_problem`: 5 minutes to 366 days).
    """
    problem = refresh_problem(refresh)
    if problem is not None:
        raise ModerationError(f"fréquence {refresh.strip()!r} refusée : {problem}")
    refresh = refresh.strip()
    with Session(engine) as session:
        registration = _pending_registration(session, registration_id)
        source = Source(
            id=_unique_source_id(session, registration.organisation_name),
            name=registration.feed_name or f"Agenda {de(registration.organisation_name)}",
            publisher_name=registration.organisation_name,
            publisher_type=registration.organisation_type,
            publisher_website=registration.website, format=registration.format,
            url=registration.url, licence=registration.licence, themes=registration.themes,
            quartier=registration.quartier, refresh=refresh, status="active",
            origin="registration", contact_email=registration.contact_email,
        )
        registration.status, registration.decided_at = "approved", now
        registration.source_id, registration.decision_note = source.id, note
        session.add(source)
        session.add(registration)
        session.commit()
        session.refresh(source)
        session.refresh(registration)
        session.expunge_all()
    from tissu.scheduler import schedule_source

    schedule_source(engine, source, now)
    mailed = send_mail(
        settings, registration.contact_email,
        "Tissu : votre agenda est accepté",
        f"Bonjour,\n\nVotre agenda « {source.name} » ({source.url}) est accepté dans Tissu, "
        f"l'agenda solidaire ouvert de Pantin. Il sera collecté toutes les {refresh} ; ses "
        f"événements paraîtront après la prochaine collecte.\n\nÉtat de votre source : "
        f"{settings.public_url}/etat-des-sources\n\nMerci !\nL'équipe Tissu\n\n"
        f"— Your calendar « {source.name} » has been accepted in Tissu.\n",
    )
    return Decision(registration, source, mailed)


def reject(engine: Engine, registration_id: int, *, now: dt.datetime, settings: Settings,
           reason: str) -> Decision:
    """Reject a pending registration with a reason told to the publisher by e-mail.

    Raises:
        ModerationError: unknown or already decided registration, or an empty reason.
    """
    if not reason.strip():
        raise ModerationError("indiquez la raison du refus : elle est envoyée à l'association")
    with Session(engine) as session:
        registration = _pending_registration(session, registration_id)
        registration.status, registration.decided_at = "rejected", now
        registration.decision_note = reason.strip()
        session.add(registration)
        session.commit()
        session.refresh(registration)
        session.expunge(registration)
    mailed = send_mail(
        settings, registration.contact_email,
        "Tissu : votre inscription n'a pas été retenue",
        f"Bonjour,\n\nVotre inscription de l'agenda {registration.url} n'a pas été retenue, "
        f"pour la raison suivante :\n\n{reason.strip()}\n\nVous pouvez corriger et vous "
        f"inscrire à nouveau : {settings.public_url}/inscription\n\nL'équipe Tissu\n",
    )
    return Decision(registration, None, mailed)


def set_paused(engine: Engine, source_id: str, paused: bool, *, now: dt.datetime,
               settings: Settings) -> Decision:
    """Pause (or resume) a source. A moderator's pause wins over ``data/sources.yaml``.

    Its job is removed from (or put back in) the scheduler. The publisher, when known, is told.

    Raises:
        ModerationError: unknown source; a source retired from the registry (it is brought
            back by listing it again in the registry file, not by resuming it: its events
            would be published again without it being listed); a resume of a source the
            registry file itself pauses (the next harvest would pause it again); a source
            already paused (or already active): nothing is changed and nobody is told again.
            The registry's state is the one the last harvest read from the file.
    """
    with Session(engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            raise ModerationError(f"source « {source_id} » introuvable")
        if source.status == RETIRED:
            raise ModerationError(
                f"source « {source_id} » retirée du registre : rien n'est changé ; pour la "
                f"collecter et la publier de nouveau, remettez-la dans {settings.registry} "
                "(la prochaine collecte la reprend)")
        if (not paused and source.status == "paused" and not source.paused_by_moderator
                and source.origin == "registry"):
            # the registry's pause: a resume here would last until the next harvest
            raise ModerationError(
                f"source « {source_id} » en pause dans le registre : rien n'est changé ; pour "
                f"la reprendre, retirez « status: paused » de son entrée dans {settings.registry}")
        if paused == (source.status == "paused"):
            raise ModerationError(f"source « {source_id} » déjà "
                                  + ("en pause" if paused else "active")
                                  + " : rien n'est changé")
        source.paused_by_moderator = paused
        source.status = "paused" if paused else "active"
        session.add(source)
        session.commit()
        session.refresh(source)
        session.expunge(source)
    from tissu.scheduler import schedule_source, unschedule_source

    if paused:
        unschedule_source(engine, source_id)
    else:
        schedule_source(engine, source, now)
    mailed = False
    if source.contact_email:
        state = "mise en pause" if paused else "réactivée"
        mailed = send_mail(
            settings, source.contact_email, f"Tissu : votre source est {state}",
            f"Bonjour,\n\nLa collecte de votre agenda « {source.name} » ({source.url}) est "
            f"{state} par l'équipe Tissu.\n\nL'équipe Tissu\n",
        )
    return Decision(None, source, mailed)
