"""Time zones: TZID → IANA zone, floating times, UTC and Europe/Paris views (RFC 5545 §3.2.19)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC
_IANA = available_timezones()


def resolve_tzid(tzid: str | None) -> str | None:
    """Map a TZID parameter to an IANA zone name.

    Accepts IANA names, Windows names via the CLDR table shipped with icalendar
    ("Romance Standard Time" → "Europe/Paris"), and names wrapped in slashes or quotes
    (e.g. ``/Europe/Paris``). Returns None when unknown.
    """
    if not tzid:
        return None
    name = str(tzid).strip().strip('"').strip("/")
    if name in _IANA:
        return name
    if name in WINDOWS_TO_OLSON:
        return WINDOWS_TO_OLSON[name]
    for candidate in _IANA:  # e.g. "/freeassociation.sourceforge.net/Europe/Paris"
        if name.endswith("/" + candidate) and "/" in candidate:
            return candidate
    return None


def zone_name(value: dt.datetime, tzid_param: str | None) -> str | None:
    """The IANA name for an aware datetime's zone, preferring the TZID parameter."""
    resolved = resolve_tzid(tzid_param)
    if resolved:
        return resolved
    tzinfo = value.tzinfo
    key = getattr(tzinfo, "key", None)
    if key:
        return resolve_tzid(key) or key
    if tzinfo is not None and value.utcoffset() == dt.timedelta(0) and str(tzinfo) in {
        "UTC",
        "UTC+00:00",
    }:
        return "UTC"
    return None


def fixed_offset_zone(value: dt.datetime) -> str | None:
    """The IANA name of a zone with one constant offset (``UTC`` or ``Etc/GMT-11``), else None.

    Used for custom VTIMEZONEs (RFC 5545 §3.6.5) whose TZID is no known name, e.g. ``UTC+11``
    defined with TZOFFSETFROM = TZOFFSETTO = +1100: the instant is right, and this is the only
    honest IANA label for it. ``Etc/GMT-11`` means UTC+11 (POSIX sign convention). Offsets that
    change during the year (DST) or are not whole hours give None.
    """
    tzinfo = value.tzinfo
    if tzinfo is None:
        return None
    offsets = set()
    for year in (value.year - 1, value.year, value.year + 1):
        for month in (1, 4, 7, 10):
            try:
                offsets.add(dt.datetime(year, month, 15, 12, tzinfo=tzinfo).utcoffset())
            except (OverflowError, ValueError):
                return None
    if len(offsets) != 1:
        return None
    offset = offsets.pop()
    if offset is None:
        return None
    seconds = int(offset.total_seconds())
    if seconds == 0:
        return "UTC"
    if seconds % 3600 or abs(seconds) > 14 * 3600:
        return None
    hours = seconds // 3600
    return f"Etc/GMT{-hours:+d}"


def make_aware(value: dt.datetime, tzid_param: str | None) -> tuple[dt.datetime, str | None, bool]:
    """Return (aware datetime, IANA zone name or None, floating flag).

    A naive value (floating time, or a TZID nobody could resolve) is read as Europe/Paris and
    flagged floating. An aware value keeps its instant; its zone name is the TZID mapped to IANA
    (Windows names included), or ``Etc/GMT±N`` for a custom fixed-offset VTIMEZONE, or None when
    the file defines a zone no IANA name describes (never a made-up Europe/Paris).
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value, zone_name(value, tzid_param) or fixed_offset_zone(value), False
    resolved = resolve_tzid(tzid_param)
    if resolved:
        try:
            return value.replace(tzinfo=ZoneInfo(resolved)), resolved, False
        except ZoneInfoNotFoundError:
            pass
    return value.replace(tzinfo=PARIS), "Europe/Paris", True


def local_iso(value: dt.datetime) -> str:
    """ISO 8601 text of an aware datetime in Europe/Paris, with offset."""
    return value.astimezone(PARIS).isoformat()


def paris_midnight_utc(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in Europe/Paris, as aware UTC (sort key of all-day occurrences)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=PARIS).astimezone(UTC)
