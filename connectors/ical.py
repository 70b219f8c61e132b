"""iCalendar connector (RFC 5545): one :class:`ParsedRecord` per VEVENT.

Parsing is icalendar's; X-WR-TIMEZONE calendars are made standard with x-wr-timezone. When the
whole file cannot be parsed, each VEVENT block is parsed on its own so that every readable VEVENT
is recovered and the others are reported with their line number.

Each record's payload is a self-contained VCALENDAR (the VEVENT plus the VTIMEZONEs it uses), so
that normalisation can expand it later with recurring-ical-events without the rest of the file.

Before parsing, a few common breakages are repaired line by line, each with a warning naming the
line: a line folded without the leading space RFC 5545 §3.1 requires (joined back to the line it
was cut from), an empty parameter (``DTSTART;;VALUE=…``), and VEVENTs published without their
VCALENDAR envelope. Line numbers in every message are those of the file as published.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import icalendar
import x_wr_timezone
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from connectors.base import (
    ParsedRecord,
    ParseResult,
    Problem,
    content_hint,
    decode_text,
    stable_hash,
)

_BEGIN_RE = re.compile(r"^BEGIN:(VEVENT|VTIMEZONE|VCALENDAR)\s*$", re.IGNORECASE)
_END_RE = re.compile(r"^END:(VEVENT|VTIMEZONE|VCALENDAR)\s*$", re.IGNORECASE)
_DTSTAMP_RE = re.compile(r"^DTSTAMP[;:].*(?:\r?\n[ \t].*)*\r?\n", re.MULTILINE | re.IGNORECASE)
# Properties whose broken value makes the VEVENT unusable; others are dropped with a warning.
_REQUIRED = {"DTSTART"}
# VEVENT properties that may occur at most once (RFC 5545 §3.6.1).
_SINGLE = ("DTSTART", "DTEND", "DURATION", "UID", "RECURRENCE-ID", "SEQUENCE", "STATUS",
           "SUMMARY", "LOCATION", "DESCRIPTION", "URL", "ORGANIZER", "DTSTAMP", "CLASS",
           "CREATED", "LAST-MODIFIED", "PRIORITY", "TRANSP", "GEO")
_PRODID = "-//Tissu//source record//FR"
_LINE_SPLIT_RE = re.compile(r"\r\n|\r|\n")
# A content line starts with a property name (iana-token or x-name) then ";" or ":".
_CONTENT_LINE_RE = re.compile(r"^[A-Za-z0-9-]+[;:]")
_EMPTY_PARAM_RE = re.compile(r";(?=[;:])")
MAX_CONTENT_LINE = 65536


def split_lines(text: str) -> list[str]:
    """Physical lines of iCalendar text, split on CRLF, CR or LF only (not on U+2028 etc.)."""
    lines = _LINE_SPLIT_RE.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def repair_lines(lines: list[str], shift: int = 0) -> tuple[list[str], list[Problem]]:
    """Repair lost folding and empty parameters in place; the number of lines is unchanged.

    A line that neither starts with a space (a proper fold) nor with a property name was cut by
    a publisher who forgot the folding space: it is joined to the previous content line and
    left empty. ``shift`` is subtracted from indexes to give file line numbers in messages.
    """
    problems: list[Problem] = []
    fixed = list(lines)
    previous: int | None = None
    for index, line in enumerate(fixed):
        if not line.strip():
            continue
        if line[0] in " \t":
            previous = index if previous is not None else None
            continue
        if _CONTENT_LINE_RE.match(line):
            name_end = _name_part_end(line)
            if _EMPTY_PARAM_RE.search(line[:name_end]):
                fixed[index] = _EMPTY_PARAM_RE.sub("", line[:name_end]) + line[name_end:]
                problems.append(Problem("paramètre vide (« ;; ») supprimé", index + 1 - shift,
                                        "empty-parameter"))
            previous = index
            continue
        if previous is None:
            continue
        fixed[previous] += line
        fixed[index] = ""
        problems.append(Problem(
            "ligne coupée sans espace de continuation (RFC 5545 §3.1) : recollée à la précédente",
            index + 1 - shift, "bad-folding"))
    problems.extend(_cap_long_lines(fixed, shift))
    return fixed, problems


def _cap_long_lines(lines: list[str], shift: int) -> list[Problem]:
    """Cut content lines longer than MAX_CONTENT_LINE characters (after unfolding), in place.

    icalendar reads and re-folds long values character by character (about 3 s per MB); a
    value longer than this is no text a resident reads, and a 20 MB one would hold the source
    for a minute.
    """
    problems: list[Problem] = []
    start: int | None = None
    length = 0
    last_kept = 0
    cut = False
    for index, line in enumerate(lines):
        if not line:
            continue
        if line[0] in " \t" and start is not None:
            length += len(line) - 1
        else:
            start, length, cut = index, len(line), False
        if length <= MAX_CONTENT_LINE:
            last_kept = index
            continue
        if cut:
            lines[index] = ""
            continue
        cut = True
        excess = length - MAX_CONTENT_LINE
        if len(lines[index]) - excess > 1:
            lines[index] = lines[index][: len(lines[index]) - excess].rstrip("\\")
        else:
            lines[index] = ""
            lines[last_kept] = lines[last_kept].rstrip("\\")
        problems.append(Problem(
            f"ligne de plus de {MAX_CONTENT_LINE} caractères : coupée", start + 1 - shift,
            "long-line"))
    return problems


def _name_part_end(line: str) -> int:
    """Index of the ':' that ends the name and parameters (quoted values may hold ':')."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return index
    return len(line)


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


def parser_reason(exc: BaseException) -> str:
    """What to say of an exception of icalendar: its message when it is a parse error
    (ValueError: « Wrong date format … », « Content line could not be parsed … »), else that
    the reader failed, without Python's text (an AttributeError « 'list' object has no
    attribute 'strip' » is icalendar tripping on a repeated property, not a message)."""
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    return "le lecteur iCalendar a échoué sur une propriété en double ou mal placée"


def _parse_whole(text: str) -> list[icalendar.Calendar]:
    calendars = icalendar.Calendar.from_ical(text, multiple=True)
    return [x_wr_timezone.to_standard(cal) for cal in calendars]


def _parse_blockwise(lines: list[str], result: ParseResult,
                     shift: int = 0) -> list[tuple[icalendar.Component, int]]:
    """Parse each VEVENT separately; return (VEVENT, line) pairs and record the failures."""
    header = [line for line in _header(lines) if line.strip()]
    timezones: list[str] = []
    events: list[tuple[icalendar.Component, int]] = []
    for name, first, last in _blocks(lines):
        if last < 0:
            result.errors.append(
                Problem(f"{name} non terminé (END:{name} manquant) : ignoré", first + 1 - shift,
                        "truncated")
            )
            continue
        block = "\n".join(lines[first : last + 1])
        if name == "VTIMEZONE":
            try:
                icalendar.Calendar.from_ical(f"BEGIN:VCALENDAR\n{block}\nEND:VCALENDAR\n")
            except Exception as exc:  # noqa: BLE001 - any parser failure is reported, not raised
                tzid_lines = [first + 1 + i - shift
                              for i, text_line in enumerate(lines[first : last + 1])
                              if text_line.upper().startswith("TZID")]
                reason = (f"il porte {len(tzid_lines)} TZID (lignes "
                          f"{', '.join(map(str, tzid_lines))}) : un VTIMEZONE décrit un seul "
                          "fuseau" if len(tzid_lines) > 1 else parser_reason(exc))
                result.warnings.append(
                    Problem(f"VTIMEZONE illisible ignoré ({reason})", first + 1 - shift,
                            "bad-vtimezone")
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
                result.errors.append(
                    Problem(f"VEVENT illisible ({exc})", first + 1 - shift, "bad-vevent"))
                continue
        for vevent in cal.walk("VEVENT"):
            events.append((vevent, first + 1 - shift))
    return events


def _used_timezones(vevent: icalendar.Component, calendar: icalendar.Calendar | None,
                    walked: dict[int, list] | None = None) -> list:
    """The VTIMEZONEs a VEVENT refers to, to embed in its record.

    ``walked`` (id of a calendar → its VTIMEZONEs) keeps each calendar's VTIMEZONEs for the
    next VEVENTs of the same parse: walking the whole calendar for each VEVENT made a file of N
    events cost N² (20 000 plain events took over 120 s).

    A Windows zone name ("W. Europe Standard Time") is left out: icalendar maps it to its IANA
    zone through the CLDR table when no VTIMEZONE is given, and Exchange's definitions (rules
    from 1601) make every later read of the record slow.
    """
    if calendar is None:
        return []
    tzids: set[str] = set()
    for value in vevent.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            params = getattr(item, "params", None)
            if params and "TZID" in params:
                tzids.add(str(params["TZID"]))
    tzids -= set(WINDOWS_TO_OLSON)
    if not tzids:
        return []
    walked = {} if walked is None else walked
    zones = walked.get(id(calendar))
    if zones is None:
        zones = walked[id(calendar)] = calendar.walk("VTIMEZONE")
    return [tz for tz in zones if str(tz.get("TZID")) in tzids]



def _iso(value: object) -> str:
    dt_value = getattr(value, "dt", value)
    if isinstance(dt_value, list):
        dt_value = dt_value[0]
    return dt_value.isoformat() if hasattr(dt_value, "isoformat") else str(dt_value)


def parse_ical(data: bytes, source_id: str = "") -> ParseResult:
    """Parse iCalendar bytes into records.

    Args:
        data: the raw bytes (any charset; BOM tolerated). One file may hold several VCALENDAR
            objects, or bare VEVENTs without VCALENDAR (wrapped, with a warning).
        source_id: the source slug, used only in messages.

    Returns:
        A :class:`ParseResult`; never raises. A VEVENT without UID gets a deterministic UID
        (``repaired-<hash of DTSTART, SUMMARY, LOCATION>``) flagged ``uid_repaired``. Duplicate
        (UID, RECURRENCE-ID) pairs keep the latest revision: highest SEQUENCE, then latest
        DTSTAMP, then the last in the file (RFC 5545 §3.8.7.4, RFC 5546 §2.1.5). Every VEVENT
        that cannot be used is reported in ``errors`` with its line number.
    """
    result = ParseResult(detected_format="ical")
    text, problems = decode_text(data)
    result.warnings.extend(problems)
    lines = split_lines(text)
    shift = 0
    if not looks_like_ical(text):
        if any(line.strip().upper() == "BEGIN:VEVENT" for line in lines[:5000]):
            result.warnings.append(Problem(
                "VEVENT publiés sans enveloppe BEGIN:VCALENDAR … END:VCALENDAR : enveloppe ajoutée",
                code="no-vcalendar"))
            lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{_PRODID}", *lines,
                     "END:VCALENDAR"]
            shift = 3
        else:
            hint = content_hint(data)
            result.errors.append(Problem(
                f"aucun calendrier iCalendar (BEGIN:VCALENDAR absent){hint}", code="not-ical"))
            return result
    lines, repairs = repair_lines(lines, shift)
    result.warnings.extend(repairs)
    for header_line in lines[:200]:
        if header_line.upper().startswith("X-WR-CALNAME"):
            result.title = header_line.split(":", 1)[-1].strip()
            break
    text = "\n".join(lines) + "\n"
    vevent_lines = [
        i + 1 - shift for i, text_line in enumerate(lines)
        if text_line.strip().upper() == "BEGIN:VEVENT"
    ]
    unterminated = {first + 1 - shift for name, first, last in _blocks(lines) if last < 0}
    if not any(text_line.strip().upper() == "END:VCALENDAR" for text_line in lines):
        result.warnings.append(Problem("END:VCALENDAR manquant : fichier tronqué ?",
                                       len(lines) - shift, "truncated"))
        # a cut file says nothing of the events after the cut: none is marked removed
        result.complete = False
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
        result.warnings.append(Problem(
            f"fichier mal formé ({parser_reason(exc)}) ; lecture événement par événement",
            code="fallback"))
        pairs = []
        for vevent, line in _parse_blockwise(lines, result, shift):
            pairs.append((vevent, line, None))
    if not vevent_lines and not pairs:
        result.warnings.append(Problem("le calendrier ne contient aucun VEVENT", code="empty"))

    chosen: dict[tuple[str, str], tuple[tuple[int, str], ParsedRecord]] = {}
    serialised: dict[int, str] = {}  # VTIMEZONE text, once per component (see _payload)
    walked: dict[int, list] = {}  # VTIMEZONEs, once per calendar (see _used_timezones)
    for vevent, line, owner in pairs:
        if line in unterminated:
            if not any(p.line == line and p.code == "truncated" for p in result.errors):
                result.errors.append(Problem("VEVENT non terminé (END:VEVENT manquant) : ignoré",
                                             line, "truncated"))
            continue
        record = _record(vevent, line, owner, result, serialised, walked)
        if record is None:
            continue
        key = (record.uid, record.recurrence_id)
        revision = (_int_or_zero(vevent.get("SEQUENCE")), _stamp(vevent))
        if key in chosen:
            kept_revision, kept = chosen[key]
            newer = revision >= kept_revision
            winner = line if newer else kept.line
            result.warnings.append(Problem(
                f"VEVENT en double (UID {record.uid}, déjà vu ligne {kept.line}) : la version "
                f"de la ligne {winner} est gardée", line, "duplicate"))
            if not newer:
                continue
        chosen[key] = (revision, record)
    result.records = [record for _revision, record in chosen.values()]
    result.errors.sort(key=lambda problem: problem.line or 0)
    return result


def _int_or_zero(value: object) -> int:
    return int(str(value)) if _is_int(value) else 0


def _stamp(vevent: icalendar.Component) -> str:
    """DTSTAMP (or LAST-MODIFIED) as sortable UTC text, '' when absent or unreadable."""
    for name in ("DTSTAMP", "LAST-MODIFIED"):
        value = getattr(vevent.get(name), "dt", None)
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value.strftime("%Y%m%dT%H%M%S")
    return ""


def _is_int(value: object) -> bool:
    try:
        int(str(value))
    except (TypeError, ValueError):
        return False
    return value is not None


_PAYLOAD_HEAD = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{_PRODID}\r\n"


def _payload(vevent: icalendar.Component, timezones: list[icalendar.Component],
             serialised: dict[int, str]) -> str:
    """The record's self-contained VCALENDAR text: PRODID, VERSION, the VTIMEZONEs, the VEVENT.

    The same text as icalendar's ``Calendar.to_ical()`` of that calendar (VERSION then PRODID,
    lines folded, CRLF), built from its parts so that a VTIMEZONE shared by many VEVENTs is
    serialised once per file (``serialised``: id of the component → its text).
    """
    parts = [_PAYLOAD_HEAD]
    for timezone in timezones:
        text = serialised.get(id(timezone))
        if text is None:
            text = serialised[id(timezone)] = timezone.to_ical().decode("utf-8")
        parts.append(text)
    parts.append(vevent.to_ical().decode("utf-8"))
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts)


def _record(
    vevent: icalendar.Component,
    line: int | None,
    calendar: icalendar.Calendar | None,
    result: ParseResult,
    serialised: dict[int, str] | None = None,
    walked: dict[int, list] | None = None,
) -> ParsedRecord | None:
    """Check one VEVENT and build its record; report and return None when unusable."""
    serialised = {} if serialised is None else serialised
    for name in _SINGLE:
        value = vevent.get(name)
        if isinstance(value, list):  # RFC 5545 §3.6.1: MUST NOT occur more than once
            vevent[name] = value[0]
            result.warnings.append(Problem(
                f"propriété {name} répétée {len(value)} fois : seule la première est gardée",
                line, "repeated-property"))
    errors = getattr(vevent, "errors", []) or []
    for prop, message in errors:
        name = (prop or "").upper()
        if name in _REQUIRED:
            result.errors.append(Problem(f"{name} illisible ({message}) : événement ignoré", line,
                                         "bad-dtstart"))
            return None
        if name:
            result.warnings.append(
                Problem(f"propriété {name} illisible ({message}) : ignorée", line,
                        # the series keeps its first session only: its own code
                        "bad-rrule" if name == "RRULE" else "bad-property")
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
    timezones = _used_timezones(vevent, calendar, walked)
    try:
        payload = _payload(vevent, timezones, serialised)
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
        parsed=(vevent, timezones),
    )
