"""OpenAgenda connector (``format: openagenda``): OpenAgenda JSON → event records.

Accepted shapes (OpenAgenda API v2, https://developers.openagenda.com/):

- the events list response ``{"success", "total", "events": [...], "after": [...]}``;
- an export or fixture that is a bare list of events;
- one event object, or ``{"agenda": {...}, "event": {...}}`` as the single-event endpoint gives;
- the older flat v1 fields (``timings[].start``, ``locationName``) as fallbacks.

Each event becomes one record whose JSON payload follows the keys ``normalize_json_record``
understands (``title``, ``description``, ``dtstart``, ``dtend``, ``tzid``, ``location`` …) plus
``timings``: one ``{"dtstart", "dtend"}`` pair (ISO 8601 with offset) per OpenAgenda timing, each
of which becomes one occurrence. Multilingual fields take French first, then English, then any
other language. U+2028/U+2029 separators become line breaks. Registration e-mails and the
contributor's (``member``) details are never copied into the payload.

Status codes (OpenAgenda ``status``): 1 scheduled, 2 rescheduled, 3 moved online, 4 postponed,
5 full, 6 cancelled; they map to schema.org EventStatusType and to RFC 5545 STATUS.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from connectors.base import NO_JSON, ParsedRecord, ParseResult, Problem, load_json, stable_hash

LANGUAGE_ORDER = ("fr", "en")
# OpenAgenda status → (RFC 5545 STATUS as stored in Event.status, schema.org EventStatusType).
STATUS = {
    1: ("confirmed", "EventScheduled"),
    2: ("confirmed", "EventRescheduled"),
    3: ("confirmed", "EventMovedOnline"),
    4: ("tentative", "EventPostponed"),
    5: ("confirmed", "EventScheduled"),  # full ("complet"): still takes place
    6: ("cancelled", "EventCancelled"),
}
ATTENDANCE = {1: "offline", 2: "online", 3: "mixed"}
# OpenAgenda accessibility flags (https://developers.openagenda.com/, event "accessibility").
ACCESSIBILITY = {
    "hi": "hearing",
    "vi": "visual",
    "mi": "motor",
    "ii": "intellectual",
    "pi": "psychic",
}


def clean_text(value: str | None) -> str | None:
    """Text from OpenAgenda with U+2028 → newline and U+2029 → blank line; '' → None."""
    if value is None:
        return None
    text = str(value).replace("\u2029", "\n\n").replace("\u2028", "\n").strip()
    return text or None


def pick_language(value: Any) -> tuple[str | None, str | None]:
    """A multilingual OpenAgenda field → (text, language code).

    French first, then English, then the first other language in alphabetical order; a plain
    string is returned as is (language None). Empty values are skipped.
    """
    if isinstance(value, str):
        return clean_text(value), None
    if not isinstance(value, dict):
        return None, None
    ordered = [k for k in LANGUAGE_ORDER if k in value] + sorted(
        k for k in value if k not in LANGUAGE_ORDER
    )
    for language in ordered:
        text = value[language]
        if isinstance(text, str) and clean_text(text):
            return clean_text(text), language
    return None, None


def _keywords(value: Any) -> list[str]:
    if isinstance(value, dict):
        for language in [k for k in LANGUAGE_ORDER if k in value] + sorted(value):
            words = value.get(language)
            if isinstance(words, list) and any(isinstance(w, str) and w.strip() for w in words):
                value = words
                break
        else:
            return []
    if not isinstance(value, list):
        return []
    found: list[str] = []
    for word in value:
        if isinstance(word, str) and word.strip() and word.strip() not in found:
            found.append(word.strip())
    return found


def _parse_instant(value: Any) -> dt.datetime | None:
    """ISO 8601 with offset (``2025-01-08T18:00:00.000+01:00`` or ``…Z``) → aware datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())  # Python 3.11 reads "Z" itself
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _timings(event: dict[str, Any], label: str,
             warnings: list[Problem]) -> list[tuple[dt.datetime, dt.datetime]]:
    raw = event.get("timings")
    source_note = ""
    if not isinstance(raw, list) or not raw:
        # Search results may omit timings but keep firstTiming/nextTiming/lastTiming.
        raw = [event.get(k) for k in ("firstTiming", "nextTiming", "lastTiming")]
        raw = [t for t in raw if isinstance(t, dict)]
        source_note = "firstTiming/nextTiming/lastTiming"
    found: dict[dt.datetime, dt.datetime] = {}
    for position, timing in enumerate(raw, start=1):
        if not isinstance(timing, dict):
            continue
        begin = _parse_instant(timing.get("begin") or timing.get("start"))
        end = _parse_instant(timing.get("end")) or begin
        if begin is None or end is None:
            warnings.append(Problem(
                f"{label} : horaire n°{position} illisible ({timing!r}) : ignoré", code="timing"))
            continue
        if end < begin:
            warnings.append(Problem(
                f"{label} : horaire n°{position} finit avant de commencer : fin ramenée au début",
                code="timing"))
            end = begin
        found.setdefault(begin, end)
    if found and source_note:
        warnings.append(Problem(
            f"{label} : pas de liste « timings » ; horaires repris de {source_note} "
            "(liste peut-être incomplète)", code="timing"))
    return sorted(found.items())


def _location(event: dict[str, Any]) -> dict[str, Any]:
    raw = event.get("location")
    loc: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = clean_text(loc.get("name") or event.get("locationName"))
    address = clean_text(loc.get("address") or event.get("address"))
    city = clean_text(loc.get("city") or event.get("city"))
    postal_code = clean_text(str(loc.get("postalCode") or event.get("postalCode") or "")) or None

    def number(key: str) -> float | None:
        value = loc.get(key, event.get(key))
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else None

    latitude, longitude = number("latitude"), number("longitude")
    if latitude == 0.0 and longitude == 0.0:  # "null island": no position given
        latitude = longitude = None
    parts = [p for p in (name, address) if p]
    if city and not any(city.lower() in p.lower() for p in parts):
        parts.append(" ".join(p for p in (postal_code, city) if p))
    return {
        "location": ", ".join(parts) or None,
        "address": address,
        "postal_code": postal_code,
        "city": city,
        "latitude": latitude,
        "longitude": longitude,
        "tzid": loc.get("timezone"),
    }


def _registration(value: Any) -> tuple[str | None, list[dict[str, str]]]:
    """Registration entries: links and phone numbers are kept; e-mail addresses never are."""
    kept: list[dict[str, str]] = []
    first_link = None
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            continue
        kind, target = entry.get("type"), entry["value"].strip()
        if kind == "link" and target.startswith(("http://", "https://")):
            first_link = first_link or target
            kept.append({"type": "link", "value": target})
        elif kind == "phone":
            kept.append({"type": "phone", "value": target})
    return first_link, kept


def event_payload(event: dict[str, Any], label: str,
                  warnings: list[Problem]) -> dict[str, Any] | None:
    """One OpenAgenda event object → the JSON payload of its record (None without timings)."""
    timings = _timings(event, label, warnings)
    if not timings:
        return None
    title, title_language = pick_language(event.get("title"))
    long_description, _ = pick_language(event.get("longDescription"))
    summary, _ = pick_language(event.get("description"))
    conditions, _ = pick_language(event.get("conditions"))
    status, schema_status = STATUS.get(event.get("status") or 1, STATUS[1])
    place = _location(event)
    registration_url, registration = _registration(event.get("registration"))
    attendance = ATTENDANCE.get(event.get("attendanceMode") or 1, "offline")
    online = event.get("onlineAccessLink")
    location = place["location"]
    if attendance == "online" and not location:
        location = "En ligne"
    raw_access, raw_age = event.get("accessibility"), event.get("age")
    accessibility: dict[str, Any] = raw_access if isinstance(raw_access, dict) else {}
    age: dict[str, Any] = raw_age if isinstance(raw_age, dict) else {}
    tzid = event.get("timezone") or place["tzid"] or "Europe/Paris"
    first_start, first_end = timings[0]
    return {
        "title": title,
        "title_language": title_language,
        "description": long_description or summary,
        "summary": summary,
        "conditions": conditions,
        "dtstart": first_start.isoformat(),
        "dtend": first_end.isoformat(),
        "tzid": tzid,
        "timings": [{"dtstart": b.isoformat(), "dtend": e.isoformat()} for b, e in timings],
        "status": status,
        "event_status": schema_status,
        "location": location,
        "address": place["address"],
        "postal_code": place["postal_code"],
        "city": place["city"],
        "latitude": place["latitude"],
        "longitude": place["longitude"],
        "url": None,
        "registration_url": registration_url,
        "registration": registration,
        "online_url": online if isinstance(online, str) and online.startswith("http") else None,
        "attendance_mode": attendance,
        "accessibility": [name for code, name in ACCESSIBILITY.items()
                          if accessibility.get(code) is True],
        "age_min": age.get("min") if isinstance(age.get("min"), int) else None,
        "age_max": age.get("max") if isinstance(age.get("max"), int) else None,
        "categories": _keywords(event.get("keywords")),
        "organizer": None,
        "slug": event.get("slug"),
    }


def _events(document: Any) -> tuple[list[Any], int | None, str]:
    """The event objects of a document, the announced total, and a description of the shape."""
    if isinstance(document, list):
        return document, None, "liste d'événements"
    if isinstance(document, dict):
        if isinstance(document.get("events"), list):
            total = document.get("total")
            return document["events"], total if isinstance(total, int) else None, "réponse API v2"
        if isinstance(document.get("event"), dict):
            return [document["event"]], None, "événement seul (avec agenda)"
        if any(k in document for k in ("uid", "timings", "title")):
            return [document], None, "événement seul"
    return [], None, ""


def parse_openagenda(data: bytes, source_id: str) -> ParseResult:
    """Parse OpenAgenda JSON bytes into event records (see the module docstring).

    Never raises: unreadable JSON is one error with its line; an event without any timing is an
    error for that event only (the run is then partial, so nothing is marked removed); a paginated
    response whose ``total`` exceeds its events is read and marked incomplete.
    """
    result = ParseResult(detected_format="openagenda")
    document = load_json(data, result)
    if document is NO_JSON:
        return result
    events, total, shape = _events(document)
    if not shape:
        result.errors.append(Problem(
            "structure JSON non reconnue : ni liste d'événements OpenAgenda, ni objet "
            "« events », ni événement seul", code="shape"))
        return result
    if total is not None and total > len(events):
        result.complete = False
        result.warnings.append(Problem(
            f"réponse paginée : {len(events)} événements sur {total} annoncés ; les autres "
            "pages ne sont pas dans ce fichier", code="pagination"))
    seen: set[str] = set()
    for position, event in enumerate(events, start=1):
        if not isinstance(event, dict):
            result.errors.append(Problem(f"événement n°{position} : objet attendu", code="shape"))
            continue
        uid = event.get("uid")
        repaired = uid is None or str(uid).strip() == ""
        if repaired:
            basis = json.dumps([event.get("slug"), event.get("title"), event.get("timings"),
                                event.get("longDescription")], sort_keys=True, ensure_ascii=False)
            uid = "oa-" + stable_hash(basis)
        uid = str(uid).strip()
        label = f"événement n°{position} (uid {uid})"
        if event.get("draft") in (1, True):
            result.warnings.append(Problem(f"{label} : brouillon, ignoré", code="draft"))
            continue
        payload = event_payload(event, label, result.warnings)
        if payload is None:
            result.errors.append(Problem(f"{label} : aucun horaire (timings) lisible : ignoré",
                                         code="no-timing"))
            continue
        if payload["title"] is None:
            result.warnings.append(Problem(f"{label} : sans titre", code="title"))
        if uid in seen:
            result.warnings.append(Problem(f"{label} : uid en double, seul le premier est gardé",
                                           code="duplicate"))
            continue
        seen.add(uid)
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        result.records.append(ParsedRecord(uid=uid, kind="event", payload_format="json",
                                           payload=body, hash_basis=body,
                                           uid_repaired=repaired))
    if not events:
        result.warnings.append(Problem(f"{shape} vide : aucun événement", code="empty"))
    return result
