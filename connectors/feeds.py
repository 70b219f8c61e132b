"""RSS and Atom connector (feedparser): feed items with event dates become event records.

An item is an event only when it carries event dates: hCalendar / h-event microformats inside its
HTML (read with mf2py), the ``ev:`` event namespace (``ev:startdate``), an xCal namespace
(``xcal:dtstart``), or start fields of WordPress event plugins. Other items are kept as ``news``
and counted; their ``pubDate`` is never used as an event date.
"""

from __future__ import annotations

import json
import re
from typing import Any

import feedparser
import mf2py

from connectors.base import ParsedRecord, ParseResult, Problem, stable_hash

# (start key, end key, location key) as feedparser names namespaced elements.
_EVENT_KEYS: tuple[tuple[str, str, str], ...] = (
    ("ev_startdate", "ev_enddate", "ev_location"),
    ("xcal_dtstart", "xcal_dtend", "xcal_location"),
    ("ical_dtstart", "ical_dtend", "ical_location"),
    # WordPress plugins: Events Manager ("em"), The Events Calendar extensions ("tribe").
    ("em_start_date", "em_end_date", "em_location"),
    ("tribe_event_start_date", "tribe_event_end_date", "tribe_event_venue"),
    ("event_startdate", "event_enddate", "event_location"),
)
_EMAIL_RE = re.compile(r"^\s*(mailto:)?[^@\s]+@[^@\s]+\s*$", re.IGNORECASE)


def looks_like_feed(text_start: bytes) -> bool:
    """True when the bytes look like RSS, RDF or Atom XML."""
    head = text_start[:4096].lower()
    return b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head


def _h_event(html: str) -> dict[str, Any] | None:
    """The first h-event (or classic hCalendar vevent) in ``html``, as flat fields."""
    if "vevent" not in html and "h-event" not in html:
        return None
    parsed = mf2py.parse(doc=html)

    def walk(items: list[dict[str, Any]]) -> dict[str, Any] | None:
        for item in items:
            if "h-event" in item.get("type", []):
                return item
            found = walk(item.get("children", []))
            if found:
                return found
        return None

    item = walk(parsed.get("items", []))
    if item is None:
        return None
    props = item.get("properties", {})

    def first(name: str) -> str | None:
        values = props.get(name) or []
        if not values:
            return None
        value = values[0]
        if isinstance(value, dict):
            value = value.get("value") or value.get("properties", {}).get("name", [None])[0]
        return str(value).strip() if value else None

    start = first("start")
    if not start:
        return None
    organizer = first("organizer")
    return {
        "dtstart": start,
        "dtend": first("end"),
        "title": first("name"),
        "description": first("description"),
        "location": first("location"),
        "url": first("url"),
        "organizer": None if organizer and _EMAIL_RE.match(organizer) else organizer,
    }


def _namespaced(entry: Any) -> dict[str, Any] | None:
    for start_key, end_key, location_key in _EVENT_KEYS:
        if entry.get(start_key):
            return {
                "dtstart": str(entry.get(start_key)).strip(),
                "dtend": str(entry.get(end_key)).strip() if entry.get(end_key) else None,
                "location": entry.get(location_key),
            }
    return None


def _html_of(entry: Any) -> str:
    parts = [c.get("value", "") for c in entry.get("content", []) or []]
    parts.append(entry.get("summary", "") or "")
    return "\n".join(p for p in parts if p)


def parse_feed(data: bytes, source_id: str = "") -> ParseResult:
    """Parse RSS 0.9x/1.0/2.0 or Atom bytes.

    Returns a :class:`ParseResult` whose event records carry a JSON payload with ``title``,
    ``description`` (HTML as published), ``url``, ``dtstart``/``dtend`` (ISO 8601 as published,
    possibly without zone), ``location``, ``organizer``, ``categories``. Never raises.
    """
    result = ParseResult(detected_format="feed")
    try:
        parsed = feedparser.parse(data, sanitize_html=True, resolve_relative_uris=False)
    except Exception as exc:  # noqa: BLE001
        result.errors.append(Problem(f"flux illisible ({exc})", code="bad-feed"))
        return result
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        hint = " (c'est une page web)" if b"<html" in data[:4096].lower() else ""
        result.errors.append(Problem(f"ce n'est pas un flux RSS ou Atom{hint}", code="not-feed"))
        return result
    result.detected_format = "atom" if version.startswith("atom") else "rss"
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        line = getattr(exc, "getLineNumber", lambda: None)()
        kind = type(exc).__name__
        result.warnings.append(Problem(f"flux mal formé, lu quand même ({kind}: {exc})", line,
                                       "bozo"))
    for position, entry in enumerate(parsed.entries, start=1):
        html = _html_of(entry)
        fields = _namespaced(entry) or _h_event(html)
        title = entry.get("title") or (fields or {}).get("title")
        uid = (entry.get("id") or entry.get("link") or "").strip()
        repaired = False
        if not uid:
            uid = f"repaired-{stable_hash(title or '', html[:2000])}"
            repaired = True
            result.warnings.append(
                Problem(f"élément n°{position} sans identifiant : {uid}", code="no-uid")
            )
        if fields is None:
            payload = {"title": title, "url": entry.get("link")}
            kind = "news"
        else:
            description = fields.get("description") or html
            payload = {
                "title": title,
                "description": description,
                "url": entry.get("link") or fields.get("url"),
                "dtstart": fields["dtstart"],
                "dtend": fields.get("dtend"),
                "location": fields.get("location"),
                "organizer": fields.get("organizer"),
                "categories": [t.get("term") for t in entry.get("tags", []) if t.get("term")],
            }
            kind = "event"
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        result.records.append(
            ParsedRecord(uid=uid, kind=kind, payload_format="json", payload=text,
                         hash_basis=text, uid_repaired=repaired)
        )
    return result
