"""The feed doctor: fetch a URL given by a publisher and say, in plain French, what Tissu sees.

Used by ``tissu check URL`` and by the "Vérifier" step of the registration page. The doctor runs
the real stages, not a copy of them: :func:`connectors.http.fetch` (which refuses unsafe
addresses), the connector for the detected format (:mod:`connectors.ical`, :mod:`connectors.feeds`),
:func:`connectors.harvest.store_records` and :func:`normalize.pipeline.normalize_source`, in a
throw-away in-memory working store. What it shows is therefore what will be published.

The fetch runs in the caller's process (address guard, size and time limits of
:mod:`connectors.http`); parsing and normalising the fetched bytes (:func:`examine_content`) run
in a child process bounded in time and memory (:mod:`connectors.sandbox`), killed when it
overruns: a hostile file cannot hold the web server's CPU or memory.

It reports (a) what was found: format, number of events, the next five occurrences as published;
(b) each problem with its fix: no time zone, no end times, only past events, a web page instead of
a feed (with how to get a calendar link from Google Agenda, Nextcloud/Framagenda, Outlook,
Mobilizon, Gancio, OpenAgenda and WordPress' The Events Calendar), a wrong encoding, events already
published by another source, unreadable events, a feed without event dates.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import threading
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

from babel.dates import format_date
from rapidfuzz import fuzz
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, col, create_engine, select

from connectors import http as http_module
from connectors import parser_for
from connectors.base import Problem
from connectors.feeds import looks_like_feed
from connectors.harvest import store_records
from connectors.sandbox import Limits, Sandbox, SandboxError
from normalize import pipeline as pipeline_module
from normalize.events import (
    END_BEFORE_START_CODE,
    MAX_OCCURRENCES,
    SOURCE_BUDGET_CODE,
    TOO_DENSE_CODE,
    TOO_LONG_CODE,
    UNKNOWN_TIMEZONE_CODE,
    Horizon,
    NormalizeWarning,
)
from normalize.pipeline import normalize_source
from schemas.models import Event, Occurrence, Source, utcnow
from schemas.registry import canonical_url
from tissu.french import accord
from tissu.settings import Settings, get_settings

FORMAT_LABELS = {
    "ical": "calendrier iCalendar (.ics)",
    "rss": "flux RSS",
    "atom": "flux Atom",
    "html": "page web",
    "json": "fichier JSON",
    "unknown": "format inconnu",
}
PREVIEW_SIZE = 5
#: Findings of a check whose reading did not finish (see :attr:`Diagnosis.stopped`).
STOPPED_CODES = frozenset({"time-limit", "memory-limit", "busy", "internal"})
#: Findings of a check that got no file to read (nothing can be said of its format).
UNREAD_CODES = frozenset({"fetch", "unsafe-url", "too-large", "too-slow", "busy"})
_CHECK_ID = "verification"
_XML_ENCODING_RE = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']", re.IGNORECASE)
_UTF8_NAMES = {"utf-8", "utf8"}

# How to obtain a calendar (or feed) link from the tools associations use. Plain French,
# one entry per platform, shown when the URL is a web page.
HOWTO: dict[str, tuple[str, str]] = {
    "google": (
        "Google Agenda",
        ("Sur ordinateur, ouvrez Google Agenda, survolez votre agenda dans la colonne de gauche, "
        "cliquez sur ⋮ puis « Paramètres et partage ». Dans « Autorisations d'accès », cochez "
        "« Rendre disponible publiquement ». Copiez ensuite l'« Adresse publique au format iCal » "
        "(elle se termine par basic.ics)."),
    ),
    "nextcloud": (
        "Nextcloud ou Framagenda",
        ("Dans l'application Agenda, cliquez sur ⋯ à côté de votre agenda puis « Partager » (ou "
        "l'icône de partage). Activez « Partager le lien », ouvrez le menu ⋯ de ce lien et "
        "choisissez « Copier le lien d'abonnement » : l'adresse contient "
        "/remote.php/dav/public-calendars/ et se termine par ?export."),
    ),
    "outlook": (
        "Outlook (Microsoft 365, Outlook.com)",
        ("Dans Outlook sur le web : Paramètres ⚙ → Calendrier → Calendriers partagés → « Publier "
        "un calendrier ». Choisissez l'agenda et « Peut afficher tous les détails », cliquez sur "
        "« Publier », puis copiez le lien ICS."),
    ),
    "mobilizon": (
        "Mobilizon",
        ("Chaque groupe Mobilizon publie ses événements en iCalendar : copiez l'adresse de la page "
        "du groupe et ajoutez /feed/ics à la fin (par exemple "
        "https://mobilizon.fr/@mon-groupe/feed/ics)."),
    ),
    "gancio": (
        "Gancio",
        ("Une instance Gancio publie son agenda à l'adresse https://<votre-instance>/feed/ics "
        "(iCalendar) ; on peut filtrer par lieu ou par étiquette, par exemple "
        "/feed/ics?places=1 ou /feed/ics?tags=solidarite. Le menu « Exporter » de l'instance "
        "donne ces liens."),
    ),
    "openagenda": (
        "OpenAgenda",
        ("Sur la page de votre agenda OpenAgenda, ouvrez le menu « Exporter » (ou « Partager ») "
        "et choisissez le format iCal : copiez l'adresse du lien proposé."),
    ),
    "the-events-calendar": (
        "WordPress avec The Events Calendar",
        ("Ajoutez ?ical=1 à l'adresse de la liste des événements, par exemple "
        "https://votre-site.fr/events/?ical=1 (ou /evenements/?ical=1). C'est aussi le lien du "
        "bouton « Exporter les événements » en bas de la liste. Le flux RSS habituel de "
        "WordPress (/feed/) ne contient pas les dates des événements."),
    ),
}

# Markers that reveal which tool produced a web page (generator meta, script and link URLs).
_PLATFORM_MARKERS: dict[str, tuple[str, ...]] = {
    "google": ("calendar.google.com",),
    "nextcloud": ("nextcloud", "framagenda", "/remote.php/dav", "/apps/calendar"),
    "outlook": ("outlook.office365.com/owa/calendar", "outlook.live.com/owa/calendar"),
    "mobilizon": ("mobilizon",),
    "gancio": ("gancio",),
    "openagenda": ("openagenda.com", "cibul.net"),
    "the-events-calendar": ("the-events-calendar", "tribe-events", "tribe_events"),
}


@dataclass
class Finding:
    """One problem found by the doctor, in plain French, with how to fix it.

    ``code``: ``fetch`` | ``too-large`` | ``too-slow`` | ``empty-file`` | ``unsafe-url`` |
    ``web-page`` | ``unsupported`` | ``encoding`` |
    ``parse-error`` | ``no-event-dates`` | ``empty`` | ``no-timezone`` | ``unknown-timezone`` |
    ``no-end`` | ``only-past`` | ``duplicate`` | ``already-registered`` | ``too-dense`` |
    ``end-before-start``, ``time-limit`` | ``memory-limit`` (the sandbox stopped the reading),
    ``busy`` (too many checks at once), ``internal``, or a
    parser warning (:func:`parser_findings`:
    ``truncated``, ``bad-rrule``, ``bad-property``, ``bozo``, ``fallback``, …). ``severity``: ``error`` (the source cannot be used as is) or
    ``warning`` (it can, but residents will see something wrong). ``examples`` are short lines
    (event titles, line numbers, links).
    """

    code: str
    severity: str
    message: str
    fix: str
    examples: list[str] = field(default_factory=list)


@dataclass
class PreviewItem:
    """One upcoming occurrence exactly as it will be published (Europe/Paris local times)."""

    title: str
    start_local: str
    end_local: str | None
    all_day: bool
    location: str | None
    status: str
    url: str | None

    @property
    def when(self) -> str:
        """The date and times in French words, e.g. ``mardi 1er décembre 2026, 04:00 → 06:00``."""
        return french_when(self.start_local, self.end_local, self.all_day)


def french_date(day: dt.date) -> str:
    """``mardi 1er décembre 2026``, ``mercredi 2 décembre 2026``: Babel's French CLDR names.

    French writes the first of the month « 1er », which CLDR date patterns cannot express.
    """
    text = format_date(day, "EEEE d MMMM y", locale="fr")
    return text.replace(" 1 ", " 1er ", 1) if day.day == 1 else text


def french_when(start_local: str, end_local: str | None, all_day: bool) -> str:
    """Local ISO 8601 start/end (Europe/Paris, or dates when ``all_day``) in French words.

    The end of an all-day occurrence is exclusive (RFC 5545), so a one-day event shows one date.
    """
    if all_day:
        start = dt.date.fromisoformat(start_local[:10])
        end = dt.date.fromisoformat(end_local[:10]) - dt.timedelta(days=1) if end_local else start
        text = french_date(start)
        return text if end <= start else f"du {text} au {french_date(end)}"
    start_dt = dt.datetime.fromisoformat(start_local)
    text = f"{french_date(start_dt.date())}, {start_dt:%H:%M}"
    if end_local:
        end_dt = dt.datetime.fromisoformat(end_local)
        if end_dt.date() == start_dt.date():
            text += f" → {end_dt:%H:%M}"
        else:
            text += f" → {french_date(end_dt.date())}, {end_dt:%H:%M}"
    return text


@dataclass
class Diagnosis:
    """What the doctor found at one URL.

    ``format`` is a registry format (``ical`` | ``rss`` | ``atom``) or ``html`` | ``json`` |
    ``unknown``; ``events`` counts the event series, ``upcoming`` the occurrences ending after
    ``checked_at`` (aware UTC); ``preview`` holds the next :data:`PREVIEW_SIZE` of them.
    ``calendar_links`` are feed or calendar links found on a web page; ``platforms`` the tools
    recognised on it; ``notes`` say how the address was read (e.g. ``webcal://`` as
    ``https://``), in French.
    """

    url: str
    checked_at: dt.datetime
    final_url: str | None = None
    format: str = "unknown"
    events: int = 0
    news: int = 0
    upcoming: int = 0
    preview: list[PreviewItem] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    calendar_links: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def format_label(self) -> str:
        """The format in French words."""
        return FORMAT_LABELS.get(self.format, self.format)

    @property
    def fetched(self) -> bool:
        """False when the check got no file to read (the address was refused, the download
        failed or the check was turned away): then no format is reported."""
        return not any(p.code in UNREAD_CODES for p in self.problems)

    @property
    def usable(self) -> bool:
        """True when the URL can be registered as a source (a feed with no blocking problem)."""
        return self.format in {"ical", "rss", "atom"} and not any(
            p.severity == "error" for p in self.problems
        )

    @property
    def stopped(self) -> bool:
        """True when the reading was stopped (a limit of the sandbox, too many checks, a failure
        of the check itself): the counts of events are then unknown, not zero."""
        return any(p.code in STOPPED_CODES for p in self.problems)

    def codes(self) -> list[str]:
        """The problem codes, in order."""
        return [p.code for p in self.problems]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (datetimes as ISO 8601 UTC)."""
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        data["format_label"] = self.format_label
        data["usable"] = self.usable
        return data

    def to_text(self) -> str:
        """The report as plain French text (what ``tissu check`` prints)."""
        lines = [f"Adresse vérifiée : {self.url}"]
        lines.extend(f"Remarque : {note}" for note in self.notes)
        if self.final_url and self.final_url != self.url:
            lines.append(f"Après redirection : {self.final_url}")
        if self.fetched:
            lines.append(f"Format trouvé : {self.format_label}")
        if self.format in {"ical", "rss", "atom"} and not self.stopped:
            lines.append(f"Événements : {self.events} ; séances à venir : {self.upcoming}")
            if self.news:
                lines.append(f"Actualités sans date d'événement (non publiées) : {self.news}")
        if self.preview:
            lines.append(accord("[La|Les {n}] prochaine(s) séance(s), telle(s) qu'elle(s) "
                                "[sera|seront] publiée(s) :", len(self.preview)))
            for item in self.preview:
                when = item.when
                where = f" — {item.location}" if item.location else ""
                cancelled = " (annulée)" if item.status == "cancelled" else ""
                lines.append(f"  • {when} : {item.title}{where}{cancelled}")
        if not self.problems:
            lines.append("Aucun problème trouvé : ce calendrier peut être inscrit tel quel.")
        for problem in self.problems:
            label = "Problème" if problem.severity == "error" else "À corriger"
            lines.append(f"{label} : {problem.message}")
            lines.extend(f"    - {example}" for example in problem.examples)
            lines.append(f"  Comment faire : {problem.fix}")
        return "\n".join(lines)


def detect_format(content: bytes) -> str:
    """Guess the format from the bytes: ``ical``, ``rss`` (RSS or Atom), ``html``, ``json``.

    Only sniffs the first 4 KiB; parsing is left to the connectors. Returns ``unknown`` otherwise.
    """
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    upper = head[:64].upper()
    if upper.startswith(b"BEGIN:VCALENDAR") or b"\nBEGIN:VCALENDAR" in head[:512].upper():
        return "ical"
    if looks_like_feed(head):
        return "rss"
    lowered = head.lower()
    if b"<html" in lowered or b"<!doctype html" in lowered or b"<body" in lowered:
        return "html"
    if head[:1] in (b"{", b"["):
        return "json"
    return "unknown"


def _encoding_findings(content: bytes, fmt: str) -> list[Finding]:
    """Compare an XML feed's declared encoding with its bytes (no parsing of the feed)."""
    if fmt not in {"rss", "atom"}:
        return []
    match = _XML_ENCODING_RE.match(content.lstrip(b"\xef\xbb\xbf"))
    declared = match.group(1).decode("ascii").lower() if match else "utf-8"
    shown = declared
    try:
        declared = codecs.lookup(declared).name
    except LookupError:
        return [Finding("encoding", "warning",
                        f"le flux déclare un encodage inconnu ({declared})",
                        "Enregistrez le flux en UTF-8 et déclarez encoding=\"UTF-8\".")]
    try:
        content.decode("utf-8")
        valid_utf8 = True
    except UnicodeDecodeError:
        valid_utf8 = False
    non_ascii = any(byte > 127 for byte in content.lstrip(b"\xef\xbb\xbf"))
    if declared.replace("_", "-") in _UTF8_NAMES and not valid_utf8:
        return [Finding(
            "encoding", "warning",
            "le flux annonce l'UTF-8 mais contient des octets qui ne sont pas de l'UTF-8 : "
            "les accents risquent d'être illisibles",
            "Enregistrez le fichier en UTF-8 (dans votre éditeur : « Enregistrer sous » → "
            "encodage UTF-8), ou déclarez l'encodage réel dans la première ligne <?xml …?>.",
        )]
    if declared.replace("_", "-") not in _UTF8_NAMES and valid_utf8 and non_ascii:
        return [Finding(
            "encoding", "warning",
            f"le flux déclare l'encodage {shown} mais il est écrit en UTF-8 : les accents "
            "seront mal lus (par exemple « Ã© » au lieu de « é »)",
            "Remplacez la déclaration par <?xml version=\"1.0\" encoding=\"UTF-8\"?> dans le "
            "modèle du flux, ou réglez l'encodage du site sur UTF-8.",
        )]
    return []


def _web_page_findings(content: bytes, base_url: str, diagnosis: Diagnosis) -> list[Finding]:
    """Look for calendar or feed links and for the tool behind a web page."""
    import lxml.html

    try:
        document = lxml.html.fromstring(content)
    except Exception:  # noqa: BLE001 - an unreadable page still gets the generic advice
        document = None
    links: list[str] = []
    feeds: list[str] = []
    markers: list[str] = []
    if document is not None:
        for element in document.iter("link"):
            kind = (element.get("type") or "").lower()
            if element.get("rel", "").lower() != "alternate":
                continue
            href = urljoin(base_url, element.get("href") or "")
            if kind == "text/calendar":
                links.append(href)
            elif kind in {"application/rss+xml", "application/atom+xml"} and \
                    "comments" not in (element.get("title") or "").lower():
                feeds.append(href)
        for element in document.iter("a"):
            href = (element.get("href") or "").strip()
            if href.lower().startswith("webcal://") or re.search(
                r"(\.ics|[?&]ical=1|/feed/ics|[?&]export)\b", href, re.IGNORECASE
            ):
                links.append(urljoin(base_url, href))
        for element in document.iter("meta"):
            if (element.get("name") or "").lower() == "generator":
                markers.append((element.get("content") or "").lower())
        for element in document.iter("script", "iframe", "link"):
            markers.append((element.get("src") or element.get("href") or "").lower())
        markers.extend(cls.lower() for cls in document.xpath("//@class")[:5000])
    haystack = " ".join(markers) + " " + base_url.lower()
    platforms = [name for name, needles in _PLATFORM_MARKERS.items()
                 if any(needle in haystack for needle in needles)]
    links = list(dict.fromkeys(links))[:10]
    feeds = list(dict.fromkeys(feeds))[:5]
    diagnosis.calendar_links = links + feeds
    diagnosis.platforms = platforms
    examples = [f"lien de calendrier trouvé sur la page : {link}" for link in links]
    examples += [f"flux trouvé sur la page (souvent sans dates d'événements) : {link}"
                 for link in feeds]
    google = _google_ics(base_url)
    if google:
        examples.insert(0, f"adresse iCalendar de cet agenda Google : {google}")
    ordered = platforms + [name for name in HOWTO if name not in platforms]
    how = " ".join(f"[{HOWTO[name][0]}] {HOWTO[name][1]}" for name in ordered)
    first = ("Essayez d'abord le lien de calendrier trouvé sur la page ci-dessus. "
             if links or google else "")
    if "wordpress" in haystack and "the-events-calendar" not in platforms:
        first += ("Ce site est fait avec WordPress : son flux RSS (/feed/) ne donne pas les "
                  "dates des événements ; il faut l'export iCalendar de l'extension d'agenda. ")
    return [Finding(
        "web-page", "error",
        "cette adresse est une page web, pas un calendrier ni un flux : Tissu a besoin du lien "
        "d'export de votre agenda (iCalendar .ics de préférence, ou RSS/Atom avec dates)",
        first + "Voici comment obtenir ce lien selon votre outil : " + how,
        examples,
    )]


def _google_ics(url: str) -> str | None:
    """The public iCal address of a Google Calendar embed or share URL, if it is one."""
    parsed = urlparse(url)
    if parsed.hostname != "calendar.google.com":
        return None
    ids = parse_qs(parsed.query).get("src") or parse_qs(parsed.query).get("cid")
    if not ids:
        return None
    return f"https://calendar.google.com/calendar/ical/{ids[0]}/public/basic.ics"


def _fold(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_text.lower()).split())


def _duplicates(upcoming: list[tuple[str, str, dt.datetime | None]], engine: Engine,
                exclude_source: str | None, same_feed: set[str] | None = None) -> list[str]:
    """Upcoming occurrences that another source of the working store already publishes.

    ``upcoming`` holds (event UID, title, start as aware UTC). A match is an occurrence of another
    source starting at the same instant whose title is at least 90 % similar (rapidfuzz
    token_sort_ratio on accent-folded text) or whose event has the same UID. One line per event.
    """
    found: dict[str, str] = {}
    skipped = {exclude_source, *(same_feed or set())} - {None}
    with Session(engine) as session:
        for uid, title, start in upcoming:
            if uid in found:
                continue
            query = select(Occurrence, Event).where(
                Occurrence.event_id == Event.id, Occurrence.start_utc == start,
                Event.removed_at_source.is_(None))  # type: ignore[union-attr]
            if skipped:  # the source being re-checked, and sources of the very same feed
                query = query.where(col(Event.source_id).not_in(skipped))
            for occurrence, other in session.exec(query.limit(50)):
                other_title = occurrence.title or other.title
                if other.source_uid == uid or \
                        fuzz.token_sort_ratio(_fold(other_title), _fold(title)) >= 90:
                    found[uid] = f"« {title} » : déjà publié par la source « {other.source_id} »"
                    break
    return list(found.values())


def _preview(session: Session, now: dt.datetime) -> tuple[int, list[PreviewItem]]:
    rows = session.exec(
        select(Occurrence, Event).where(Occurrence.event_id == Event.id,
                                        Occurrence.end_utc >= now)  # type: ignore[operator]
        .order_by(Occurrence.start_utc)  # type: ignore[arg-type]
    ).all()
    items = [
        PreviewItem(
            title=occurrence.title or event.title,
            start_local=occurrence.start_local,
            end_local=occurrence.end_local if occurrence.end_local != occurrence.start_local
            else None,
            all_day=occurrence.all_day,
            location=occurrence.location or event.location,
            status="cancelled" if event.status == "cancelled" else occurrence.status,
            url=event.url,
        )
        for occurrence, event in rows[:PREVIEW_SIZE]
    ]
    return len(rows), items


# The parser's warnings (connectors.base.Problem codes) the doctor explains, with what to do.
# ``encoding`` has its own finding; ``empty`` is the « aucun événement » finding.
_PARSER_FINDINGS: dict[str, tuple[str, str]] = {
    "truncated": (
        ("le fichier s'arrête avant la fin (END:VCALENDAR manquant) : il a sans doute été coupé "
        "et des événements peuvent manquer"),
        ("Le serveur a envoyé un fichier incomplet. Ouvrez l'adresse dans un navigateur et "
        "regardez si le fichier se termine par END:VCALENDAR ; réessayez plus tard. Si le "
        "fichier reste coupé, l'agenda est peut-être trop gros pour l'hébergeur : archivez les "
        "anciens événements ou demandez à l'hébergeur d'augmenter la limite."),
    ),
    "bad-rrule": (
        ("la règle de répétition (RRULE) de {n} événement(s) est illisible : seule la première "
        "séance de [celui-ci|chacun] sera publiée"),
        ("Ouvrez ces événements répétés dans votre logiciel d'agenda et choisissez à nouveau la "
        "répétition (chaque jour, chaque semaine, chaque mois ou chaque année) ; dans le "
        "fichier, FREQ doit valoir DAILY, WEEKLY, MONTHLY ou YEARLY (RFC 5545)."),
    ),
    "bad-property": (
        "{n} information(s) illisible(s) dans des événements, ignorée(s) à la publication",
        ("Ouvrez ces événements dans votre logiciel d'agenda et saisissez à nouveau les champs "
        "nommés ci-dessous, puis vérifiez à nouveau."),
    ),
    "bad-line": (
        "{n} ligne(s) illisible(s) dans le fichier, ignorée(s)",
        ("Ces lignes ne respectent pas le format iCalendar : exportez l'agenda à nouveau depuis "
        "votre logiciel plutôt que de modifier le fichier à la main."),
    ),
    "fallback": (
        "le fichier est mal formé : Tissu l'a lu événement par événement",
        ("Exportez l'agenda à nouveau depuis votre logiciel d'agenda ; un fichier modifié à la "
        "main ou coupé en route donne souvent ce problème."),
    ),
    "bozo": (
        ("le flux n'est pas du XML correct : Tissu l'a lu quand même, mais des éléments peuvent "
        "manquer ou être coupés"),
        ("Le plus souvent un « & » ou un « < » n'est pas échappé dans un titre ou un lien (il "
        "faut écrire &amp; et &lt;), ou une balise n'est pas fermée. Corrigez le modèle du flux "
        "(ou l'extension qui le produit), puis vérifiez-le avec le validateur "
        "https://validator.w3.org/feed/."),
    ),
    "duplicate-uid": (
        ("{n} événement(s) figure(nt) deux fois avec le même identifiant (UID) : une seule "
        "version est gardée"),
        ("Supprimez les doublons dans votre agenda, ou exportez-le à nouveau : chaque événement "
        "doit avoir un UID qui lui est propre."),
    ),
    "repeated-property": (
        ("{n} événement(s) répète(nt) une information qui ne peut figurer qu'une fois : seule "
        "la première est gardée"),
        "Ouvrez ces événements dans votre logiciel d'agenda et enregistrez-les à nouveau.",
    ),
    "no-uid": (
        ("{n} élément(s) sans identifiant : Tissu en fabrique un, mais une modification de "
        "l'élément pourra le faire apparaître en double"),
        ("Réglez votre outil pour qu'il donne à chaque événement un identifiant stable (UID "
        "dans un calendrier, guid dans un flux RSS, id dans un flux Atom)."),
    ),
    "no-vcalendar": (
        "les événements sont publiés sans l'enveloppe BEGIN:VCALENDAR … END:VCALENDAR",
        ("Exportez l'agenda entier depuis votre logiciel d'agenda plutôt que des événements "
        "isolés."),
    ),
}
_PARSER_FINDING_DEFAULT = (
    "{n} avertissement(s) du lecteur : le fichier a été lu, avec les réserves ci-dessous",
    ("Exportez l'agenda à nouveau depuis votre logiciel d'agenda, puis vérifiez à nouveau ; si "
    "le message persiste, signalez-le à l'équipe de Tissu."),
)


def parser_findings(warnings: list[Problem], fmt: str = "ical") -> list[Finding]:
    """The parser's warnings as doctor findings, one per kind, each with its fix (French).

    ``warnings`` are :class:`connectors.base.Problem` from a connector (their ``code`` says the
    kind); ``fmt`` is ``ical`` or ``rss``. The harvest reports the same warnings (RFC 5545 for
    calendars, RSS 2.0 / Atom RFC 4287 for feeds). Encoding warnings and « no VEVENT » are left
    to their own findings; a block-wise re-read caused by a cut file is not repeated. An
    unreadable RRULE gets its own finding (``bad-rrule``): the series keeps one session. Up to 5
    examples per finding (with their line numbers). Severity is ``warning``.
    """
    groups: dict[str, list[Problem]] = {}
    for warning in warnings:
        code = warning.code or "other"
        if code in {"encoding", "empty"}:
            continue
        if code == "duplicate":  # « duplicate » is an event another source publishes
            code = "duplicate-uid"
        groups.setdefault(code, []).append(warning)
    if "truncated" in groups:
        groups.pop("fallback", None)
    findings = []
    for code, problems in groups.items():
        message, fix = _PARSER_FINDINGS.get(code, _PARSER_FINDING_DEFAULT)
        if fmt != "ical":
            message = message.replace("le fichier", "le flux")
        findings.append(Finding(
            code if code in _PARSER_FINDINGS else "parser-warning", "warning",
            accord(message, len(problems)), fix, [str(p) for p in problems[:5]],
        ))
    return findings


def _scratch_engine() -> Engine:
    engine = create_engine("sqlite://", poolclass=StaticPool,
                           connect_args={"check_same_thread": False})
    SQLModel.metadata.create_all(engine)
    return engine


#: (event UID, title, start as aware UTC) of the upcoming occurrences of a checked feed.
Upcoming = list[tuple[str, str, dt.datetime | None]]


def examine_content(
    content: bytes,
    url: str,
    *,
    now: dt.datetime,
    settings: Settings,
    final_url: str | None = None,
) -> tuple[Diagnosis, Upcoming]:
    """Parse and normalise bytes fetched from ``url`` in a scratch store; no working store.

    This is the part of the check that reads the publisher's bytes: :func:`diagnose_content`
    runs it in a :mod:`connectors.sandbox` child, bounded in time and memory. Everything it
    takes and returns is picklable.

    Returns:
        The diagnosis without the comparison with other sources, and the upcoming occurrences
        (at most 500, by start) to compare with them (:data:`Upcoming`).
    """
    diagnosis = Diagnosis(url=url, checked_at=now, final_url=final_url)
    upcoming: Upcoming = []
    if not content.strip(b"\xef\xbb\xbf \t\r\n"):
        diagnosis.format = "unknown"
        diagnosis.problems.append(Finding(
            "empty-file", "error",
            "le fichier est vide" if not content else
            "le fichier est vide (il ne contient que des espaces ou des retours à la ligne)",
            "Le serveur a répondu sans rien envoyer. Ouvrez l'adresse dans un navigateur "
            "privé : si le fichier est vide là aussi, vérifiez que l'agenda est public et "
            "qu'il contient des événements, ou exportez-le à nouveau depuis votre logiciel "
            "d'agenda ; sinon réessayez dans quelques minutes.",
        ))
        return diagnosis, upcoming
    fmt = detect_format(content)
    if fmt == "html":
        diagnosis.format = "html"
        diagnosis.problems.extend(_web_page_findings(content, final_url or url, diagnosis))
        return diagnosis, upcoming
    if fmt in {"json", "unknown"}:
        diagnosis.format = fmt
        diagnosis.problems.append(Finding(
            "unsupported", "error",
            "ce fichier n'est ni un calendrier iCalendar ni un flux RSS ou Atom",
            "Donnez l'adresse d'export iCalendar (.ics) de votre agenda. "
            + " ".join(f"[{label}] {text}" for label, text in HOWTO.values()),
        ))
        return diagnosis, upcoming
    diagnosis.problems.extend(_encoding_findings(content, fmt))
    parsed = parser_for(fmt)(content, _CHECK_ID)
    diagnosis.format = parsed.detected_format if parsed.detected_format in {"rss", "atom"} \
        else fmt
    diagnosis.news = parsed.news
    for warning in parsed.warnings:
        if warning.code == "encoding" and not any(p.code == "encoding"
                                                  for p in diagnosis.problems):
            diagnosis.problems.append(Finding(
                "encoding", "warning",
                f"{warning.message} : des accents peuvent être mal lus",
                "Exportez ou enregistrez le calendrier en UTF-8 (c'est le réglage par défaut "
                "des logiciels d'agenda récents).",
            ))
    diagnosis.problems.extend(parser_findings(parsed.warnings, fmt))
    if parsed.errors:
        diagnosis.problems.append(Finding(
            "parse-error", "error" if not parsed.records else "warning",
            accord("{n} élément(s) illisible(s), ignoré(s) à la publication",
                   len(parsed.errors)),
            "Ouvrez ces événements dans votre logiciel d'agenda et corrigez leurs dates "
            "(ou supprimez-les puis recréez-les), puis vérifiez à nouveau.",
            [str(problem) for problem in parsed.errors[:5]],
        ))
    if parsed.events == 0:
        if parsed.news:
            diagnosis.problems.append(Finding(
                "no-event-dates", "error",
                accord("ce flux contient {n} article(s) mais aucune date d'événement : "
                       "la date de publication d'un article n'est pas la date d'un événement",
                       parsed.news),
                "Donnez plutôt l'export iCalendar de votre agenda. "
                + " ".join(f"[{label}] {text}" for label, text in HOWTO.values()),
            ))
        elif not parsed.errors:
            diagnosis.problems.append(Finding(
                "empty", "error",
                f"ce {'calendrier' if fmt == 'ical' else 'flux'} ne contient aucun événement",
                "Vérifiez que l'agenda partagé est bien celui où vous saisissez vos "
                "événements, et qu'il est public.",
            ))
        return diagnosis, upcoming

    settings_horizon = Horizon.around(now, settings.horizon_past_days,
                                      settings.horizon_future_days)
    scratch = _scratch_engine()
    with Session(scratch) as session:
        source = Source(id=_CHECK_ID, name="vérification", publisher_name="vérification",
                        publisher_type="autre", format=diagnosis.format, url=final_url or url,
                        licence="")
        session.add(source)
        session.commit()
        store_records(session, _CHECK_ID, parsed, now, complete=True)
        outcome = normalize_source(session, source, settings_horizon, now)
        # its warnings with their codes (normalize.events), each « uid : … » as the
        # association knows its events, without the scratch source's name
        warned = [NormalizeWarning(str(w).removeprefix(f"{_CHECK_ID} : "), w.code, w.uid,
                                   w.tzid)
                  for w in outcome.warnings if isinstance(w, NormalizeWarning)]
        events = list(session.exec(select(Event)))
        diagnosis.events = len(events)
        diagnosis.upcoming, diagnosis.preview = _preview(session, now)
        upcoming = [
            (event.source_uid, occurrence.title or event.title, occurrence.start_utc)
            for occurrence, event in session.exec(
                select(Occurrence, Event).where(Occurrence.event_id == Event.id,
                                                Occurrence.end_utc >= now)  # type: ignore[operator]
                .order_by(Occurrence.start_utc).limit(500))  # type: ignore[arg-type]
        ]
        for event in events:
            session.expunge(event)
    if outcome.errors and not any(p.code == "parse-error" for p in diagnosis.problems):
        diagnosis.problems.append(Finding(
            "parse-error", "warning",
            accord("{n} événement(s) impossible(s) à lire, ignoré(s)", len(outcome.errors)),
            "Corrigez leurs dates dans votre logiciel d'agenda, puis vérifiez à nouveau.",
            [error.removeprefix(f"{_CHECK_ID} : ") for error in outcome.errors[:5]],
        ))
    dense = [w for w in warned if w.code in (TOO_DENSE_CODE, TOO_LONG_CODE)]
    # the source's budget of sessions (normalize.pipeline): past it, events keep no session
    cap = pipeline_module.MAX_SOURCE_OCCURRENCES
    reached = any(w.code == SOURCE_BUDGET_CODE for w in warned)
    if dense or reached:
        budget = (f"Tissu publie au plus {cap} séances par agenda : au-delà, les événements "
                  "sont gardés sans leurs séances")
        diagnosis.problems.append(Finding(
            "too-dense", "warning",
            accord(f"{{n}} série(s) [se répète|se répètent] plus souvent que Tissu ne publie : "
                   f"au plus {MAX_OCCURRENCES} séances par événement sont gardées", len(dense))
            if dense else (f"ce calendrier dépasse les {cap} séances que Tissu publie au "
                           "plus pour un agenda : des événements sont gardés sans leurs "
                           "séances"),
            "Une règle de répétition « chaque seconde », « chaque minute » ou « chaque heure » "
            "sans fin est presque toujours une erreur de saisie : dans votre agenda, choisissez "
            "une répétition hebdomadaire ou quotidienne, avec une date de fin.",
            [budget] * reached + [str(w) for w in dense[:5]],
        ))
    backward = [w for w in warned if w.code == END_BEFORE_START_CODE]
    backward_uids = {w.uid for w in backward}  # their end was given, and ignored
    if backward:
        diagnosis.problems.append(Finding(
            "end-before-start", "warning",
            accord("{n} événement(s) [finit|finissent] avant d'avoir commencé : la fin est "
                   "ignorée", len(backward)),
            "Dans votre agenda, corrigez la date ou l'heure de fin de ces événements.",
            [str(w) for w in backward[:5]],
        ))
    # source uid → the TZID its start names, known neither to IANA nor to the file's VTIMEZONEs
    unknown_zones = {w.uid: str(w.tzid) for w in warned
                     if w.code == UNKNOWN_TIMEZONE_CODE and w.tzid}
    floating = [e for e in events if e.floating and e.source_uid not in unknown_zones]
    if unknown_zones:
        names = sorted(set(unknown_zones.values()))
        diagnosis.problems.append(Finding(
            "unknown-timezone", "warning",
            accord(f"{{n}} événement(s) sur {len(events)} donne(nt) un fuseau horaire inconnu "
                   "({zones}) que le fichier ne définit pas : Tissu lit [son heure|leurs "
                   "heures] à l'heure de Paris, ce qui est faux si l'agenda est réglé "
                   "autrement", len(unknown_zones)).replace(
                       "{zones}", ", ".join(f"« {n} »" for n in names[:3])),
            "Dans les réglages de votre agenda, choisissez le fuseau horaire « Europe/Paris » "
            "(un nom de la liste officielle IANA, comme Europe/Paris ou America/Montreal) ; "
            "l'export portera alors TZID=Europe/Paris. Si votre logiciel utilise son propre nom "
            "de fuseau, il doit l'accompagner d'une définition VTIMEZONE dans le fichier.",
            [f"« {e.title} » (fuseau « {unknown_zones[e.source_uid]} »)"
             for e in events if e.source_uid in unknown_zones][:3],
        ))
    if floating:
        diagnosis.problems.append(Finding(
            "no-timezone", "warning",
            accord(f"{{n}} événement(s) sur {len(events)} [a|ont] une heure sans fuseau "
                   "horaire : Tissu suppose l'heure de Paris, ce qui est faux si l'agenda est "
                   "réglé autrement", len(floating)),
            "Dans les réglages de votre agenda, choisissez le fuseau horaire « Europe/Paris » "
            "(Google Agenda : Paramètres → Fuseau horaire ; Nextcloud : Paramètres de l'agenda) ; "
            "l'export portera alors TZID=Europe/Paris.",
            [f"« {e.title} »" for e in floating[:3]],
        ))
    no_end = [e for e in events if not e.all_day and e.dtend_utc == e.dtstart_utc
              and e.source_uid not in backward_uids]
    if no_end:
        diagnosis.problems.append(Finding(
            "no-end", "warning",
            accord(f"{{n}} événement(s) sur {len(events)} n'[a|ont] pas d'heure de fin : "
                   "[il|ils] [sera|seront] affiché(s) sans durée", len(no_end)),
            "Indiquez une heure de fin pour chaque événement dans votre agenda (DTEND ou "
            "DURATION dans le fichier).",
            [f"« {e.title} »" for e in no_end[:3]],
        ))
    if diagnosis.upcoming == 0:
        last = max((e.dtstart_utc or (dt.datetime.combine(e.start_date, dt.time(), dt.UTC)
                                      if e.start_date else None) for e in events),
                   default=None, key=lambda v: v or dt.datetime.min.replace(tzinfo=dt.UTC))
        when = f" (le dernier commence le {last.astimezone(_paris()):%d/%m/%Y})" if last else ""
        diagnosis.problems.append(Finding(
            "only-past", "warning",
            f"tous les événements sont passés{when} : rien ne sera affiché dans l'agenda",
            "Ajoutez vos prochains rendez-vous à cet agenda, ou vérifiez que l'adresse est bien "
            "celle de l'agenda en cours (et pas celui d'une année passée).",
        ))
    return diagnosis, upcoming


def diagnose_content(
    content: bytes,
    url: str,
    *,
    now: dt.datetime,
    settings: Settings,
    engine: Engine | None = None,
    exclude_source: str | None = None,
    final_url: str | None = None,
    limits: Limits | None = None,
) -> Diagnosis:
    """Diagnose bytes already fetched from ``url`` (see :func:`diagnose`).

    The bytes are read by :func:`examine_content` in a child process bounded by ``limits``
    (default :meth:`connectors.sandbox.Limits.from_env`: 20 s, 1024 Mo); a child that overruns
    is killed and the diagnosis holds one error finding (``time-limit``, ``memory-limit`` or
    ``internal``) that says which limit, in French. The comparison with the working
    store (``engine``) runs here, in the caller's process.
    """
    limits = limits or Limits.from_env()
    try:
        diagnosis, upcoming = _sandbox().run(examine_content, content, url, now=now,
                                             settings=settings, final_url=final_url,
                                             limits=limits)
    except SandboxError as exc:
        diagnosis = Diagnosis(url=url, checked_at=now, final_url=final_url)
        fmt = detect_format(content)
        diagnosis.format = fmt if fmt in FORMAT_LABELS else "unknown"
        diagnosis.problems.append(_sandbox_finding(exc, fmt, content))
        return diagnosis
    if engine is not None:
        _compare_with_store(diagnosis, upcoming, engine, exclude_source)
    return diagnosis


def _compare_with_store(diagnosis: Diagnosis, upcoming: Upcoming, engine: Engine,
                        exclude_source: str | None) -> None:
    """Add ``already-registered`` and ``duplicate`` findings from the working store."""
    wanted = {canonical_url(diagnosis.url), canonical_url(diagnosis.final_url or diagnosis.url)}
    with Session(engine) as session:
        same = [source_id for source_id, source_url in session.exec(select(Source.id, Source.url))
                if source_id != exclude_source and canonical_url(source_url) in wanted]
    if same:  # the same feed registered already: not « another source »
        diagnosis.problems.append(Finding(
            "already-registered", "warning",
            f"cet agenda est déjà inscrit (source « {same[0]} ») : ses événements sont "
            "déjà publiés",
            "Inutile de l'inscrire une seconde fois : Tissu le relit régulièrement. Pour "
            "changer ses informations (nom, thèmes, quartier), écrivez aux modérateurs.",
        ))
        exclude_source = exclude_source or same[0]
    duplicates = _duplicates(upcoming, engine, exclude_source, set(same))
    if duplicates:
        diagnosis.problems.append(Finding(
            "duplicate", "warning",
            accord("{n} événement(s) [est|sont] déjà publié(s) par une autre source",
                   len(duplicates)),
            "Si cette autre source est le même agenda, inutile de l'inscrire une seconde "
            "fois. Sinon, Tissu regroupera les doublons ; vous pouvez aussi retirer de votre "
            "agenda les événements que l'autre organisation publie déjà.",
            duplicates[:5],
        ))


# The fix shown when the check of a calendar with repeated events was stopped by a limit of
# the sandbox.
_HEAVY_FIX = (
    "Un agenda d'association se lit en moins d'une seconde. La cause est presque toujours une "
    "répétition sans fin : des événements répétés « chaque heure », « chaque minute » ou "
    "« chaque seconde », sans date de fin. Dans votre agenda, choisissez une répétition "
    "quotidienne ou hebdomadaire avec une date de fin, retirez les anciens événements, puis "
    "vérifiez à nouveau."
)
#: Above this many VEVENTs, a calendar is « big » in the advice of a stopped check.
MANY_EVENTS = 2000


def _heavy_fix(fmt: str, content: bytes) -> str:
    """Advice for a reading stopped by a limit, from what the bytes hold (counted here, in the
    caller's process, without parsing: RRULE lines, BEGIN:VEVENT lines, items of a feed)."""
    if fmt == "ical":
        upper = content.upper()
        if b"RRULE" in upper:
            return _HEAVY_FIX
        events = upper.count(b"BEGIN:VEVENT")
        size = (f"Ce calendrier contient {events} événements, sans répétition : c'est plus "
                "que Tissu ne peut lire d'un coup. Retirez" if events >= MANY_EVENTS else
                "Ce calendrier ne contient pas de répétition : retirez")
        return (size + " les anciens événements de votre agenda (ou partagez un agenda "
                "qui ne contient que les événements à venir), puis vérifiez à nouveau. Si le "
                "problème persiste, signalez-le à l'équipe de Tissu en donnant l'adresse "
                "vérifiée.")
    if fmt in {"rss", "atom"}:
        return ("Un flux d'association se lit en moins d'une seconde : réglez votre site pour "
                "que le flux ne donne que les derniers articles ou les événements à venir "
                "(quelques dizaines), puis vérifiez à nouveau. Si le problème persiste, "
                "signalez-le à l'équipe de Tissu en donnant l'adresse vérifiée.")
    return ("Donnez l'adresse d'export iCalendar (.ics) de votre agenda plutôt que celle de "
            "cette page ; si le problème persiste, signalez-le à l'équipe de Tissu en donnant "
            "l'adresse vérifiée.")


def _sandbox_finding(exc: SandboxError, fmt: str, content: bytes = b"") -> Finding:
    """The finding for a check the sandbox stopped (see :func:`diagnose_content`); its advice
    depends on what ``content`` holds (:func:`_heavy_fix`)."""
    what = {"ical": "ce calendrier", "rss": "ce flux", "html": "cette page"}.get(fmt,
                                                                             "ce fichier")
    if exc.kind == "time":
        return Finding("time-limit", "error", f"la lecture de {what} demande trop de calcul : "
                       f"{exc}", _heavy_fix(fmt, content))
    if exc.kind == "memory":
        return Finding("memory-limit", "error", f"la lecture de {what} demande trop de "
                       f"mémoire : {exc}", _heavy_fix(fmt, content))
    return Finding("internal", "error", f"la vérification de {what} a échoué : {exc}",
                   "Réessayez ; si le problème persiste, signalez-le à l'équipe de Tissu en "
                   "donnant l'adresse vérifiée.")


# A small calendar and feed read by a spare sandbox child before its job, so that the check of
# the publisher's file does not pay for the first reading of vocabularies, places and language
# models (≈ 0.5 s).
_WARM_UP_ICAL = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tissu//échauffement//FR\r\n"
    "BEGIN:VEVENT\r\nUID:echauffement-1\r\nDTSTAMP:20261201T000000Z\r\n"
    "DTSTART;TZID=Europe/Paris:20261202T100000\r\nDTEND;TZID=Europe/Paris:20261202T120000\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Distribution alimentaire gratuite\r\n"
    "DESCRIPTION:Colis et repas pour les familles\\, sur inscription auprès de l'accueil.\r\n"
    "LOCATION:Quatre-Chemins\\, Pantin\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
).encode()
_WARM_UP_RSS = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Échauffement'
    "</title><link>https://example.org/</link><description>x</description><item><title>Atelier"
    "</title><link>https://example.org/a</link><description>Atelier numérique pour les seniors"
    "</description></item></channel></rss>"
).encode()


def warm_up() -> None:
    """Run one small check of each kind in this process, to fill its caches. No network.

    Meant for a sandbox's spare child: it sets ``TISSU_GEOCODER=offline`` for itself, and the
    sandbox then applies the caller's ``TISSU_*`` environment before the real job.
    """
    import os

    os.environ["TISSU_GEOCODER"] = "offline"  # no BAN look-up for the warm-up's place
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    settings = get_settings()
    examine_content(_WARM_UP_ICAL, "https://example.org/a.ics", now=now, settings=settings)
    examine_content(_WARM_UP_RSS, "https://example.org/feed", now=now, settings=settings)


_SANDBOX_LOCK = threading.Lock()
_SANDBOX: Sandbox | None = None
_RUNNING: threading.BoundedSemaphore | None = None
#: How long a check waits for one of the ``TISSU_CHECK_MAX_RUNNING`` places before « busy ».
BUSY_WAIT_SECONDS = 2.0


def _sandbox() -> Sandbox:
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is None:
            # its fork server preloads connectors.processes.PRELOAD (the doctor's modules
            # included), whoever starts it; the number of checks at once is bounded by
            # _running(), not by the sandbox
            _SANDBOX = Sandbox(warm_up=warm_up)
        return _SANDBOX


def _running() -> threading.BoundedSemaphore:
    global _RUNNING
    with _SANDBOX_LOCK:
        if _RUNNING is None:
            _RUNNING = threading.BoundedSemaphore(max(1, get_settings().check_max_running))
        return _RUNNING


def prepare_checks() -> None:
    """Start the sandbox's forkserver and a warmed child now, so that the first check is quick.

    For a long-running process (the web server): call it once at start-up, off the event loop
    (it imports the doctor's modules in a new interpreter: ~1–2 s).
    """
    _sandbox().prepare()


def _paris() -> dt.tzinfo:
    from normalize.times import PARIS

    return PARIS


def diagnose(
    url: str,
    *,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
    engine: Engine | None = None,
    exclude_source: str | None = None,
    limits: Limits | None = None,
) -> Diagnosis:
    """Fetch ``url`` safely and diagnose it. Never raises for a problem of the URL or its content.

    The fetch runs here (with its address guard, size and time limits); reading the bytes runs
    in a sandboxed child (:func:`diagnose_content`). At most ``TISSU_CHECK_MAX_RUNNING`` checks
    (default 2) run at once in one process: a further one waits
    :data:`BUSY_WAIT_SECONDS`, then gets a ``busy`` finding, so that checks cannot take every
    worker thread of the web server.

    The whole fetch (redirects and retries included) is bounded by the check's time budget,
    ``limits.seconds`` (``TISSU_CHECK_TIME_LIMIT``, 20 s), or ``Settings.fetch_deadline`` if
    smaller: a slow server frees its place within that time.

    Args:
        url: an http(s) URL given by a publisher (treated as hostile: fetched with
            :func:`connectors.http.fetch`, which refuses private and loopback addresses);
            ``webcal://`` and ``webcals://`` are read as ``https://`` (said in
            :attr:`Diagnosis.notes`), ``HTTPS://`` as ``https://``
            (:func:`connectors.http.web_url`).
        now: the reference instant (aware UTC); default now.
        settings: limits, timeouts and expansion horizon; default from the environment.
        engine: the working store, to find events already published by other sources; None
            skips that check.
        exclude_source: a source id not to compare with (the source being re-checked).
        limits: time and memory of the sandboxed reading; default
            :meth:`connectors.sandbox.Limits.from_env` (``TISSU_CHECK_TIME_LIMIT`` 20 s,
            ``TISSU_CHECK_MEMORY_MB`` 1024).

    Returns:
        A :class:`Diagnosis`; problems of the fetch itself have code ``fetch``, ``too-large``,
        ``too-slow`` or ``unsafe-url``.
    """
    now = now or utcnow()
    settings = settings or get_settings()
    notes: list[str] = []
    if url.strip().partition("://")[0].lower() in ("webcal", "webcals"):
        notes.append("adresse webcal:// lue comme https:// (le même fichier, par le web)")
    url = http_module.web_url(url)  # webcal(s):// as https://, HTTPS:// as https://
    if not url.startswith(("http://", "https://")):
        diagnosis = Diagnosis(url=url, checked_at=now)
        diagnosis.problems.append(Finding(
            "fetch", "error",
            "l'adresse doit commencer par https://, http:// ou webcal://",
            "Copiez l'adresse complète du lien d'export de votre agenda, telle que votre "
            "logiciel la donne : une adresse webcal:// convient aussi, Tissu la lit "
            "automatiquement comme https://.",
        ))
        return diagnosis
    diagnosis = _checked_with_place(url, now=now, settings=settings, engine=engine,
                                    exclude_source=exclude_source, limits=limits)
    diagnosis.notes[:0] = notes
    return diagnosis


def _checked_with_place(url: str, *, now: dt.datetime, settings: Settings,
                        engine: Engine | None, exclude_source: str | None,
                        limits: Limits | None) -> Diagnosis:
    """:func:`_fetch_and_diagnose` in one of the ``TISSU_CHECK_MAX_RUNNING`` places, or busy."""
    running = _running()
    if not running.acquire(timeout=BUSY_WAIT_SECONDS):
        diagnosis = Diagnosis(url=url, checked_at=now)
        diagnosis.problems.append(Finding(
            "busy", "error", "trop de vérifications en cours en ce moment",
            "Réessayez dans une minute."))
        return diagnosis
    try:
        return _fetch_and_diagnose(url, now=now, settings=settings, engine=engine,
                                   exclude_source=exclude_source, limits=limits)
    finally:
        running.release()


def _fetch_and_diagnose(url: str, *, now: dt.datetime, settings: Settings,
                        engine: Engine | None, exclude_source: str | None,
                        limits: Limits | None) -> Diagnosis:
    unsafe: type[Exception] | None = getattr(http_module, "UnsafeURLError", None)
    refusals: tuple[type[Exception], ...] = (http_module.FetchError,) + ((unsafe,) if unsafe
                                                                          else ())
    limits = limits or Limits.from_env()
    # the check's whole fetch within its own time budget, not the harvest's fetch_deadline
    # (120 s): a slow server would hold one of the few places of checks for minutes
    deadline = min(settings.fetch_deadline, limits.seconds)
    try:
        fetched = http_module.fetch(url, max_bytes=settings.max_body_bytes,
                                    timeout=(settings.connect_timeout, settings.read_timeout),
                                    deadline=deadline)
    except refusals as exc:
        diagnosis = Diagnosis(url=url, checked_at=now)
        if isinstance(exc, http_module.TooLargeError):
            diagnosis.problems.append(Finding(
                "too-large", "error", f"impossible de lire cette adresse : {exc}",
                f"Tissu lit des agendas de {http_module.human_size(settings.max_body_bytes)} "
                "au plus. Retirez les anciens événements de votre agenda (ou partagez un "
                "agenda qui ne contient que les événements à venir), puis vérifiez à nouveau.",
            ))
        elif isinstance(exc, http_module.TooSlowError):
            diagnosis.problems.append(Finding(
                "too-slow", "error",
                f"le serveur envoie ce fichier trop lentement : lecture arrêtée au bout de "
                f"{deadline:g} s ({exc})",
                "Ouvrez l'adresse dans un navigateur : si le téléchargement est lent là aussi, "
                "le serveur qui héberge l'agenda est surchargé ; réessayez plus tard, ou "
                "signalez-le à votre hébergeur. Un agenda allégé de ses anciens événements se "
                "télécharge plus vite.",
            ))
        elif unsafe is not None and isinstance(exc, unsafe):
            diagnosis.problems.append(Finding(
                "unsafe-url", "error",
                str(exc) if str(exc).startswith("adresse refusée") else f"adresse refusée : {exc}",
                "Donnez l'adresse publique de votre agenda, accessible depuis Internet.",
            ))
        else:
            diagnosis.problems.append(Finding(
                "fetch", "error", f"impossible de lire cette adresse : {exc}",
                "Vérifiez l'adresse (ouvrez-la dans un navigateur privé : elle doit télécharger "
                "le calendrier sans demander de mot de passe) et que l'agenda est public.",
            ))
        return diagnosis
    return diagnose_content(fetched.content, url, now=now, settings=settings, engine=engine,
                            exclude_source=exclude_source, final_url=fetched.url, limits=limits)


def diagnosis_json(diagnosis: Diagnosis) -> str:
    """The diagnosis as JSON text (UTF-8, not ASCII-escaped)."""
    return json.dumps(diagnosis.to_dict(), ensure_ascii=False, indent=2)
