"""Exports built from the published database, written atomically under ``exports/``.

- ``agenda.ics`` and ``ics/<kind>/<code>.ics`` (kind: theme, quartier, organisation, public):
  iCalendar feeds of the upcoming agenda (:mod:`publish.ics`); ``feeds.json`` lists them.
- ``events.jsonld``: schema.org Event list (https://schema.org/Event) in an ``@graph``; a series
  carries an ``eventSchedule`` (https://schema.org/Schedule).
- ``<table>.csv`` for each published table: UTF-8 with BOM, comma-separated, CRLF (RFC 4180);
  ``datapackage.json`` describes them (Frictionless Data Package v1, a Table Schema each).
- ``nouveautes.atom`` (events newly published) and ``changes.atom`` (what changed at each
  publish), Atom RFC 4287 written by feedgen.
- ``datainclusion/structures.json`` and ``services.json``: the directory in data.inclusion v1
  (:mod:`publish.datainclusion`).

Everything derives from the database contents and the publish clock only through "what is
upcoming", so an unchanged agenda gives byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
import json
import multiprocessing
import os
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any

from feedgen.feed import FeedGenerator
from icalendar.prop import vRecur

from normalize.pipeline import slugify
from normalize.times import PARIS
from publish.columns import PUBLIC_TABLES
from publish.ics import CALENDAR_NAME, FeedEvent, calendar_bytes, prepare_feed_events

LICENCE_NAME = "etalab-2.0"
LICENCE_TITLE = "Licence Ouverte 2.0 (Etalab)"
LICENCE_URL = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
_SCHEMA_STATUS = {"cancelled": "https://schema.org/EventCancelled",
                  "tentative": "https://schema.org/EventScheduled",
                  "confirmed": "https://schema.org/EventScheduled"}
_DAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday",
         "SA": "Saturday", "SU": "Sunday"}
_FREQ = {"DAILY": "D", "WEEKLY": "W", "MONTHLY": "M", "YEARLY": "Y"}
FEED_KINDS = {"theme": "thème", "quartier": "quartier", "organisation": "organisation",
              "public": "public"}
JSON_LIST_COLUMNS = {"themes", "categories", "rdate", "exdate", "datainclusion", "publics",
                     "accessibility", "aliases", "networks", "thematiques", "types", "frais",
                     "modes_accueil", "modes_mobilisation", "zone", "items_recent"}
CSV_SKIP_TABLES = {"events_fts"}


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never partial).

    A file that already holds exactly ``data`` is left alone, so its modification time (the
    HTTP Last-Modified of the export) only moves when its content does.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.chmod(temp, 0o644)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temp, path)


def _utc(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [r[0] for r in connection.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'events_fts%' ORDER BY name")]


def _columns(connection: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(r[1], r[2]) for r in connection.execute(f'PRAGMA table_info("{table}")')]


def _canonical_clause(connection: sqlite3.Connection, alias: str = "") -> str:
    names = {c for c, _ in _columns(connection, "events")}
    prefix = f"{alias}." if alias else ""
    return f" AND ({prefix}is_canonical IS NULL OR {prefix}is_canonical = 1)" \
        if "is_canonical" in names else ""


# --- iCalendar feeds -----------------------------------------------------------------------


def _labels(connection: sqlite3.Connection) -> dict[str, dict[str, str]]:
    tables = set(_tables(connection))
    labels: dict[str, dict[str, str]] = {kind: {} for kind in FEED_KINDS}
    if "themes" in tables:
        labels["theme"] = {c: fr for c, fr in connection.execute("SELECT code, fr FROM themes")}
    if "organisations" in tables:
        labels["organisation"] = {i: n for i, n in connection.execute(
            "SELECT id, name FROM organisations")}
    publics = Path(__file__).resolve().parent.parent / "data" / "vocab" / "publics.yaml"
    if publics.exists():
        import yaml

        data = yaml.safe_load(publics.read_text(encoding="utf-8")) or {}
        for item in data.get("publics", []) if isinstance(data, dict) else []:
            if isinstance(item, dict) and item.get("code"):
                labels["public"][str(item["code"])] = str(item.get("fr") or item["code"])
    return labels


def feed_groups(events: list[FeedEvent]) -> dict[tuple[str, str], list[FeedEvent]]:
    """Events by (kind, code): every theme, quartier, organisation and public that has one."""
    groups: dict[tuple[str, str], list[FeedEvent]] = defaultdict(list)
    for event in events:
        for theme in event.themes:
            groups[("theme", theme)].append(event)
        if event.quartier:
            groups[("quartier", event.quartier)].append(event)
        if event.organisation_id:
            groups[("organisation", event.organisation_id)].append(event)
        for public in event.publics:
            groups[("public", public)].append(event)
    return groups


def feed_path(kind: str, code: str) -> str:
    """Relative path of a filtered feed under ``exports/``: ``ics/<kind>/<slug>.ics``."""
    return f"ics/{kind}/{slugify(code)}.ics"


def write_feeds(connection: sqlite3.Connection, out_dir: Path, now: dt.datetime) -> list[dict]:
    """Write ``agenda.ics``, every filtered feed and ``feeds.json``; return the feed index."""
    events = prepare_feed_events(connection, now)
    labels = _labels(connection)
    index = [{"kind": "all", "code": None, "label": "Tout l'agenda", "path": "agenda.ics",
              "events": len(events)}]
    write_atomic(out_dir / "agenda.ics", calendar_bytes(
        events, CALENDAR_NAME, "Tous les événements solidaires à venir à Pantin"))
    wanted: set[Path] = set()
    for (kind, code), members in sorted(feed_groups(events).items()):
        label = labels[kind].get(code, code)
        name = f"{CALENDAR_NAME} — {label}"
        path = feed_path(kind, code)
        wanted.add(out_dir / path)
        write_atomic(out_dir / path, calendar_bytes(
            members, name, f"Événements à venir, {FEED_KINDS[kind]} : {label}"))
        index.append({"kind": kind, "code": code, "label": label, "path": path,
                      "events": len(members)})
    ics_dir = out_dir / "ics"
    if ics_dir.exists():  # a theme with no upcoming event any more: its feed goes
        for stale in ics_dir.rglob("*.ics"):
            if stale not in wanted:
                stale.unlink()
    write_atomic(out_dir / "feeds.json",
                 json.dumps(index, ensure_ascii=False, indent=1).encode("utf-8"))
    return index


# --- JSON-LD -----------------------------------------------------------------------------


def schedule(row: dict[str, Any]) -> dict[str, Any] | None:
    """schema.org ``Schedule`` (https://schema.org/Schedule) for a series' RRULE (FREQ,
    INTERVAL, BYDAY, BYMONTHDAY, COUNT, UNTIL), or None when the rule cannot be said in
    schema.org terms.

    ``startDate``, ``startTime``, ``endTime``, ``exceptDate`` and the UNTIL ``endDate`` are
    wall-clock values in ``scheduleTimezone``, the series' own zone (``row["tzid"]``, an IANA
    name; Europe/Paris when absent or unknown), as schema.org defines them.
    """
    tzid, zone = _schedule_zone(row.get("tzid"))
    rule_items = _rule_schedule(row["rrule"], tzid)
    if rule_items is None:
        return None
    item: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in rule_items}
    if row["all_day"]:
        item["startDate"] = row["start_date"]
    else:
        start = _utc(row["dtstart_utc"])
        end = _utc(row.get("dtend_utc"))
        assert start is not None
        item["startDate"] = start.astimezone(zone).date().isoformat()
        item["startTime"] = start.astimezone(zone).strftime("%H:%M:%S")
        if end is not None:
            item["endTime"] = end.astimezone(zone).strftime("%H:%M:%S")
    exdates = _json_texts(row.get("exdate"))
    if exdates:
        item["exceptDate"] = [
            _utc(v).astimezone(zone).isoformat() if "T" in v else v  # type: ignore[union-attr]
            for v in exdates]
    return item


@lru_cache(maxsize=256)
def _schedule_zone(tzid: str | None) -> tuple[str, dt.tzinfo]:
    """(IANA name, zone) a schedule is written in: ``tzid`` when zoneinfo knows it, else Paris."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if tzid and tzid != "Europe/Paris":
        try:
            return tzid, ZoneInfo(tzid)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return "Europe/Paris", PARIS


@lru_cache(maxsize=4096)
def _rule_schedule(rrule: str, tzid: str) -> tuple[tuple[str, Any], ...] | None:
    """The rule part of :func:`schedule` (items in order; lists as tuples), computed once per
    distinct RRULE and zone (``tzid``, a name zoneinfo knows); None when schema.org cannot
    say it."""
    try:
        rule = vRecur.from_ical(rrule)
    except (ValueError, TypeError):
        return None
    freq = str(rule.get("FREQ", [""])[0])
    if freq not in _FREQ:
        return None
    interval = int(rule.get("INTERVAL", [1])[0])
    items: list[tuple[str, Any]] = [("@type", "Schedule"),
                                    ("repeatFrequency", f"P{interval}{_FREQ[freq]}"),
                                    ("scheduleTimezone", tzid)]
    days = [str(d) for d in rule.get("BYDAY", [])]
    if days and all(d in _DAYS for d in days):
        items.append(("byDay", tuple(f"https://schema.org/{_DAYS[d]}" for d in days)))
    elif days:
        return None
    if rule.get("BYMONTHDAY"):
        items.append(("byMonthDay", tuple(int(d) for d in rule["BYMONTHDAY"])))
    if rule.get("COUNT"):
        items.append(("repeatCount", int(rule["COUNT"][0])))
    if rule.get("UNTIL"):
        until = rule["UNTIL"][0]
        items.append(("endDate", (until.astimezone(_schedule_zone(tzid)[1]).date()
                                  if isinstance(until, dt.datetime) else until).isoformat()))
    return tuple(items)


@lru_cache(maxsize=16384)
def _json_texts(raw: str | None) -> tuple[str, ...]:
    """A JSON list column (``themes``, ``categories``…) → its items; ``[]`` for NULL."""
    if not raw or raw == "[]":
        return ()
    return tuple(json.loads(raw))


def schema_event(row: dict[str, Any], theme_labels: dict[str, str]) -> dict[str, Any]:
    """One published event row → a schema.org ``Event`` (JSON-LD node)."""
    status = "cancelled" if row.get("removed_at_source") else row.get("status")
    item: dict[str, Any] = {
        "@type": "Event",
        "@id": f"urn:tissu:event:{row['id']}",
        "identifier": row["id"],
        "name": row["title"],
        "startDate": row["dtstart_local"],
        "eventStatus": _SCHEMA_STATUS.get(status or "", "https://schema.org/EventScheduled"),
    }
    if row["all_day"] and row.get("end_date"):
        last_day = dt.date.fromisoformat(row["end_date"]) - dt.timedelta(days=1)
        item["endDate"] = last_day.isoformat()
    elif row.get("dtend_utc"):
        end = _utc(row["dtend_utc"])
        assert end is not None
        item["endDate"] = end.astimezone(PARIS).isoformat()
    if row.get("description"):
        item["description"] = row["description"]
    if row.get("location") or row.get("latitude") is not None:
        place: dict[str, Any] = {"@type": "Place", "name": row.get("location") or ""}
        if row.get("address") or row.get("postal_code") or row.get("city"):
            place["address"] = {"@type": "PostalAddress", "addressCountry": "FR",
                                **{k: v for k, v in (("streetAddress", row.get("address")),
                                                     ("postalCode", row.get("postal_code")),
                                                     ("addressLocality", row.get("city")))
                                   if v}}
        if row.get("latitude") is not None and row.get("longitude") is not None:
            place["geo"] = {"@type": "GeoCoordinates", "latitude": row["latitude"],
                            "longitude": row["longitude"]}
        item["location"] = place
    if row.get("url"):
        item["url"] = row["url"]
    if row.get("organizer"):
        item["organizer"] = {"@type": "Organization", "name": row["organizer"]}
    if row.get("gratuit") == 1:
        item["isAccessibleForFree"] = True
    elif row.get("gratuit") == 0:
        item["isAccessibleForFree"] = False
    keywords = [theme_labels.get(t, t) for t in _json_texts(row.get("themes"))]
    keywords += [c for c in _json_texts(row.get("categories")) if c not in keywords]
    if keywords:
        item["keywords"] = ", ".join(keywords)
    if row.get("language"):
        item["inLanguage"] = row["language"]
    if row.get("updated_at"):
        item["dateModified"] = row["updated_at"]
    if row.get("rrule"):
        found = schedule(row)
        if found is not None:
            item["eventSchedule"] = found
    return item


def write_jsonld(connection: sqlite3.Connection, path: Path) -> int:
    """Write ``events.jsonld`` (events still at their source); returns the number of events."""
    connection.row_factory = sqlite3.Row
    labels = _labels(connection)["theme"]
    cursor = connection.cursor()
    cursor.row_factory = None  # tuples zipped with the column names: faster than Row
    cursor.execute(
        "SELECT * FROM events WHERE removed_at_source IS NULL" + _canonical_clause(connection)
        + " ORDER BY id")
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    document = {"@context": "https://schema.org",
                "@graph": [schema_event(dict(zip(names, r, strict=True)), labels)
                           for r in rows]}
    # compact: json's C encoder is only used without indentation
    write_atomic(path, json.dumps(document, ensure_ascii=False,
                                  separators=(",", ":")).encode("utf-8"))
    return len(rows)


# --- CSV and the data package -------------------------------------------------------------


def _field_type(table: str, name: str, sql_type: str) -> dict[str, Any]:
    if name in JSON_LIST_COLUMNS:
        return {"type": "array"}
    if sql_type == "INTEGER":
        return {"type": "integer"}
    if sql_type == "REAL":
        return {"type": "number"}
    if name.endswith(("_utc", "_at", "_since")) or name == "removed_at_source":
        return {"type": "datetime", "format": "%Y-%m-%dT%H:%M:%SZ"}
    if name in {"start_date", "end_date", "date_maj", "suspended_from"}:
        return {"type": "date"}
    return {"type": "string"}


def table_schema(connection: sqlite3.Connection, table: str) -> dict[str, Any]:
    """Frictionless Table Schema of a published table (https://specs.frictionlessdata.io/)."""
    spec = PUBLIC_TABLES.get(table, {})
    descriptions: dict[str, str] = spec.get("columns", {})  # type: ignore[assignment]
    fields = []
    primary_key = None
    for name, sql_type in _columns(connection, table):
        field: dict[str, Any] = {"name": name, **_field_type(table, name, sql_type)}
        if descriptions.get(name):
            field["description"] = descriptions[name]
        fields.append(field)
    pk = [r[1] for r in connection.execute(f'PRAGMA table_info("{table}")') if r[5]]
    if pk:
        primary_key = pk[0]
    schema: dict[str, Any] = {"fields": fields}
    if primary_key:
        schema["primaryKey"] = [primary_key]
    if table == "occurrences":
        schema["foreignKeys"] = [{"fields": ["event_id"],
                                  "reference": {"resource": "events", "fields": ["id"]}}]
    return schema


def write_csv_tables(connection: sqlite3.Connection, out_dir: Path) -> dict[str, Path]:
    """One CSV per published table (UTF-8 with BOM, RFC 4180); returns table → path."""
    paths: dict[str, Path] = {}
    for table in _tables(connection):
        if table in CSV_SKIP_TABLES:
            continue
        path = out_dir / f"{table}.csv"
        cursor = connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
        write_csv(path, [d[0] for d in cursor.description], cursor)
        paths[table] = path
    return paths


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[object]]) -> None:
    """Stream ``rows`` to ``path`` as CSV: UTF-8 with BOM, comma, CRLF, fields quoted only when
    needed (RFC 4180, Python's csv writer); NULL → empty field. Atomic; an unchanged file is
    left alone (its Last-Modified stays)."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.chmod(temp, 0o644)
    with os.fdopen(handle, "w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
    if path.exists() and filecmp.cmp(temp, path, shallow=False):
        os.unlink(temp)
        return
    os.replace(temp, path)


def write_datapackage(connection: sqlite3.Connection, out_dir: Path, csv_paths: dict[str, Path],
                      sources: list[dict[str, str]]) -> Path:
    """Write ``datapackage.json`` (Frictionless Data Package) describing the CSV files."""
    resources: list[dict[str, Any]] = []
    for table, path in csv_paths.items():
        spec = PUBLIC_TABLES.get(table, {})
        resources.append({
            "name": table.replace("_", "-"),
            "path": path.name,
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8-sig",
            "description": spec.get("description", ""),
            "dialect": {"delimiter": ",", "lineTerminator": "\r\n", "header": True},
            "licenses": [{"name": LICENCE_NAME, "path": LICENCE_URL, "title": LICENCE_TITLE}],
            "schema": table_schema(connection, table),
        })
    for resource in resources:
        for key in resource["schema"].get("foreignKeys", []):
            key["reference"]["resource"] = key["reference"]["resource"].replace("_", "-")
    package = {
        "profile": "tabular-data-package",
        "name": "tissu-agenda-solidaire-pantin",
        "title": "Tissu — agenda solidaire de Pantin",
        "description": ("Événements solidaires, séances, organisations et sources de Pantin, "
                        "réunis par Tissu. Chaque source garde sa licence (table sources)."),
        "licenses": [{"name": LICENCE_NAME, "path": LICENCE_URL, "title": LICENCE_TITLE}],
        "sources": sources,
        "resources": resources,
    }
    path = out_dir / "datapackage.json"
    write_atomic(path, json.dumps(package, ensure_ascii=False, indent=1).encode("utf-8"))
    return path


# --- Atom -------------------------------------------------------------------------------


def _atom(feed_id: str, title: str, subtitle: str, entries: list[dict[str, Any]]) -> bytes:
    generator = FeedGenerator()
    generator.id(feed_id)
    generator.title(title)
    generator.subtitle(subtitle)
    generator.language("fr")
    generator.author({"name": "Tissu"})
    generator.rights(LICENCE_TITLE)
    generator.link(href=LICENCE_URL, rel="license")
    generator.generator("Tissu")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    generator.updated(max((e["updated"] for e in entries), default=epoch))
    for item in entries:
        entry = generator.add_entry(order="append")
        entry.id(item["id"])
        entry.title(item["title"])
        entry.updated(item["updated"])
        if item.get("published"):
            entry.published(item["published"])
        entry.content(item["content"], type="text")
        if item.get("link"):
            entry.link(href=item["link"], rel="alternate")
        for term in item.get("categories", []):
            entry.category(term=term)
    return generator.atom_str(pretty=True)


_KIND_FR = {"new": "Nouveau", "updated": "Modifié", "cancelled": "Annulé", "removed": "Retiré"}


def write_atom_feeds(connection: sqlite3.Connection, out_dir: Path, limit: int = 200) -> None:
    """Write ``nouveautes.atom`` (latest new events) and ``changes.atom`` (latest changes)."""
    connection.row_factory = sqlite3.Row
    rows = connection.execute(
        "SELECT id, title, description, dtstart_local, location, url, themes, first_seen_at, "
        "updated_at FROM events WHERE removed_at_source IS NULL AND status != 'cancelled'"
        + _canonical_clause(connection) + " ORDER BY first_seen_at DESC, id LIMIT ?",
        (limit,)).fetchall()
    entries = []
    for row in rows:
        when = row["dtstart_local"] or ""
        text = f"{when} — {row['location'] or ''}\n\n{row['description'] or ''}".strip()
        entries.append({
            "id": f"urn:tissu:event:{row['id']}",
            "title": row["title"],
            "updated": _utc(row["updated_at"] or row["first_seen_at"]),
            "published": _utc(row["first_seen_at"]),
            "content": text or row["title"],
            "link": row["url"],
            "categories": json.loads(row["themes"] or "[]"),
        })
    write_atomic(out_dir / "nouveautes.atom", _atom(
        "urn:tissu:feed:nouveautes", "Tissu — nouveautés de l'agenda solidaire",
        "Événements publiés pour la première fois", entries))
    changes = []
    if "changes" in _tables(connection):
        for row in connection.execute(
                "SELECT id, run_id, changed_at, event_id, kind, title FROM changes "
                "ORDER BY id DESC LIMIT ?", (limit,)):
            changes.append({
                "id": f"urn:tissu:change:{row['id']}",
                "title": f"{_KIND_FR.get(row['kind'], row['kind'])} : {row['title']}",
                "updated": _utc(row["changed_at"]),
                "content": f"{_KIND_FR.get(row['kind'], row['kind'])} lors de la publication "
                           f"n° {row['run_id']} : {row['event_id']}",
                "categories": [row["kind"]],
            })
    write_atomic(out_dir / "changes.atom", _atom(
        "urn:tissu:feed:changes", "Tissu — changements de l'agenda solidaire",
        "Ce qui a changé à chaque publication (nouveau, modifié, annulé, retiré)", changes))


# --- all of them --------------------------------------------------------------------------


def _export_ics(db_path: Path, out_dir: Path, now: dt.datetime) -> dict[str, float]:
    connection = _open(db_path)
    try:
        clock, cpu = time.perf_counter(), time.process_time()
        write_feeds(connection, out_dir, now)
        return {"exports.ics": time.perf_counter() - clock,
                "exports.ics.cpu": time.process_time() - cpu}
    finally:
        connection.close()


def _export_documents(db_path: Path, out_dir: Path, now: dt.datetime) -> dict[str, float]:
    from publish.datainclusion import write_datainclusion

    connection = _open(db_path)
    try:
        clock, cpu = time.perf_counter(), time.process_time()
        write_jsonld(connection, out_dir / "events.jsonld")
        write_atom_feeds(connection, out_dir)
        connection.row_factory = sqlite3.Row
        write_datainclusion(connection, out_dir / "datainclusion", now)
        return {"exports.jsonld+atom+datainclusion": time.perf_counter() - clock,
                "exports.jsonld+atom+datainclusion.cpu": time.process_time() - cpu}
    finally:
        connection.close()


def _export_tables(db_path: Path, out_dir: Path, now: dt.datetime) -> dict[str, float]:
    connection = _open(db_path)
    connection.row_factory = None
    try:
        clock, cpu = time.perf_counter(), time.process_time()
        csv_paths = write_csv_tables(connection, out_dir)
        sources = [{"title": f"{name} ({licence})", "path": url}
                   for name, licence, url in connection.execute(
                       "SELECT name, licence, url FROM sources ORDER BY id")]
        write_datapackage(connection, out_dir, csv_paths, sources)
        return {"exports.csv+datapackage": time.perf_counter() - clock,
                "exports.csv+datapackage.cpu": time.process_time() - cpu}
    finally:
        connection.close()


def _open(db_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    return connection


PARALLEL_MIN_EVENTS = 5000  # below this the three export groups run one after the other


def build_exports(db_path: Path, out_dir: Path, now: dt.datetime,
                  timings: dict[str, float] | None = None,
                  errors: list[str] | None = None,
                  meanwhile: Callable[[], object] | None = None) -> dict[str, Path]:
    """Write every export from ``db_path`` into ``out_dir``; returns the main paths by kind.

    ``now`` (aware) decides which events are upcoming in the calendar feeds. The three groups
    (calendars; JSON-LD, Atom and data.inclusion; CSV and data package) write different files
    from the read-only database, so a big agenda runs them in parallel processes. ``timings``,
    when given, receives the seconds of each group (wall clock, and CPU as ``<group>.cpu``). A group that fails does not stop the
    others; its files keep their previous version and ``errors`` receives a French message.
    ``meanwhile``, when given, is called in this process while the groups run (or after them
    when they run here); what it raises is raised.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = (_export_ics, _export_documents, _export_tables)
    with closing(_open(db_path)) as connection:
        events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    found: dict[str, float] = {}
    failed: list[str] = []
    if events >= PARALLEL_MIN_EVENTS and (os.cpu_count() or 1) > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(groups), mp_context=context) as pool:
            futures = [(g, pool.submit(g, db_path, out_dir, now)) for g in groups]
            if meanwhile is not None:  # after the fork: no thread of ours is copied into it
                meanwhile()
                meanwhile = None
            for group, future in futures:
                try:
                    found.update(future.result())
                except Exception as exc:  # noqa: BLE001 - one export group costs only itself
                    failed.append(f"exports {group.__name__.removeprefix('_export_')} : {exc!r}")
    else:
        for group in groups:
            try:
                found.update(group(db_path, out_dir, now))
            except Exception as exc:  # noqa: BLE001 - one export group costs only itself
                failed.append(f"exports {group.__name__.removeprefix('_export_')} : {exc!r}")
    if meanwhile is not None:
        meanwhile()
    if errors is not None:
        errors.extend(failed)
    if timings is not None:
        timings.update(found)
    folder = out_dir / "datainclusion"
    return {"ics": out_dir / "agenda.ics", "feeds": out_dir / "feeds.json",
            "jsonld": out_dir / "events.jsonld", "csv": out_dir / "events.csv",
            "datapackage": out_dir / "datapackage.json", "atom": out_dir / "nouveautes.atom",
            "changes_atom": out_dir / "changes.atom",
            "datainclusion_structures": folder / "structures.json",
            "datainclusion_services": folder / "services.json"}

