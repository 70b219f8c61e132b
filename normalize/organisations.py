"""Organisations: duplicates across sources, and events linked to the directory's organisation.

Duplicates (:func:`organisation_groups`): two organisations are the same when they share a SIRET
(14 digits), else an RNA number (``W`` + 9 digits; https://www.data.gouv.fr/fr/datasets/
repertoire-national-des-associations/), else when their names are nearly equal (rapidfuzz
``token_sort_ratio`` ≥ 95 on folded names) AND they are at the same address (same folded street
and postal code). A name alone never merges two organisations: "Secours populaire" has a
committee in every town. The canonical member is the one with a SIRET, then an RNA, then the
earliest seen, then the smallest id; the others get ``duplicate_of``.

Linking (:func:`link_events`): an event whose ORGANIZER names a canonical organisation
(``token_sort_ratio`` ≥ 92) gets that organisation's id in ``organisation_id`` (otherwise it
keeps the publisher of its source).
"""

from __future__ import annotations

import datetime as dt
import re

from rapidfuzz import fuzz, process
from sqlmodel import Session, select

from normalize.fold import words
from schemas.models import Event, Organisation

NAME_SAME = 95.0
ORGANIZER_MATCH = 92.0
_SIRET = re.compile(r"^\d{14}$")
_RNA = re.compile(r"^W\d{9}$")
_LEGAL = frozenset({"association", "asso", "l", "la", "le", "les", "de", "du", "des", "d"})


def name_key(name: str | None) -> str:
    """Folded name without legal-form and small words."""
    return " ".join(t for t in words(name).split() if t not in _LEGAL)


def _clean(value: str | None, pattern: re.Pattern[str]) -> str | None:
    value = re.sub(r"\s", "", value or "").upper()
    return value if pattern.match(value) else None


def organisation_groups(orgs: list[Organisation]) -> dict[str, str]:
    """Organisation id → id of its canonical organisation (itself when canonical)."""
    parent = {o.id: o.id for o in orgs}

    def find(item: str) -> str:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_siret: dict[str, str] = {}
    by_rna: dict[str, str] = {}
    for org in sorted(orgs, key=lambda o: o.id):
        siret, rna = _clean(org.siret, _SIRET), _clean(org.rna, _RNA)
        if siret:
            if siret in by_siret:
                union(by_siret[siret], org.id)
            by_siret.setdefault(siret, org.id)
        if rna:
            if rna in by_rna:
                union(by_rna[rna], org.id)
            by_rna.setdefault(rna, org.id)
    located = [o for o in orgs if o.address and o.postal_code]
    for i, a in enumerate(located):
        for b in located[i + 1:]:
            if a.postal_code != b.postal_code or words(a.address) != words(b.address):
                continue
            sa, sb = _clean(a.siret, _SIRET), _clean(b.siret, _SIRET)
            if sa and sb and sa != sb:
                continue  # two registered entities at one address (e.g. a shared office)
            if fuzz.token_sort_ratio(name_key(a.name), name_key(b.name)) >= NAME_SAME:
                union(a.id, b.id)
    groups: dict[str, list[Organisation]] = {}
    for org in orgs:
        groups.setdefault(find(org.id), []).append(org)
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    canonical: dict[str, str] = {}
    for members in groups.values():
        best = min(members, key=lambda o: (_clean(o.siret, _SIRET) is None,
                                           _clean(o.rna, _RNA) is None,
                                           o.first_seen_at or never, o.id))
        for member in members:
            canonical[member.id] = best.id
    return canonical


def deduplicate_organisations(session: Session) -> int:
    """Set ``duplicate_of`` on every organisation; returns how many are duplicates. Commits."""
    orgs = list(session.exec(select(Organisation)))
    canonical = organisation_groups(orgs)
    duplicates = 0
    for org in orgs:
        target = canonical[org.id]
        org.duplicate_of = None if target == org.id else target
        duplicates += org.duplicate_of is not None
        session.add(org)
    session.commit()
    return duplicates


def link_events(session: Session) -> int:
    """Point events to the canonical organisation their ORGANIZER names; returns how many
    events were linked. Commits."""
    orgs = [o for o in session.exec(select(Organisation)) if o.duplicate_of is None]
    keys = [name_key(o.name) for o in orgs]
    linked = 0
    for event in session.exec(select(Event).where(Event.organizer.is_not(None))):  # type: ignore[union-attr]
        key = name_key(event.organizer)
        if not key or not keys:
            continue
        best = process.extractOne(key, keys, scorer=fuzz.token_sort_ratio)
        if best and best[1] >= ORGANIZER_MATCH:
            target = orgs[best[2]].id
            if event.organisation_id != target:
                event.organisation_id = target
                session.add(event)
            linked += 1
    session.commit()
    return linked
