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


def make_aware(value: dt.datetime, tzid_param: str | None) -> tuple[dt.datetime, str, bool]:
    """Return (aware datetime, IANA zone name, floating flag).

    A naive value (floating time, or a TZID nobody could resolve) is read as Europe/Paris and
    flagged floating.
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value, zone_name(value, tzid_param) or "Europe/Paris", False
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
