"""iCalendar connector (RFC 5545): one :class:`ParsedRecord` per VEVENT.

Parsing is icalendar's; X-WR-TIMEZONE calendars are made standard with x-wr-timezone. When the
whole file cannot be parsed, each VEVENT block is parsed on its own so that every readable VEVENT
is recovered and the others are reported with their line number.

Each record's payload is a self-contained VCALENDAR (the VEVENT plus the VTIMEZONEs it uses), so
that normalisation can expand it later with recurring-ical-events without the rest of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import icalendar
import x_wr_timezone

from connectors.base import ParsedRecord, ParseResult, Problem, decode_text, stable_hash

_BEGIN_RE = re.compile(r"^BEGIN:(VEVENT|VTIMEZONE|VCALENDAR)\s*$", re.IGNORECASE)
_END_RE = re.compile(r"^END:(VEVENT|VTIMEZONE|VCALENDAR)\s*$", re.IGNORECASE)
_DTSTAMP_RE = re.compile(r"^DTSTAMP[;:].*(?:\r?\n[ \t].*)*\r?\n", re.MULTILINE | re.IGNORECASE)
# Properties whose broken value makes the VEVENT unusable; others are dropped with a warning.
_REQUIRED = {"DTSTART"}
_PRODID = "-//Tissu//source record//FR"


def looks_like_ical(text: str) -> bool:
    """True when ``text`` contains a VCALENDAR object."""
    return "BEGIN:VCALENDAR" in text[:65536].upper()


def _blocks(lines: list[str]) -> Iterator[tuple[str, int, int]]:
    """Yield (component name, first line index, last line index) of top-level VEVENT/VTIMEZONE."""
    current: str | None = None
    start = 0
    for index, line in enumerate(lines):
        begin = _BEGIN_RE.match(line)
        if begin and begin.group(1).upper() in {"VEVENT", "VTIMEZONE"} and current is None:
            current, start = begin.group(1).upper(), index
            continue
        end = _END_RE.match(line)
        if end and current is not None and end.group(1).upper() == current:
            yield current, start, index
            current = None
    if current is not None:
        yield current, start, -1  # unterminated block


def _header(lines: list[str]) -> list[str]:
    """Calendar-level property lines (before the first sub-component), X-WR-TIMEZONE included."""
    header: list[str] = []
    for line in lines:
        upper = line.upper()
        if upper.startswith("BEGIN:") and not upper.startswith("BEGIN:VCALENDAR"):
            break
        if upper.startswith(("BEGIN:VCALENDAR", "END:VCALENDAR")):
            continue
        header.append(line)
    return header


def _parse_whole(text: str) -> list[icalendar.Calendar]:
    calendars = icalendar.Calendar.from_ical(text, multiple=True)
    return [x_wr_timezone.to_standard(cal) for cal in calendars]


def _parse_blockwise(text: str, result: ParseResult) -> list[tuple[icalendar.Component, int]]:
    """Parse each VEVENT separately; return (VEVENT, line) pairs and record the failures."""
    lines = text.splitlines()
    header = [line for line in _header(lines) if line.strip()]
    timezones: list[str] = []
    events: list[tuple[icalendar.Component, int]] = []
    for name, first, last in _blocks(lines):
        if last < 0:
            result.errors.append(
                Problem(f"{name} non terminé (END:{name} manquant) : ignoré", first + 1, "truncated")
            )
            continue
        block = "\n".join(lines[first : last + 1])
        if name == "VTIMEZONE":
            try:
                icalendar.Calendar.from_ical(f"BEGIN:VCALENDAR\n{block}\nEND:VCALENDAR\n")
            except Exception as exc:  # noqa: BLE001 - any parser failure is reported, not raised
                result.warnings.append(
                    Problem(f"VTIMEZONE illisible ignoré ({exc})", first + 1, "bad-vtimezone")
                )
                continue
            timezones.append(block)
            continue
        wrapped = "\n".join(
            ["BEGIN:VCALENDAR", *header, *timezones, block, "END:VCALENDAR", ""]
        )
        try:
            cal = x_wr_timezone.to_standard(icalendar.Calendar.from_ical(wrapped))
        except Exception as exc:  # noqa: BLE001
            try:  # retry without the time zones, which are the usual culprits
                bare = "\n".join(["BEGIN:VCALENDAR", *header, block, "END:VCALENDAR", ""])
                cal = x_wr_timezone.to_standard(icalendar.Calendar.from_ical(bare))
            except Exception:  # noqa: BLE001
                result.errors.append(Problem(f"VEVENT illisible ({exc})", first + 1, "bad-vevent"))
                continue
        for vevent in cal.walk("VEVENT"):
            events.append((vevent, first + 1))
    return events


def _used_timezones(vevent: icalendar.Component, calendar: icalendar.Calendar | None) -> list:
    if calendar is None:
        return []
    tzids: set[str] = set()
    for value in vevent.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            params = getattr(item, "params", None)
            if params and "TZID" in params:
                tzids.add(str(params["TZID"]))
    return [tz for tz in calendar.walk("VTIMEZONE") if str(tz.get("TZID")) in tzids]


def _iso(value: object) -> str:
    dt_value = getattr(value, "dt", value)
    if isinstance(dt_value, list):
        dt_value = dt_value[0]
    return dt_value.isoformat() if hasattr(dt_value, "isoformat") else str(dt_value)


def parse_ical(data: bytes, source_id: str = "") -> ParseResult:
    """Parse iCalendar bytes into records.

    Args:
        data: the raw bytes (any charset; BOM tolerated).
        source_id: the source slug, used only in messages.

    Returns:
        A :class:`ParseResult`; never raises. A VEVENT without UID gets a deterministic UID
        (``repaired-<hash of DTSTART, SUMMARY, LOCATION>``) flagged ``uid_repaired``. Duplicate
        (UID, RECURRENCE-ID) pairs keep the highest SEQUENCE (RFC 5545 §3.8.7.4).
    """
    result = ParseResult(detected_format="ical")
    text, problems = decode_text(data)
    result.warnings.extend(problems)
    if not looks_like_ical(text):
        hint = " (c'est une page web)" if "<html" in text[:4096].lower() else ""
        result.errors.append(
            Problem(f"aucun calendrier iCalendar (BEGIN:VCALENDAR absent){hint}", code="not-ical")
        )
        return result
    lines = text.splitlines()
    vevent_lines = [
        i + 1 for i, line in enumerate(lines) if line.strip().upper() == "BEGIN:VEVENT"
    ]
    unterminated = {first + 1 for name, first, last in _blocks(lines) if last < 0}
    if not re.search(r"^END:VCALENDAR\s*$", text, re.IGNORECASE | re.MULTILINE):
        result.warnings.append(Problem("END:VCALENDAR manquant : fichier tronqué ?",
                                       len(lines), "truncated"))
    pairs: list[tuple[icalendar.Component, int | None, icalendar.Calendar | None]] = []
    try:
        calendars = _parse_whole(text)
        position = 0
        for cal in calendars:
            for vevent in cal.walk("VEVENT"):
                line = vevent_lines[position] if position < len(vevent_lines) else None
                pairs.append((vevent, line, cal))
                position += 1
        if position != len(vevent_lines):
            raise ValueError(f"{position} VEVENT lus sur {len(vevent_lines)}")
    except Exception as exc:  # noqa: BLE001 - fall back to block-wise recovery
        result.warnings.append(
            Problem(f"fichier mal formé ({exc}) ; lecture événement par événement", code="fallback")
        )
        pairs = []
        for vevent, line in _parse_blockwise(text, result):
            pairs.append((vevent, line, None))
    if not vevent_lines and not pairs:
        result.warnings.append(Problem("le calendrier ne contient aucun VEVENT", code="empty"))

    chosen: dict[tuple[str, str], tuple[int, ParsedRecord]] = {}
    for vevent, line, cal in pairs:
        if line in unterminated:
            if not any(p.line == line and p.code == "truncated" for p in result.errors):
                result.errors.append(Problem("VEVENT non terminé (END:VEVENT manquant) : ignoré",
                                             line, "truncated"))
            continue
        record = _record(vevent, line, cal, result)
        if record is None:
            continue
        key = (record.uid, record.recurrence_id)
        sequence = int(vevent.get("SEQUENCE", 0) or 0) if _is_int(vevent.get("SEQUENCE")) else 0
        if key in chosen:
            result.warnings.append(
                Problem(f"VEVENT en double (UID {record.uid}) : le plus récent est gardé", line,
                        "duplicate")
            )
            if chosen[key][0] > sequence:
                continue
        chosen[key] = (sequence, record)
    result.records = [record for _seq, record in chosen.values()]
    return result


def _is_int(value: object) -> bool:
    try:
        int(str(value))
    except (TypeError, ValueError):
        return False
    return value is not None


def _record(
    vevent: icalendar.Component,
    line: int | None,
    calendar: icalendar.Calendar | None,
    result: ParseResult,
) -> ParsedRecord | None:
    """Check one VEVENT and build its record; report and return None when unusable."""
    errors = getattr(vevent, "errors", []) or []
    for prop, message in errors:
        name = (prop or "").upper()
        if name in _REQUIRED:
            result.errors.append(Problem(f"{name} illisible ({message}) : événement ignoré", line,
                                         "bad-dtstart"))
            return None
        if name:
            result.warnings.append(
                Problem(f"propriété {name} illisible ({message}) : ignorée", line, "bad-property")
            )
            if name in vevent:
                del vevent[name]
        else:
            result.warnings.append(Problem(f"ligne illisible ignorée ({message})", line, "bad-line"))
    if vevent.get("DTSTART") is None:
        result.errors.append(Problem("VEVENT sans DTSTART : ignoré", line, "no-dtstart"))
        return None
    try:
        _iso(vevent.get("DTSTART"))
    except Exception as exc:  # noqa: BLE001
        result.errors.append(Problem(f"DTSTART illisible ({exc}) : ignoré", line, "bad-dtstart"))
        return None
    uid = str(vevent.get("UID") or "").strip()
    repaired = False
    if not uid:
        basis = [
            _iso(vevent.get("DTSTART")),
            str(vevent.get("SUMMARY") or ""),
            str(vevent.get("LOCATION") or ""),
        ]
        uid = f"repaired-{stable_hash(*basis)}"
        repaired = True
        result.warnings.append(
            Problem(f"VEVENT sans UID : identifiant reconstruit {uid}", line, "no-uid")
        )
    recurrence_id = _iso(vevent.get("RECURRENCE-ID")) if vevent.get("RECURRENCE-ID") else ""
    if repaired:
        vevent["UID"] = uid
    wrapper = icalendar.Calendar()
    wrapper.add("PRODID", _PRODID)
    wrapper.add("VERSION", "2.0")
    for timezone in _used_timezones(vevent, calendar):
        wrapper.add_component(timezone)
    wrapper.add_component(vevent)
    try:
        payload = wrapper.to_ical().decode("utf-8")
    except Exception as exc:  # noqa: BLE001
        result.errors.append(Problem(f"VEVENT impossible à réécrire ({exc})", line, "bad-vevent"))
        return None
    return ParsedRecord(
        uid=uid,
        recurrence_id=recurrence_id,
        kind="event",
        payload_format="ical",
        payload=payload,
        hash_basis=_DTSTAMP_RE.sub("", payload),
        uid_repaired=repaired,
        line=line,
    )
