"""The embeddable agenda for the city's website (and any partner's).

Routes:

- ``/embed``: a complete, light HTML page for an ``<iframe>``: the next sessions, filterable by
  ``theme`` and ``quartier`` (a plain GET form: works without JavaScript), ``limite`` (1–50,
  default 10). French by default; ``lang=en`` or ``lang=ar`` (right to left) like the resident
  pages, with the same Babel catalogues (publish/web/locales). No cookie is read or set: a
  framed page follows its URL only. No third-party request: the only resource is inline CSS.
- ``/embed/agenda.json``: the same selection as JSON for the ``<script>`` snippet (CORS allowed);
  ``lang`` sets the language of the ``when`` labels.
- ``/embed/agenda.js``: the snippet's script. It fills every ``<div data-tissu-agenda>`` of the
  host page with the sessions of its ``data-theme``/``data-quartier``/``data-limite``, fetching
  only from the Tissu server it was loaded from; its style is scoped to ``.tissu-agenda``.

JS + CSS stay under 20 KB (checked by a test).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from datasette.utils.asgi import Response

from normalize.times import PARIS
from publish.web import resident_data as data
from publish.web import resident_i18n as i18n
from publish.web.exports import CORS, cached_response

DATABASE = "tissu-open"
STATIC = Path(__file__).resolve().parent / "static" / "embed"
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"]


def clock() -> dt.datetime:
    """Now, aware (UTC). Tests replace it."""
    return dt.datetime.now(dt.UTC)


def french_when(start_local: str, end_local: str | None, all_day: bool) -> str:
    """A French label for a session: « mardi 1 décembre, 10 h 00 – 12 h 00 » (Europe/Paris)."""
    if all_day:
        day = dt.date.fromisoformat(start_local[:10])
        return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}, toute la journée"
    start = dt.datetime.fromisoformat(start_local).astimezone(PARIS)
    label = (f"{_DAYS[start.weekday()]} {start.day} {_MONTHS[start.month - 1]}, "
             f"{start.hour} h {start.minute:02d}")
    if end_local:
        end = dt.datetime.fromisoformat(end_local).astimezone(PARIS)
        if end > start and end.date() == start.date():
            label += f" – {end.hour} h {end.minute:02d}"
    return label


def _(lang: str, message: str) -> str:
    return i18n.gettext(lang, message)


def when_label(lang: str, start_local: str, end_local: str | None, all_day: bool) -> str:
    """A session's label in ``lang`` (``fr``, ``en`` or ``ar``), times in Europe/Paris.

    French keeps :func:`french_when`'s wording; English and Arabic use Babel's CLDR day and
    time formats with the catalogue's « toute la journée » (e.g. ``Monday 30 November, 12:30 –
    2:00 PM``). Raises ValueError on a malformed ISO 8601 ``start_local``.
    """
    if lang == i18n.DEFAULT_LANGUAGE or lang not in i18n.LANGUAGES:
        return french_when(start_local, end_local, all_day)
    comma = "، " if lang == "ar" else ", "  # the Arabic comma
    if all_day:
        day = dt.date.fromisoformat(start_local[:10])
        return f"{i18n.format_day(lang, day)}{comma}{_(lang, 'toute la journée')}"
    start = dt.datetime.fromisoformat(start_local).astimezone(PARIS)
    label = f"{i18n.format_day(lang, start.date())}{comma}{i18n.format_clock(lang, start)}"
    if end_local:
        end = dt.datetime.fromisoformat(end_local).astimezone(PARIS)
        if end > start and end.date() == start.date():
            label += f" – {i18n.format_clock(lang, end)}"
    return label


def _language(request: Any) -> str:
    """``?lang=`` when supported, else French (the embed page reads no cookie)."""
    return i18n.pick_language(request.args.get("lang"), None)


def _limit(raw: str | None) -> int:
    try:
        return min(max(int(raw or DEFAULT_LIMIT), 1), MAX_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT


def select_sessions(connection: sqlite3.Connection, now: dt.datetime, theme: str | None,
                    quartier: str | None, limit: int, lang: str = "fr",
                    facts: data.DatabaseFacts | None = None) -> dict[str, Any]:
    """Upcoming sessions (not ended at ``now``, aware) of events still published, filtered.

    Returns ``{"sessions": [...], "themes": [(code, label)], "quartiers": [name]}``; each session
    has id, event_id, title, when (label in ``lang``, see :func:`when_label`), start (ISO,
    Paris), location, quartier, url, cancelled (bool), end_utc. Theme labels are in ``lang``
    when the ``themes`` table has that column, else French. Published and not duplicated means
    what the resident pages mean (``resident_data.filter_where``); with ``facts`` (read at or
    before ``now``) the scan is one range of the ``start_utc`` index.
    """
    if facts is None or facts.computed_at > now:
        facts = data.DatabaseFacts(data.table_columns(connection, "events"),
                                   data.table_columns(connection, "occurrences"), None, {}, now)
    params: dict[str, object] = {"now": data.utc_text(now), "limit": limit}
    extra = ["o.end_utc >= :now"]
    if facts.longest_days is not None:
        # sessions still running started at most the longest session ago: one index range
        extra.append("o.start_utc >= :lower")
        params["lower"] = data.utc_text(now - dt.timedelta(days=facts.longest_days))
    filters = data.Filters(theme=theme or "", quartier=quartier or "")
    where, _, _ = data.filter_where(filters, facts.event_columns, facts.occurrence_columns,
                                    extra, params)
    connection.row_factory = sqlite3.Row
    rows = connection.execute(
        "SELECT o.id, o.event_id, COALESCE(o.title, e.title) AS title, o.start_local, "
        "o.end_local, o.all_day, COALESCE(o.location, e.location) AS location, e.quartier, "
        "e.url, CASE WHEN e.status = 'cancelled' OR o.status = 'cancelled' THEN 1 ELSE 0 END "
        "AS cancelled, o.end_utc FROM occurrences o JOIN events e ON e.id = o.event_id "
        f"WHERE {' AND '.join(where)} ORDER BY o.start_utc, o.id LIMIT :limit",
        params,
    ).fetchall()
    sessions = [{
        "id": r["id"], "event_id": r["event_id"], "title": r["title"],
        "when": when_label(lang, r["start_local"], r["end_local"], bool(r["all_day"])),
        "start": r["start_local"], "location": r["location"], "quartier": r["quartier"],
        "url": r["url"], "cancelled": bool(r["cancelled"]), "end_utc": r["end_utc"],
    } for r in rows]
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    themes: list[tuple[str, str]] = []
    if "themes" in tables:
        theme_columns = {r[1] for r in connection.execute("PRAGMA table_info(themes)")}
        label = lang if lang in i18n.LANGUAGES and lang in theme_columns else "fr"
        themes = sorted(((str(c), str(t or fr)) for c, t, fr in connection.execute(
            f'SELECT code, "{label}", fr FROM themes')), key=lambda pair: pair[1].casefold())
    quartiers = [q for (q,) in connection.execute(
        "SELECT DISTINCT quartier FROM events WHERE quartier IS NOT NULL ORDER BY quartier")]
    return {"sessions": sessions, "themes": themes, "quartiers": quartiers}


async def _selection(request: Any, datasette: Any) -> tuple[dict[str, Any], dict[str, str]]:
    lang = _language(request)
    args = {"theme": request.args.get("theme") or "",
            "quartier": request.args.get("quartier") or "",
            "limite": str(_limit(request.args.get("limite"))),
            "lang": "" if lang == i18n.DEFAULT_LANGUAGE else lang}
    now = clock()
    from publish.web.resident import _facts  # the resident pages' facts, read once per file

    facts = await _facts(datasette, now)
    database = datasette.get_database(DATABASE)
    found = await database.execute_fn(lambda connection: select_sessions(
        connection, now, args["theme"] or None, args["quartier"] or None, int(args["limite"]),
        lang, facts))
    return found, args


async def embed_page(request: Any, datasette: Any) -> Response:
    """``/embed``: the agenda page for an iframe (no JavaScript needed)."""
    found, args = await _selection(request, datasette)
    lang = args["lang"] or i18n.DEFAULT_LANGUAGE

    def _(message: str) -> str:
        return i18n.gettext(lang, message)

    theme_labels = dict(found["themes"])
    heading = _("Agenda solidaire")
    if args["theme"]:
        heading += " — " + theme_labels.get(args["theme"], args["theme"])
    if args["quartier"]:
        heading += " — " + args["quartier"]
    feed_args = {k: v for k, v in args.items() if v and k in ("theme", "quartier")}
    html = i18n.environment(lang, "embed").get_template("agenda.html").render({
        "lang": lang,
        "dir": i18n.text_direction(lang),
        "heading": heading,
        "sessions": found["sessions"],
        "themes": found["themes"],
        "quartiers": found["quartiers"],
        "args": args,
        "css": (STATIC / "embed.css").read_text(encoding="utf-8"),
        "feed_url": "/exports/agenda.ics" + ("?" + urlencode(feed_args) if feed_args else ""),
        "home_url": "/" + ("?" + urlencode({"lang": lang}) if args["lang"] else ""),
    })
    response = cached_response(request, html.encode("utf-8"), "text/html; charset=utf-8", None)
    # framed by any site: no X-Frame-Options; say so explicitly for CSP-aware browsers
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors *")
    return response


async def embed_json(request: Any, datasette: Any) -> Response:
    """``/embed/agenda.json``: the selection as JSON for the script snippet."""
    found, args = await _selection(request, datasette)
    body = json.dumps({"sessions": found["sessions"], "filters": args,
                       "page": "/embed?" + urlencode({k: v for k, v in args.items() if v})},
                      ensure_ascii=False).encode("utf-8")
    return cached_response(request, body, "application/json; charset=utf-8", None)


async def embed_script(request: Any, datasette: Any) -> Response:
    """``/embed/agenda.js``: the snippet's script, cacheable, CORS allowed."""
    path = STATIC / "agenda.js"
    modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    response = cached_response(request, path.read_bytes(),
                               "text/javascript; charset=utf-8", modified)
    response.headers.update(CORS)
    return response


ROUTES = [
    (r"^/embed/?$", embed_page),
    (r"^/embed/agenda\.json$", embed_json),
    (r"^/embed/agenda\.js$", embed_script),
]
