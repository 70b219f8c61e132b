"""RSS, Atom and JSON Feed connector (feedparser): feed items with event dates become events.

An item is an event only when it carries event dates:

- hCalendar / h-event microformats inside its HTML (read with mf2py);
- the RSS event module ``ev:`` (``ev:startdate``, ``ev:enddate``, ``ev:location``;
  http://purl.org/rss/1.0/modules/event/), which WordPress sites add to their The Events
  Calendar feed (``_EventStartDate`` meta) through the ``rss2_item`` hook;
- xCal (``xcal:dtstart``, RFC 6321) or the W3C RDF calendar namespace (``ical:dtstart``);
- WordPress event plugins that put the event start in ``pubDate``: Events Manager's
  ``templates/rss.php`` writes ``<pubDate>`` from ``$EM_Event->start``, and The Events
  Calendar's events feed (``/events/feed/``, ``post_type=tribe_events``) replaces each event's
  publication date with its start. For those feeds only (recognised by their address, or forced
  with ``pubdate_is_start=True``), ``pubDate`` is read as the event start, with a warning.

Other items are kept as ``news`` and counted; their ``pubDate`` is never used as an event date.

Bytes are checked before feedparser reads them: a declared single-byte encoding on bytes that
are valid UTF-8 (the declaration lies) is corrected to UTF-8, and UTF-8 (BOM or declaration)
with some invalid bytes is read byte by byte, the invalid ones as Windows-1252; each repair is a
warning. JSON Feed (https://jsonfeed.org/version/1.1), which feedparser 6.0 does not read, is
mapped here from its JSON.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import time
from typing import Any

import feedparser
import mf2py

from connectors.base import (
    ParsedRecord,
    ParseResult,
    Problem,
    content_hint,
    mixed_utf8,
    stable_hash,
)

# (start key, end key, location key) as feedparser names namespaced elements.
_EVENT_KEYS: tuple[tuple[str, str, str], ...] = (
    ("ev_startdate", "ev_enddate", "ev_location"),
    ("xcal_dtstart", "xcal_dtend", "xcal_location"),
    ("ical_dtstart", "ical_dtend", "ical_location"),
)
_EMAIL_RE = re.compile(r"^\s*(mailto:)?[^@\s]+@[^@\s]+\s*$", re.IGNORECASE)
_XML_DECL_RE = re.compile(rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._:-]+)(["'])""")
# Feeds of WordPress event plugins whose pubDate is the event start (see module docstring).
_PUBDATE_IS_START_RE = re.compile(
    r"(/events?/feed/?|post_type=tribe_events|[?&]dbem_rss=|/events/\?feed=|feed=events?-?rss)",
    re.IGNORECASE,
)
_SUMMARY_CHARS = 300
# Offsets (hours) of zone abbreviations that RFC 822 lacks but WordPress/PHP feeds use.
_ZONE_ABBREVIATIONS = {"WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "MET": 1,
                       "MEST": 2, "EET": 2, "EEST": 3}
_ZONE_ABBREVIATION_RE = re.compile(r"\b(" + "|".join(_ZONE_ABBREVIATIONS) + r")\s*$",
                                   re.IGNORECASE)


def looks_like_feed(text_start: bytes) -> bool:
    """True when the bytes look like RSS, RDF or Atom XML, or a JSON Feed."""
    head = text_start[:4096].lower()
    if b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head:
        return True
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") and b"jsonfeed.org" in head


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


def _from_pubdate(entry: Any) -> dict[str, Any] | None:
    """Event start from ``pubDate`` (WordPress event plugins only), as ISO 8601 UTC."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    year, month, day, hour, minute, second = tuple(parsed)[:6]
    start = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)  # already UTC
    # PHP's date('T') writes European zone abbreviations that feedparser reads as UTC.
    raw = str(entry.get("published") or entry.get("updated") or "")
    zone = _ZONE_ABBREVIATION_RE.search(raw)
    if zone:
        start -= dt.timedelta(hours=_ZONE_ABBREVIATIONS[zone.group(1).upper()])
    return {"dtstart": start.isoformat(), "dtend": None, "location": None}


def _html_of(entry: Any) -> str:
    parts = [c.get("value", "") for c in entry.get("content", []) or []]
    parts.append(entry.get("summary", "") or "")
    return "\n".join(p for p in parts if p)


def _plain(html: str) -> str:
    """A short plain-text excerpt of an item's HTML (for news items)."""
    from normalize.text import html_to_text

    text = html_to_text(html) or ""
    return text[:_SUMMARY_CHARS]


# ------------------------------------------------------------------------------- encodings


def repair_encoding(data: bytes) -> tuple[bytes, list[Problem]]:
    """Fix feed bytes whose encoding declaration lies; return UTF-8 bytes and warnings.

    - declared single-byte charset (windows-1252, ISO-8859-1…) but the bytes are valid UTF-8
      with non-ASCII characters: the declaration is replaced by UTF-8;
    - UTF-8 by BOM or declaration (or by default) but some bytes are invalid: each invalid
      byte is read as Windows-1252.

    Other declared charsets with matching bytes are left to feedparser.
    """
    body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    match = _XML_DECL_RE.match(body[:512])
    declared = match.group(2).decode("ascii").lower() if match else "utf-8"
    try:
        declared_name = codecs.lookup(declared).name
    except LookupError:
        declared_name = declared
    is_utf8 = declared_name in ("utf-8", "utf-8-sig")
    has_bom = data.startswith(codecs.BOM_UTF8)
    try:
        body.decode("utf-8")
        valid_utf8 = True
    except UnicodeDecodeError:
        valid_utf8 = False
    if not is_utf8 and valid_utf8 and not body.isascii() and not declared_name.startswith(
            ("utf-16", "utf-32")):
        fixed = _XML_DECL_RE.sub(lambda m: m.group(1) + b"utf-8" + m.group(3), body, count=1)
        return fixed, [Problem(
            f"encodage déclaré {declared} mais le contenu est en UTF-8 : lu comme UTF-8",
            code="encoding")]
    if (is_utf8 or has_bom) and not valid_utf8:
        text, _multibyte = mixed_utf8(body)
        fixed = text.encode("utf-8")
        if match:
            fixed = _XML_DECL_RE.sub(lambda m: m.group(1) + b"utf-8" + m.group(3), fixed, count=1)
        return fixed, [Problem(
            "octets invalides en UTF-8 (texte mêlant UTF-8 et Windows-1252) : lus un par un",
            code="encoding")]
    return data, []


# ------------------------------------------------------------------------------- JSON Feed


def _json_feed(data: bytes) -> dict[str, Any] | None:
    """A JSON Feed document turned into feedparser-like {version, feed, entries}, or None."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        return None
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(document, dict) or "jsonfeed.org" not in str(document.get("version", "")):
        return None
    entries = []
    for item in document.get("items") or []:
        if not isinstance(item, dict):
            continue
        html = item.get("content_html") or ""
        text = item.get("content_text") or item.get("summary") or ""
        published = _json_date(item.get("date_published"))
        entries.append({
            "id": str(item.get("id") or ""),
            "link": item.get("url") or item.get("external_url"),
            "title": item.get("title"),
            "summary": html or text,
            "content": [],
            "tags": [{"term": str(tag)} for tag in item.get("tags") or []],
            "published_parsed": published,
        })
    return {"version": "json1", "feed": {"title": document.get("title") or ""},
            "entries": entries, "bozo": False}


def _json_date(value: object) -> time.struct_time | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC)
    return parsed.timetuple()


# ---------------------------------------------------------------------------------- parse


def parse_feed(data: bytes, source_id: str = "", *,
               pubdate_is_start: bool | None = None) -> ParseResult:
    """Parse RSS 0.9x/1.0/2.0, Atom or JSON Feed bytes.

    Args:
        data: the raw bytes.
        source_id: the source slug, used only in messages.
        pubdate_is_start: read ``pubDate`` as the event start (WordPress event plugins); None
            decides from the feed's own address (``/events/feed/``, ``post_type=tribe_events``,
            ``dbem_rss``).

    Returns a :class:`ParseResult` whose event records carry a JSON payload with ``title``,
    ``description`` (HTML as published), ``url``, ``dtstart``/``dtend`` (ISO 8601 as published,
    possibly without zone), ``location``, ``organizer``, ``categories``; news records carry
    ``title``, ``url`` and a plain-text ``summary``. Never raises.
    """
    result = ParseResult(detected_format="feed")
    parsed: Any = _json_feed(data)
    if parsed is None:
        data, problems = repair_encoding(data)
        result.warnings.extend(problems)
        try:
            parsed = feedparser.parse(data, sanitize_html=True, resolve_relative_uris=False)
        except Exception as exc:  # noqa: BLE001
            result.errors.append(Problem(f"flux illisible ({exc})", code="bad-feed"))
            return result
    version = parsed.get("version") or ""
    if not version and not parsed.get("entries"):
        hint = content_hint(data)
        result.errors.append(Problem(f"ce n'est pas un flux RSS ou Atom{hint}", code="not-feed"))
        return result
    result.detected_format = ("atom" if version.startswith("atom")
                              else "jsonfeed" if version == "json1" else "rss")
    feed = parsed.get("feed") or {}
    result.title = str(feed.get("title") or "").strip()
    if parsed.get("bozo"):
        bozo = parsed.get("bozo_exception")
        line = getattr(bozo, "getLineNumber", lambda: None)()
        kind = type(bozo).__name__
        result.warnings.append(Problem(f"flux mal formé, lu quand même ({kind}: {bozo})", line,
                                       "bozo"))
    if pubdate_is_start is None:
        addresses = " ".join(str(link.get("href", "")) for link in feed.get("links", []) or [])
        pubdate_is_start = bool(_PUBDATE_IS_START_RE.search(addresses + " " +
                                                             str(feed.get("link") or "")))
    from_pubdate = 0
    for position, entry in enumerate(parsed.get("entries") or [], start=1):
        html = _html_of(entry)
        fields = _namespaced(entry) or _h_event(html)
        if fields is None and pubdate_is_start:
            fields = _from_pubdate(entry)
            from_pubdate += fields is not None
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
            payload: dict[str, Any] = {"title": title, "url": entry.get("link")}
            summary = _plain(html)
            if summary:
                payload["summary"] = summary
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
    if from_pubdate:
        result.warnings.append(Problem(
            f"{from_pubdate} date(s) de début lue(s) dans pubDate (flux d'événements WordPress)",
            code="pubdate-start"))
    return result
