"""Open-data routes: every export over HTTP with caching and CORS, the live feeds, the JSON API.

Routes (Datasette ``register_routes``):

- ``/exports/<path>`` and ``/snapshots/<path>``: the files written by ``tissu publish``
  (``TISSU_PUBLISH_DIR``), with a strong ``ETag`` (SHA-256 of the bytes), ``Last-Modified``
  (the file's modification time, which only moves when its content does) and ``304 Not
  Modified`` on ``If-None-Match`` / ``If-Modified-Since`` (RFC 9110 §13.1). A folder path lists
  its files as JSON.
- ``/exports/agenda.ics?theme=…&quartier=…&organisation=…&public=…&gratuit=1``: the same calendar
  built live for any combination of filters (the files cover one filter at a time).
- ``/api/events.json``: a flat JSON API over the published events, ordered by last change,
  with ``modified_since`` (ISO 8601), ``theme``, ``quartier``, ``limit`` (1–1000, default 100)
  and an opaque ``cursor`` for the next page.

Every answer allows cross-origin GET (``Access-Control-Allow-Origin: *``).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import mimetypes
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from datasette.utils.asgi import Response

from publish.ics import CALENDAR_NAME, calendar_bytes, prepare_feed_events
from tissu.settings import get_settings

DATABASE = "tissu-open"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Expose-Headers": "ETag, Last-Modified"}
CACHE_CONTROL = "public, max-age=300"
_TYPES = {".ics": "text/calendar; charset=utf-8", ".jsonld": "application/ld+json",
          ".json": "application/json", ".csv": "text/csv; charset=utf-8",
          ".atom": "application/atom+xml; charset=utf-8", ".db": "application/vnd.sqlite3"}
_ETAGS: dict[tuple[str, int, int], str] = {}
FILTERS = ("theme", "quartier", "organisation", "public", "gratuit")


def clock() -> dt.datetime:
    """Now, aware (UTC). Tests replace it."""
    return dt.datetime.now(dt.UTC)


def strong_etag(data: bytes) -> str:
    """A strong entity tag for ``data``: ``"<first 32 hex of SHA-256>"``."""
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _file_etag(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _ETAGS:
        _ETAGS[key] = strong_etag(path.read_bytes())
    return _ETAGS[key]


def not_modified(request: Any, etag: str, modified: dt.datetime | None) -> bool:
    """True when the request's validators match (RFC 9110 §13.2.2: If-None-Match wins)."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            parsed = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return modified.replace(microsecond=0) <= parsed
    return False


def cached_response(request: Any, body: bytes, content_type: str,
                    modified: dt.datetime | None, etag: str | None = None) -> Response:
    """A 200 with ETag, Last-Modified and CORS headers, or a bodiless 304 when validators match."""
    etag = etag or strong_etag(body)
    headers = dict(CORS)
    headers["ETag"] = etag
    headers["Cache-Control"] = CACHE_CONTROL
    if modified is not None:
        headers["Last-Modified"] = email.utils.format_datetime(
            modified.astimezone(dt.UTC).replace(microsecond=0), usegmt=True)
    if not_modified(request, etag, modified):
        return Response(b"", status=304, headers=headers)
    return Response(body, status=200, headers=headers, content_type=content_type)


def _content_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
        "application/octet-stream"


def _safe_path(root: Path, relative: str) -> Path | None:
    root = root.resolve()
    try:
        candidate = (root / relative).resolve()
    except (OSError, RuntimeError):
        return None
    return candidate if candidate == root or candidate.is_relative_to(root) else None


def _not_found(message: str) -> Response:
    return Response.text(message, status=404, headers=dict(CORS))


async def _serve_tree(request: Any, root: Path, relative: str) -> Response:
    path = _safe_path(root, relative)
    if path is None or not path.exists():
        return _not_found("Export introuvable.")
    if path.is_dir():
        listing = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                         if p.is_file() and not p.name.startswith("."))
        body = json.dumps(listing, ensure_ascii=False, indent=1).encode("utf-8")
        return cached_response(request, body, "application/json", None)
    modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return cached_response(request, path.read_bytes(), _content_type(path), modified,
                           _file_etag(path))


async def exports(request: Any, datasette: Any) -> Response:
    """``/exports/<path>``: a published export, or the live filtered calendar."""
    if request.method == "OPTIONS":
        return await options(request, datasette)
    relative = request.url_vars.get("path", "")
    if relative == "agenda.ics" and any(request.args.get(k) for k in FILTERS):
        return await live_calendar(request, datasette)
    return await _serve_tree(request, get_settings().publish_dir / "exports", relative)


async def snapshots(request: Any, datasette: Any) -> Response:
    """``/snapshots/<path>``: dated copies of past publications."""
    if request.method == "OPTIONS":
        return await options(request, datasette)
    return await _serve_tree(request, get_settings().publish_dir / "snapshots",
                             request.url_vars.get("path", ""))


def _keep(args: dict[str, str]) -> Any:
    def keep(row: dict[str, Any]) -> bool:
        if args.get("theme") and args["theme"] not in json.loads(row.get("themes") or "[]"):
            return False
        if args.get("quartier") and row.get("quartier") != args["quartier"]:
            return False
        if args.get("organisation") and row.get("organisation_id") != args["organisation"]:
            return False
        if args.get("public") and args["public"] not in json.loads(row.get("publics") or "[]"):
            return False
        return not (args.get("gratuit") == "1" and row.get("gratuit") != 1)

    return keep


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# French name of each filter, in the calendar's name and in error messages
_FILTER_NAMES = {"theme": "thème", "quartier": "quartier", "organisation": "organisation",
                 "public": "public", "gratuit": "gratuit"}
# Where the codes a filter may take are found in the published database: (table, SQL). A code is
# known when the vocabulary lists it or an event carries it (what the live feed filters on).
_IN_LIST = ("SELECT 1 FROM events, json_each(CASE WHEN json_valid(events.{column}) "
            "THEN events.{column} ELSE '[]' END) WHERE value = :v")
_KNOWN_SQL = {
    "theme": [("themes", "SELECT 1 FROM themes WHERE code = :v"),
              ("events", _IN_LIST.format(column="themes"))],
    "quartier": [("events", "SELECT 1 FROM events WHERE quartier = :v")],
    "organisation": [("organisations", "SELECT 1 FROM organisations WHERE id = :v"),
                     ("events", "SELECT 1 FROM events WHERE organisation_id = :v")],
    "public": [("events", _IN_LIST.format(column="publics"))],
}


_UNKNOWN = {"theme": "thème inconnu", "quartier": "quartier inconnu",
            "organisation": "organisation inconnue", "public": "public inconnu"}


def _public_labels(connection: sqlite3.Connection) -> dict[str, str]:
    """Publics vocabulary (data/vocab/publics.yaml): code → French label, as the feed files."""
    from publish.exports import _labels

    return _labels(connection)["public"]


def _filter_label(connection: sqlite3.Connection, kind: str, code: str) -> str:
    """The French label of a known code (theme's ``fr``, organisation's name), else the code."""
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    sql = {"theme": ("themes", "SELECT fr FROM themes WHERE code = ?"),
           "organisation": ("organisations", "SELECT name FROM organisations WHERE id = ?")}
    if kind == "public":
        return _public_labels(connection).get(code, code)
    if kind in sql and sql[kind][0] in tables:
        row = connection.execute(sql[kind][1], (code,)).fetchone()
        if row and row[0]:
            return str(row[0])
    return code


def unknown_filter(connection: sqlite3.Connection,
                   args: dict[str, str]) -> tuple[int, str] | None:
    """(HTTP status, French message) for the first filter value the database does not know.

    None when every value is known. Status 400 for a malformed ``gratuit``, 404 for a code no
    vocabulary table lists and no event carries. The value itself is not repeated.

    ``args``: filter name → value (theme, quartier, organisation, public codes; gratuit must be
    ``1``). Codes are compared exactly (the ones in ``feeds.json`` and the ``themes`` table).
    """
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    for kind, value in args.items():
        if kind == "gratuit":
            if value != "1":
                return 400, "paramètre « gratuit » invalide : écrivez gratuit=1 (ou retirez-le)"
            continue
        if kind == "public" and value in _public_labels(connection):
            continue
        if not any(table in tables and connection.execute(sql, {"v": value}).fetchone()
                   for table, sql in _KNOWN_SQL[kind]):
            return 404, (f"{_UNKNOWN[kind]} : aucun code de ce nom. Les codes existants sont "
                         "listés dans /exports/feeds.json")
    return None


async def live_calendar(request: Any, datasette: Any) -> Response:
    """The agenda filtered by any combination of theme, quartier, organisation, public, gratuit.

    Answers 404 (French text) when a theme, quartier, organisation or public code is unknown
    to the published database, 400 when ``gratuit`` is not ``1``; the unknown value is never
    echoed back.
    """
    # control characters cannot match a code and would break the calendar's content lines
    args = {k: _CONTROL_RE.sub(" ", request.args.get(k))[:120].strip()
            for k in FILTERS if request.args.get(k)}
    args = {k: v for k, v in args.items() if v}
    now = clock()

    def build(connection: sqlite3.Connection
              ) -> tuple[bytes, str | None] | tuple[None, tuple[int, str]]:
        problem = unknown_filter(connection, args)
        if problem:
            return None, problem
        labels = [f"{_FILTER_NAMES[k]} : {_filter_label(connection, k, v)}"
                  for k, v in args.items() if k != "gratuit"]
        if "gratuit" in args:
            labels.append("gratuit")
        connection.row_factory = sqlite3.Row
        events = prepare_feed_events(connection, now, _keep(args))
        label = ", ".join(labels)
        modified = connection.execute("SELECT max(updated_at) FROM events").fetchone()[0]
        return calendar_bytes(events, f"{CALENDAR_NAME} — {label}",
                              f"Événements à venir ({label})"), modified

    database = datasette.get_database(DATABASE)
    body, modified = await database.execute_fn(build)
    if body is None:
        status, message = modified
        return Response.text(message, status=status, headers=dict(CORS))
    when = dt.datetime.fromisoformat(modified) if modified else None
    return cached_response(request, body, _TYPES[".ics"], when)


def encode_cursor(updated_at: str | None, event_id: str) -> str:
    """Opaque cursor for the page after (updated_at, id)."""
    raw = json.dumps([updated_at or "", event_id]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Inverse of :func:`encode_cursor`. Raises ValueError on a malformed cursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at, event_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError) as exc:  # bad base64, JSON or shape
        raise ValueError("curseur illisible") from exc
    return str(updated_at), str(event_id)


def _iso_utc(text: str) -> str:
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "+"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_LIST_COLUMNS = {"themes", "categories", "rdate", "exdate", "publics", "accessibility"}


async def api_events(request: Any, datasette: Any) -> Response:
    """``/api/events.json``: events changed since ``modified_since``, paginated by cursor.

    Answer: ``{"events": [...], "count": n, "next_cursor": str|null, "next": url|null}``; each
    event is a flat object of the published ``events`` columns (JSON lists decoded). Errors are
    400 with ``{"error": "<French message>"}``.
    """
    if request.method == "OPTIONS":
        return await options(request, datasette)
    args = request.args
    where = ["1=1"]
    params: dict[str, Any] = {}
    def refuse(message: str) -> Response:
        return Response.json({"error": message}, status=400, headers=dict(CORS))

    raw_limit = (args.get("limit") or "100").strip()
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        return refuse("paramètre « limit » invalide : un nombre entier de 1 à 1000 est attendu")
    limit = int(raw_limit)
    if args.get("modified_since"):
        try:
            params["since"] = _iso_utc(args["modified_since"])
        except (ValueError, OverflowError):
            return refuse("paramètre « modified_since » invalide : une date ISO 8601 est attendue, "
                          "par exemple 2026-11-29T12:00:00Z")
        where.append("updated_at >= :since")
    if args.get("cursor"):
        try:
            params["c_at"], params["c_id"] = decode_cursor(args["cursor"])
        except ValueError:
            return refuse("paramètre « cursor » invalide (curseur illisible) : reprenez "
                          "l'adresse « next » de la page précédente")
        where.append("(updated_at > :c_at OR (updated_at = :c_at AND id > :c_id))")
    if args.get("theme"):
        where.append("EXISTS (SELECT 1 FROM json_each(events.themes) WHERE value = :theme)")
        params["theme"] = args["theme"]
    if args.get("quartier"):
        where.append("quartier = :quartier")
        params["quartier"] = args["quartier"]
    sql = (f"SELECT * FROM events WHERE {' AND '.join(where)} "
           f"ORDER BY updated_at, id LIMIT {limit + 1}")
    database = datasette.get_database(DATABASE)
    result = await database.execute(sql, params)
    rows = [dict(r) for r in result.rows]
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        for column in _LIST_COLUMNS & row.keys():
            row[column] = json.loads(row[column] or "[]")
    next_cursor = encode_cursor(rows[-1].get("updated_at"), rows[-1]["id"]) if more else None
    next_url = None
    if next_cursor:
        names = args.keys()  # Datasette MultiParams: keys() is its documented accessor
        query = {k: args.get(k) for k in names if k != "cursor"} | {"cursor": next_cursor}
        next_url = request.path + "?" + urlencode(query)
    body = json.dumps({"events": rows, "count": len(rows), "next_cursor": next_cursor,
                       "next": next_url}, ensure_ascii=False).encode("utf-8")
    return cached_response(request, body, "application/json; charset=utf-8", None)


async def options(request: Any, datasette: Any) -> Response:
    """CORS pre-flight answer for the open-data routes."""
    return Response(b"", status=204, headers=dict(CORS) | {"Access-Control-Max-Age": "86400"})


ROUTES = [
    (r"^/exports/(?P<path>.*)$", exports),
    (r"^/snapshots/(?P<path>.*)$", snapshots),
    (r"^/api/events\.json$", api_events),
]
