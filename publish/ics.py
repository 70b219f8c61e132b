"""iCalendar feeds (RFC 5545, with RFC 7986 calendar properties) from the published database.

One VEVENT per event (series), never one per occurrence: a source series is written back with its
RRULE, RDATE and EXDATE, and each occurrence that differs from the series (moved, retitled,
relocated, cancelled) becomes an override VEVENT with RECURRENCE-ID (RFC 5545 §3.8.4.4).

Properties of each VEVENT:

- ``UID`` ``<event id>@tissu``: stable, from the source identity.
- ``DTSTAMP`` and ``LAST-MODIFIED``: the last change Tissu saw (``updated_at``, or the removal
  time). Without a METHOD property DTSTAMP is "the date and time that the information associated
  with the calendar component was last revised" (RFC 5545 §3.8.7.2), so an unchanged agenda gives
  byte-identical files.
- ``SEQUENCE``: the source's SEQUENCE plus Tissu's ``revision``, which grows at every change.
- ``STATUS``: CANCELLED for an event cancelled or removed at its source; such an event stays in the
  feeds :data:`CANCELLED_KEEP_DAYS` days after the change, then leaves them.
- ``DTSTART``/``DTEND``: a series in the zone its source meant (it expands in that zone, across
  DST), a single event in Europe/Paris; a VTIMEZONE for each zone used; all-day events stay dates.
- ``LOCATION``, ``GEO`` (when the place is known), ``URL``, ``CATEGORIES`` (theme labels then
  the source's categories), ``DESCRIPTION``, ``CREATED``.

Speed: each VEVENT is serialised once and reused by every feed that contains it; values that
events share (local times, places, organisers, rules, categories) are encoded once. TEXT values are escaped by icalendar's own function (the one ``vText`` uses),
RRULE/RDATE/EXDATE by its property types; DATE-TIME values are formatted per RFC 5545 §3.3.5 and
lines folded per §3.1 the way icalendar folds them (checked against it in the tests).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

# _escape_char is what icalendar's own vText.to_ical calls (icalendar pinned to 7.3.0)
from icalendar.parser import Contentline, Parameters, _escape_char, param_value
from icalendar.prop import (
    vDDDLists,
    vDuration,
    vGeo,
    vRecur,
    vUri,
)

from normalize.times import PARIS

PRODID = "-//Tissu//Agenda solidaire de Pantin//FR"
CALENDAR_NAME = "Tissu — agenda solidaire de Pantin"
CANCELLED_KEEP_DAYS = 30
REFRESH_INTERVAL = "PT6H"  # RFC 7986 §5.7; X-PUBLISHED-TTL says the same to older clients
_STATUS = {"cancelled": "CANCELLED", "tentative": "TENTATIVE", "confirmed": "CONFIRMED"}


def utc_text(value: dt.datetime) -> str:
    """Aware datetime → ``YYYY-MM-DDTHH:MM:SSZ``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_utc(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text)


def _zone(tzid: str | None) -> ZoneInfo | None:
    """The zone to write a series in: its own, Europe/Paris by default, None for UTC."""
    if tzid in (None, "", "Europe/Paris"):
        return PARIS
    if tzid in ("UTC", "Etc/UTC", "GMT"):
        return None
    try:
        return ZoneInfo(str(tzid))
    except (ZoneInfoNotFoundError, ValueError):
        return PARIS


def fold(line: bytes) -> bytes:
    """Fold a content line (RFC 5545 §3.1) exactly as icalendar does, faster: pieces of at most
    74 octets, each continuation after CRLF + one space, never inside a UTF-8 sequence, and a
    backslash (or ``^``) escape kept with the character it escapes."""
    if len(line) < 75:
        return line
    parts: list[bytes] = []
    start = 0
    while len(line) - start >= 75 or (parts and len(line) - start > 74):
        end = start + 74
        while line[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before its sequence
            end -= 1
        if end - start > 1 and line[end - 1] in b"\\^":
            end -= 1
        parts.append(line[start:end])
        start = end
    parts.append(line[start:])
    return b"\r\n ".join(parts)


def _text_line(name: str, text: str) -> bytes:
    """A TEXT property: escaped as icalendar's ``vText`` does (RFC 5545 §3.3.11), folded."""
    if "\\" in text or ";" in text or "," in text or "\n" in text or "\r" in text:
        text = _escape_char(text)  # otherwise it has nothing to escape
    return fold(name.encode() + b":" + text.encode())


def _line(name: str, value: Any, params: dict[str, str] | None = None) -> bytes:
    """One content line; the value is encoded by its icalendar type (escaping, RFC 5545 §3.3).

    Lines with parameters go through icalendar's ``Contentline`` (parameter quoting and
    folding); the others are folded by :func:`fold`.
    """
    if not params:
        encoded = value.to_ical()  # bytes for most types, str for some (vGeo)
        if isinstance(encoded, str):
            encoded = encoded.encode()
        return fold(name.encode() + b":" + encoded)
    return Contentline.from_parts(name, Parameters(params), value, sorted=False).to_ical()


def _when(value: dt.datetime | dt.date, zone: ZoneInfo | None) -> dt.datetime | dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(zone) if zone is not None else value.astimezone(dt.UTC)
    return value


def _dt_line(name: str, value: dt.datetime | dt.date, zone: ZoneInfo | None) -> bytes:
    """DATE-TIME or DATE line (RFC 5545 §3.3.4-5): UTC ``…Z``, ``TZID=<zone>`` local, or DATE."""
    if isinstance(value, dt.datetime):
        if zone is None:
            return f"{name}:{value.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}".encode()
        return f"{name};TZID={zone.key}:{value.astimezone(zone):%Y%m%dT%H%M%S}".encode()
    return f"{name};VALUE=DATE:{value:%Y%m%d}".encode()


def _key_value(key: str) -> dt.datetime | dt.date:
    """An occurrence key (``YYYYMMDDTHHMMSSZ`` or ``YYYYMMDD``) → UTC datetime or date."""
    if "T" in key:
        return dt.datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return dt.datetime.strptime(key, "%Y%m%d").date()


def _list_values(raw: str | None) -> list[dt.datetime | dt.date]:
    values: list[dt.datetime | dt.date] = []
    for text in json.loads(raw or "[]"):
        values.append(_parse_utc(text) if "T" in text else dt.date.fromisoformat(text))  # type: ignore[arg-type]
    return values


@dataclass
class FeedEvent:
    """One event ready for the feeds: its serialised VEVENTs and what the feeds filter on."""

    id: str
    data: bytes
    zone: str | None
    themes: list[str] = field(default_factory=list)
    quartier: str | None = None
    organisation_id: str | None = None
    publics: list[str] = field(default_factory=list)


def _json_list(raw: object) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _cancelled_at(row: dict[str, Any]) -> dt.datetime | None:
    """When the event left the agenda: removal at the source, or its cancellation."""
    removed = _parse_utc(row.get("removed_at_source"))
    if removed is not None:
        return removed
    if row.get("status") == "cancelled":
        return _parse_utc(row.get("updated_at")) or _parse_utc(row.get("first_seen_at"))
    return None


def select_feed_rows(connection: sqlite3.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """Events that belong in the feeds at ``now`` (aware), as dicts of their published columns.

    An event belongs when one of its occurrences has not ended yet; an event cancelled or removed
    at its source belongs only during :data:`CANCELLED_KEEP_DAYS` days after that change.
    Extra keys: ``geo`` (latitude, longitude) when known. Leaves ``sqlite3.Row`` as the
    connection's row factory.
    """
    connection.row_factory = sqlite3.Row
    now_text = utc_text(now)
    cursor = connection.cursor()
    cursor.row_factory = None  # plain tuples, zipped with the column names: faster than Row
    cursor.execute(
        "SELECT e.* FROM events e WHERE EXISTS (SELECT 1 FROM occurrences o "
        "WHERE o.event_id = e.id AND o.end_utc >= ?) ORDER BY e.id",
        (now_text,),
    )
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    event_columns = set(names)
    places: dict[str, tuple[float, float]] = {}
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    if "place_id" in event_columns and "places" in tables:
        place_columns = {r[1] for r in connection.execute("PRAGMA table_info(places)")}
        key = "id" if "id" in place_columns else None
        if key and {"latitude", "longitude"} <= place_columns:
            for pid, lat, lon in connection.execute(
                    "SELECT id, latitude, longitude FROM places"):
                if lat is not None and lon is not None:
                    places[str(pid)] = (float(lat), float(lon))
    limit = now - dt.timedelta(days=CANCELLED_KEEP_DAYS)
    has_coordinates = {"latitude", "longitude"} <= event_columns
    selected = []
    for values in rows:
        row = dict(zip(names, values, strict=True))
        if row.get("removed_at_source") or row.get("status") == "cancelled":
            gone = _cancelled_at(row)
            if gone is not None and gone < limit:
                continue
        if has_coordinates and row["latitude"] is not None and row["longitude"] is not None:
            row["geo"] = (float(row["latitude"]), float(row["longitude"]))
        elif places and row.get("place_id") in places:
            row["geo"] = places[row["place_id"]]
        selected.append(row)
    return selected


def _overrides(connection: sqlite3.Connection, event_ids: list[str]) -> dict[str, list[dict]]:
    """Occurrences that differ from their series, by event id."""
    found: dict[str, list[dict]] = {}
    if not event_ids:
        return found
    connection.row_factory = sqlite3.Row
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS _series(id TEXT PRIMARY KEY)")
    connection.execute("DELETE FROM _series")
    connection.executemany("INSERT INTO _series VALUES (?)", ((i,) for i in event_ids))
    query = (
        "SELECT o.* , e.status AS event_status FROM occurrences o "
        "JOIN _series s ON s.id = o.event_id JOIN events e ON e.id = o.event_id "
        "WHERE o.title IS NOT NULL OR o.location IS NOT NULL OR o.status != e.status "
        "OR o.recurrence_id != CASE WHEN o.all_day THEN replace(o.start_date, '-', '') "
        "ELSE replace(replace(o.start_utc, '-', ''), ':', '') END "
        "ORDER BY o.event_id, o.start_utc"
    )
    for row in connection.execute(query):
        found.setdefault(row["event_id"], []).append(dict(row))
    connection.execute("DELETE FROM _series")
    return found


def _stamp(text: str) -> str:
    """Published UTC text (``YYYY-MM-DDTHH:MM:SSZ``) → RFC 5545 UTC DATE-TIME
    ``YYYYMMDDTHHMMSSZ`` (§3.3.5, form #2); other ISO 8601 forms are parsed."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z":
        return text[:19].replace("-", "").replace(":", "") + "Z"
    value = _parse_utc(text)
    assert value is not None
    return f"{value.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


class _VeventWriter:
    """Serialises VEVENTs (see :func:`vevent_bytes`), remembering the values events share
    (times, places, organisers, rules, category lists) so that each is encoded once per batch."""

    def __init__(self, theme_labels: dict[str, str]) -> None:
        self.theme_labels = theme_labels
        self._lines: dict[tuple[str, str], bytes] = {}
        self._categories: dict[tuple[object, object], bytes | None] = {}
        self._local: dict[tuple[str, str, bool], bytes] = {}
        self._rules: dict[str, bytes] = {}
        self._geo: dict[tuple[float, float], bytes] = {}
        self._organizers: dict[str, bytes] = {}

    def _shared_line(self, name: str, text: str) -> bytes:
        """A TEXT line whose value many events share (LOCATION), encoded once."""
        key = (name, text)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _text_line(name, text)
        return line

    def _start_line(self, name: str, text: str, zone: ZoneInfo | None,
                    series: bool = False) -> bytes:
        """``name`` at the UTC instant ``text`` (published ISO text), local to ``zone``.

        A local time that occurs twice (the hour repeated when clocks go back) means its
        *first* occurrence (RFC 5545 §3.3.5), but parsers differ (vobject reads the second), so
        a single event in that hour is written in UTC; a series keeps its zone, which its
        expansion needs.
        """
        key = (text, zone.key if zone is not None else "", series)
        value = self._local.get(key)
        if value is None:
            if zone is None:
                value = b":" + _stamp(text).encode()
            else:
                instant = _parse_utc(text)
                assert instant is not None
                local_time = instant.astimezone(zone)
                twice = (local_time.replace(fold=1 - local_time.fold).utcoffset()
                         != local_time.utcoffset())
                if twice and not series:
                    value = b":" + _stamp(text).encode()
                else:
                    local = local_time.isoformat()[:19]
                    value = (f";TZID={zone.key}:"
                             + local.replace("-", "").replace(":", "")).encode()
            self._local[key] = value
        return name.encode() + value

    def _rule(self, rrule: str) -> bytes:
        line = self._rules.get(rrule)
        if line is None:
            line = self._rules[rrule] = _line("RRULE", vRecur.from_ical(rrule))
        return line

    def _categories_line(self, themes: object, categories: object) -> bytes | None:
        key = (themes, categories)
        if key in self._categories:
            return self._categories[key]
        found: list[str] = []
        for label in [self.theme_labels.get(t, t) for t in _json_list(themes)] + _json_list(
                categories):
            if label and label not in found:
                found.append(label)
        line = (fold(b"CATEGORIES:" + b",".join(_escape_char(c).encode() for c in found))
                if found else None)
        self._categories[key] = line
        return line

    def _organizer_line(self, organizer: str) -> bytes:
        line = self._organizers.get(organizer)
        if line is None:
            cn = param_value(organizer).encode()  # quoted when needed (RFC 6868 escapes)
            line = self._organizers[organizer] = fold(
                b"ORGANIZER;CN=" + cn + b":urn:tissu:organisateur")
        return line

    def _geo_line(self, geo: tuple[float, float]) -> bytes:
        key = (geo[0], geo[1])
        line = self._geo.get(key)
        if line is None:
            line = self._geo[key] = _line("GEO", vGeo(geo))
        return line

    def common_lines(self, row: dict[str, Any]) -> list[bytes]:
        """UID, DTSTAMP, LAST-MODIFIED and CREATED of an event (shared by its overrides)."""
        updated, first_seen = row.get("updated_at"), row.get("first_seen_at")
        changed = _stamp(updated) if updated else _stamp(first_seen) if first_seen else None
        removed = row.get("removed_at_source")
        if removed:
            removed = _stamp(removed)
            if changed is None or removed > changed:  # same fixed-width UTC form: text order
                changed = removed
        lines = [_text_line("UID", f"{row['id']}@tissu")]
        if changed is not None:
            lines.append(b"DTSTAMP:" + changed.encode())
            lines.append(b"LAST-MODIFIED:" + changed.encode())
        if first_seen:
            lines.append(b"CREATED:" + _stamp(first_seen).encode())
        return lines

    def descriptive_lines(self, row: dict[str, Any], title: str, location: str | None
                          ) -> list[bytes]:
        """SUMMARY, DESCRIPTION, LOCATION, GEO, URL, CATEGORIES and ORGANIZER."""
        lines = [_text_line("SUMMARY", title)]
        description = row.get("description")
        if description:
            lines.append(_text_line("DESCRIPTION", description))
        if location:
            lines.append(self._shared_line("LOCATION", location))
        geo = row.get("geo")
        if geo:
            lines.append(self._geo_line(geo))
        url = row.get("url")
        if url:  # a URI value: not TEXT-escaped (RFC 5545 §3.3.13)
            if "\r" in url or "\n" in url:
                vUri(url)  # raises icalendar's ValueError: no CR or LF in a URI
            lines.append(fold(b"URL;VALUE=URI:" + url.encode()))
        categories = self._categories_line(row.get("themes"), row.get("categories"))
        if categories is not None:
            lines.append(categories)
        organizer = row.get("organizer")
        if organizer:
            lines.append(self._organizer_line(organizer))
        return lines

    def vevent(self, row: dict[str, Any], overrides: list[dict[str, Any]]
               ) -> tuple[bytes, str | None]:
        """See :func:`vevent_bytes`."""
        rdate = row.get("rdate")
        has_rdate = rdate not in (None, "", "[]")
        is_series = bool(row.get("rrule")) or has_rdate
        # a series expands in the zone its source meant (DST rules differ); single events in
        # Paris
        all_day = row["all_day"]
        zone = None if all_day else _zone(row.get("tzid")) if is_series else PARIS
        cancelled = _cancelled_at(row) is not None
        status = "CANCELLED" if cancelled else _STATUS.get(row.get("status") or "", "CONFIRMED")
        sequence = str(int(row.get("sequence") or 0) + int(row.get("revision") or 0)).encode()
        common = self.common_lines(row)
        out = [b"BEGIN:VEVENT", *common]
        start_text, end_text = row.get("dtstart_utc"), row.get("dtend_utc")
        if not all_day and start_text:
            out.append(self._start_line("DTSTART", start_text, zone, is_series))
            if end_text and _parse_utc(end_text) > _parse_utc(start_text):  # type: ignore[operator]
                out.append(self._start_line("DTEND", end_text, zone, is_series))
        else:
            start, end = _row_bounds(all_day, row.get("start_date"), row.get("end_date"),
                                     start_text, end_text)
            out.append(_dt_line("DTSTART", start, zone))
            if end is not None and end > start:  # type: ignore[operator]
                out.append(_dt_line("DTEND", end, zone))
        if row.get("rrule"):
            out.append(self._rule(row["rrule"]))
        for name, raw in (("RDATE", rdate if has_rdate else None), ("EXDATE", row.get("exdate"))):
            if raw in (None, "", "[]"):
                continue
            values = _list_values(raw)
            if values:
                prop = vDDDLists([_when(v, zone) for v in values])
                out.append(_line(name, prop, dict(prop.params)))
        descriptive = self.descriptive_lines(row, row["title"], row.get("location"))
        out.extend(descriptive)
        out.append(b"STATUS:" + status.encode())
        out.append(b"SEQUENCE:" + sequence)
        out.append(b"END:VEVENT")
        for occ in overrides if is_series else []:
            recurrence = _key_value(occ["recurrence_id"])
            o_start, o_end = _row_bounds(occ["all_day"], occ.get("start_date"),
                                         occ.get("end_date"), occ.get("start_utc"),
                                         occ.get("end_utc"))
            o_status = "CANCELLED" if cancelled or occ["status"] == "cancelled" else (
                _STATUS.get(occ["status"], "CONFIRMED"))
            out.extend([b"BEGIN:VEVENT", *common, _dt_line("RECURRENCE-ID", recurrence, zone),
                        _dt_line("DTSTART", o_start, zone)])
            if o_end is not None and o_end > o_start:  # type: ignore[operator]
                out.append(_dt_line("DTEND", o_end, zone))
            if occ.get("title") or occ.get("location"):
                out.extend(self.descriptive_lines(row, occ.get("title") or row["title"],
                                                  occ.get("location") or row.get("location")))
            else:
                out.extend(descriptive)
            out.extend([b"STATUS:" + o_status.encode(), b"SEQUENCE:" + sequence,
                        b"END:VEVENT"])
        out.append(b"")
        return b"\r\n".join(out), zone.key if zone is not None else None



def _row_bounds(all_day: object, start_date: str | None, end_date: str | None,
                start_utc: str | None, end_utc: str | None
                ) -> tuple[dt.datetime | dt.date, dt.datetime | dt.date | None]:
    """(start, end) of a published row: dates for all-day rows, aware UTC datetimes otherwise."""
    if all_day:
        assert start_date is not None
        return (dt.date.fromisoformat(start_date),
                dt.date.fromisoformat(end_date) if end_date else None)
    start = _parse_utc(start_utc)
    assert start is not None
    return start, _parse_utc(end_utc)


def vevent_bytes(row: dict[str, Any], overrides: list[dict[str, Any]],
                 theme_labels: dict[str, str]) -> tuple[bytes, str | None]:
    """Serialise one event and its overrides → (bytes of its VEVENTs, TZID used or None).

    ``row`` is a published ``events`` row as a dict (UTC times as ISO 8601 text, JSON lists as
    text) with an optional ``geo`` (latitude, longitude); ``overrides`` are its
    :func:`_overrides` occurrences; ``theme_labels`` maps theme codes to CATEGORIES labels. The
    bytes are content lines of RFC 5545 (CRLF, folded at 75 octets), ready to go between
    BEGIN:VCALENDAR and END:VCALENDAR. Raises ValueError for an RRULE or URL icalendar refuses.
    """
    return _VeventWriter(theme_labels).vevent(row, overrides)


def prepare_feed_events(connection: sqlite3.Connection, now: dt.datetime,
                        keep: Callable[[dict[str, Any]], bool] | None = None) -> list[FeedEvent]:
    """Serialise every event that belongs in the feeds at ``now`` (and passes ``keep``), once.

    Duplicates of another event (``is_canonical`` = 0) are left out.
    """
    rows = [r for r in select_feed_rows(connection, now)
            if r.get("is_canonical") in (None, 1) and (keep is None or keep(r))]
    theme_labels: dict[str, str] = {}
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    if "themes" in tables:
        theme_labels = {c: fr for c, fr in connection.execute("SELECT code, fr FROM themes")}
    series = [r["id"] for r in rows if r.get("rrule") or r.get("rdate") not in (None, "", "[]")]
    overrides = _overrides(connection, series)
    writer = _VeventWriter(theme_labels)
    lists: dict[object, list[str]] = {}

    def listed(raw: object) -> list[str]:
        found = lists.get(raw)
        if found is None:
            found = lists[raw] = _json_list(raw)
        return found

    events = []
    for row in rows:
        data, zone = writer.vevent(row, overrides.get(row["id"], []))
        events.append(FeedEvent(
            id=row["id"], data=data, zone=zone, themes=listed(row.get("themes")),
            quartier=row.get("quartier"), organisation_id=row.get("organisation_id"),
            publics=listed(row.get("publics")),
        ))
    return events


def calendar_bytes(events: Iterable[FeedEvent], name: str = CALENDAR_NAME,
                   description: str | None = None) -> bytes:
    """A VCALENDAR holding ``events``, with a VTIMEZONE for each zone they use."""
    events = list(events)
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("NAME", name)  # RFC 7986 §5.1
    calendar.add("X-WR-CALNAME", name)
    if description:
        calendar.add("DESCRIPTION", description)
        calendar.add("X-WR-CALDESC", description)
    calendar.add("X-WR-TIMEZONE", "Europe/Paris")
    calendar.add("REFRESH-INTERVAL", dt.timedelta(hours=6), parameters={"VALUE": "DURATION"})
    calendar.add("X-PUBLISHED-TTL", vDuration(dt.timedelta(hours=6)))
    head = calendar.to_ical()
    end = b"END:VCALENDAR\r\n"
    assert head.endswith(end)
    zones = b"".join(_timezone(z) for z in sorted({e.zone for e in events if e.zone}))
    return head[: -len(end)] + zones + b"".join(e.data for e in events) + end


_TIMEZONES: dict[str, bytes] = {}


def vtimezone(name: str) -> icalendar.Timezone:
    """The VTIMEZONE of the IANA zone ``name`` for 1970–2038 (RFC 5545 §3.6.5).

    Built by icalendar's ``Timezone.from_tzid``, whose onsets are the first local time *after*
    each change; the RFC wants the onset in the local time *before* it (``TZOFFSETFROM``:
    Paris changes at 02:00 in spring, which icalendar writes 03:00, so a reader trusting the
    VTIMEZONE put 01:00–02:00 UTC of that day an hour wrong). Onsets of observances that move
    the clocks forward are moved back by the change; the others are already right. Raises
    ``ValueError`` for an unknown zone.
    """
    zone = icalendar.Timezone.from_tzid(name)
    for observance in zone.subcomponents:
        change = observance.decoded("TZOFFSETTO") - observance.decoded("TZOFFSETFROM")
        if change <= dt.timedelta(0):
            continue
        onset = observance.decoded("DTSTART")
        del observance["DTSTART"]
        observance.add("DTSTART", onset - change)
        rdate = observance.get("RDATE")
        if rdate is None:
            continue
        groups: list[vDDDLists] = rdate if isinstance(rdate, list) else [rdate]
        values = [value.dt - change for group in groups for value in group.dts]
        del observance["RDATE"]
        observance.add("RDATE", values)
    return zone


def _timezone(name: str) -> bytes:
    """The serialised :func:`vtimezone` of an IANA zone, computed once."""
    if name not in _TIMEZONES:
        _TIMEZONES[name] = vtimezone(name).to_ical()
    return _TIMEZONES[name]
