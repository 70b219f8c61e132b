"""Synthetic corpus for the benchmarks: N sources × M events, with the truth of what they hold.

The corpus mixes the three formats Tissu harvests from associations and town halls:

- iCalendar (RFC 5545) with a Europe/Paris VTIMEZONE, TZID-qualified DTSTART/DTEND, all-day
  events (VALUE=DATE), weekly RRULEs with COUNT, EXDATE;
- RSS 2.0 with the ``ev:`` event module (``ev:startdate`` with a UTC offset, ``ev:location``);
- HTML pages carrying schema.org ``Event`` items as JSON-LD (https://schema.org/Event).

Deterministic for a given ``seed`` and ``now``. About 10 % of the events recur (weekly, COUNT 4
to 8, a third with one EXDATE), about 10 % are cross-source duplicates of another source's event
with realistic variations (capitalisation, accents dropped, a town suffix, an abbreviated
street type, another description), and some start near midnight (23:30 or 00:15 Paris time, so
the UTC date and the local date differ) or on the days the clocks change (last Sundays of March
and October, at valid local times on both sides of the change), and some weekly series cross a
change, so that their UTC start moves by an hour while the local time stays.

The truth (:class:`TruthEvent`) gives for each event its source, UID, title, start and every
occurrence start in UTC, and the duplicate cluster it belongs to: what the pipeline must publish.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import random
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

ACTIVITIES = [
    "Atelier numérique", "Distribution alimentaire", "Permanence d'accès aux droits",
    "Café des aidants", "Cours de français", "Aide aux devoirs", "Repair café",
    "Épicerie solidaire", "Permanence logement", "Bourse aux vêtements", "Goûter des seniors",
    "Initiation informatique", "Atelier CV et entretien", "Consultation PMI", "Dépistage santé",
    "Collecte de sang", "Atelier cuisine", "Marche bien-être", "Sortie culturelle",
    "Atelier d'écriture", "Jardin partagé", "Forum bénévolat", "Permanence juridique",
    "Point conseil budget", "Accueil de jour", "Vestiaire solidaire", "Atelier parentalité",
    "Soutien scolaire", "Conversation en anglais", "Atelier théâtre", "Yoga sur chaise",
    "Permanence emploi", "Club lecture", "Ciné-débat", "Atelier vélo", "Tricot solidaire",
]
AUDIENCES = ["", "pour les seniors", "pour les jeunes", "en famille", "pour les femmes",
             "pour les nouveaux arrivants", "débutants", "pour les aidants", "pour tous"]
PLACES = [
    ("Maison de quartier des Courtillières", "2 avenue des Courtillières", "Courtillières"),
    ("Centre social Haut-et-Bas", "27 rue des Pommiers", "Haut-et-Bas"),
    ("Maison de quartier des Quatre-Chemins", "42 avenue Édouard-Vaillant", "Quatre-Chemins"),
    ("Médiathèque Elsa-Triolet", "102 avenue Jean-Lolive", "Centre"),
    ("Salle Jacques-Brel", "42 avenue Édouard-Vaillant", "Quatre-Chemins"),
    ("Espace Cocteau", "4 rue Lapérouse", "Hoche"),
    ("Maison de quartier du Petit-Pantin", "22 rue Cartier-Bresson", "Petit-Pantin"),
    ("Centre municipal de santé", "61 rue Charles-Auray", "Église"),
    ("Ferme Mazier", "70 avenue Aimé-Césaire", "Mairie-Ourcq"),
    ("Pôle solidarité", "84-88 avenue du Général-Leclerc", "Mairie-Ourcq"),
    ("Salle des fêtes", "45 avenue du Général-Leclerc", "Centre"),
    ("Maison des associations", "15 rue Jules-Auffret", "Église"),
]
QUARTIERS = sorted({p[2] for p in PLACES})
FORMATS = ("ical", "rss", "html")
VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n"
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
    "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
    "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
)


@dataclass
class TruthEvent:
    """What the pipeline must publish for one event of the corpus.

    Times are ISO 8601 UTC text ``YYYY-MM-DDTHH:MM:SSZ``; all-day events have ``start_date``
    (``YYYY-MM-DD``) and ``occurrences`` holds dates. ``cluster`` is shared by the events that
    are the same real-world event published by several sources (None: no duplicate).
    """

    source_id: str
    uid: str
    format: str
    title: str
    location: str
    quartier: str
    all_day: bool
    start_local: str
    start_utc: str | None
    end_utc: str | None
    start_date: str | None
    rrule: str | None
    exdates: list[str]
    occurrences: list[str]
    cluster: str | None = None
    kind: str = ""  # "midnight", "dst", "dst-series", "recurring", "all-day" or ""


@dataclass
class SourceFile:
    """One source of the corpus: its registry entry and its bytes."""

    id: str
    format: str
    path: str  # URL path on the bench server, e.g. "/asso-0001.ics"
    content_type: str
    quartier: str
    content: bytes = b""


@dataclass
class Corpus:
    """The generated sources, their truth and the instant they were generated around (UTC)."""

    now: dt.datetime
    sources: list[SourceFile]
    truth: list[TruthEvent]
    params: dict[str, object] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return len(self.truth)

    @property
    def occurrences(self) -> int:
        return sum(len(t.occurrences) for t in self.truth)

    def duplicate_pairs(self) -> set[tuple[str, str]]:
        """Pairs of event ids ``<source>--<uid>`` (sorted) that the truth says are one event."""
        clusters: dict[str, list[str]] = {}
        for t in self.truth:
            if t.cluster:
                clusters.setdefault(t.cluster, []).append(f"{t.source_id}--{t.uid}")
        pairs: set[tuple[str, str]] = set()
        for members in clusters.values():
            members.sort()
            pairs.update((a, b) for i, a in enumerate(members) for b in members[i + 1:])
        return pairs

    def served(self) -> dict[str, tuple[bytes, str]]:
        """``{URL path: (bytes, content type)}`` for :class:`bench.server.CorpusServer`."""
        return {s.path: (s.content, s.content_type) for s in self.sources}

    def registry(self, base_url: str) -> dict[str, object]:
        """A ``data/sources.yaml`` document pointing at ``base_url`` (the bench server)."""
        return {"sources": [
            {"id": s.id, "name": f"Agenda {s.id}", "format": s.format,
             "url": base_url.rstrip("/") + s.path, "licence": "Licence Ouverte 2.0",
             "quartier": s.quartier, "refresh": "6h",
             "publisher": {"name": f"Association {s.id}", "type": "association"}}
            for s in self.sources]}

    def write(self, folder: Path) -> None:
        """Write each source under ``folder/files`` and ``truth.json`` beside it."""
        files = folder / "files"
        files.mkdir(parents=True, exist_ok=True)
        for s in self.sources:
            (files / s.path.lstrip("/")).write_bytes(s.content)
        document = {"now": self.now.isoformat(), "params": self.params,
                    "sources": [{k: v for k, v in asdict(s).items() if k != "content"}
                                for s in self.sources],
                    "truth": [asdict(t) for t in self.truth]}
        (folder / "truth.json").write_text(json.dumps(document, ensure_ascii=False),
                                           encoding="utf-8")


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dst_sundays(year: int) -> list[dt.date]:
    """The days Paris clocks change in ``year``: last Sunday of March and of October."""
    days = []
    for month in (3, 10):
        day = dt.date(year, month, 31)
        days.append(day - dt.timedelta(days=(day.weekday() + 1) % 7))
    return days


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def vary_title(title: str, rng: random.Random) -> str:
    """A duplicate's title as another publisher would write it."""
    choice = rng.randrange(5)
    if choice == 0:
        return title.upper()
    if choice == 1:
        return _strip_accents(title)
    if choice == 2:
        return f"{title} - Pantin"
    if choice == 3:
        return title.lower().capitalize() + " !"
    if " pour les " in title:
        return title.replace(" pour les ", " à destination des ")
    return f"{title} (entrée libre)"


def vary_location(location: str, rng: random.Random) -> str:
    """A duplicate's location: abbreviated street type or dropped accents."""
    if rng.random() < 0.5:
        return (location.replace("avenue", "av.").replace("rue", "r.")
                .replace("Maison de quartier", "MQ"))
    return _strip_accents(location)


class _Builder:
    def __init__(self, seed: int, now: dt.datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.used: set[tuple[str, str, str]] = set()
        self.first_day = (now.astimezone(PARIS) + dt.timedelta(days=2)).date()
        changes = [d for y in (self.first_day.year, self.first_day.year + 1)
                   for d in dst_sundays(y) if self.first_day < d < self.first_day
                   + dt.timedelta(days=290)]
        self.dst_days = changes
        self.ical_scale = 1.0

    def local(self, day: dt.date, hour: int, minute: int) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)

    def pick_start(self, kind: str) -> tuple[dt.datetime, str]:
        rng = self.rng
        if kind == "midnight":
            day = self.first_day + dt.timedelta(days=rng.randrange(280))
            hour, minute = rng.choice([(23, 30), (0, 15)])
            return self.local(day, hour, minute), kind
        if kind == "dst" and self.dst_days:
            day = rng.choice(self.dst_days)
            # valid local times on both sides of the change (never 02:00-02:59)
            hour = rng.choice([0, 1, 3, 4, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20])
            return self.local(day, hour, rng.choice([0, 15, 30, 45])), kind
        day = self.first_day + dt.timedelta(days=rng.randrange(290))
        hour = rng.choice([9, 10, 11, 14, 15, 16, 17, 18, 19])
        minute = rng.choice([0, 0, 15, 30, 45])
        return self.local(day, hour, minute), ""

    def title(self) -> str:
        rng = self.rng
        activity = rng.choice(ACTIVITIES)
        audience = rng.choice(AUDIENCES)
        return f"{activity} {audience}".strip()


def _occurrences(start: dt.datetime, count: int, exdate_index: int | None,
                 all_day: bool) -> tuple[list[str], list[dt.datetime]]:
    starts = [start + dt.timedelta(weeks=i) for i in range(count)]  # wall-clock weeks (Paris)
    excluded = [starts[exdate_index]] if exdate_index is not None else []
    kept = [s for s in starts if s not in excluded]
    if all_day:
        return [s.date().isoformat() for s in kept], excluded
    # re-attach the zone so each occurrence gets its own offset (DST-aware), then UTC
    return [_utc_text(s.replace(tzinfo=PARIS)) for s in kept], excluded


def generate(sources: int, events_per_source: int, seed: int = 1,
             now: dt.datetime | None = None, formats: tuple[str, ...] = FORMATS,
             duplicate_share: float = 0.10) -> Corpus:
    """Build a corpus of ``sources`` × ``events_per_source`` events (duplicates included).

    Args:
        formats: the formats to cycle through, one per source in turn.
        duplicate_share: share of events that repeat another source's event (cross-source
            duplicates); the other shares are in ``SHARES``.
        now: the instant (aware) the corpus is generated around; events start from two days
            later and within 300 days, inside Tissu's default expansion horizon (365 days).

    Returns:
        A :class:`Corpus` whose sources' ``content`` is filled.
    """
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    builder = _Builder(seed, now)
    builder.ical_scale = len(formats) / max(1, formats.count("ical"))
    rng = builder.rng
    files: list[SourceFile] = []
    for i in range(sources):
        fmt = formats[i % len(formats)]
        ext = {"ical": "ics", "rss": "xml", "html": "html"}[fmt]
        sid = f"asso-{i:04d}"
        quartier = QUARTIERS[i % len(QUARTIERS)]
        content_type = {"ical": "text/calendar; charset=utf-8",
                        "rss": "application/rss+xml; charset=utf-8",
                        "html": "text/html; charset=utf-8"}[fmt]
        files.append(SourceFile(sid, fmt, f"/{sid}.{ext}", content_type, quartier))

    per_source: dict[str, list[TruthEvent]] = {s.id: [] for s in files}
    originals: list[TruthEvent] = []
    counter = 0
    for source in files:
        for _ in range(events_per_source):
            counter += 1
            roll = rng.random()
            if originals and roll < duplicate_share:
                original = rng.choice(originals)
                same_source = original.source_id == source.id or any(
                    t.cluster is not None and t.cluster == original.cluster
                    for t in per_source[source.id])
                if not same_source and (source.format == "ical" or not original.all_day):
                    per_source[source.id].append(_duplicate(original, source, counter, rng))
                    continue
            per_source[source.id].append(_original(builder, source, counter))
            originals.append(per_source[source.id][-1])

    truth: list[TruthEvent] = []
    for source in files:
        events = per_source[source.id]
        source.content = {"ical": _ical, "rss": _rss, "html": _html}[source.format](
            source, events)
        truth.extend(events)
    params = {"sources": sources, "events_per_source": events_per_source, "seed": seed,
              "formats": list(formats), "duplicate_share": duplicate_share,
              "shares": dict(SHARES)}
    return Corpus(now=now, sources=files, truth=truth, params=params)


# Kinds of original events and their shares, drawn in this order from one roll per event.
# Recurring and all-day events are iCalendar only (feeds and pages carry single dates here).
SHARES = (("recurring", 0.12), ("midnight", 0.05), ("dst", 0.03), ("all-day", 0.04))


def _original(builder: _Builder, source: SourceFile, counter: int) -> TruthEvent:
    rng = builder.rng
    roll = rng.random()
    kind = ""
    edge = 0.0
    for name, share in SHARES:
        if name in {"recurring", "all-day"}:  # iCalendar only: scaled so the overall share holds
            share = share * builder.ical_scale if source.format == "ical" else 0.0
        edge += share
        if roll < edge:
            kind = name
            break
    # Two originals never share a room at the same time, nor a title at the same time: a
    # deduplicator could not tell them from duplicates. After 20 tries in a crowded special
    # slot (clock-change days), the event becomes an ordinary one.
    for attempt in range(200):
        place, street, quartier = rng.choice(PLACES)
        title = builder.title()
        special = kind if kind in {"midnight", "dst"} and attempt < 20 else ""
        start, tag = builder.pick_start(special)
        if kind == "recurring" and builder.dst_days and rng.random() < 0.3 and attempt < 20:
            # a weekly series that crosses a clock change, same local time every week
            change = rng.choice(builder.dst_days)
            start = builder.local(change - dt.timedelta(days=7 * rng.randrange(1, 4)),
                                  rng.choice([9, 10, 14, 16, 17, 18, 19]),
                                  rng.choice([0, 15, 30, 45]))
            tag = "dst-series"
        # An all-day event occupies its whole date: two all-day originals with one title (or
        # one room) on the same date would be the same event to anyone reading them.
        when = start.date().isoformat() if kind == "all-day" else start.isoformat()
        keys = {("title", title, when), ("room", place, when)}
        if not keys & builder.used:
            builder.used |= keys
            break
    location = f"{place}, {street}, 93500 Pantin"
    uid = f"evt-{counter:07d}@{source.id}.bench.tissu"
    if source.format == "html":
        uid = f"https://{source.id}.bench.tissu/evenements/{counter:07d}"
    if source.format == "rss":
        uid = f"https://{source.id}.bench.tissu/agenda/{counter:07d}"
    duration = dt.timedelta(minutes=rng.choice([60, 90, 120, 180]))
    if kind == "all-day":
        day = start.date()
        return TruthEvent(source.id, uid, source.format, title, location, quartier, True,
                          day.isoformat(), None, None, day.isoformat(), None, [],
                          [day.isoformat()], kind="all-day")
    rrule = None
    exdates: list[str] = []
    occurrences = [_utc_text(start)]
    if kind == "recurring":
        count = rng.randrange(4, 9)
        exdate_index = rng.randrange(1, count) if rng.random() < 1 / 3 else None
        if tag == "dst-series":  # keep an occurrence on each side of the change
            exdate_index = None
        rrule = f"FREQ=WEEKLY;COUNT={count}"
        occurrences, excluded = _occurrences(start, count, exdate_index, False)
        exdates = [e.strftime("%Y%m%dT%H%M%S") for e in excluded]
        tag = tag or "recurring"
    end = start + duration
    return TruthEvent(source.id, uid, source.format, title, location, quartier, False,
                      start.isoformat(), _utc_text(start), _utc_text(end), None, rrule, exdates,
                      occurrences, kind=tag)


def _duplicate(original: TruthEvent, source: SourceFile, counter: int,
               rng: random.Random) -> TruthEvent:
    original.cluster = original.cluster or f"c-{original.source_id}-{original.uid}"
    uid = f"dup-{counter:07d}@{source.id}.bench.tissu"
    if source.format == "html":
        uid = f"https://{source.id}.bench.tissu/evenements/{counter:07d}"
    if source.format == "rss":
        uid = f"https://{source.id}.bench.tissu/agenda/{counter:07d}"
    single = original.rrule is None or source.format != "ical"
    return TruthEvent(
        source.id, uid, source.format, vary_title(original.title, rng),
        vary_location(original.location, rng), original.quartier, original.all_day,
        original.start_local, original.start_utc, original.end_utc, original.start_date,
        None if single else original.rrule, [] if single else original.exdates,
        original.occurrences[:1] if single else original.occurrences,
        cluster=original.cluster, kind="duplicate")


def _fold(line: str) -> str:
    """RFC 5545 §3.1 line folding at 75 octets."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line + "\r\n"
    parts, current = [], b""
    for char in line:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > (75 if not parts else 74):
            parts.append(current.decode("utf-8"))
            current = b""
        current += encoded
    parts.append(current.decode("utf-8"))
    return "\r\n ".join(parts) + "\r\n"


def _ical_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _description(event: TruthEvent) -> str:
    if event.kind == "duplicate":
        return f"Rendez-vous {event.location}. Entrée libre, sans inscription."
    return f"{event.title} proposé par l'association. Gratuit, ouvert à toutes et à tous."


def _ical(source: SourceFile, events: list[TruthEvent]) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:-//Tissu bench//{source.id}//FR",
             f"X-WR-CALNAME:Agenda {source.id}"]
    body = "".join(_fold(line) for line in lines) + VTIMEZONE
    for event in events:
        if not event.occurrences:
            continue
        props = ["BEGIN:VEVENT", f"UID:{event.uid}", "DTSTAMP:20260101T000000Z"]
        if event.all_day:
            day = dt.date.fromisoformat(event.start_date or "")
            props += [f"DTSTART;VALUE=DATE:{day.strftime('%Y%m%d')}",
                      f"DTEND;VALUE=DATE:{(day + dt.timedelta(days=1)).strftime('%Y%m%d')}"]
        else:
            start = dt.datetime.fromisoformat(event.start_local)
            end = dt.datetime.fromisoformat(event.end_utc).astimezone(
                PARIS) if event.end_utc else start
            props += [f"DTSTART;TZID=Europe/Paris:{start.strftime('%Y%m%dT%H%M%S')}",
                      f"DTEND;TZID=Europe/Paris:{end.strftime('%Y%m%dT%H%M%S')}"]
        if event.rrule:
            props.append(f"RRULE:{event.rrule}")
        for ex in event.exdates:
            props.append(f"EXDATE;TZID=Europe/Paris:{ex}")
        props += [f"SUMMARY:{_ical_text(event.title)}",
                  f"LOCATION:{_ical_text(event.location)}",
                  f"DESCRIPTION:{_ical_text(_description(event))}", "END:VEVENT"]
        body += "".join(_fold(p) for p in props)
    return (body + "END:VCALENDAR\r\n").encode("utf-8")


def _rss(source: SourceFile, events: list[TruthEvent]) -> bytes:
    items = []
    for event in events:
        if event.all_day or not event.start_utc:
            continue
        start = dt.datetime.fromisoformat(event.start_local)
        end = dt.datetime.fromisoformat(event.end_utc).astimezone(PARIS) \
            if event.end_utc else start
        items.append(
            "<item>"
            f"<title>{html.escape(event.title)}</title>"
            f"<link>{html.escape(event.uid)}</link>"
            f"<guid isPermaLink=\"true\">{html.escape(event.uid)}</guid>"
            f"<description>{html.escape(_description(event))}</description>"
            "<pubDate>Thu, 01 Jan 2026 09:00:00 +0000</pubDate>"
            f"<ev:startdate>{start.isoformat()}</ev:startdate>"
            f"<ev:enddate>{end.isoformat()}</ev:enddate>"
            f"<ev:location>{html.escape(event.location)}</ev:location>"
            "</item>")
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
            "<rss version=\"2.0\" xmlns:ev=\"http://purl.org/rss/1.0/modules/event/\">"
            f"<channel><title>Agenda {source.id}</title>"
            f"<link>https://{source.id}.bench.tissu/</link>"
            "<description>Agenda de l'association</description>"
            + "".join(items) + "</channel></rss>\n").encode("utf-8")


def _html(source: SourceFile, events: list[TruthEvent]) -> bytes:
    graph = []
    for event in events:
        if event.all_day or not event.start_utc:
            continue
        start = dt.datetime.fromisoformat(event.start_local)
        end = dt.datetime.fromisoformat(event.end_utc).astimezone(PARIS) \
            if event.end_utc else start
        place, _, address = event.location.partition(", ")
        graph.append({
            "@type": "Event", "@id": event.uid, "name": event.title,
            "startDate": start.isoformat(), "endDate": end.isoformat(),
            "description": _description(event), "url": event.uid,
            "eventStatus": "https://schema.org/EventScheduled",
            "location": {"@type": "Place", "name": place, "address": address},
            "organizer": {"@type": "Organization", "name": f"Association {source.id}"},
        })
    data = json.dumps({"@context": "https://schema.org", "@graph": graph}, ensure_ascii=False)
    data = data.replace("</", "<\\/")  # never close the <script> element early
    rows = "".join(f"<li><h2>{html.escape(e['name'])}</h2><p>{html.escape(e['startDate'])}</p>"
                   "</li>" for e in graph)
    return ("<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\">"
            f"<title>Agenda {source.id}</title>"
            f"<script type=\"application/ld+json\">{data}</script>"
            f"</head><body><h1>Agenda</h1><ul>{rows}</ul></body></html>\n").encode()
