"""Exports built from the published database: ``agenda.ics``, ``events.jsonld``, ``events.csv``.

- ``agenda.ics``: upcoming occurrences, RFC 5545 with VTIMEZONE for Europe/Paris; DTSTAMP is the
  event's last change (not "now"), so an unchanged agenda gives byte-identical files.
- ``events.jsonld``: schema.org Event list (https://schema.org/Event) in an ``@graph``.
- ``events.csv``: UTF-8 with BOM, comma-separated, CRLF line ends (RFC 4180).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
from pathlib import Path

import icalendar
import pandas as pd

from normalize.times import PARIS

CALENDAR_NAME = "Tissu — agenda solidaire de Pantin"
_ICS_STATUS = {"cancelled": "CANCELLED", "tentative": "TENTATIVE", "confirmed": "CONFIRMED"}
_SCHEMA_STATUS = {"cancelled": "https://schema.org/EventCancelled",
                  "tentative": "https://schema.org/EventScheduled",
                  "confirmed": "https://schema.org/EventScheduled"}


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.chmod(temp, 0o644)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temp, path)


def _utc(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def upcoming_rows(connection: sqlite3.Connection, now: dt.datetime) -> list[sqlite3.Row]:
    """Occurrences not yet ended at ``now`` (aware), of events still at their source."""
    connection.row_factory = sqlite3.Row
    return connection.execute(
        """
        SELECT o.id AS occurrence_id, o.all_day, o.start_utc, o.end_utc, o.start_date,
               o.end_date, o.status AS occurrence_status, COALESCE(o.title, e.title) AS title,
               COALESCE(o.location, e.location) AS location, e.*
        FROM occurrences o JOIN events e ON e.id = o.event_id
        WHERE o.end_utc >= ? AND e.removed_at_source IS NULL
        ORDER BY o.start_utc, o.id
        """,
        (now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),),
    ).fetchall()


def build_ics(rows: list[sqlite3.Row], name: str = CALENDAR_NAME) -> bytes:
    """An RFC 5545 calendar with one VEVENT per occurrence row."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//Tissu//Agenda solidaire//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("X-WR-CALNAME", name)
    calendar.add("X-WR-TIMEZONE", "Europe/Paris")
    for row in rows:
        vevent = icalendar.Event()
        vevent.add("UID", f"{row['occurrence_id']}@tissu")
        vevent.add("DTSTAMP", _utc(row["updated_at"]) or _utc(row["first_seen_at"]))
        if row["all_day"]:
            vevent.add("DTSTART", dt.date.fromisoformat(row["start_date"]))
            vevent.add("DTEND", dt.date.fromisoformat(row["end_date"]))
        else:
            start = _utc(row["start_utc"])
            end = _utc(row["end_utc"])
            assert start is not None
            vevent.add("DTSTART", start.astimezone(PARIS))
            if end is not None and end > start:
                vevent.add("DTEND", end.astimezone(PARIS))
        vevent.add("SUMMARY", row["title"])
        if row["description"]:
            vevent.add("DESCRIPTION", row["description"])
        if row["location"]:
            vevent.add("LOCATION", row["location"])
        if row["url"]:
            vevent.add("URL", row["url"])
        status = "cancelled" if "cancelled" in (row["status"], row["occurrence_status"]) else (
            row["occurrence_status"] or "confirmed")
        vevent.add("STATUS", _ICS_STATUS.get(status, "CONFIRMED"))
        vevent.add("SEQUENCE", int(row["sequence"] or 0))
        categories = json.loads(row["categories"] or "[]")
        if categories:
            vevent.add("CATEGORIES", categories)
        if row["organizer"]:
            vevent.add("ORGANIZER", "urn:tissu:organizer", parameters={"CN": row["organizer"]})
        calendar.add_component(vevent)
    calendar.add_missing_timezones()
    return calendar.to_ical()


def _schema_event(row: sqlite3.Row) -> dict[str, object]:
    item: dict[str, object] = {
        "@type": "Event",
        "@id": f"urn:tissu:event:{row['id']}",
        "identifier": row["id"],
        "name": row["title"],
        "startDate": row["dtstart_local"],
        "eventStatus": _SCHEMA_STATUS.get(row["status"], "https://schema.org/EventScheduled"),
    }
    if row["all_day"] and row["end_date"]:
        last_day = dt.date.fromisoformat(row["end_date"]) - dt.timedelta(days=1)
        item["endDate"] = last_day.isoformat()
    elif row["dtend_utc"]:
        end = _utc(row["dtend_utc"])
        assert end is not None
        item["endDate"] = end.astimezone(PARIS).isoformat()
    if row["description"]:
        item["description"] = row["description"]
    if row["location"]:
        item["location"] = {"@type": "Place", "name": row["location"]}
    if row["url"]:
        item["url"] = row["url"]
    if row["organizer"]:
        item["organizer"] = {"@type": "Organization", "name": row["organizer"]}
    keywords = json.loads(row["categories"] or "[]")
    if keywords:
        item["keywords"] = ", ".join(keywords)
    if row["rrule"]:
        item["eventSchedule"] = {"@type": "Schedule", "repeatFrequency": row["rrule"]}
    return item


def build_exports(db_path: Path, out_dir: Path, now: dt.datetime) -> dict[str, Path]:
    """Write the three exports from ``db_path`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        rows = upcoming_rows(connection, now)
        paths = {"ics": out_dir / "agenda.ics", "jsonld": out_dir / "events.jsonld",
                 "csv": out_dir / "events.csv"}
        _write_atomic(paths["ics"], build_ics(rows))
        events = connection.execute(
            "SELECT * FROM events WHERE removed_at_source IS NULL ORDER BY id"
        ).fetchall()
        document = {"@context": "https://schema.org", "@graph": [_schema_event(r) for r in events]}
        _write_atomic(paths["jsonld"],
                      json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"))
        frame = pd.read_sql_query("SELECT * FROM events ORDER BY id", connection)
        csv_text = frame.to_csv(index=False, lineterminator="\r\n")
        _write_atomic(paths["csv"], csv_text.encode("utf-8-sig"))
        return paths
    finally:
        connection.close()
