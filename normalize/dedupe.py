"""Cross-source deduplication: one published event per real-world event, with provenance.

Steps (run once after every source is normalised, :func:`deduplicate`):

1. **Candidate pairs** (pandas): events of *different* sources whose start falls on the same
   Europe/Paris day and within :data:`WINDOW_MINUTES` of each other (all-day events: same
   start date).
2. **Score** (:func:`score_pair`, rapidfuzz): normalised titles (accents, case, punctuation and
   small words ignored), place (known place id from data/places.yaml, else the location text),
   start-time gap, organiser. Score 0–1; a different known place or unrelated titles cap it.
3. **Decide**: score ≥ :data:`SAME_THRESHOLD` merges; :data:`REVIEW_THRESHOLD` ≤ score <
   SAME goes to the review list (``tissu dedupe review``); below, nothing. Thresholds favour a
   missed duplicate over a false merge. A stored human decision (DedupeDecision) always wins and
   is never asked again.
4. **Clusters** (union-find, deterministic): ``cluster_id`` = ``cl-`` + first 16 hex of SHA-256 of
   the sorted member ids, so it depends on who is in the cluster, never on row order.
5. **Merge**: the canonical member is the publisher's own source (the organiser is the
   publisher) over a municipal aggregate (publisher type ``service-municipal``) over a third
   party, then the earliest seen; fields are then taken per rule (most complete description,
   earliest ``first_seen_at``, union of themes/publics/accessibility, first non-empty value by
   priority otherwise) and ``field_sources`` records which member each field came from.
   EventSource rows list every member of each published event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from rapidfuzz import fuzz
from sqlmodel import Session, delete, select

from normalize.fold import words
from normalize.places import parse_location, place_key, resolve_location
from normalize.times import PARIS
from schemas.models import DedupeDecision, Event, EventSource, Source, utcnow

WINDOW_MINUTES = 30
SAME_THRESHOLD = 0.86
REVIEW_THRESHOLD = 0.70
WEIGHTS = {"title": 0.60, "place": 0.25, "time": 0.10, "organizer": 0.05}
_TITLE_STOPWORDS = frozenset({"de", "du", "des", "la", "le", "les", "l", "d", "un", "une", "et",
                              "a", "au", "aux", "en", "the", "of", "and"})
PRIORITY_LABELS = {0: "source de l'organisateur", 1: "agrégateur municipal", 2: "tiers"}


def title_key(title: str | None) -> str:
    """Comparable title: folded, punctuation and small words removed."""
    return " ".join(t for t in words(title).split() if t not in _TITLE_STOPWORDS)


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


def _place_of(row: dict[str, Any]) -> str | None:
    if row.get("place_id"):
        return str(row["place_id"])
    location = row.get("location")
    if not location:
        return None
    return resolve_location(location).place_id


def venue_similarity(a: str | None, b: str | None) -> float | None:
    """Similarity 0–1 of two location texts of unknown venues; None when they cannot be
    compared. Different postal codes or cities give 0; otherwise the venue and street words,
    city and postal code removed, are compared (rapidfuzz ``token_set_ratio``)."""
    if not a or not b:
        return None
    pa, pb = parse_location(a), parse_location(b)
    if pa.postal_code and pb.postal_code and pa.postal_code != pb.postal_code:
        return 0.0
    if pa.city and pb.city and words(pa.city) != words(pb.city):
        return 0.0
    ka, kb = _venue_words(a, pa.city), _venue_words(b, pb.city)
    if not ka or not kb:
        return None
    return fuzz.token_set_ratio(ka, kb) / 100.0


def _venue_words(text: str, city: str | None) -> str:
    key = place_key(re.sub(r"(?<!\d)\d{5}(?!\d)", " ", text))
    drop = set(place_key(city).split()) if city else set()
    return " ".join(t for t in key.split() if t not in drop)


def _start_minutes(row: dict[str, Any]) -> float | None:
    start = row.get("start")
    if isinstance(start, dt.datetime):
        return start.timestamp() / 60.0
    return None


def score_pair(a: dict[str, Any], b: dict[str, Any]) -> PairScore:
    """Similarity of two events given as dicts with keys title, start (aware datetime, or
    None for all-day), start_date, all_day, location, place_id, organizer.

    Returns a :class:`PairScore` whose ``decision`` applies the thresholds.
    """
    ta, tb = title_key(a.get("title")), title_key(b.get("title"))
    title = (fuzz.token_sort_ratio(ta, tb) + fuzz.token_set_ratio(ta, tb)) / 200.0 if ta and tb \
        else 0.0
    parts: dict[str, float | None] = {"title": title, "place": None, "time": None,
                                      "organizer": None}
    pa, pb = _place_of(a), _place_of(b)
    if pa and pb:
        parts["place"] = 1.0 if pa == pb else 0.0
    else:
        parts["place"] = venue_similarity(a.get("location"), b.get("location"))
    ma, mb = _start_minutes(a), _start_minutes(b)
    if ma is not None and mb is not None:
        parts["time"] = max(0.0, 1.0 - abs(ma - mb) / 60.0)
    elif a.get("all_day") and b.get("all_day"):
        parts["time"] = 1.0 if a.get("start_date") == b.get("start_date") else 0.0
    oa, ob = words(a.get("organizer")), words(b.get("organizer"))
    if oa and ob:
        parts["organizer"] = fuzz.token_set_ratio(oa, ob) / 100.0
    used = {k: v for k, v in parts.items() if v is not None}
    score = sum(WEIGHTS[k] * v for k, v in used.items()) / sum(WEIGHTS[k] for k in used)
    if parts["place"] is not None and parts["place"] < 0.5:
        score = min(score, 0.5)  # two different venues: never the same event
    if title < 0.5:
        score = min(score, 0.4)
    if parts["time"] is not None and parts["time"] < 0.5:
        score = min(score, 0.6)
    decision = ("same" if score >= SAME_THRESHOLD
                else "review" if score >= REVIEW_THRESHOLD else "different")
    return PairScore(round(score, 4), title, parts["place"], parts["time"], parts["organizer"],
                     decision)


def events_frame(events: list[Event], sources: dict[str, Source]) -> pd.DataFrame:
    """The columns deduplication needs, one row per live event."""
    rows = []
    for event in events:
        source = sources.get(event.source_id)
        start = event.dtstart_utc
        if event.all_day or start is None:
            day = event.start_date
        else:
            day = start.astimezone(PARIS).date()
        rows.append({
            "id": event.id, "source_id": event.source_id, "title": event.title,
            "start": None if event.all_day else start, "start_date": event.start_date,
            "all_day": bool(event.all_day), "day": day, "location": event.location,
            "place_id": event.place_id, "organizer": event.organizer,
            "publisher_name": source.publisher_name if source else None,
            "publisher_type": source.publisher_type if source else None,
            "first_seen_at": event.first_seen_at,
        })
    return pd.DataFrame(rows, columns=["id", "source_id", "title", "start", "start_date",
                                       "all_day", "day", "location", "place_id", "organizer",
                                       "publisher_name", "publisher_type", "first_seen_at"])


def candidate_pairs(frame: pd.DataFrame, window_minutes: int = WINDOW_MINUTES) -> pd.DataFrame:
    """Pairs (id_a < id_b) of events of different sources on the same Paris day whose starts
    are at most ``window_minutes`` apart (all-day events: both all-day)."""
    if frame.empty:
        return pd.DataFrame(columns=["id_a", "id_b"])
    left = frame[["id", "source_id", "day", "start", "all_day"]]
    pairs = left.merge(left, on="day", suffixes=("_a", "_b"))
    pairs = pairs[(pairs["id_a"] < pairs["id_b"]) & (pairs["source_id_a"] != pairs["source_id_b"])
                  & (pairs["all_day_a"] == pairs["all_day_b"])]
    timed = ~pairs["all_day_a"]
    gap = (pd.to_datetime(pairs["start_a"], utc=True) - pd.to_datetime(pairs["start_b"], utc=True))
    close = gap.abs() <= pd.Timedelta(minutes=window_minutes)
    pairs = pairs[~timed | close.fillna(False)]
    return pairs[["id_a", "id_b"]].sort_values(["id_a", "id_b"]).reset_index(drop=True)


def source_priority(row: dict[str, Any]) -> int:
    """0: the organiser's own source (the ORGANIZER is the publisher, or there is no ORGANIZER
    and the publisher is not a municipal aggregate: an association's calendar lists its own
    events); 1: a municipal aggregate; 2: a third party (another organiser's event)."""
    organizer, publisher = words(row.get("organizer")), words(row.get("publisher_name"))
    municipal = row.get("publisher_type") == "service-municipal"
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
    """What a deduplication run did."""

    events: int = 0
    candidate_pairs: int = 0
    merged_pairs: int = 0
    review_pairs: int = 0
    clusters: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)


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
        if any(pair_key(x, y) in forbidden for x in members[ra] for y in members[rb]):
            continue
        finder.union(ra, rb)
        root = finder.find(ra)
        merged = members.pop(ra) | members.pop(rb)
        members[root] = merged
    return {root: sorted(group) for root, group in members.items()}


_UNION_FIELDS = ("themes", "publics", "accessibility")
_FIRST_FIELDS = ("url", "organizer", "location", "place_id", "address", "postal_code", "city",
                 "quartier", "latitude", "longitude", "gratuit", "price",
                 "registration_required", "registration_url", "registration_phone", "language")


def merge_cluster(rows: list[Event], priorities: dict[str, int]) -> tuple[Event, dict[str, Any],
                                                                          dict[str, str]]:
    """Pick the canonical member and the merged field values.

    Returns (canonical event, {field: value}, {field: member id it came from}).
    """
    def order(e: Event) -> tuple[int, dt.datetime, str]:
        seen = e.first_seen_at or dt.datetime.max.replace(tzinfo=dt.UTC)
        return (priorities.get(e.id, 2), seen, e.id)

    ranked = sorted(rows, key=order)
    canonical = ranked[0]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {"title": canonical.id, "dtstart_utc": canonical.id,
                              "status": canonical.id}
    with_text = [e for e in ranked if e.description]
    if with_text:
        longest = max(with_text, key=lambda e: (len(e.description or ""), -ranked.index(e)))
        values["description"], origin["description"] = longest.description, longest.id
    earliest = min(ranked, key=lambda e: (e.first_seen_at or dt.datetime.max.replace(
        tzinfo=dt.UTC), e.id))
    values["first_seen_at"], origin["first_seen_at"] = earliest.first_seen_at, earliest.id
    for name in _FIRST_FIELDS:
        for member in ranked:
            value = getattr(member, name, None)
            if value not in (None, ""):
                values[name], origin[name] = value, member.id
                break
    for name in _UNION_FIELDS:
        merged: list[str] = []
        for member in ranked:
            for code in json.loads(getattr(member, name, "[]") or "[]"):
                if code not in merged:
                    merged.append(code)
        if merged:
            if name == "themes" and len(merged) > 1 and "autre" in merged:
                merged.remove("autre")
            values[name] = json.dumps(merged, ensure_ascii=False)
            origin[name] = "+".join(m.id for m in ranked)
    # Sticky provenance: a value the canonical already holds because an earlier run copied it
    # from another member still comes from that member (idempotent field_sources).
    previous = json.loads(canonical.field_sources or "{}")
    members = {e.id: e for e in ranked}
    for name, member_id in list(origin.items()):
        before = previous.get(name)
        if (member_id == canonical.id and before in members and before != canonical.id
                and name in values and getattr(members[before], name, None) == values[name]):
            origin[name] = before
    return canonical, values, origin


def _decisions(session: Session) -> dict[str, DedupeDecision]:
    return {d.pair_key: d for d in session.exec(select(DedupeDecision))}


def deduplicate(session: Session, now: dt.datetime | None = None) -> DedupeOutcome:
    """Score candidate pairs of every live event, cluster, merge and record provenance.

    Idempotent: the same events and decisions give the same clusters, canonical events, field
    values and EventSource rows. Commits.
    """
    now = now or utcnow()
    outcome = DedupeOutcome()
    sources = {s.id: s for s in session.exec(select(Source))}
    events = list(session.exec(select(Event).where(Event.removed_at_source.is_(None))))  # type: ignore[union-attr]
    outcome.events = len(events)
    by_id = {e.id: e for e in events}
    frame = events_frame(events, sources)
    clean = frame.astype(object).where(frame.notna(), None)  # NaN → None for the scorer
    records = {r["id"]: r for r in clean.to_dict("records")}
    pairs = candidate_pairs(frame)
    outcome.candidate_pairs = len(pairs)
    decisions = _decisions(session)
    edges: list[tuple[str, str, float]] = []
    forbidden: set[str] = set()
    confidence: dict[str, float] = {}
    for id_a, id_b in pairs.itertuples(index=False):
        key = pair_key(id_a, id_b)
        stored = decisions.get(key)
        scored = score_pair(records[id_a], records[id_b])
        if stored is not None and stored.decision == "same":
            edges.append((id_a, id_b, 1.0))
            confidence[key] = 1.0
            continue
        if stored is not None and stored.decision == "different":
            forbidden.add(key)
            continue
        if scored.decision == "same":
            edges.append((id_a, id_b, scored.score))
            confidence[key] = scored.score
        elif scored.decision == "review":
            outcome.review_pairs += 1
            if stored is None:
                session.add(DedupeDecision(pair_key=key, event_a=min(id_a, id_b),
                                           event_b=max(id_a, id_b), score=scored.score,
                                           decision="pending", created_at=now))
            elif stored.decision == "pending" and stored.score != scored.score:
                stored.score = scored.score
                session.add(stored)
    outcome.merged_pairs = len(edges)
    groups = cluster(sorted(by_id), edges, forbidden)
    session.exec(delete(EventSource))  # type: ignore[call-overload]
    for members in groups.values():
        cid = cluster_id_for(members)
        rows = [by_id[m] for m in members]
        priorities = {m: source_priority(records[m]) for m in members}
        canonical, values, origin = merge_cluster(rows, priorities)
        outcome.clusters += 1
        outcome.duplicates += len(members) - 1
        for member in rows:
            member.cluster_id = cid
            member.is_canonical = member.id == canonical.id
            if member.is_canonical:
                for name, value in values.items():
                    setattr(member, name, value)
                member.field_sources = json.dumps(origin, ensure_ascii=False, sort_keys=True)
            else:
                member.field_sources = "{}"
            session.add(member)
            source = sources.get(member.source_id)
            session.add(EventSource(
                id=f"{canonical.id}|{member.id}", cluster_id=cid, canonical_event_id=canonical.id,
                event_id=member.id, source_id=member.source_id, source_uid=member.source_uid,
                url=member.url, source_url=member.source_url,
                publisher_type=source.publisher_type if source else None,
                confidence=1.0 if member.id == canonical.id
                else confidence.get(pair_key(canonical.id, member.id), _best(member.id, edges)),
                first_seen_at=member.first_seen_at, last_seen_at=member.updated_at,
            ))
    session.commit()
    return outcome


def _best(event_id: str, edges: list[tuple[str, str, float]]) -> float:
    scores = [s for a, b, s in edges if event_id in (a, b)]
    return max(scores) if scores else 0.0


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


def run_deduplication(engine: Any, now: dt.datetime | None = None) -> DedupeOutcome:
    """Sync the place registry, deduplicate organisations and link events to them, then
    :func:`deduplicate` events, in one session. Never raises: a failure is returned as a
    warning so that the harvest summary still prints."""
    from normalize.organisations import deduplicate_organisations, link_events
    from normalize.places import sync_places

    try:
        with Session(engine) as session:
            sync_places(session)
            deduplicate_organisations(session)
            link_events(session)
            return deduplicate(session, now)
    except Exception as exc:  # noqa: BLE001 - deduplication must not break a harvest
        return DedupeOutcome(warnings=[f"déduplication impossible ({exc!r})"])
