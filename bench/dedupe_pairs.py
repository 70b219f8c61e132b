"""Build the labelled deduplication set ``tests/fixtures/dedupe/pairs.jsonl``.

Base events are real: OpenAgenda Albi (75), the Aquitaine SPIP RSS (hCalendar) and the Toulouse
CSV, read from the unedited corpus copies in ``tests/fixtures/themes/`` (provenance in
``tests/fixtures/PROVENANCE.md``), plus 12 Pantin-style solidarity events written for this set
(flagged ``synthetic``: the corpus has no Pantin agenda) so that the venue abbreviations of
``data/places.yaml`` ("MQ", "Médiathèque"/"Bibliothèque") are exercised.

Each line: ``{"id", "kind", "label" (1 same real-world event, 0 different), "a", "b"}`` where a
and b carry source_id, title, start (ISO 8601, UTC) or start_date, location, organizer,
description, and ``base`` (the corpus record). Kinds:

- positives — the same event as another source would publish it: ``typo``, ``accents``,
  ``case``, ``shift`` (start moved 0–15 min), ``venue`` (venue spelled differently:
  abbreviations, word order, address dropped or added), ``format`` (another format's rendering:
  title prefix/suffix, quotes and entities, description shortened, organiser missing), and
  combinations of those;
- negatives — ``same-slot`` (another event at the same time ± 15 min, half of them at the same
  venue), ``same-title-other-venue`` (same title and time at another venue: the weekly
  "Distribution alimentaire" of two maisons de quartier), ``other-session`` (same show 1–4 h
  later the same day), ``series`` (events of one series: same title, different days).

Deterministic (``random.Random(20261129)``). Run: ``.venv/bin/python bench/dedupe_pairs.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import itertools

from connectors.feeds import parse_feed
from normalize.places import place_key
from normalize.text import html_to_text, one_line

CORPUS = ROOT / "tests" / "fixtures" / "themes"
OUT = ROOT / "tests" / "fixtures" / "dedupe" / "pairs.jsonl"
PARIS = ZoneInfo("Europe/Paris")
RNG = random.Random(20261129)

PANTIN = [
    ("Distribution alimentaire", "Maison de quartier des Quatre-Chemins",
     "Secours populaire français, comité de Pantin", ("Distribution de colis alimentaires aux "
     "familles inscrites. Apporter un sac.")),
    ("Distribution alimentaire", "Maison de quartier des Courtillières",
     "Restos du cœur de Pantin", "Distribution alimentaire hebdomadaire."),
    ("Atelier numérique : faire ses démarches en ligne", "Médiathèque Elsa-Triolet",
     "Ville de Pantin", "Un conseiller numérique vous aide pour vos démarches (CAF, impôts)."),
    ("Permanence d'accès aux droits", "Centre communal d'action sociale (CCAS) de Pantin",
     "CCAS de Pantin", "Un juriste répond à vos questions, sans rendez-vous."),
    ("Cours de français – atelier sociolinguistique", "Maison de quartier du Haut-Pantin",
     "Association Alpha Pantin", "Atelier sociolinguistique pour adultes, niveau débutant."),
    ("Repair café", "Maison de quartier du Petit-Pantin", "Les Répar'acteurs",
     "Venez réparer vos objets avec des bénévoles."),
    ("Thé dansant des seniors", "Hôtel de ville de Pantin", "Ville de Pantin",
     "Après-midi dansant offert aux seniors pantinois."),
    ("Forum de l'emploi et de l'alternance", "Centre administratif de Pantin",
     "Ville de Pantin", "Rencontrez des recruteurs du territoire. Apportez votre CV."),
    ("Collecte de sang", "Maison de quartier Mairie-Ourcq", "Établissement français du sang",
     "Collecte de sang sur rendez-vous."),
    ("Vestiaire solidaire", "Maison de quartier des Quatre-Chemins", "Emmaüs Pantin",
     "Vêtements à petits prix pour toute la famille."),
    ("Ciné-débat : vivre avec un handicap", "Ciné 104", "Ciné 104",
     "Projection suivie d'un débat avec une association."),
    ("Atelier parents-enfants", "Bibliothèque Romain-Rolland", "Ville de Pantin",
     "Lecture et comptines pour les 0-3 ans et leurs parents."),
]
ABBREVIATIONS = [("Maison de quartier", "MQ"), ("Médiathèque", "Bibliothèque"),
                 ("avenue", "av."), ("Boulevard", "Bd"), ("Saint", "St"),
                 ("Centre communal d'action sociale (CCAS) de Pantin", "CCAS"),
                 ("Hôtel de ville de Pantin", "Mairie de Pantin"), ("Quatre", "4")]


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def albi() -> list[dict[str, Any]]:
    events = []
    for e in json.loads((CORPUS / "oa_albi_events.json").read_text(encoding="utf-8")):
        location = e.get("location") or {}
        start = dt.datetime.fromisoformat(e["timings"][0]["begin"])
        events.append({
            "base": f"oa_albi_events.json#{e['uid']}", "title": one_line(e["title"]["fr"]),
            "start": start, "location": ", ".join(p for p in (location.get("name"),
                                                               location.get("address")) if p),
            "organizer": None, "description": (e.get("description") or {}).get("fr", ""),
        })
    return events


def aquitaine() -> list[dict[str, Any]]:
    parsed = parse_feed((CORPUS / "agenda_region_aquitaine_spip_rss.xml").read_bytes(), "aq")
    events = []
    for record in parsed.records:
        if record.kind != "event":
            continue
        data = json.loads(record.payload)
        try:
            start = dt.datetime.fromisoformat(str(data["dtstart"]))
        except (KeyError, ValueError):
            continue
        if not isinstance(start, dt.datetime) or len(str(data["dtstart"])) <= 10:
            continue
        if start.tzinfo is None:
            start = start.replace(tzinfo=PARIS)
        events.append({
            "base": f"agenda_region_aquitaine_spip_rss.xml#{record.uid}",
            "title": one_line(data.get("title")), "start": start,
            "location": one_line(data.get("location")) or "",
            "organizer": one_line(data.get("organizer")),
            "description": (html_to_text(data.get("description")) or "")[:400],
        })
    return events


def toulouse() -> list[dict[str, Any]]:
    text = (CORPUS / "agenda_so_toulouse_2013-10-31.csv").read_bytes().decode("cp1252")
    events = []
    for row in csv.DictReader(io.StringIO(text), delimiter=";"):
        hour = re.search(r"(\d{1,2})h(\d{2})?", row["Horaires"] or "")
        if not hour:
            continue
        day = dt.datetime.strptime(row["Date début"], "%d/%m/%Y")
        start = day.replace(hour=int(hour.group(1)), minute=int(hour.group(2) or 0),
                            tzinfo=PARIS)
        address = " ".join(p.strip() for p in (row["Lieu - adresse 1"], row["Lieu - adresse 2"],
                                                row["Code postal"], row["Commune"]) if p.strip())
        events.append({
            "base": f"agenda_so_toulouse_2013-10-31.csv#{row['Identifiant']}",
            "title": one_line(row["Nom de la manifestation"]), "start": start,
            "location": ", ".join(p for p in (row["Lieu - nom"].strip(), address) if p),
            "organizer": None, "description": (row["Descriptif court"] or "").strip(),
        })
    return events


def pantin() -> list[dict[str, Any]]:
    events = []
    for number, (title, venue, organizer, description) in enumerate(PANTIN):
        day = dt.datetime(2026, 12, 1 + number, 14 if number % 2 else 10, 0, tzinfo=PARIS)
        events.append({"base": f"synthetic#pantin-{number}", "title": title, "start": day,
                       "location": venue, "organizer": organizer, "description": description,
                       "synthetic": True})
    return events


# ----------------------------------------------------------------- variations
def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


def typo(text: str) -> str:
    tokens = text.split()
    candidates = [i for i, t in enumerate(tokens) if len(t) >= 5 and t.isalpha()]
    if not candidates:
        return text + "."
    i = RNG.choice(candidates)
    word = tokens[i]
    j = RNG.randrange(1, len(word) - 2)
    action = RNG.choice(["swap", "drop", "double"])
    if action == "swap":
        word = word[:j] + word[j + 1] + word[j] + word[j + 2:]
    elif action == "drop":
        word = word[:j] + word[j + 1:]
    else:
        word = word[:j] + word[j] + word[j:]
    tokens[i] = word
    return " ".join(tokens)


def venue_variant(location: str) -> str:
    if not location:
        return location
    for long, short in ABBREVIATIONS:
        if long.lower() in location.lower():
            return re.sub(re.escape(long), short, location, count=1, flags=re.IGNORECASE)
    parts = [p.strip() for p in location.split(",") if p.strip()]
    choice = RNG.choice(["drop", "reorder", "case"])
    if choice == "drop" and len(parts) > 1:
        return parts[0]
    if choice == "reorder" and len(parts) > 1:
        return ", ".join(parts[1:] + parts[:1])
    return location.upper()


def format_variant(event: dict[str, Any]) -> dict[str, Any]:
    variant = dict(event)
    title = event["title"]
    choice = RNG.choice(["prefix", "suffix", "quotes", "plain"])
    if choice == "prefix":
        title = RNG.choice(["Agenda : ", "Sortir : ", "[Événement] "]) + title
    elif choice == "suffix":
        title = title + RNG.choice([" - Ville de Pantin", " (complet)", " | agenda"])
    elif choice == "quotes":
        title = title.replace("«", "\"").replace("»", "\"").replace("’", "'").replace(" :", ":")
    variant["title"] = title
    variant["description"] = (event.get("description") or "")[:120]
    variant["organizer"] = None
    return variant


POSITIVE_KINDS = ["typo", "accents", "case", "shift", "venue", "format",
                  "typo+shift", "case+venue", "format+shift", "accents+venue+shift"]


def positive(event: dict[str, Any], kind: str) -> dict[str, Any]:
    variant = dict(event)
    for part in kind.split("+"):
        if part == "typo":
            variant["title"] = typo(variant["title"])
        elif part == "accents":
            variant["title"] = strip_accents(variant["title"])
            variant["location"] = strip_accents(variant["location"] or "")
        elif part == "case":
            variant["title"] = RNG.choice([variant["title"].upper(), variant["title"].lower(),
                                           variant["title"].title()])
        elif part == "shift":
            variant["start"] = variant["start"] + dt.timedelta(minutes=RNG.randint(0, 15))
        elif part == "venue":
            variant["location"] = venue_variant(variant["location"] or "")
        elif part == "format":
            variant = format_variant(variant)
    return variant


def record(event: dict[str, Any], source_id: str) -> dict[str, Any]:
    out = {"source_id": source_id, "title": event["title"], "start": _iso(event["start"]),
           "location": event.get("location") or None, "organizer": event.get("organizer"),
           "description": event.get("description") or None, "base": event["base"]}
    if event.get("synthetic"):
        out["synthetic"] = True
    return out


def build() -> list[dict[str, Any]]:
    """All labelled pairs, in a fixed order."""
    bases = albi() + aquitaine() + toulouse() + pantin()
    distinct: dict[tuple[str, str], dict[str, Any]] = {}
    for event in bases:
        distinct.setdefault((event["title"], event["start"].isoformat()), event)
    bases = list(distinct.values())
    RNG.shuffle(bases)
    pantin_events = [e for e in bases if e.get("synthetic")]
    pairs: list[dict[str, Any]] = []

    def add(kind: str, label: int, a: dict[str, Any], b: dict[str, Any]) -> None:
        pairs.append({"id": f"p{len(pairs) + 1:04d}", "kind": kind, "label": label,
                      "a": record(a, "source-a"), "b": record(b, "source-b")})

    # positives: 170
    pool = pantin_events * 2 + bases
    for number in range(170):
        event = pool[number % len(pool)]
        kind = POSITIVE_KINDS[number % len(POSITIVE_KINDS)]
        add(kind, 1, event, positive(event, kind))
    # negatives: same slot, other event (80; half at the same venue)
    for number in range(80):
        a, b = RNG.sample(bases, 2)
        if a["title"] == b["title"]:
            continue
        b = dict(b, start=a["start"] + dt.timedelta(minutes=RNG.randint(0, 15)))
        if number % 2:
            b["location"] = a["location"]
        add("same-slot", 0, a, b)
    # negatives: same title and time, another venue (30)
    for number in range(30):
        a = pantin_events[number % len(pantin_events)] if number < 12 else RNG.choice(bases)
        others = [e for e in bases if e["location"]
                  and place_key(e["location"]) != place_key(a["location"])]
        other = RNG.choice(others)
        b = dict(a, location=other["location"], organizer=other.get("organizer"),
                 start=a["start"] + dt.timedelta(minutes=RNG.randint(0, 10)))
        if number < 12:
            # "Distribution alimentaire" at two maisons de quartier: pick another Pantin venue
            venues = [e["location"] for e in pantin_events if e["location"] != a["location"]]
            b["location"] = RNG.choice(venues)
        add("same-title-other-venue", 0, a, b)
    # negatives: another session of the same show the same day (20)
    for number in range(20):
        a = RNG.choice(bases)
        b = positive(a, RNG.choice(["case", "venue", "typo"]))
        b["start"] = a["start"] + dt.timedelta(minutes=RNG.choice([60, 90, 120, 180, 240]))
        add("other-session", 0, a, b)
    # negatives: series — same title, different day (real repeats in the corpus)
    by_title: dict[str, list[dict[str, Any]]] = {}
    for event in albi() + toulouse():
        by_title.setdefault(event["title"].strip().lower(), []).append(event)
    series = [events for events in by_title.values() if len(events) > 1]
    for events in series:
        events.sort(key=lambda e: e["start"])
        for a, b in itertools.pairwise(events):
            if a["start"].date() != b["start"].date():
                add("series", 0, a, b)
            if sum(p["kind"] == "series" for p in pairs) >= 25:
                break
        if sum(p["kind"] == "series" for p in pairs) >= 25:
            break
    return pairs


def main() -> None:
    pairs = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair["kind"]] = counts.get(pair["kind"], 0) + 1
    print(f"{len(pairs)} pairs ({sum(p['label'] for p in pairs)} same)")
    for kind, count in sorted(counts.items()):
        print(f"  {count:4d}  {kind}")


if __name__ == "__main__":
    main()
