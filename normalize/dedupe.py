"""Cross-source deduplication: one published event per real-world event, with provenance.

Steps (run once after every source is normalised, :func:`deduplicate`):

1. **Load** (one query, raw column values): every live event with its source's publisher.
2. **Candidate pairs** (numpy, vectorised): events of *different* sources whose start falls on
   the same Europe/Paris day and within :data:`WINDOW_MINUTES` of each other (all-day events:
   same start date). Events sorted by start; each one meets the following ones up to the end
   of its window (``searchsorted``), never a per-pair Python loop. With few distinct
   locations (:data:`_VENUE_BLOCKS`), windows are joined only between locations that may be
   one place, so pairs of two different known places are never drawn.
3. **Score** in bulk (rapidfuzz ``process.cpdist`` on each distinct pair of titles, one place
   comparison per distinct pair of locations, numpy for the rest), with exactly the rules of
   :func:`score_pair`: normalised titles (accents, case, punctuation and small words ignored),
   place (known place id from data/places.yaml, else the location text), start-time gap,
   organiser. Score 0–1; unrelated titles, a different known place or a different city cap it.
   A pair is at most *uncertain* (review, never merged automatically) when each title names
   something the other does not ("… pour les jeunes" / "… pour les femmes", "Atelier cuisine"
   / "Atelier d'écriture", see :func:`title_conflict`), when the two venue names
   differ at one address (two rooms of one building), when the starts are more than
   :data:`SHIFT_MINUTES` apart, when the start and the end both moved by a quarter of an hour
   (another slot, :data:`SLOT_MINUTES`), or for two all-day events whose titles differ by words.
4. **Decide**: score ≥ :data:`SAME_THRESHOLD` merges; :data:`REVIEW_THRESHOLD` ≤ score <
   SAME goes to the review list (``tissu dedupe review``); below, nothing. Thresholds favour a
   missed duplicate over a false merge. A stored human decision (DedupeDecision) always wins and
   is never asked again.
5. **Clusters** (union-find, deterministic): ``cluster_id`` = ``cl-`` + first 16 hex of SHA-256 of
   the sorted member ids, so it depends on who is in the cluster, never on row order.
6. **Merge**: the canonical member is the publisher's own source (the organiser is the
   publisher) over a municipal aggregate (publisher type ``service-municipal``) over a third
   party, then the earliest seen; fields are then taken per rule (most complete description,
   earliest ``first_seen_at``, union of themes/publics/accessibility, first non-empty value by
   priority otherwise) and ``field_sources`` records which member each field came from (``{}``
   for an event without duplicate: every value is its own).
   EventSource rows list every member of each published event. Writes are bulk statements,
   only for the rows whose values change.

**Incremental**: clusters never cross a Europe/Paris day (candidate pairs are same-day). The
table ``dedupe_state`` keeps, per day, a digest of its live events (every column deduplication
reads or merges, and their source's publisher; not the columns only it writes) and each
event's own digest; ``dedupe_meta`` keeps the rules' version (:data:`ALGORITHM`, thresholds,
words lists, data/places.yaml) and the human decisions applied. A run reads every live event
once, finds the days whose digest moved, and there recomputes only the events that are new or
changed (or named by a decision taken since), the clusters they or removed events leave, and
the clusters their new pairs reach: only pairs with such an event are scored, everything else
keeps its cluster and is not written. A changed version, an empty state or ``full=True``
recomputes everything. Nothing changed: one read of the event table and no write. An
incremental run gives the clusters, values and provenance a full run would give (tested with
changed titles, moved starts, removals and "same"/"different" decisions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from sqlalchemy import Column, Text, text
from sqlmodel import Field, Session, SQLModel, select

from normalize.fold import words
from normalize.places import PLACES_FILE, match_place, parse_location, place_key, resolve_location
from normalize.times import PARIS
from schemas.models import DedupeDecision, Event, EventSource, utcnow

ALGORITHM = "2026-12-04.1"
"""Version of the scoring and merge rules: a different one makes the next run a full one."""
WINDOW_MINUTES = 30
SHIFT_MINUTES = 15
"""Starts further apart than this are never merged automatically (review at most)."""
END_TOLERANCE_MINUTES = 5
SLOT_MINUTES = 15
"""Both the start and the end moved (the end by more than END_TOLERANCE_MINUTES), one of them
by a quarter of an hour or more: another slot of the same activity, never merged automatically
(a source ten minutes late on both is a clerical difference)."""
SAME_THRESHOLD = 0.86
REVIEW_THRESHOLD = 0.70
UNSURE_CAP = 0.85
"""Highest score of an uncertain pair: below SAME_THRESHOLD, so reviewed, never merged."""
CONFLICT_CAP = 0.65
"""Highest score when each title names something specific the other does not: below review."""
WEIGHTS = {"title": 0.60, "place": 0.25, "time": 0.10, "organizer": 0.05}
_TITLE_STOPWORDS = frozenset({"de", "du", "des", "la", "le", "les", "l", "d", "un", "une", "et",
                              "a", "au", "aux", "en", "the", "of", "and"})
_TITLE_NOISE = frozenset({"pantin", "entree", "libre", "gratuit", "gratuite", "gratuits",
                          "gratuites", "pour", "destination", "avec", "sur", "par", "inscription"})
"""Words that say how, for whom in general or where, never *which* event: a title may add or
drop them ("(entrée libre)", "- Pantin", "à destination des" for "pour les")."""
_TITLE_GENERIC = frozenset({"atelier", "ateliers", "aide", "permanence", "seance", "rencontre",
                            "rencontres", "cours", "accueil", "point", "animation", "activite",
                            "session", "reunion", "temps", "moment", "rendez", "vous", "club",
                            "evenement", "journee", "soiree", "matinee", "apres", "midi",
                            "initiation", "decouverte", "stage"})
"""Words that name a kind of session, not its subject: two titles that differ only by them on
one side may be one event written two ways (review, never "different" outright)."""
PRIORITY_LABELS = {0: "source de l'organisateur", 1: "agrégateur municipal", 2: "tiers"}


def title_key(title: str | None) -> str:
    """Comparable title: folded, punctuation and small words removed."""
    return " ".join(t for t in words(title).split() if t not in _TITLE_STOPWORDS)


@lru_cache(maxsize=65536)
def _title_tokens(key: str) -> frozenset[str]:
    return frozenset(t for t in key.split() if t not in _TITLE_NOISE)


def _near(x: str, y: str) -> bool:
    """Two title words that are one word misspelt or abbreviated (4 letters at least)."""
    if len(x) < 4 or len(y) < 4:
        return False
    return x.startswith(y) or y.startswith(x) or fuzz.ratio(x, y) >= 80


def title_conflict(a: str | None, b: str | None) -> bool:
    """True when each title names something the other does not, typos and noise words
    (:data:`_TITLE_NOISE`) aside: ``"Point conseil budget pour les jeunes"`` /
    ``"Point conseil budget pour les femmes"`` (other audience), ``"Atelier cuisine"`` /
    ``"Atelier d'écriture"`` (other activity). One title adding words to the other (``"Repair
    café"`` / ``"Repair café - Pantin"``, ``"Épicerie solidaire pour tous"``) is no conflict."""
    return _conflict(_title_tokens(title_key(a)), _title_tokens(title_key(b)))


def _conflict(ta: frozenset[str], tb: frozenset[str]) -> bool:
    return _differences(ta, tb) >= 2


@lru_cache(maxsize=65536)
def _differences(ta: frozenset[str], tb: frozenset[str]) -> int:
    """0: same words (typos and noise aside); 1: one title adds words; 2: each title has words
    the other lacks, but on one side only generic ones (:data:`_TITLE_GENERIC`: "Atelier
    numérique : démarches en ligne" / "Aide aux démarches en ligne"); 3: each title names
    something specific the other does not ("Atelier cuisine" / "Atelier d'écriture")."""
    only_a, only_b = ta - tb, tb - ta
    rest_b = sorted(only_b)
    rest_a = []
    for x in sorted(only_a):
        match = next((y for y in rest_b if _near(x, y)), None)
        if match is None:
            rest_a.append(x)
        else:
            rest_b.remove(match)
    if not rest_a or not rest_b:
        return int(bool(rest_a or rest_b))
    if all(w in _TITLE_GENERIC for w in rest_a) or all(w in _TITLE_GENERIC for w in rest_b):
        return 2
    return 3


def pair_key(a: str, b: str) -> str:
    """Order-independent key of a pair of event ids."""
    return "|".join(sorted((a, b)))


def cluster_id_for(members: Iterable[str]) -> str:
    """``cl-`` + 16 hex digits of SHA-256 over the sorted member ids joined by newlines."""
    joined = "\n".join(sorted(members))
    return "cl-" + hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


@dataclass
class PairScore:
    """Similarity of two events: overall ``score`` (0–1) and its parts (None = not compared)."""

    score: float
    title: float
    place: float | None
    time: float | None
    organizer: float | None
    decision: str  # same | review | different


# ------------------------------------------------------------------ places
def venue_similarity(a: str | None, b: str | None) -> float | None:
    """Similarity 0–1 of two location texts of unknown venues; None when they cannot be
    compared. Different postal codes or cities give 0; otherwise the venue and street words,
    city and postal code removed, are compared (rapidfuzz ``token_set_ratio``)."""
    if not a or not b:
        return None
    return _text_similarity(_venue(a, None), _venue(b, None))


def _text_similarity(a: _Venue, b: _Venue) -> float | None:
    """:func:`venue_similarity` of two parsed locations."""
    if not a.text or not b.text:
        return None
    if a.postal_code and b.postal_code and a.postal_code != b.postal_code:
        return 0.0
    if a.city and b.city and a.city != b.city:
        return 0.0
    if not a.words or not b.words:
        return None
    return fuzz.token_set_ratio(a.words, b.words) / 100.0


def _venue_words(text: str, city: str | None) -> str:
    key = place_key(re.sub(r"(?<!\d)\d{5}(?!\d)", " ", text))
    drop = set(place_key(city).split()) if city else set()
    return " ".join(t for t in key.split() if t not in drop)


@dataclass(frozen=True)
class _Venue:
    """What deduplication compares of one location: known place, venue name, words."""

    text: str | None
    place_id: str | None
    name: str  # place_key of the venue name ("" when the text names none)
    name_place: str | None  # the known place the venue *name* alone designates
    tokens: frozenset[str]  # place_key words of the whole text
    specific: frozenset[str]  # the same without postal code, city and generic venue words
    postal_code: str | None
    city: str  # folded words of the city
    words: str  # venue and street words, postal code and city left out


@lru_cache(maxsize=16384)
def _venue(location: str | None, place_id: str | None) -> _Venue:
    pid = place_id or (resolve_location(location).place_id if location else None)
    parsed = parse_location(location)
    name = place_key(parsed.name) if parsed.name else ""
    found = match_place(parsed.name, allow_single=False) if name else None
    tokens = frozenset(place_key(location).split()) if location else frozenset()
    city = set(place_key(parsed.city).split()) if parsed.city else set()
    specific = frozenset(t for t in tokens - city
                         if t not in _VENUE_GENERIC and not re.fullmatch(r"\d{5}", t))
    return _Venue(location, pid, name, found[0].id if found else None, tokens, specific,
                  parsed.postal_code, words(parsed.city) if parsed.city else "",
                  _venue_words(location, parsed.city) if location else "")


def _names_differ(a: _Venue, b: _Venue) -> bool:
    """Both texts name a venue and the names are different ones (``"Salle Jacques-Brel"`` /
    ``"Maison de quartier des Quatre-Chemins"``, even at one address), word order, abbreviations
    and a name written inside the other's text aside."""
    if not a.name or not b.name:
        return False
    if a.name_place is not None and a.name_place == b.name_place:
        return False
    if fuzz.token_set_ratio(a.name, b.name) >= 60:
        return False
    return not (set(a.name.split()) <= b.tokens or set(b.name.split()) <= a.tokens)


_VENUE_GENERIC = frozenset({
    "maison", "quartier", "salle", "centre", "espace", "social", "sociale", "socio", "culturel",
    "municipal", "municipale", "communal", "communale", "bibliotheque", "mediatheque",
    "gymnase", "ecole", "college", "lycee", "hotel", "ville", "foyer", "local", "pole",
    "rue", "avenue", "boulevard", "place", "allee", "impasse", "chemin", "quai", "square",
    "passage", "cite", "route", "bis", "ter", "france"})
"""Words of a location that name a kind of venue or street, not which one."""


@lru_cache(maxsize=65536)
def _place_parts(a: _Venue, b: _Venue) -> tuple[float, bool]:
    """(place similarity, NaN when not comparable; venue names differ). Unless both places are
    known, two location texts sharing no specific word (``"Maison de quartier des
    Courtillières, 2 avenue des Courtillières"`` / ``"MQ du Petit-Pantin, 22 r.
    Cartier-Bresson"``) are two places, whatever generic words they share."""
    if a.place_id and b.place_id:
        place: float | None = 1.0 if a.place_id == b.place_id else 0.0
    else:
        place = _text_similarity(a, b)
        if place and a.specific and b.specific and not a.specific & b.specific:
            place = 0.0
    if place is None:
        return float("nan"), False
    return place, place >= 0.5 and _names_differ(a, b)


# ------------------------------------------------------------------ scoring
def _minutes(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp() / 60.0
    return float("nan")


def score_pair(a: Mapping[str, Any], b: Mapping[str, Any]) -> PairScore:
    """Similarity of two events given as dicts with keys title, start (aware datetime, or
    None for all-day), end (aware datetime, optional), start_date, all_day, location,
    place_id, organizer.

    The same rules as a whole run (:func:`deduplicate`) applies to each candidate pair.
    Returns a :class:`PairScore` whose ``decision`` applies the thresholds.
    """
    ka, kb = title_key(a.get("title")), title_key(b.get("title"))
    title = _title_similarity(np.array([ka], dtype=object), np.array([kb], dtype=object))
    differences = np.array([_differences(_title_tokens(ka), _title_tokens(kb))])
    place, unsure_place = _place_parts(_venue(a.get("location"), a.get("place_id")),
                                       _venue(b.get("location"), b.get("place_id")))
    time, unsure_time = _time_parts(
        np.array([_minutes(a.get("start"))]), np.array([_minutes(b.get("start"))]),
        np.array([_minutes(a.get("end"))]), np.array([_minutes(b.get("end"))]),
        np.array([bool(a.get("all_day"))]), np.array([bool(b.get("all_day"))]),
        np.array([a.get("start_date") is not None and a.get("start_date") == b.get("start_date")]),
        differences)
    organizer = np.array([_organizer_similarity(words(a.get("organizer")),
                                                words(b.get("organizer")))])
    scores, decisions = _combine(title, np.array([place]), time, organizer, differences,
                                 np.array([unsure_place]) | unsure_time)

    def part(values: np.ndarray) -> float | None:
        return None if np.isnan(values[0]) else float(values[0])

    return PairScore(float(scores[0]), float(title[0]), part(np.array([place])), part(time),
                     part(organizer), str(decisions[0]))


def _title_similarity(ka: np.ndarray, kb: np.ndarray) -> np.ndarray:
    """(token_sort_ratio + token_set_ratio) / 200 of title keys, or of the same keys without
    noise words (:data:`_TITLE_NOISE`) when that is higher; 0 when one title is empty."""
    if len(ka) == 0:
        return np.zeros(0)
    best = np.zeros(len(ka))
    for left, right in ((ka, kb), (_strip_noise(ka), _strip_noise(kb))):
        sort = process.cpdist(left, right, scorer=fuzz.token_sort_ratio, dtype=np.float64,
                              workers=-1)
        set_ = process.cpdist(left, right, scorer=fuzz.token_set_ratio, dtype=np.float64,
                              workers=-1)
        empty = np.array([not x or not y for x, y in zip(left, right, strict=True)], dtype=bool)
        best = np.maximum(best, np.where(empty, 0.0, (sort + set_) / 200.0))
    return best


def _strip_noise(keys: np.ndarray) -> np.ndarray:
    stripped = np.empty(len(keys), dtype=object)
    stripped[:] = [_without_noise(k) for k in keys]
    return stripped


@lru_cache(maxsize=65536)
def _without_noise(key: str) -> str:
    return " ".join(t for t in key.split() if t not in _TITLE_NOISE)


def _organizer_similarity(a: str, b: str) -> float:
    return fuzz.token_set_ratio(a, b) / 100.0 if a and b else float("nan")


def _time_parts(start_a: np.ndarray, start_b: np.ndarray, end_a: np.ndarray, end_b: np.ndarray,
                all_day_a: np.ndarray, all_day_b: np.ndarray, same_date: np.ndarray,
                differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time similarity, NaN when not comparable; uncertain) for arrays of pairs. Minutes since
    the epoch (NaN unknown) for timed events; all-day pairs compare their dates.

    Uncertain: starts more than SHIFT_MINUTES apart; another slot (:data:`SLOT_MINUTES`); two
    all-day events whose titles differ by words (``differences``, see :func:`_differences`): a
    shared date says little."""
    gap = np.abs(start_a - start_b)
    with np.errstate(invalid="ignore"):
        time = np.maximum(0.0, 1.0 - gap / 60.0)
        both_days = all_day_a & all_day_b
        time = np.where(np.isnan(gap) & both_days, np.where(same_date, 1.0, 0.0), time)
        end_gap = np.abs(end_a - end_b)
        slot = (gap > 0) & (end_gap > END_TOLERANCE_MINUTES) & (
            np.maximum(gap, end_gap) >= SLOT_MINUTES)
        unsure = (gap > SHIFT_MINUTES) | slot | (both_days & (differences > 0))
    return time, unsure


def _combine(title: np.ndarray, place: np.ndarray, time: np.ndarray, organizer: np.ndarray,
             differences: np.ndarray, unsure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of the known parts, caps, thresholds: (scores, decisions). ``differences``
    (:func:`_differences`) 3 caps at CONFLICT_CAP (different), 2 and ``unsure`` at UNSURE_CAP
    (review at most)."""
    numerator = WEIGHTS["title"] * title
    denominator = np.full(len(title), WEIGHTS["title"])
    for values, weight in ((place, WEIGHTS["place"]), (time, WEIGHTS["time"]),
                           (organizer, WEIGHTS["organizer"])):
        known = ~np.isnan(values)
        numerator = numerator + np.where(known, weight * np.nan_to_num(values), 0.0)
        denominator = denominator + np.where(known, weight, 0.0)
    score = numerator / denominator
    with np.errstate(invalid="ignore"):
        score = np.where(place < 0.5, np.minimum(score, 0.5), score)  # two venues, or cities
        score = np.where(title < 0.5, np.minimum(score, 0.4), score)
        score = np.where(time < 0.5, np.minimum(score, 0.6), score)
    score = np.where(differences >= 3, np.minimum(score, CONFLICT_CAP), score)
    score = np.where(unsure | (differences == 2), np.minimum(score, UNSURE_CAP), score)
    score = np.round(score, 4)
    decisions = np.where(score >= SAME_THRESHOLD, "same",
                         np.where(score >= REVIEW_THRESHOLD, "review", "different"))
    return score, decisions


def source_priority(row: Mapping[str, Any]) -> int:
    """0: the organiser's own source (the ORGANIZER is the publisher, or there is no ORGANIZER
    and the publisher is not a municipal aggregate: an association's calendar lists its own
    events); 1: a municipal aggregate; 2: a third party (another organiser's event)."""
    return _priority(row.get("organizer"), row.get("publisher_name"), row.get("publisher_type"))


@lru_cache(maxsize=65536)
def _priority(organizer_text: str | None, publisher_name: str | None,
              publisher_type: str | None) -> int:
    organizer, publisher = words(organizer_text), words(publisher_name)
    municipal = publisher_type == "service-municipal"
    if organizer and publisher and fuzz.token_set_ratio(organizer, publisher) >= 90:
        return 0
    if not organizer and not municipal:
        return 0
    return 1 if municipal else 2


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, item: str) -> str:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DedupeOutcome:
    """What a deduplication run did. ``recomputed`` events (on ``days`` Paris days) were scored
    again; the others kept their clusters (incremental run)."""

    events: int = 0
    candidate_pairs: int = 0
    merged_pairs: int = 0
    review_pairs: int = 0
    clusters: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)
    recomputed: int = 0
    days: int = 0
    full: bool = False


def cluster(ids: list[str], edges: list[tuple[str, str, float]],
            forbidden: set[str]) -> dict[str, list[str]]:
    """Group ``ids`` by ``edges`` (a, b, score), strongest first, never putting two events of a
    ``forbidden`` pair key together. Returns root id → sorted members."""
    finder = _UnionFind(ids)
    members: dict[str, set[str]] = {i: {i} for i in ids}
    for a, b, _score in sorted(edges, key=lambda e: (-e[2], e[0], e[1])):
        ra, rb = finder.find(a), finder.find(b)
        if ra == rb:
            continue
        if forbidden and any(pair_key(x, y) in forbidden
                             for x in members[ra] for y in members[rb]):
            continue
        finder.union(ra, rb)
        root = finder.find(ra)
        merged = members.pop(ra) | members.pop(rb)
        members[root] = merged
    return {root: sorted(group) for root, group in members.items()}


# ------------------------------------------------------------------ merge
_UNION_FIELDS = ("themes", "publics", "accessibility")
_FIRST_FIELDS = ("url", "organizer", "location", "place_id", "address", "postal_code", "city",
                 "quartier", "latitude", "longitude", "gratuit", "price",
                 "registration_required", "registration_url", "registration_phone", "language")
_MAX_INSTANT = dt.datetime.max.replace(tzinfo=dt.UTC)


@lru_cache(maxsize=131072)
def _instant(value: Any) -> dt.datetime:
    """A stored timestamp (aware or naive UTC datetime, or SQLite text) as aware UTC."""
    if value is None:
        return _MAX_INSTANT
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _union(raws: Iterable[Any], themes: bool) -> list[str]:
    merged: list[str] = []
    for raw in raws:
        if not raw or raw == "[]":
            continue
        for code in json.loads(raw):
            if code not in merged:
                merged.append(code)
    if themes and len(merged) > 1 and "autre" in merged:
        merged.remove("autre")
    return merged


def merge_cluster(rows: Sequence[Mapping[str, Any]], priorities: Mapping[str, int]
                  ) -> tuple[Mapping[str, Any], dict[str, Any], dict[str, str]]:
    """Pick the canonical member and the merged field values.

    ``rows`` are events as mappings of the ``event`` columns (timestamps as stored: aware or
    naive UTC datetimes, or SQLite text); ``priorities`` maps event id → :func:`source_priority`.
    Returns (canonical row, {field: value}, {field: member id it came from}).
    """
    ranked = sorted(rows, key=lambda e: (priorities.get(e["id"], 2),
                                         _instant(e["first_seen_at"]), e["id"]))
    canonical = ranked[0]
    cid = canonical["id"]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {"title": cid, "dtstart_utc": cid, "status": cid}
    with_text = [(i, e) for i, e in enumerate(ranked) if e["description"]]
    if with_text:
        _i, longest = max(with_text, key=lambda p: (len(p[1]["description"]), -p[0]))
        values["description"], origin["description"] = longest["description"], longest["id"]
    earliest = min(ranked, key=lambda e: (_instant(e["first_seen_at"]), e["id"]))
    values["first_seen_at"], origin["first_seen_at"] = earliest["first_seen_at"], earliest["id"]
    for name in _FIRST_FIELDS:
        for member in ranked:
            value = member[name]
            if value is not None and value != "":
                values[name], origin[name] = value, member["id"]
                break
    for name in _UNION_FIELDS:
        merged = _union((m[name] for m in ranked), name == "themes")
        if merged:
            values[name] = json.dumps(merged, ensure_ascii=False)
            origin[name] = "+".join(m["id"] for m in ranked)
    # Sticky provenance: a value the canonical already holds because an earlier run copied it
    # from another member still comes from that member (idempotent field_sources).
    if len(ranked) > 1:
        previous = json.loads(canonical["field_sources"] or "{}")
        members = {e["id"]: e for e in ranked}
        for name, member_id in list(origin.items()):
            before = previous.get(name)
            if (member_id == cid and before in members and before != cid
                    and name in values and members[before][name] == values[name]):
                origin[name] = before
    return canonical, values, origin


# ------------------------------------------------------------------ state of the last run
class DedupeState(SQLModel, table=True):
    """Per Europe/Paris day (days since 1970-01-01; -1: events without a date), a digest of the
    live events of that day as the last deduplication left them (every column it reads or
    merges, and their source's publisher). Working store only (never published)."""

    __tablename__ = "dedupe_state"
    day: int = Field(primary_key=True)
    digest: str = ""
    events: int = 0
    members: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"),
                         description="JSON: event id → digest of its row")


class DedupeMeta(SQLModel, table=True):
    """``version`` (algorithm, thresholds, places registry) and ``decisions`` (JSON of the human
    decisions the last run applied) of the last deduplication. Working store only."""

    __tablename__ = "dedupe_meta"
    key: str = Field(primary_key=True)
    value: str = ""


_OUTPUTS = ("cluster_id", "is_canonical", "field_sources")
"""Columns only deduplication writes: left out of the digests."""
_EVENT_COLUMNS = ("id", "source_id", "source_uid", "title", "description", "all_day",
                  "dtstart_utc", "dtend_utc", "start_date", "status", *_FIRST_FIELDS,
                  *_UNION_FIELDS, "first_seen_at", "updated_at", "source_url")
_SOURCE_COLUMNS = ("publisher_name", "publisher_type")
_COLUMNS = _EVENT_COLUMNS + _SOURCE_COLUMNS + _OUTPUTS
_AT = {name: i for i, name in enumerate(_COLUMNS)}
_DIGESTED = len(_EVENT_COLUMNS) + len(_SOURCE_COLUMNS)


def _select_events() -> str:
    columns = ", ".join([f"e.{c}" for c in _EVENT_COLUMNS] + [f"s.{c}" for c in _SOURCE_COLUMNS]
                        + [f"e.{c}" for c in _OUTPUTS])
    return (f"SELECT {columns} FROM event e LEFT JOIN source s ON s.id = e.source_id "
            # a retired source's events leave the publication (publish.build): they leave
            # their clusters too, with what was merged from them
            "WHERE e.removed_at_source IS NULL AND (s.status IS NULL OR s.status != 'retired') "
            "ORDER BY e.id")


def _row_digest(row: Sequence[Any]) -> str:
    return hashlib.blake2b(pickle.dumps(tuple(row[:_DIGESTED]), protocol=4),
                           digest_size=12).hexdigest()


def _day_digests(ids: Sequence[str], digests: Sequence[str], days: Sequence[int]
                 ) -> dict[int, tuple[str, int]]:
    """day → (digest of its events' ids and digests, in id order; number of events)."""
    grouped: dict[int, list[str]] = {}
    for event_id, digest, day in zip(ids, digests, days, strict=True):
        grouped.setdefault(day, []).append(f"{event_id}\x1f{digest}")
    return {day: (hashlib.blake2b("\x1e".join(parts).encode("utf-8"),
                                  digest_size=16).hexdigest(), len(parts))
            for day, parts in grouped.items()}


def _version() -> str:
    try:
        places = hashlib.sha256(PLACES_FILE.read_bytes()).hexdigest()[:16]
    except OSError:
        places = "-"
    return json.dumps([ALGORITHM, WINDOW_MINUTES, SHIFT_MINUTES, END_TOLERANCE_MINUTES,
                       SLOT_MINUTES, SAME_THRESHOLD, REVIEW_THRESHOLD, UNSURE_CAP, CONFLICT_CAP,
                       WEIGHTS,
                       sorted(_TITLE_NOISE), sorted(_TITLE_GENERIC), places])


_EPOCH = pd.Timestamp(0, tz="UTC")


def _minutes_of(values: Sequence[Any]) -> np.ndarray:
    """Minutes since 1970-01-01 UTC of stored timestamps (aware or naive UTC datetimes, or
    SQLite text); NaN when missing."""
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    return ((stamps - _EPOCH).dt.total_seconds() / 60.0).to_numpy(dtype=np.float64)


def _days(all_day: Sequence[Any], start_minutes: np.ndarray,
          start_date: Sequence[Any]) -> np.ndarray:
    """Europe/Paris day (days since 1970-01-01) of each event; -1 without a date."""
    stamps = pd.to_datetime(pd.Series(start_minutes * 60.0), unit="s", utc=True)
    local = stamps.dt.tz_convert(PARIS).dt.tz_localize(None).dt.normalize()
    timed = local.to_numpy().astype("datetime64[D]").astype("int64")
    dates = pd.to_datetime(pd.Series([None if v is None else str(v)[:10] for v in start_date],
                                     dtype=object), format="%Y-%m-%d")
    dated = dates.to_numpy().astype("datetime64[D]").astype("int64")
    flag = np.array([bool(v) for v in all_day], dtype=bool)
    nat = np.iinfo("int64").min
    day = np.where(flag | (timed == nat), dated, timed)
    return np.where(day == nat, -1, day)


def _executemany(connection: Any, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """One DB-API ``executemany`` of a statement written with ``?`` placeholders."""
    if not rows:
        return
    if connection.dialect.paramstyle in ("format", "pyformat"):
        statement = statement.replace("?", "%s")
    connection.exec_driver_sql(statement, list(rows))


def _delete_in(connection: Any, table: str, column: str, values: Sequence[Any]) -> None:
    for chunk in _in_chunks(values):
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        connection.execute(text(f"DELETE FROM {table} WHERE {column} IN ({marks})"),
                           {f"i{n}": v for n, v in enumerate(chunk)})


# ------------------------------------------------------------------ the run
def _decisions(connection: Any) -> dict[str, tuple[str, float]]:
    """pair key → (decision, score) of every stored pair."""
    return {r[0]: (r[1], r[2]) for r in connection.execute(
        text("SELECT pair_key, decision, score FROM dedupedecision")).all()}


def _in_chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def deduplicate(session: Session, now: dt.datetime | None = None,
                full: bool = False) -> DedupeOutcome:
    """Score candidate pairs, cluster, merge and record provenance: every live event on the
    first run (or with ``full``, or when the rules or data/places.yaml changed), afterwards only
    the Europe/Paris days whose events changed since the last run (see the module docstring,
    « Incremental »).

    Idempotent: the same events and decisions give the same clusters, canonical events, field
    values and EventSource rows, whether the run is full or incremental. ``now`` (aware UTC)
    dates new review requests. Commits.
    """
    now = now or utcnow()
    outcome = DedupeOutcome()
    connection = session.connection()
    for table in (DedupeState.__table__, DedupeMeta.__table__):  # type: ignore[attr-defined]
        table.create(connection, checkfirst=True)
    meta: dict[str, str] = {r[0]: r[1] for r in connection.execute(
        text("SELECT key, value FROM dedupe_meta")).all()}
    version = _version()
    decisions = _decisions(connection)
    decided = {k: d for k, (d, _score) in decisions.items() if d in ("same", "different")}
    state: dict[int, tuple[str, int, str]] = {}
    if not full and meta.get("version") == version:
        state = {r[0]: (r[1], r[2], r[3]) for r in connection.execute(
            text("SELECT day, digest, events, members FROM dedupe_state")).all()}
    full = outcome.full = not state

    rows = connection.exec_driver_sql(_select_events()).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(_COLUMNS)
    ids: Sequence[str] = columns[0]
    start = _minutes_of(columns[_AT["dtstart_utc"]])
    days = _days(columns[_AT["all_day"]], start, columns[_AT["start_date"]])
    day_of = dict(zip(ids, days.tolist(), strict=True))
    focus_ids: set[str] | None = None  # None: every event of the touched days
    gone: list[str] = []  # events of the last run no longer live
    if full:
        touched = set(day_of.values())
        digests: list[str] = []
    else:
        digests = [_row_digest(r) for r in rows]
        current = _day_digests(ids, digests, days.tolist())
        touched = {d for d in set(current) | set(state)
                   if d not in state or current.get(d) != state[d][:2]}
        previous = json.loads(meta.get("decisions") or "{}")
        decided_ids = {i for key, _decision in set(previous.items()) ^ set(decided.items())
                       for i in key.split("|") if i in day_of}
        touched.update(day_of[i] for i in decided_ids)
        before: dict[str, str] = {}  # event id → digest, on the touched days, last run
        for d in touched & set(state):
            before.update(json.loads(state[d][2]))
        # the events new or changed on the touched days, and the clusters they leave
        focus_ids, left = set(decided_ids), set()
        for row, digest in zip(rows, digests, strict=True):
            if day_of[row[0]] in touched and before.get(row[0]) != digest:
                focus_ids.add(row[0])
                left.add(row[_AT["cluster_id"]])
        gone = [event_id for event_id in before if event_id not in day_of]
        for chunk in _in_chunks(gone):  # removed at their source or deleted since
            marks = ", ".join(f":i{n}" for n in range(len(chunk)))
            left.update(r[0] for r in connection.execute(
                text(f"SELECT cluster_id FROM eventsource WHERE event_id IN ({marks})"),
                {f"i{n}": v for n, v in enumerate(chunk)}).all())
        left.discard(None)
        focus_ids.update(r[0] for r in rows if r[_AT["cluster_id"]] in left
                         and day_of[r[0]] in touched)
    outcome.events = len(rows)
    outcome.days = len(touched)
    chosen = np.flatnonzero(np.isin(days, np.array(sorted(touched), dtype=np.int64)))
    picked = [rows[i] for i in chosen.tolist()]
    focus = None if focus_ids is None else np.array([r[0] in focus_ids for r in picked],
                                                    dtype=bool)
    clusters, edges, reviews, (outcome.candidate_pairs, outcome.merged_pairs), focus = _match(
        picked, start[chosen], days[chosen], decided, focus)
    outcome.recomputed = int(focus.sum())
    outcome.review_pairs = len(reviews)
    recomputed = np.zeros(len(rows), dtype=bool)
    recomputed[chosen[focus]] = True
    kept = {rows[i][_AT["cluster_id"]] for i in np.flatnonzero(~recomputed).tolist()}
    if touched:
        _store_reviews(connection, reviews, decisions, now)
        written = _write_clusters(connection, picked, clusters, edges, full,
                                  [picked[i][0] for i in np.flatnonzero(focus)], gone)
        if full:
            digests = [_row_digest(r) for r in rows]
        for position, values in written.items():  # digests as the next run will read them
            after = list(picked[position])
            for name, value in values.items():
                after[_AT[name]] = value
            digests[chosen[position]] = _row_digest(after)
        _store_state(connection, ids, digests, days.tolist(), touched, full)
    outcome.clusters = len(kept) + len(clusters)
    outcome.duplicates = outcome.events - outcome.clusters
    _store_meta(connection, meta, version, decided)
    session.commit()
    return outcome


def _match(rows: Sequence[Sequence[Any]], start: np.ndarray, day: np.ndarray,
           decided: dict[str, str], focus: np.ndarray | None = None
           ) -> tuple[list[list[int]], list[tuple[int, int, float]],
                      list[tuple[str, str, float]], tuple[int, int], np.ndarray]:
    """Candidate pairs, scores, decisions and clusters of ``rows`` (whole days, sorted by id;
    ``start`` in minutes since the epoch, ``day`` as in :func:`_days`).

    ``focus`` (one flag per row; None: every row) names the rows to recompute: only pairs
    with a focused row are scored, and whenever such a pair links a focused row to another,
    the other's whole previous cluster (``cluster_id`` as read) joins the focus, until nothing
    more joins. Rows outside the final focus keep their cluster.

    Returns (clusters of focused rows as lists of row positions, merge edges (position a,
    position b, score), review pairs (id a, id b, score), (candidate pairs, merged pairs),
    final focus).
    """
    n = len(rows)
    if n == 0:
        return [], [], [], (0, 0), np.zeros(0, dtype=bool)
    focus = np.ones(n, dtype=bool) if focus is None else focus.copy()
    columns = list(zip(*rows, strict=True))
    ids: Sequence[str] = columns[0]
    index = {event_id: i for i, event_id in enumerate(ids)}
    all_day = np.array([bool(v) for v in columns[_AT["all_day"]]], dtype=bool)
    start = np.where(all_day, np.nan, start)
    end = np.where(all_day, np.nan, _minutes_of(columns[_AT["dtend_utc"]]))
    source, _sources = _codes(columns[_AT["source_id"]])
    title_code, title_values = _codes(columns[_AT["title"]], title_key)
    venue_code, venue_values = _codes(zip(columns[_AT["location"]], columns[_AT["place_id"]],
                                          strict=True))
    organizer_code, organizer_values = _codes(columns[_AT["organizer"]], words)
    old_cluster, _old = _codes(columns[_AT["cluster_id"]])
    keys = np.empty(len(title_values), dtype=object)
    keys[:] = title_values
    size = max(1, len(title_values))


    def score(ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray]:
        # 1. places: one comparison per distinct pair of locations; other places are dropped
        place, unsure_place = _pairwise(venue_code[ia], venue_code[ib], len(venue_values),
                                        lambda x, y: _place_parts(_venue(*venue_values[x]),
                                                                  _venue(*venue_values[y])))
        keep = ~(place < 0.5)
        ia, ib, place, unsure_place = ia[keep], ib[keep], place[keep], unsure_place[keep]
        # 2. titles: rapidfuzz on each distinct pair of titles; unrelated titles are dropped
        unique, inverse = _distinct(title_code[ia] * size + title_code[ib], size * size)
        title = _title_similarity(keys[unique // size], keys[unique % size])[inverse]
        keep = title >= 0.5
        ia, ib, place, unsure_place, title = (ia[keep], ib[keep], place[keep], unsure_place[keep],
                                              title[keep])
        organizer, _unused = _pairwise(
            organizer_code[ia], organizer_code[ib], len(organizer_values),
            lambda x, y: (_organizer_similarity(organizer_values[x], organizer_values[y]), False))
        # 3. the word differences of titles only matter for pairs that could reach review
        none = np.zeros(len(ia))
        time, _unsure = _time_parts(start[ia], start[ib], end[ia], end[ib], all_day[ia],
                                    all_day[ib], day[ia] == day[ib], none)
        upper, _verdicts = _combine(title, place, time, organizer, none, unsure_place & False)
        keep = upper >= REVIEW_THRESHOLD
        ia, ib, place, unsure_place, title, organizer, time = (
            ia[keep], ib[keep], place[keep], unsure_place[keep], title[keep], organizer[keep],
            time[keep])
        differences, _unused = _pairwise(
            title_code[ia], title_code[ib], size,
            lambda x, y: (float(_differences(_title_tokens(title_values[x]),
                                             _title_tokens(title_values[y]))), False))
        time, unsure_time = _time_parts(start[ia], start[ib], end[ia], end[ib], all_day[ia],
                                        all_day[ib], day[ia] == day[ib], differences)
        scores, verdicts = _combine(title, place, time, organizer, differences,
                                    unsure_place | unsure_time)
        return ia, ib, scores, verdicts

    edges: list[tuple[int, int, float]] = []
    reviews: list[tuple[str, str, float]] = []
    forbidden: set[str] = set()
    applied: set[str] = set()
    expanded = np.zeros(n, dtype=bool)  # rows whose pairs were scored
    done = np.zeros(0, dtype=np.int64)  # codes a * n + b of the pairs scored
    candidates = 0
    while True:
        new = focus & ~expanded
        if new.all() and len(venue_values) <= _VENUE_BLOCKS:
            # every row, few locations: only the windows of two locations that may be one place
            table = np.array([[not _place_parts(_venue(*x), _venue(*y))[0] < 0.5
                               for y in venue_values] for x in venue_values], dtype=bool)
            pair_a, pair_b = _venue_window_pairs(start, day, all_day, source, venue_code, table)
        elif new.all():  # every row: each pair once, straight from the sorted window
            pair_a, pair_b = _window_pairs(start, day, all_day, source)
        else:
            pair_a, pair_b = _window_pairs(start, day, all_day, source, around=new)
        expanded |= new
        pair_a, pair_b = np.minimum(pair_a, pair_b), np.maximum(pair_a, pair_b)  # id order
        if not new.all():
            codes, first = np.unique(pair_a * n + pair_b, return_index=True)
            fresh = ~np.isin(codes, done)
            done = np.concatenate([done, codes[fresh]])
            pair_a, pair_b = pair_a[first[fresh]], pair_b[first[fresh]]
        candidates += len(pair_a)
        ia, ib, scores, verdicts = score(pair_a, pair_b)
        chosen = verdicts != "different"
        for x, y, value, verdict in zip(ia[chosen].tolist(), ib[chosen].tolist(),
                                        scores[chosen].tolist(), verdicts[chosen].tolist(),
                                        strict=True):
            if f"{ids[x]}|{ids[y]}" in decided:
                continue
            if verdict == "same":
                edges.append((x, y, value))
            else:
                reviews.append((ids[x], ids[y], value))
        # human decisions win, on every candidate pair (scored or not)
        for key, decision in decided.items():
            a, _bar, b = key.partition("|")
            i, j = index.get(a), index.get(b)
            if (key in applied or i is None or j is None or not (focus[i] or focus[j])
                    or source[i] == source[j] or day[i] != day[j]):
                continue
            if all_day[i] != all_day[j] or (
                    not all_day[i] and not abs(start[i] - start[j]) <= WINDOW_MINUTES):
                continue
            applied.add(key)
            if decision == "same":
                edges.append((i, j, 1.0))
            else:
                forbidden.add(key)
        reached = {p for e in edges for p in e[:2] if not focus[p]}
        if not reached:
            break
        clustered = [p for p in reached if columns[_AT["cluster_id"]][p] is not None]
        grow = np.isin(old_cluster, old_cluster[clustered])
        grow[sorted(reached)] = True
        focus |= grow
    linked = sorted({ids[i] for e in edges for i in e[:2]})
    groups = cluster(linked, [(ids[a], ids[b], s) for a, b, s in edges], forbidden)
    clusters = [[index[m] for m in members] for members in groups.values()]
    alone = focus.copy()
    alone[[index[i] for i in linked]] = False
    clusters.extend([i] for i in np.flatnonzero(alone).tolist())
    return clusters, edges, reviews, (candidates, len(edges)), focus


def _codes(values: Iterable[Any], key: Any = None) -> tuple[np.ndarray, list[Any]]:
    """(code of each value, distinct values — or ``key(value)`` — in order of appearance)."""
    mapping: dict[Any, int] = {}
    codes = np.array([mapping.setdefault(v, len(mapping)) for v in values], dtype=np.int64)
    if key is None:
        return codes, list(mapping)
    keyed, distinct = _codes([key(v) for v in mapping])
    return keyed[codes] if len(codes) else codes, distinct


def _pairwise(code_a: np.ndarray, code_b: np.ndarray, size: int,
              compare: Any) -> tuple[np.ndarray, np.ndarray]:
    """``compare(x, y) → (float, bool)`` once per distinct (code_a, code_b), spread back."""
    if len(code_a) == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    size = max(1, size)
    unique, inverse = _distinct(code_a * size + code_b, size * size)
    results = [compare(int(p // size), int(p % size)) for p in unique.tolist()]
    values = np.array([r[0] for r in results], dtype=np.float64)
    flags = np.array([r[1] for r in results], dtype=bool)
    return values[inverse], flags[inverse]


def _distinct(codes: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for codes in [0, bound): a lookup table when
    the bound is small enough (linear time), else a sort."""
    if bound > 20_000_000:
        return np.unique(codes, return_inverse=True)
    seen = np.zeros(bound, dtype=bool)
    seen[codes] = True
    unique = np.flatnonzero(seen)
    rank = np.zeros(bound, dtype=np.int64)
    rank[unique] = np.arange(len(unique))
    return unique, rank[codes]


_VENUE_BLOCKS = 150
"""Up to this many distinct locations, candidate pairs are drawn per pair of compatible
locations (never materialising pairs of two known different places)."""


def _venue_window_pairs(start: np.ndarray, day: np.ndarray, all_day: np.ndarray,
                        source: np.ndarray, venue: np.ndarray, compatible: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_window_pairs` restricted to pairs whose locations are ``compatible`` (a matrix
    over location codes ``venue``): the same pairs, less those :func:`_place_parts` drops."""
    pieces_a: list[np.ndarray] = []
    pieces_b: list[np.ndarray] = []
    timed = ~all_day & ~np.isnan(start)
    dated = all_day & (day >= 0)
    for kind, key, width in ((timed, start, WINDOW_MINUTES), (dated, day, 0)):
        chosen = np.flatnonzero(kind)
        chosen = chosen[np.lexsort((key[chosen], venue[chosen]))]  # by location, then key
        bounds = np.searchsorted(venue[chosen], np.arange(len(compatible) + 1))
        groups = [chosen[bounds[v]:bounds[v + 1]] for v in range(len(compatible))]
        sorted_keys = [key[g].astype(np.float64) for g in groups]
        for u, members_u in enumerate(groups):
            if len(members_u) == 0:
                continue
            for v in np.flatnonzero(compatible[u, u:]).tolist():
                v += u
                order, values = groups[v], sorted_keys[v]
                if len(order) == 0:
                    continue
                a, b = _pairs_in_range(members_u, order, values, key, width)
                if len(a) == 0:
                    continue
                keep = (day[a] == day[b]) & (source[a] != source[b])
                if u == v:
                    keep &= a < b  # each pair of one location once
                pieces_a.append(a[keep])
                pieces_b.append(b[keep])
    if not pieces_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(pieces_a), np.concatenate(pieces_b)


def _pairs_in_range(queries: np.ndarray, order: np.ndarray, values: np.ndarray,
                    key: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (q, o): every row q of ``queries`` with every row o of ``order`` (rows
    sorted by ``values``, their keys) such that ``|key[q] - key[o]| <= width``, q first."""
    low = np.searchsorted(values, key[queries] - width, side="left")
    high = np.searchsorted(values, key[queries] + width, side="right")
    counts = high - low
    total = int(counts.sum())
    a = np.repeat(queries, counts)
    b = order[np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
              + np.repeat(low, counts)]
    return a, b


def _window_pairs(start: np.ndarray, day: np.ndarray, all_day: np.ndarray,
                  source: np.ndarray, around: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of events of different sources on the same day: timed events whose
    starts are at most WINDOW_MINUTES apart, all-day events on the same date. With ``around``
    (one flag per row), only the pairs of the flagged rows (a pair of two flagged rows may come
    twice)."""
    pieces_a: list[np.ndarray] = []
    pieces_b: list[np.ndarray] = []
    timed = np.flatnonzero(~all_day & ~np.isnan(start))
    dated = np.flatnonzero(all_day & (day >= 0))
    for members, key, width in ((timed, start, WINDOW_MINUTES), (dated, day, 0)):
        if len(members) < 2:
            continue
        order = members[np.argsort(key[members], kind="stable")]
        values = key[order].astype(np.float64)
        if around is not None:
            a, b = _pairs_in_range(order[around[order]], order, values, key, width)
            if len(a) == 0:
                continue
            keep = (a != b) & (day[a] == day[b]) & (source[a] != source[b])
            pieces_a.append(a[keep])
            pieces_b.append(b[keep])
            continue
        upper = np.searchsorted(values, values + width, side="right")
        position = np.arange(len(order))
        counts = upper - position - 1
        total = int(counts.sum())
        if total == 0:
            continue
        first = np.repeat(position, counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        a, b = order[first], order[first + 1 + offsets]
        keep = (day[a] == day[b]) & (source[a] != source[b])
        pieces_a.append(a[keep])
        pieces_b.append(b[keep])
    if not pieces_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(pieces_a), np.concatenate(pieces_b)


def _store_reviews(connection: Any, reviews: list[tuple[str, str, float]],
                   decisions: dict[str, tuple[str, float]], now: dt.datetime) -> None:
    """New pending pairs are added; a pending pair's score follows the latest run."""
    table = DedupeDecision.__table__  # type: ignore[attr-defined]
    new, moved = [], []
    for a, b, score in reviews:
        key = f"{a}|{b}"
        stored = decisions.get(key)
        if stored is None:
            new.append({"pair_key": key, "event_a": a, "event_b": b, "score": score,
                        "decision": "pending", "created_at": now})
        elif stored[0] == "pending" and stored[1] != score:
            moved.append((score, key))
    if new:
        connection.execute(table.insert(), new)
    _executemany(connection, "UPDATE dedupedecision SET score = ? WHERE pair_key = ?", moved)


def _alone(row: Sequence[Any]) -> dict[str, Any]:
    """What :func:`merge_cluster` changes in a cluster of one: its theme, public and
    accessibility lists rewritten (« autre » dropped beside another theme). Its
    ``field_sources`` stays ``{}``: nothing was merged, every value is its own."""
    values: dict[str, Any] = {}
    for name in _UNION_FIELDS:
        raw = row[_AT[name]]
        if not raw or raw == "[]":
            continue
        merged = _union([raw], name == "themes")
        if merged and json.dumps(merged, ensure_ascii=False) != raw:
            values[name] = json.dumps(merged, ensure_ascii=False)
    return values


def _write_clusters(connection: Any, rows: Sequence[Sequence[Any]], clusters: list[list[int]],
                    edges: list[tuple[int, int, float]], full: bool, recomputed: list[str],
                    gone: list[str]) -> dict[int, dict[str, Any]]:
    """Cluster ids, canonical flags, merged values with their provenance, EventSource rows of
    the ``recomputed`` events (every event when ``full``), grouped in ``clusters`` (positions
    in ``rows``). Returns, per row position, the merged values written (outputs aside)."""
    confidence = {(a, b): s for a, b, s in edges} | {(b, a): s for a, b, s in edges}
    best: dict[int, float] = {}
    for a, b, s in edges:
        best[a] = max(best.get(a, 0.0), s)
        best[b] = max(best.get(b, 0.0), s)
    updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    provenance: list[tuple[Any, ...]] = []
    written: dict[int, dict[str, Any]] = {}
    at_cluster, at_canonical, at_sources = (_AT["cluster_id"], _AT["is_canonical"],
                                            _AT["field_sources"])

    def change(position: int, values: dict[str, Any], outputs: dict[str, Any]) -> None:
        if values:
            written[position] = dict(values)
        values.update(outputs)
        if values:
            names = tuple(sorted(values))
            updates.setdefault(names, []).append((*(values[n] for n in names), rows[position][0]))

    for positions in clusters:
        if len(positions) == 1:  # alone (a full run writes its provenance row in SQL below)
            row = rows[positions[0]]
            cid = "cl-" + hashlib.sha256(row[0].encode("utf-8")).hexdigest()[:16]
            values = _alone(row) if (row[_AT["themes"]] != "[]" or row[_AT["publics"]] != "[]"
                                     or row[_AT["accessibility"]] != "[]") else {}
            outputs: dict[str, Any] = {}
            if row[at_cluster] != cid:
                outputs["cluster_id"] = cid
            if not row[at_canonical]:
                outputs["is_canonical"] = True
            if row[at_sources] != "{}":
                outputs["field_sources"] = "{}"
            if values or outputs:
                change(positions[0], values, outputs)
            if not full:
                provenance.append(_provenance(row, row, cid, 1.0))
            continue
        members = [rows[p] for p in positions]
        cid = cluster_id_for(r[0] for r in members)
        views = [dict(zip(_COLUMNS, r, strict=True)) for r in members]
        priorities = {v["id"]: _priority(v["organizer"], v["publisher_name"],
                                         v["publisher_type"]) for v in views}
        canonical, merged, origin = merge_cluster(views, priorities)
        canonical_id = canonical["id"]
        top = positions[[r[0] for r in members].index(canonical_id)]
        for position, row, view in zip(positions, members, views, strict=True):
            is_canonical = row[0] == canonical_id
            outputs = {}
            if row[at_cluster] != cid:
                outputs["cluster_id"] = cid
            if row[at_canonical] is None or bool(row[at_canonical]) != is_canonical:
                outputs["is_canonical"] = is_canonical
            values = {k: v for k, v in merged.items() if view[k] != v} if is_canonical else {}
            sources = (json.dumps(origin, ensure_ascii=False, sort_keys=True) if is_canonical
                       else "{}")
            if row[at_sources] != sources:
                outputs["field_sources"] = sources
            change(position, values, outputs)
            provenance.append(_provenance(rows[top], row, cid, 1.0 if is_canonical else
                                          confidence.get((top, position),
                                                         best.get(position, 0.0))))
    for names, batch in updates.items():
        assignments = ", ".join(f"{name} = ?" for name in names)
        _executemany(connection, f"UPDATE event SET {assignments} WHERE id = ?", batch)
    indexes = sorted(EventSource.__table__.indexes,  # type: ignore[attr-defined]
                     key=lambda i: str(i.name))
    if full:  # rewritten whole: its indexes are built once at the end, not row by row
        for index in indexes:
            index.drop(connection)
        connection.execute(text("DELETE FROM eventsource"))
    else:
        _delete_in(connection, "eventsource", "event_id", recomputed + gone)
    provenance.sort()
    _executemany(connection, f"INSERT INTO eventsource ({', '.join(_PROVENANCE)}) VALUES "
                             f"({', '.join('?' for _ in _PROVENANCE)})", provenance)
    if full:
        # every live event alone in its cluster (its own canonical, nothing merged): its own
        # provenance row, in one statement
        connection.execute(text(
            f"INSERT INTO eventsource ({', '.join(_PROVENANCE)}) "
            "SELECT e.id || '|' || e.id, e.cluster_id, e.id, e.id, e.source_id, e.source_uid, "
            "e.url, e.source_url, s.publisher_type, 1.0, e.first_seen_at, e.updated_at "
            "FROM event e LEFT JOIN source s ON s.id = e.source_id "
            "WHERE e.removed_at_source IS NULL AND e.cluster_id IS NOT NULL "
            "AND (s.status IS NULL OR s.status != 'retired') "
            "AND e.is_canonical AND e.field_sources = '{}'"))
        for index in indexes:
            index.create(connection)
    return written


_PROVENANCE = ("id", "cluster_id", "canonical_event_id", "event_id", "source_id", "source_uid",
               "url", "source_url", "publisher_type", "confidence", "first_seen_at",
               "last_seen_at")


def _provenance(canonical: Sequence[Any], member: Sequence[Any], cid: str,
                confidence: float) -> tuple[Any, ...]:
    return (f"{canonical[0]}|{member[0]}", cid, canonical[0], member[0],
            member[_AT["source_id"]], member[_AT["source_uid"]], member[_AT["url"]],
            member[_AT["source_url"]], member[_AT["publisher_type"]], confidence,
            member[_AT["first_seen_at"]], member[_AT["updated_at"]])


def _store_state(connection: Any, ids: Sequence[str], digests: Sequence[str],
                 days: Sequence[int], touched: set[int], full: bool) -> None:
    """Each recomputed day as this run left it: digest, events and each event's digest."""
    members: dict[int, dict[str, str]] = {day: {} for day in touched}
    for event_id, digest, day in zip(ids, digests, days, strict=True):
        if day in members:
            members[day][event_id] = digest
    current = _day_digests(ids, digests, days)
    if full:
        connection.execute(text("DELETE FROM dedupe_state"))
    else:
        _delete_in(connection, "dedupe_state", "day", sorted(touched))
    _executemany(connection,
                 "INSERT INTO dedupe_state (day, digest, events, members) VALUES (?, ?, ?, ?)",
                 [(day, *current[day], json.dumps(members[day], separators=(",", ":")))
                  for day in sorted(touched) if day in current])


def _store_meta(connection: Any, meta: dict[str, str], version: str,
                decided: dict[str, str]) -> None:
    for key, value in (("version", version),
                       ("decisions", json.dumps(decided, sort_keys=True))):
        if key not in meta:
            _executemany(connection, "INSERT INTO dedupe_meta (key, value) VALUES (?, ?)",
                         [(key, value)])
        elif meta[key] != value:
            _executemany(connection, "UPDATE dedupe_meta SET value = ? WHERE key = ?",
                         [(value, key)])


# ------------------------------------------------------------------ review
@dataclass
class ReviewItem:
    """A pending pair with both events, for ``tissu dedupe review``."""

    decision: DedupeDecision
    a: Event | None
    b: Event | None


def pending_reviews(session: Session) -> list[ReviewItem]:
    """Pairs waiting for a human decision, highest score first."""
    pending = session.exec(select(DedupeDecision).where(DedupeDecision.decision == "pending")
                           ).all()
    items = [ReviewItem(d, session.get(Event, d.event_a), session.get(Event, d.event_b))
             for d in pending]
    return sorted(items, key=lambda i: (-i.decision.score, i.decision.pair_key))


def record_decision(session: Session, key: str, decision: str, by: str = "cli",
                    now: dt.datetime | None = None) -> DedupeDecision:
    """Store a human decision (``same`` or ``different``) on a pair. Commits.

    Raises:
        ValueError: unknown decision or pair.
    """
    if decision not in ("same", "different"):
        raise ValueError(f"décision inconnue : {decision!r} (same ou different)")
    row = session.get(DedupeDecision, key)
    if row is None:
        raise ValueError(f"paire inconnue : {key!r}")
    row.decision, row.decided_by, row.decided_at = decision, by, now or utcnow()
    session.add(row)
    session.commit()
    return row


def run_deduplication(engine: Any, now: dt.datetime | None = None,
                      full: bool = False) -> DedupeOutcome:
    """Sync the place registry, deduplicate organisations and link events to them, then
    :func:`deduplicate` events (incrementally unless ``full``), in one session. Never raises:
    a failure is returned as a warning so that the harvest summary still prints."""
    from normalize.organisations import deduplicate_organisations, link_events
    from normalize.places import sync_places

    try:
        with Session(engine) as session:
            sync_places(session)
            deduplicate_organisations(session)
            link_events(session)
            return deduplicate(session, now, full=full)
    except Exception as exc:  # noqa: BLE001 - deduplication must not break a harvest
        return DedupeOutcome(warnings=[f"déduplication impossible ({exc!r})"])
