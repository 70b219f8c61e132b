"""Merging copies of one event found on several pages or in several syntaxes of one page.

Apart from :mod:`crawlers.extraction` so that reading a crawl's output (connectors.html) does
not import extruct, lxml and Scrapy in the harvesting process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import fields, replace

from crawlers.items import EventItem

# Best syntax first: a field found in several copies is taken from the best one.
_SYNTAX_ORDER = ("json-ld", "microdata", "rdfa", "microformat", "activitystreams", "html")
_SPACES_RE = re.compile(r"\s+")


def _key(item: EventItem) -> tuple[str, str]:
    title = _SPACES_RE.sub(" ", (item.title or "").casefold()).strip()
    return title, item.dtstart[:10]


def _has_time(item: EventItem) -> bool:
    return "T" in item.dtstart


def _same(a: EventItem, b: EventItem) -> bool:
    if a.uid and b.uid:
        return a.uid == b.uid
    if a.url and b.url and a.url != b.url:  # two pages: two events (a concert, a festival)
        return False
    if _key(a) != _key(b) or (a.rrule or "") != (b.rrule or ""):
        return False
    if _has_time(a) and _has_time(b):
        return a.dtstart[:16] == b.dtstart[:16]
    return True


def _rank(item: EventItem) -> int:
    return min((_SYNTAX_ORDER.index(s) for s in item.syntaxes if s in _SYNTAX_ORDER),
               default=len(_SYNTAX_ORDER))


def _combine(a: EventItem, b: EventItem) -> EventItem:
    """One item from two copies of the same event; ``a`` is the preferred copy."""
    merged = replace(a, exdates=list(a.exdates), categories=list(a.categories),
                     syntaxes=list(a.syntaxes), problems=list(a.problems))
    for spec in fields(EventItem):
        name = spec.name
        mine, theirs = getattr(merged, name), getattr(b, name)
        if name in ("dtstart", "dtend"):
            continue
        if name == "description":
            if theirs and (not mine or len(theirs) > len(mine)):
                merged.description = theirs
        elif name in ("categories", "syntaxes", "problems", "exdates"):
            setattr(merged, name, list(dict.fromkeys([*mine, *theirs])))
        elif name == "status":
            if theirs == "cancelled":
                merged.status = "cancelled"
        elif mine in (None, "", [], False) and theirs not in (None, "", []):
            setattr(merged, name, theirs)
    if not _has_time(a) and _has_time(b):  # a repaired or date-only start loses to a full one
        merged.dtstart, merged.dtend = b.dtstart, b.dtend
    elif not merged.dtend and b.dtend and _has_time(a) == _has_time(b):
        merged.dtend = b.dtend
    return merged


def merge_items(items: Iterable[EventItem]) -> list[EventItem]:
    """Merge copies of one event (same uid, or same title and start), first seen order kept.

    Copies are compared per field: the best syntax (JSON-LD, microdata, RDFa, microformats) wins
    a field, the longest description wins, a start with a time beats a date-only one, and a
    cancellation in any copy is kept.
    """
    merged: list[EventItem] = []
    for item in items:
        for position, existing in enumerate(merged):
            if _same(existing, item):
                first, second = (existing, item) if _rank(existing) <= _rank(item) else (
                    item, existing)
                merged[position] = _combine(first, second)
                break
        else:
            merged.append(item)
    return merged
