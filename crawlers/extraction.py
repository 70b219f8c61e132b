"""Events embedded in one HTML page: schema.org (JSON-LD, microdata, RDFa) and microformats.

The markup is read by extruct (JSON-LD, microdata, RDFa through pyRdfa) and mf2py (h-event and
classic hCalendar ``vevent``); this module only maps what they return onto :class:`EventItem`:

* every schema.org ``Event`` subtype counts (``MusicEvent``, ``TheaterEvent``…, see
  https://schema.org/Event "More specific Types"), also inside ``@graph`` and ``subEvent``;
* the same event published twice on a page (JSON-LD *and* microdata, or an h-event repeated)
  becomes one item, each field taken from the best copy (:func:`merge_items`);
* one invalid JSON-LD block costs that block only (extruct drops every block of the page when
  one fails, so blocks are read one by one) and is reported with its line;
* ``eventSchedule`` (https://schema.org/Schedule) becomes an RFC 5545 RRULE (§3.3.10) with
  DTSTART on the first matching day, EXDATEs from ``exceptDate``;
* ``eventStatus`` EventCancelled → ``cancelled``, EventPostponed → ``tentative``;
* a ``VirtualLocation`` keeps its URL (as the location when the event is online only).

Nothing here raises on bad markup: problems are returned as plain-French strings.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import extruct
import icalendar
import lxml.etree
import lxml.html
from dateutil.parser import isoparse
from extruct.jsonld import JsonLdExtractor
from extruct.utils import parse_xmldom_html
from scrapy.http import TextResponse
from scrapy.utils.response import get_base_url

from connectors.base import stable_hash
from crawlers.items import EventItem
from crawlers.merge import merge_items
from normalize.times import UTC, resolve_tzid

# https://schema.org/Event and its subtypes (schema.org 29.x); EventSeries is an Event too.
EVENT_TYPES = frozenset({
    "Event", "BusinessEvent", "ChildrensEvent", "ComedyEvent", "CourseInstance", "DanceEvent",
    "DeliveryEvent", "EducationEvent", "EventSeries", "ExhibitionEvent", "Festival", "FoodEvent",
    "Hackathon", "LiteraryEvent", "MusicEvent", "PublicationEvent", "BroadcastEvent",
    "OnDemandEvent", "SaleEvent", "ScreeningEvent", "SocialEvent", "SportsEvent", "TheaterEvent",
    "VisualArtsEvent",
})
_SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/", "schema:")
_DAYS = {
    "monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR",
    "saturday": "SA", "sunday": "SU", "mo": "MO", "tu": "TU", "we": "WE", "th": "TH",
    "fr": "FR", "sa": "SA", "su": "SU",
}
_WEEKDAY_INDEX = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_FREQ_UNITS = {"D": "DAILY", "W": "WEEKLY", "M": "MONTHLY", "Y": "YEARLY"}
_FREQ_WORDS = {"daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "yearly": "YEARLY",
               "annually": "YEARLY"}
_FREQ_RE = re.compile(r"^P(\d+)([DWMY])$", re.IGNORECASE)
_SLOPPY_DATE_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?=$|[T ])")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?")
_EMAIL_RE = re.compile(r"^\s*(mailto:)?[^@\s]+@[^@\s]+\s*$", re.IGNORECASE)


@dataclass
class PageExtraction:
    """What one page held: merged events, page-level problems, the ``<title>``."""

    events: list[EventItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    title: str | None = None


# --------------------------------------------------------------------------- small helpers


def _clean(value: Any) -> str | None:
    """A scalar as one clean string: HTML entities decoded, spaces collapsed."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = html.unescape(str(value)) if "&" in str(value) else str(value)
    text = text.strip()
    return text or None


def _first(value: Any) -> Any:
    """The first non-empty element of a list (microdata repeats values), else the value."""
    if isinstance(value, list):
        for element in value:
            if element not in (None, "", [], {}):
                return element
        return None
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _text(value: Any) -> str | None:
    """Text of a property: a string, the first of a list, or the ``name`` of an object."""
    value = _first(value)
    if isinstance(value, dict):
        return _text(value.get("name") or value.get("value"))
    return _clean(value)


def _all(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _strip_prefix(name: str) -> str:
    for prefix in _SCHEMA_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _types(node: dict[str, Any]) -> list[str]:
    raw = node.get("@type") or node.get("type") or []
    values: list[str] = []
    for value in _all(raw):
        values.extend(_strip_prefix(part) for part in str(value).split())
    return values


def _event_type(node: dict[str, Any]) -> str | None:
    for name in _types(node):
        if name in EVENT_TYPES:
            return name
        if name in ("h-event", "vevent"):
            return "h-event"
    return None


def _absolute(base_url: str, value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    if text.startswith(("http://", "https://")):
        return text
    if text.startswith(("mailto:", "tel:", "javascript:", "data:")):
        return None
    return urljoin(base_url, text) if base_url else text


# --------------------------------------------------------------------------------- dates


def parse_when(value: Any) -> tuple[dt.date | dt.datetime | None, str | None]:
    """Read a schema.org / hCalendar date or date-time (ISO 8601, dateutil's ``isoparse``).

    Accepts extended and basic forms (``2013-09-14T21:30``, ``20080228T173000``), offsets with or
    without colon, a space instead of ``T``. A non-padded date (``2019-9-18``, a WordPress
    EventON habit) is repaired; a date whose time part is unreadable is kept as a date.

    Returns:
        (value, problem): a ``date`` for a date alone, a ``datetime`` (naive when the text has
        no offset) otherwise; ``problem`` is a French message when something was repaired or
        the text is unreadable (value None).
    """
    text = _text(value)
    if not text:
        return None, None
    candidate = text
    problem = None
    if re.match(r"^\d{4}-\d{2}-\d{2} \d", candidate):
        candidate = candidate.replace(" ", "T", 1)
    sloppy = _SLOPPY_DATE_RE.match(candidate)
    if sloppy and len(sloppy.group(0)) < 10:
        year, month, day = sloppy.groups()
        candidate = f"{year}-{int(month):02d}-{int(day):02d}" + candidate[sloppy.end():]
        problem = f"date non conforme ISO 8601 {text!r}, lue comme {candidate}"
    date_only = "T" not in candidate.upper()
    try:
        parsed = isoparse(candidate)
    except (ValueError, OverflowError):
        head = re.match(r"^(\d{4}-\d{2}-\d{2})", candidate)
        if head:
            try:
                day_value = dt.date.fromisoformat(head.group(1))
            except ValueError:
                return None, f"date illisible {text!r}"
            return day_value, f"heure illisible dans {text!r} : seule la date est gardée"
        return None, f"date illisible {text!r}"
    if date_only:
        return parsed.date(), problem
    return parsed, problem


def iso(value: dt.date | dt.datetime) -> str:
    """ISO 8601 text of a date or (possibly naive) datetime."""
    return value.isoformat()


def _duration(value: Any) -> dt.timedelta | None:
    text = _text(value)
    if not text:
        return None
    try:
        parsed = icalendar.vDuration.from_ical(text)  # RFC 5545 §3.3.6 ⊂ ISO 8601 durations
    except (ValueError, TypeError):
        return None
    return parsed if isinstance(parsed, dt.timedelta) else None


def _end_text(start: dt.date | dt.datetime, end_value: Any, duration: Any,
              problems: list[str], inclusive: bool = True) -> str | None:
    """DTEND text, exclusive for dates (RFC 5545 §3.6.1), else start + duration.

    schema.org ``endDate`` is inclusive for dates (``inclusive``); hCalendar's ``dtend`` follows
    iCalendar and is already exclusive.
    """
    end, problem = parse_when(end_value)
    if problem:
        problems.append(f"endDate : {problem}")
    if end is not None:
        if inclusive and not isinstance(end, dt.datetime) and not isinstance(start, dt.datetime):
            return iso(end + dt.timedelta(days=1))
        return iso(end)
    delta = _duration(duration)
    if delta is not None and isinstance(start, dt.datetime):
        return iso(start + delta)
    if delta is not None and delta.days >= 1:
        return iso(start + dt.timedelta(days=delta.days))
    return None


# ------------------------------------------------------------------------------ schema.org


def _status(value: Any) -> str:
    """schema.org EventStatusType → RFC 5545 STATUS (lower case)."""
    text = (_text(value) or "").lower()
    if "cancel" in text:
        return "cancelled"
    if "postpone" in text:
        return "tentative"
    return "confirmed"


def _address(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        street = _text(value.get("streetAddress"))
        postcode = _text(value.get("postalCode"))
        locality = _text(value.get("addressLocality"))
        region = _text(value.get("addressRegion"))
        country = _text(value.get("addressCountry"))
        town = " ".join(p for p in (postcode, locality) if p) or None
        parts = [p for p in (street, town, region, country) if p]
        return ", ".join(parts) or _text(value.get("name"))
    return _text(value)


def _location(value: Any, base_url: str) -> tuple[str | None, str | None]:
    """(location text, online URL) from schema.org ``location`` (Place, text, VirtualLocation)."""
    physical: list[str] = []
    online: str | None = None
    for element in _all(value):
        element = _first(element)
        if isinstance(element, dict):
            if "VirtualLocation" in _types(element):
                online = online or _absolute(base_url, element.get("url"))
                continue
            name = _text(element.get("name"))
            address = _address(element.get("address"))
            parts = [name] if name else []
            if address and address != name:
                parts.append(address)
            if not parts:
                parts = [p for p in [_absolute(base_url, element.get("url"))] if p]
            if parts:
                physical.append(", ".join(parts))
        else:
            text = _clean(element)
            if text:
                physical.append(text)
    text = " ; ".join(dict.fromkeys(physical)) or online
    return (re.sub(r"\s*\n\s*", ", ", text) if text else None), online


def _organizer(value: Any) -> str | None:
    names = []
    for element in _all(value):
        name = _text(element)
        if name and not _EMAIL_RE.match(name) and not name.startswith(("http://", "https://")):
            names.append(name)
    return ", ".join(dict.fromkeys(names)) or None


def _keywords(value: Any) -> list[str]:
    found: list[str] = []
    for element in _all(value):
        text = _text(element)
        if text:
            found.extend(part.strip() for part in text.split(",") if part.strip())
    return list(dict.fromkeys(found))


def _item_id(node: dict[str, Any], base_url: str) -> str | None:
    ident = node.get("@id")
    if isinstance(ident, str) and ident.strip() and not ident.startswith("_:"):
        return urljoin(base_url, ident.strip()) if base_url else ident.strip()
    return None


def _schema_events(node: dict[str, Any], syntax: str, base_url: str,
                   now: dt.datetime) -> tuple[list[EventItem], list[str]]:
    """EventItems from one schema.org Event node (several when it has several schedules)."""
    kind = _event_type(node) or "Event"
    title = _text(node.get("name"))
    label = f"{kind} « {title or 'sans nom'} » ({syntax})"
    problems: list[str] = []
    location, online = _location(node.get("location"), base_url)
    descriptions = [d for d in (_clean(v) for v in _all(node.get("description"))) if d]
    base = EventItem(
        uid=_item_id(node, base_url) or "",
        dtstart="",
        title=title,
        description=max(descriptions, key=len) if descriptions else None,
        url=_absolute(base_url, node.get("url")),
        status=_status(node.get("eventStatus")),
        location=location,
        online_url=online,
        organizer=_organizer(node.get("organizer")),
        categories=_keywords(node.get("keywords")),
        schema_type=kind,
        syntaxes=[syntax],
        page_url=base_url,
    )
    schedules = [s for s in _all(node.get("eventSchedule")) if isinstance(s, dict)]
    if schedules:
        items = []
        for position, schedule in enumerate(schedules, start=1):
            item, schedule_problems = _from_schedule(base, node, schedule, now)
            problems.extend(f"{label} : {p}" for p in schedule_problems)
            if item is not None:
                if len(schedules) > 1 and item.uid:
                    item.uid = f"{item.uid}#schedule-{position}"
                item.problems = [f"{label} : {p}" for p in schedule_problems]
                items.append(item)
        return items, problems
    start, problem = parse_when(node.get("startDate"))
    if problem:
        problems.append(f"{label} : startDate : {problem}")
    if start is None:
        problems.append(f"{label} : pas de date de début (startDate), ignoré")
        return [], problems
    base.dtstart = iso(start)
    base.dtend = _end_text(start, node.get("endDate"), node.get("duration"), problems)
    base.problems = [p if p.startswith(label) else f"{label} : {p}" for p in problems]
    return [base], base.problems


def _day_code(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    return _DAYS.get(_strip_prefix(text).rsplit("/", 1)[-1].strip().lower())


def _time_of(value: Any) -> dt.time | None:
    text = _text(value)
    match = _TIME_RE.match(text or "")
    if not match:
        return None
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return dt.time(hour, minute, second)


def _ints(value: Any) -> list[int]:
    found = []
    for element in _all(value):
        try:
            found.append(int(str(_first(element)).strip()))
        except (TypeError, ValueError):
            continue
    return found


def _from_schedule(base: EventItem, node: dict[str, Any], schedule: dict[str, Any],
                   now: dt.datetime) -> tuple[EventItem | None, list[str]]:
    """One https://schema.org/Schedule → an item with an RFC 5545 RRULE."""
    problems: list[str] = []
    raw_frequency = _text(schedule.get("repeatFrequency")) or ""
    match = _FREQ_RE.match(raw_frequency.strip())
    if match:
        freq, interval = _FREQ_UNITS[match.group(2).upper()], int(match.group(1))
    elif raw_frequency.strip().lower() in _FREQ_WORDS:
        freq, interval = _FREQ_WORDS[raw_frequency.strip().lower()], 1
    else:
        problems.append(f"eventSchedule : fréquence illisible {raw_frequency!r}, ignoré")
        return None, problems
    zone_text = _text(schedule.get("scheduleTimezone"))
    tzid = resolve_tzid(zone_text) if zone_text else None
    if zone_text and tzid is None:
        problems.append(f"eventSchedule : fuseau inconnu {zone_text!r}")
    zone = ZoneInfo(tzid) if tzid else None
    days = [d for d in (_day_code(v) for v in _all(schedule.get("byDay"))) if d]
    month_days = _ints(schedule.get("byMonthDay"))
    months = _ints(schedule.get("byMonth"))
    month_weeks = _ints(schedule.get("byMonthWeek"))
    parts = [f"FREQ={freq}"]
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    if days:
        if month_weeks:
            parts.append("BYDAY=" + ",".join(f"{w}{d}" for w in month_weeks for d in days))
        else:
            parts.append("BYDAY=" + ",".join(days))
    if month_days:
        parts.append("BYMONTHDAY=" + ",".join(str(d) for d in month_days))
    if months:
        parts.append("BYMONTH=" + ",".join(str(m) for m in months))
    count = _ints(schedule.get("repeatCount"))
    if count:
        parts.append(f"COUNT={count[0]}")

    start_time = _time_of(schedule.get("startTime"))
    end_time = _time_of(schedule.get("endTime"))
    first_day, problem = parse_when(schedule.get("startDate") or node.get("startDate"))
    if problem:
        problems.append(f"eventSchedule startDate : {problem}")
    anchored = False
    if isinstance(first_day, dt.datetime):
        start_time = start_time or first_day.time().replace(tzinfo=None)
        first_day = first_day.date()
    if first_day is None:
        anchored = True
        first_day = now.astimezone(zone or UTC).date()
        problems.append("eventSchedule sans date de début : la série commence au jour de la "
                        "collecte")
    first_day = _first_matching_day(first_day, days, month_days, months, month_weeks)
    until, problem = parse_when(schedule.get("endDate"))
    if problem:
        problems.append(f"eventSchedule endDate : {problem}")

    item = replace(base, categories=list(base.categories), syntaxes=list(base.syntaxes))
    item.tzid = tzid
    item.dtstart_anchored = anchored
    if start_time is None:  # a date-only schedule: all-day occurrences
        item.dtstart = iso(first_day)
        item.dtend = iso(first_day + dt.timedelta(days=1))
    else:
        start = dt.datetime.combine(first_day, start_time)
        item.dtstart = iso(start)
        delta = _duration(schedule.get("duration")) or _duration(node.get("duration"))
        if end_time is not None:
            end = dt.datetime.combine(first_day, end_time)
            if end <= start:
                end += dt.timedelta(days=1)
            item.dtend = iso(end)
        elif delta is not None:
            item.dtend = iso(start + delta)
    if isinstance(until, dt.datetime):
        until = until.date()
    if until is not None:
        if start_time is None:
            parts.append(f"UNTIL={until.strftime('%Y%m%d')}")
        else:
            last = dt.datetime.combine(until, dt.time(23, 59, 59))
            if zone is not None:  # RFC 5545 §3.3.10: UNTIL in UTC when DTSTART has a TZID
                utc_last = last.replace(tzinfo=zone).astimezone(UTC)
                parts.append(f"UNTIL={utc_last.strftime('%Y%m%dT%H%M%SZ')}")
            else:
                parts.append(f"UNTIL={last.strftime('%Y%m%dT%H%M%S')}")
    item.rrule = ";".join(parts)
    for excepted in _all(schedule.get("exceptDate")):
        value, problem = parse_when(excepted)
        if value is None:
            problems.append(f"eventSchedule exceptDate : {problem}")
            continue
        if not isinstance(value, dt.datetime) and start_time is not None:
            value = dt.datetime.combine(value, start_time)
        item.exdates.append(iso(value))
    return item, problems


def _first_matching_day(day: dt.date, days: list[str], month_days: list[int],
                        months: list[int], month_weeks: list[int]) -> dt.date:
    """The first day ≥ ``day`` matching the BY* parts, so that DTSTART is an occurrence."""
    weekdays = {_WEEKDAY_INDEX[d] for d in days}
    for offset in range(800):
        candidate = day + dt.timedelta(days=offset)
        if weekdays and candidate.weekday() not in weekdays:
            continue
        if month_weeks and (candidate.day - 1) // 7 + 1 not in month_weeks:
            continue
        if month_days and candidate.day not in month_days:
            continue
        if months and candidate.month not in months:
            continue
        return candidate
    return day


# ---------------------------------------------------------------------------- microformats


def _mf_text(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        return _clean(value.get("value")) or _text(value.get("name"))
    return _clean(value)


def _mf_location(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        name = _mf_text(value.get("name")) or _clean(value.get("value"))
        address = _mf_text(value.get("adr"))
        parts = [p for p in (name, address) if p]
        text = ", ".join(parts)
        return re.sub(r"\s*\n\s*", ", ", text) or None
    plain = _clean(value)
    return re.sub(r"\s*\n\s*", ", ", plain) if plain else None


def _hevent(node: dict[str, Any], base_url: str) -> tuple[list[EventItem], list[str]]:
    """An mf2 h-event (extruct uniform form: properties at the top level)."""
    title = _mf_text(node.get("name")) or _mf_text(node.get("summary"))
    label = f"h-event « {title or 'sans nom'} »"
    problems: list[str] = []
    start, problem = parse_when(_mf_text(node.get("start")))
    if problem:
        problems.append(f"{label} : start : {problem}")
    if start is None:
        problems.append(f"{label} : pas de date de début (dtstart), ignoré")
        return [], problems
    organizer = _mf_text(node.get("organizer"))
    item = EventItem(
        uid=_absolute(base_url, node.get("uid")) or "",
        dtstart=iso(start),
        title=title,
        description=_mf_text(node.get("description")),
        url=_absolute(base_url, _mf_text(node.get("url"))),
        location=_mf_location(node.get("location")),
        organizer=None if organizer and _EMAIL_RE.match(organizer) else organizer,
        categories=[c for c in (_mf_text(v) for v in _all(node.get("category"))) if c],
        schema_type="h-event",
        syntaxes=["microformat"],
        page_url=base_url,
        status=_status(_mf_text(node.get("status"))),
    )
    item.dtend = _end_text(start, _mf_text(node.get("end")), _mf_text(node.get("duration")),
                           problems, inclusive=False)
    item.problems = [p if p.startswith(label) else f"{label} : {p}" for p in problems]
    return [item], item.problems


# ---------------------------------------------------------------------------- extraction


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    """Every event node in an extruct result: top level, ``@graph``, nested ``subEvent``s."""
    if isinstance(value, list):
        for element in value:
            yield from _walk(element)
        return
    if not isinstance(value, dict):
        return
    if "@graph" in value:
        yield from _walk(value["@graph"])
    if _event_type(value):
        yield value
    for key in ("subEvent", "subEvents", "children"):
        yield from _walk(value.get(key))


def _compact_rdfa(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pyRdfa's expanded JSON-LD (full IRIs, ``@value``/``@id`` objects) → nested schema.org
    dicts like extruct's JSON-LD output, references resolved (cycles cut)."""
    by_id = {n["@id"]: n for n in nodes if isinstance(n, dict) and "@id" in n}

    def compact(node: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"@type": _types(node)}
        if isinstance(node.get("@id"), str) and not node["@id"].startswith("_:"):
            out["@id"] = node["@id"]
        for key, values in node.items():
            if key.startswith("@") or not key.startswith(_SCHEMA_PREFIXES):
                continue
            collected = []
            for value in _all(values):
                if isinstance(value, dict) and "@value" in value:
                    collected.append(value["@value"])
                elif isinstance(value, dict) and "@id" in value:
                    ref = value["@id"]
                    if ref in by_id and ref not in seen:
                        collected.append(compact(by_id[ref], seen | {ref}))
                    else:
                        collected.append(ref)
            out[_strip_prefix(key)] = collected[0] if len(collected) == 1 else collected
        return out

    return [compact(n, frozenset({n.get("@id", "")})) for n in nodes if isinstance(n, dict)]


def _fix_value_title(markup: str) -> str:
    """Work around mf2py 2.0.2 reading the *property's* ``title`` instead of the ``value-title``
    child's (mf2py/value_class_pattern.py ``datetime``): copy the child's title up.

    Real pages (Constant Contact event pages) use ``<span class="dtstart"><span
    class="value-title" title="2018-10-04T10:00:00-0500">``, which mf2py otherwise reads as an
    empty start. See http://microformats.org/wiki/value-class-pattern#Parsing_value_from_a_title_attribute
    """
    if "value-title" not in markup:
        return markup
    try:
        tree = lxml.html.fromstring(markup)
    except (lxml.etree.ParserError, ValueError):
        return markup
    changed = False
    for element in tree.xpath('//*[contains(concat(" ", normalize-space(@class), " "), '
                              '" value-title ")][@title]'):
        parent = element.getparent()
        if parent is not None and parent.get("title") is None:
            parent.set("title", element.get("title"))
            changed = True
    if not changed:
        return markup
    return lxml.html.tostring(tree, encoding="unicode")


def _time_datetime_as_content(tree: Any) -> None:
    """HTML+RDFa 1.1 §3.1: the value of a ``<time property>`` is its ``datetime`` attribute.
    pyRdfa, as extruct runs it, reads the element's text ("Sat 13 June 2015"); copying
    ``datetime`` into ``content`` gives it the machine-readable value."""
    for element in tree.xpath("//time[@property][@datetime][not(@content)]"):
        element.set("content", element.get("datetime"))


def _json_ld(tree: Any) -> tuple[list[tuple[Any, int | None]], list[str]]:
    """JSON-LD blocks read one by one (extruct's JSON then jstyleson fallback per block)."""
    found: list[tuple[Any, int | None]] = []
    problems: list[str] = []
    extractor = JsonLdExtractor()
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        line = script.sourceline
        if not (script.text or "").strip():
            problems.append(f"ligne {line} : bloc JSON-LD vide, ignoré")
            continue
        try:
            found.extend((item, line) for item in extractor.extract_items(script))
        except Exception as exc:  # noqa: BLE001 - one broken block must not hide the others
            problems.append(f"ligne {line} : JSON-LD invalide, bloc ignoré ({exc})")
    return found, problems


def extract_events(response: TextResponse, now: dt.datetime) -> PageExtraction:
    """Every event of one page, duplicates merged.

    Args:
        response: a Scrapy text response; its ``text`` is already decoded with the charset found
            in the HTTP header, a BOM, or a ``<meta charset>`` anywhere in the first 4 kB (w3lib).
        now: aware datetime of the crawl, used only to anchor a schedule without start date.

    Returns:
        :class:`PageExtraction` (events in page order, problems in French). Never raises.
    """
    page_url = response.url
    result = PageExtraction()
    try:
        base_url = get_base_url(response)
        text = response.text
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"page illisible ({exc})")
        return result
    try:
        titles = response.xpath("//head/title") or response.xpath("(//title)[1]")
        result.title = _clean(" ".join(titles[:1].xpath(".//text()").getall())) or None
    except Exception:  # noqa: BLE001 - not HTML (e.g. a bare fragment)
        result.title = None
    try:
        tree = parse_xmldom_html(text.encode("utf-8"), encoding="utf-8")
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"HTML illisible ({exc})")
        return result
    candidates: list[EventItem] = []

    def add(items_problems: tuple[list[EventItem], list[str]]) -> None:
        items, problems = items_problems
        candidates.extend(items)
        for problem in problems:
            if problem not in result.problems:
                result.problems.append(problem)

    blocks, problems = _json_ld(tree)
    result.problems.extend(problems)
    for block, _line in blocks:
        for node in _walk(block):
            add(_schema_events(node, "json-ld", base_url, now))
    syntax_runs: list[tuple[str, list[str], Any]] = [("microdata", ["microdata"], tree)]
    if "typeof" in text:  # RDFa needs a typed node to hold an Event; pyRdfa is slow
        syntax_runs.append(("rdfa", ["rdfa"], tree))
    if "vevent" in text or "h-event" in text:
        syntax_runs.append(("microformat", ["microformat"], _fix_value_title(text)))
    for syntax, syntaxes, document in syntax_runs:
        if syntax == "rdfa":
            _time_datetime_as_content(document)
        try:
            output = extruct.extract(document, base_url=base_url, syntaxes=syntaxes,
                                     uniform=syntax != "rdfa", errors="strict")
        except Exception as exc:  # noqa: BLE001
            result.problems.append(f"{syntax} illisible, ignoré ({exc})")
            continue
        nodes = output.get(syntax, [])
        if syntax == "rdfa":
            nodes = _compact_rdfa(nodes)
        for node in _walk(nodes):
            if syntax == "microformat":
                add(_hevent(node, base_url))
            else:
                add(_schema_events(node, syntax, base_url, now))
    result.events = assign_uids(merge_items(candidates), page_url)
    return result


def activity_events(data: Any, url: str, now: dt.datetime) -> tuple[list[EventItem], list[str]]:
    """Events of an ActivityStreams 2.0 document (Mobilizon, Gancio federation): an ``Event``
    object, alone or inside a ``Create``/``Update`` activity or a collection's ``items``.

    AS2 ``Event`` (https://www.w3.org/TR/activitystreams-vocabulary/#dfn-event) is mapped onto
    schema.org names: ``startTime`` → startDate, ``endTime`` → endDate, ``content`` →
    description, ``id`` → ``@id``. Returns (items, problems); never raises.
    """
    nodes: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for element in value:
                walk(element)
        elif isinstance(value, dict):
            if value.get("type") == "Event":
                nodes.append(value)
            for key in ("object", "items", "orderedItems"):
                walk(value.get(key))

    walk(data)
    items: list[EventItem] = []
    problems: list[str] = []
    for node in nodes:
        location = node.get("location")
        if isinstance(location, dict):
            location = {"@type": "Place", "name": location.get("name"),
                        "address": location.get("address")}
        tags = [t.get("name", "").lstrip("#") for t in _all(node.get("tag"))
                if isinstance(t, dict) and t.get("type") == "Hashtag"]
        schema = {
            "@type": "Event", "@id": node.get("id"), "name": node.get("name"),
            "startDate": node.get("startTime"), "endDate": node.get("endTime"),
            "location": location, "url": _first(node.get("url")),
            "description": node.get("content") or node.get("summary"),
            "keywords": [t for t in tags if t],
        }
        found, found_problems = _schema_events(schema, "activitystreams", url, now)
        items.extend(found)
        problems.extend(found_problems)
    if not nodes:
        problems.append("aucun objet ActivityStreams « Event » dans ce document JSON")
    return assign_uids(merge_items(items), url), problems


# ------------------------------------------------------------------------ merge, identity


def assign_uids(items: list[EventItem], page_url: str) -> list[EventItem]:
    """Give each item its identifier: ``@id``, else its ``url`` when no other event of the page
    shares it, else ``repaired-<hash of title, start, location>`` (``uid_repaired``)."""
    url_counts: dict[str, int] = {}
    for item in items:
        if not item.uid and item.url:
            url_counts[item.url] = url_counts.get(item.url, 0) + 1
    for item in items:
        if not item.url:
            item.url = page_url or None
        if item.uid:
            continue
        if item.url and url_counts.get(item.url) == 1:
            item.uid = item.url
            continue
        # an anchored schedule moves with the crawl date: identify it by rule and time of day
        when = f"{item.rrule}{item.dtstart[10:]}" if item.dtstart_anchored else item.dtstart
        item.uid = "repaired-" + stable_hash(item.title or "", when or "", item.location or "",
                                             item.rrule or "")
        item.uid_repaired = True
    return items
