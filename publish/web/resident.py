"""Resident pages: the week's agenda, events, the directory, subscriptions, posters, kiosk mode.

Routes (Datasette ``register_routes``, https://docs.datasette.io/en/0.65/plugin_hooks.html):

- ``/`` — this week's solidarity agenda, filtered by ``theme``, ``quartier``, ``public``,
  ``gratuit`` and ``date`` (first day, AAAA-MM-JJ).
- ``/agenda/evenement/<id>`` — one event; ``…/<id>/evenement.ics`` its RFC 5545 calendar file.
- ``/agenda/abonnement`` — "S'abonner": webcal:// and https links, instructions, QR code (SVG).
- ``/recherche?q=…`` — full-text search of the coming events (``events_fts``), by next session.
- ``/agenda/affiche`` — the A4 weekly poster of a quartier (print CSS); ``/agenda/affiche.pdf``
  when WeasyPrint is installed.
- ``/annuaire``, ``/annuaire/organisation/<id>``, ``/annuaire/services``,
  ``/annuaire/service/<id>`` — the directory, with opening hours (OSM ``opening_hours``).

Every page works without JavaScript. ``?lang=fr|en|ar`` picks the language (kept in the
``tissu_lang`` cookie), ``?taille=grand|normal`` the large-print switch (cookie
``tissu_taille``). Kiosk mode (``?borne=1`` or ``TISSU_KIOSK=1``) sets no cookie, keeps every link
inside the site, and goes back home after ``TISSU_KIOSK_IDLE_SECONDS`` without input.
Identifiers in URLs are percent-encoded whole (``/`` included).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import os
from collections.abc import Awaitable, Callable, Hashable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import segno
from datasette.utils.asgi import Response

from publish.web import page_cache, reload, resident_paging
from publish.web import resident_data as data
from publish.web import resident_i18n as i18n
from publish.web.resident_hours import week_schedule
from tissu.settings import get_settings

DATABASE = "tissu-open"
STATIC = "/-/static-plugins/tissu/resident/"
SIZE_COOKIE = "tissu_taille"
COOKIE_MAX_AGE = 365 * 24 * 3600
#: The feed of the whole agenda, served from the exports folder (publish/exports.py).
FEED_PATH = "/exports/agenda.ics"
HOME_PAGE_ROWS = 60
#: Pages of the home listing beyond this one are looked up as this one (past the end anyway).
MAX_HOME_PAGE = 100_000


def clock() -> dt.datetime:
    """The current time, aware (UTC). Tests replace it to show a fixed week."""
    return dt.datetime.now(dt.UTC)


class Page:
    """What every resident page needs from the request: language, large print, kiosk mode.

    ``url(path, params)`` builds an internal link that keeps the kiosk mode, the language and
    the large-print choice, so that they survive without cookies (kiosks set none).
    """

    def __init__(self, datasette: Any, request: Any) -> None:
        settings = get_settings()
        self.datasette = datasette
        self.request = request
        args = request.args
        self.instance_kiosk = settings.kiosk
        self.kiosk = settings.kiosk or args.get("borne") == "1"
        self.idle_seconds = max(6, settings.kiosk_idle_seconds)
        cookies = {} if self.kiosk else request.cookies
        self.lang = i18n.pick_language(args.get("lang"), cookies.get(i18n.LANG_COOKIE))
        size = args.get("taille") or cookies.get(SIZE_COOKIE) or "normal"
        self.large = size == "grand"
        self.lang_from_query = args.get("lang") in i18n.LANGUAGES
        self.size_from_query = args.get("taille") in ("grand", "normal")
        self.now = clock()
        self.today = self.now.astimezone(data.PARIS).date()
        #: Until when (aware UTC) the page rendered at ``now`` stays right; views lower it.
        self.valid_until = next_paris_midnight(self.now)
        self.rendered: tuple[str, int] | None = None
        self._state_query: str | None = None

    def expire_at(self, moment: dt.datetime | None) -> None:
        """The page may change at ``moment`` (aware): keep it no longer than that."""
        if moment is not None:
            self.valid_until = min(self.valid_until, moment)

    def variant(self) -> tuple[Hashable, ...]:
        """Everything but the URL and the data that the rendered page depends on."""
        return (self.lang, self.large, self.kiosk, self.instance_kiosk, self.idle_seconds,
                os.environ.get("TISSU_PUBLIC_URL", "").strip(), self.request.scheme,
                self.request.host)

    def _state(self) -> list[tuple[str, str]]:
        state: list[tuple[str, str]] = []
        if self.kiosk and not self.instance_kiosk:
            state.append(("borne", "1"))
        if self.lang != i18n.DEFAULT_LANGUAGE:
            state.append(("lang", self.lang))
        if self.large:
            state.append(("taille", "grand"))
        return state

    def url(self, path: str, params: Iterable[tuple[str, str]] = ()) -> str:
        """An internal link to ``path`` with ``params`` and the visitor's state."""
        pairs = [(k, v) for k, v in params if k not in ("borne", "lang", "taille")]
        if not pairs:  # most links (one per event listed): the state's query, built once
            if self._state_query is None:
                self._state_query = urlencode(self._state())
            return f"{path}?{self._state_query}" if self._state_query else path
        query = urlencode(pairs + self._state())
        return f"{path}?{query}" if query else path

    def current_with(self, **changes: str) -> str:
        """The current page's URL with some parameters replaced (language, size switches)."""
        pairs = parse_qsl(self.request.query_string)
        pairs = [(k, v) for k, v in pairs if k not in changes]
        pairs = [(k, v) for k, v in pairs if k not in ("borne", "lang", "taille")]
        state = dict(self._state())
        state.update(changes)
        query = urlencode(pairs + list(state.items()))
        return f"{self.request.path}?{query}" if query else self.request.path

    def absolute(self, path: str) -> str:
        """``path`` as an absolute https/http URL on this site (for QR codes and feeds)."""
        public = os.environ.get("TISSU_PUBLIC_URL", "").strip()
        if public:
            return public.rstrip("/") + path
        return str(self.datasette.absolute_url(self.request, path))

    def _(self, message: str) -> str:
        return i18n.gettext(self.lang, message)

    def context(self, section: str, **extra: Any) -> dict[str, Any]:
        """The template context shared by every page."""
        home = "/?borne=1" if self.kiosk and not self.instance_kiosk else "/"
        return {
            "lang": self.lang,
            "dir": i18n.text_direction(self.lang),
            "languages": [(code, i18n.LANGUAGE_NAMES[code]) for code in i18n.LANGUAGES],
            "kiosk": self.kiosk,
            "kiosk_param": self.kiosk and not self.instance_kiosk,
            "large": self.large,
            "idle_seconds": self.idle_seconds,
            "kiosk_home": home,
            "section": section,
            "url": self.url,
            "static": lambda name: STATIC + name,
            "switch_lang": lambda code: self.current_with(lang=code),
            "size_url": self.current_with(taille="normal" if self.large else "grand"),
            "day": lambda d: i18n.format_day(self.lang, d),
            "long_date": lambda d: i18n.format_long_date(self.lang, d),
            "clock": lambda t: i18n.format_clock(self.lang, t),
            "event_url": lambda event_id: self.url(f"/agenda/evenement/{quote(event_id, safe='')}"),
            "quote": lambda value: quote(str(value), safe=""),
            **extra,
        }

    def render(self, template: str, context: dict[str, Any], status: int = 200) -> Response:
        """Render a resident template; sets the language and size cookies outside kiosk mode."""
        html = i18n.environment(self.lang).get_template(template).render(context)
        self.rendered = (html, status)
        response = Response.html(html, status=status)
        return self.finish(response)

    def respond(self, entry: page_cache.Entry) -> Response:
        """A cached page: 200 with its ETag, or 304 when ``If-None-Match`` names it."""
        headers = {"ETag": entry.etag, "Vary": "Cookie", "Cache-Control": "no-cache"}
        match = self.request.headers.get("if-none-match")
        if entry.status == 200 and match is not None:
            tags = {t.strip().removeprefix("W/") for t in match.split(",")}
            if "*" in tags or entry.etag in tags:
                return self.finish(Response(b"", status=304, headers=headers))
        return self.finish(Response(entry.body, status=entry.status, headers=headers,
                                    content_type="text/html; charset=utf-8"))

    def finish(self, response: Response) -> Response:
        """Cookies for the remembered choices (never in kiosk mode) and cache rules."""
        if self.kiosk:
            response.headers["Cache-Control"] = "no-store"
            return response
        if self.lang_from_query:
            response.set_cookie(i18n.LANG_COOKIE, self.lang, max_age=COOKIE_MAX_AGE,
                                samesite="lax")
        if self.size_from_query:
            response.set_cookie(SIZE_COOKIE, "grand" if self.large else "normal",
                                max_age=COOKIE_MAX_AGE, samesite="lax")
        return response


def next_paris_midnight(now: dt.datetime) -> dt.datetime:
    """The next midnight in Europe/Paris after ``now`` (aware), as aware UTC: "today" changes."""
    tomorrow = now.astimezone(data.PARIS).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0, 0), tzinfo=data.PARIS).astimezone(dt.UTC)


def _file_identity(datasette: Any) -> tuple[object, ...] | None:
    """The published file as the database last saw it: (path, (inode, mtime ns, size)).

    Asks publish/web/reload.py to look for a replaced file first (at most once a second).
    None for an in-memory database.
    """
    database = datasette.get_database(DATABASE)
    refresh = getattr(database, "refresh", None)
    if refresh is not None:
        refresh()
    identity = getattr(database, "_identity", None)
    if identity is None and database.path:
        try:
            stat = os.stat(database.path)
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            identity = None
    return (database.path, identity) if database.path and identity else None


View = Callable[[Any, Any, "Page"], Awaitable[Response]]


def cached(*depends: Callable[[], Hashable]) -> Callable[[View], Callable[..., Any]]:
    """Serve a resident view from :data:`page_cache.PAGES` (see publish/web/page_cache.py).

    The key is the file, the path and query string, :meth:`Page.variant` and the values of
    ``depends`` (module settings the page reads); the view says how long its page stays
    right through :meth:`Page.expire_at`.
    """
    def decorate(view: View) -> Callable[..., Any]:
        async def wrapper(datasette: Any, request: Any) -> Response:
            page = Page(datasette, request)
            file = _file_identity(datasette) if page_cache.enabled() else None
            if file is None:
                return await view(datasette, request, page)
            key = (request.path, request.query_string, page.variant(),
                   tuple(f() for f in depends))
            entry = page_cache.PAGES.get(file, key, page.now)
            if entry is not None:
                return page.respond(entry)
            response = await view(datasette, request, page)
            if page.rendered is None:
                return response
            html, status = page.rendered
            entry = page_cache.make_entry(html, status, page.now, page.valid_until)
            page_cache.PAGES.put(file, key, entry)
            return page.respond(entry)
        # not functools.wraps: Datasette reads the signature to pass (datasette, request)
        wrapper.__name__, wrapper.__doc__ = view.__name__, view.__doc__
        wrapper.__qualname__ = view.__qualname__
        return wrapper
    return decorate


async def _run_all(datasette: Any, *calls: tuple[Any, ...]) -> list[Any]:
    """Run several ``(fn, *args)`` reads in order, in one go (see :func:`_run`)."""
    return list(await _run(
        datasette, lambda connection: [fn(connection, *args) for fn, *args in calls]))


async def _run(datasette: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(connection, *args)`` on the published database: right here on the resident
    pages' own connection when the database offers one (publish/web/reload.py,
    ``execute_here``: reads of a few milliseconds, which would otherwise wait for a thread of
    Datasette's pool), else — or when it takes longer than its budget there — in Datasette's
    thread pool."""
    database = datasette.get_database(DATABASE)
    here = getattr(database, "execute_here", None)
    if here is not None:
        try:
            return here(lambda connection: fn(connection, *args))
        except reload.TooLongHere:
            pass
    return await database.execute_fn(lambda connection: fn(connection, *args))


#: :class:`resident_data.DatabaseFacts` by published file (path, inode, mtime, size).
_FACTS: dict[tuple[object, ...], data.DatabaseFacts] = {}
_FACTS_KEPT = 4
#: Facts being read now, by file: (the moment they are read for, their future).
_FACTS_READING: dict[tuple[object, ...], tuple[dt.datetime, asyncio.Future[Any]]] = {}


async def _facts(datasette: Any, now: dt.datetime) -> data.DatabaseFacts:
    """The published file's :class:`resident_data.DatabaseFacts`, read once per file.

    Keyed by the file's identity as the database last saw it (publish/web/reload.py), read
    before the query runs: a file replaced in between is read under the older key, so a cached
    entry is never older than its key. Read again when ``now`` is before the cached moment.
    """
    key = _file_identity(datasette)
    known = _FACTS.get(key) if key is not None else None
    if known is not None and known.computed_at <= now:
        return known
    reading = _FACTS_READING.get(key) if key is not None else None
    if reading is not None and reading[0] <= now:  # a crowd after a publication: read once
        found = await asyncio.shield(reading[1])
        if found is not None:
            return found
    # read once per file, and long (~1.4 s on 1M sessions): in the pool, never in the loop
    database = datasette.get_database(DATABASE)
    future: asyncio.Future[data.DatabaseFacts | None] = asyncio.get_running_loop().create_future()
    if key is not None and key not in _FACTS_READING:
        _FACTS_READING[key] = (now, future)
    facts = None
    try:
        facts = await database.execute_fn(
            lambda connection: data.database_facts(connection, now))
    finally:
        if key is not None and _FACTS_READING.get(key, (None, None))[1] is future:
            del _FACTS_READING[key]
        future.set_result(facts)
    if key is not None:
        while len(_FACTS) >= _FACTS_KEPT:
            _FACTS.pop(next(iter(_FACTS)))
        _FACTS[key] = facts
    return facts


def qr_svg(url: str, label: str) -> str:
    """An inline SVG QR code (segno, error correction M) for ``url``, labelled for screen readers.

    Returns markup ``<svg role="img" aria-label=… viewBox=…>`` that scales with CSS.
    """
    code = segno.make(url, error="m")
    svg = code.svg_inline(scale=1, border=2, omitsize=True, svgclass="qr", lineclass=None,
                          dark="#000", light="#fff")
    escaped = (label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;"))
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escaped}" ', 1)


def _exports_dir() -> Path:
    """Where ``/exports/`` is served from (publish/web/exports.py): the publish folder's."""
    return get_settings().publish_dir / "exports"


def feed_path(filters: data.Filters, exports_dir: Path | None = None) -> str:
    """The iCalendar feed of a selection, as a path on this site.

    No filter: ``/exports/agenda.ics``. One filter (theme, quartier or public): the feed
    ``publish.exports`` writes for it, ``/exports/ics/<kind>/<slug>.ics``, when that file
    exists (a code with no coming event has none). Several filters, or "gratuit": the live
    calendar of publish/web/exports.py, ``/exports/agenda.ics?theme=…&quartier=…``.
    """
    from publish.exports import feed_path as export_path

    params = filters.params(with_date=False)
    if not params:
        return FEED_PATH
    if len(params) == 1 and params[0][0] in ("theme", "quartier", "public"):
        kind, code = params[0]
        relative = export_path(kind, code)
        if exports_dir is None or (exports_dir / relative).is_file():
            return "/exports/" + relative
    return FEED_PATH + "?" + urlencode(params)


def feed_links(page: Page, filters: data.Filters) -> dict[str, str]:
    """``https`` and ``webcal`` addresses of the selection's feed (RFC 5545 over HTTP)."""
    https = page.absolute(feed_path(filters, _exports_dir()))
    webcal = "webcal://" + https.split("://", 1)[1]
    return {"https": https, "webcal": webcal}


def _selection_label(page: Page, filters: data.Filters,
                     choices: dict[str, list[data.Choice]]) -> list[str]:
    labels = []
    names = {key: {c.value: c.label for c in values} for key, values in choices.items()}
    if filters.theme:
        labels.append(page._("Thème") + " : " + names["theme"].get(filters.theme, filters.theme))
    if filters.quartier:
        labels.append(page._("Quartier") + " : " + filters.quartier)
    if filters.public:
        labels.append(page._("Public") + " : " + names["public"].get(filters.public,
                                                                      filters.public))
    if filters.free:
        labels.append(page._("Gratuit"))
    return labels


@cached(lambda: HOME_PAGE_ROWS)
async def home(datasette: Any, request: Any, page: Page) -> Response:
    """This week's agenda with its filters; a ``page`` past the last one answers 404 with its
    message (a ``page`` that is no number was refused before, publish/web/resident_paging.py)."""
    filters = data.Filters.from_args(request.args)
    first = filters.start or page.today
    # checked before this view (resident_paging.checked: outside its page cache, whose
    # headers an error page must not get), so read here the same way
    requested = resident_paging.requested_page(request.args.get("page"))
    # the OFFSET stays small enough for SQLite (which stops at the last row found anyway)
    number = min(requested, MAX_HOME_PAGE)
    facts = await _facts(datasette, page.now)
    listing, choices, free_supported, labels = await _run_all(
        datasette,
        (data.week_listing, filters, page.now, (number - 1) * HOME_PAGE_ROWS, HOME_PAGE_ROWS,
         facts),
        (data.filter_choices, page.lang, page.now, facts),
        (data.supports_free,),
        (data.theme_labels, page.lang))
    shown, total = listing.rows, listing.total
    page.expire_at(listing.changes_at)
    page.expire_at(facts.next_choice_change(page.now))
    more = total > number * HOME_PAGE_ROWS
    pages = max(1, -(-total // HOME_PAGE_ROWS))
    past_end = total > 0 and requested > pages
    context = page.context(
        "agenda",
        filters=filters,
        first=first,
        last=first + dt.timedelta(days=data.WEEK_DAYS - 1),
        days=data.group_by_day(shown, first),
        total=total,
        page_number=number,
        requested_page=requested,
        page_count=pages,
        past_end=past_end,
        last_page=(page.url("/", filters.params() + ([("page", str(pages))] if pages > 1 else []))
                   if past_end else None),
        next_page=page.url("/", filters.params() + [("page", str(number + 1))]) if more else None,
        choices=choices,
        theme_labels=labels,
        free_supported=free_supported,
        previous_week=(page.url("/", filters.shifted(-7, page.today).params())
                       if first > page.today else None),
        next_week=page.url("/", filters.shifted(7, page.today).params()),
        subscribe_url=page.url("/agenda/abonnement", filters.params(with_date=False)),
        poster_url=page.url("/agenda/affiche", filters.params()),
        selection=_selection_label(page, filters, choices),
    )
    # a page past the last one does not exist: 404, with the message and a link to the last
    # page (publish/web/resident_paging.py says why not a redirect)
    return page.render("home.html", context, status=404 if past_end else 200)


@cached()
async def event(datasette: Any, request: Any, page: Page) -> Response:
    """One event: when, where, who, its coming sessions and its calendar file."""
    event_id = unquote(request.url_vars["event_id"])
    record = await _run(datasette, data.event_record, event_id)
    if record is None:
        return not_found(page)
    sessions = await _run(datasette, data.event_occurrences, event_id, page.now)
    page.expire_at(_first_end(sessions))
    labels = await _run(datasette, data.theme_labels, page.lang)
    public_labels = data.vocab_labels("publics", page.lang)
    ics_path = f"/agenda/evenement/{quote(event_id, safe='')}/evenement.ics"
    themes = data.json_list(record.get("themes"))
    context = page.context(
        "agenda",
        event=record,
        sessions=sessions,
        themes=[labels.get(t, t) for t in themes],
        publics=[public_labels.get(c, c) for c in data.json_list(record.get("publics"))],
        description=_paragraphs(record.get("description")),
        ics_url=page.url(ics_path) if not page.kiosk else None,
        ics_qr=qr_svg(page.absolute(ics_path), page._("QR code : ajouter cet événement à "
                                                        "mon agenda")) if page.kiosk else None,
        subscribe_url=page.url("/agenda/abonnement",
                               [("theme", themes[0])] if themes else []),
        theme_code=themes[0] if themes else "",
    )
    return page.render("event.html", context)


async def event_ics(datasette: Any, request: Any) -> Response:
    """The event as an RFC 5545 file (``text/calendar``) to download, series rules kept."""
    page = Page(datasette, request)
    event_id = unquote(request.url_vars["event_id"])
    body = await _run(datasette, data.event_calendar, event_id)
    if body is None:
        return not_found(page)
    name = "".join(c if c.isalnum() else "-" for c in event_id.split("--")[-1])[:60] or "evenement"
    return Response(
        body, status=200, content_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.ics"'},
    )


SEARCH_ROWS = 20


@cached(lambda: SEARCH_ROWS)
async def search(datasette: Any, request: Any, page: Page) -> Response:
    """``/recherche?q=…``: the coming events whose title, description or place contain the
    words, by date of their next session (full-text index, no count, at most ``SEARCH_ROWS``)."""
    text = " ".join((request.args.get("q") or "").split())[:200]
    rows: list[data.Occurrence] = []
    more = False
    if data.fts_query(text):
        facts = await _facts(datasette, page.now)
        found, labels = await _run_all(
            datasette, (data.search_upcoming, text, page.now, SEARCH_ROWS, facts),
            (data.theme_labels, page.lang))
        rows, more = found.rows, found.more
        page.expire_at(found.changes_at)
    else:
        labels = {}
    context = page.context(
        "recherche", q=text, rows=rows, more=more, theme_labels=labels,
        days=data.group_by_day(rows, page.today) if rows else [],
    )
    return page.render("search.html", context)


@cached()
async def subscribe(datasette: Any, request: Any, page: Page) -> Response:
    """The "S'abonner" page of a selection: links, instructions and a QR code."""
    filters = data.Filters.from_args(request.args)
    facts = await _facts(datasette, page.now)
    page.expire_at(facts.next_choice_change(page.now))
    choices = await _run(datasette, data.filter_choices, page.lang, page.now, facts)
    free_supported = await _run(datasette, data.supports_free)
    links = feed_links(page, filters)
    context = page.context(
        "abonnement",
        filters=filters,
        choices=choices,
        free_supported=free_supported,
        links=links,
        qr=qr_svg(links["https"], page._("QR code de l'adresse de l'agenda") + " "
                  + links["https"]),
        selection=_selection_label(page, filters, choices),
        agenda_url=page.url("/", filters.params(with_date=False)),
    )
    return page.render("subscribe.html", context)


def weasyprint_available() -> bool:
    """True when WeasyPrint can be imported (it is optional: it needs Pango)."""
    return importlib.util.find_spec("weasyprint") is not None


async def _poster_context(page: Page, datasette: Any, request: Any) -> dict[str, Any]:
    filters = data.Filters.from_args(request.args)
    first = filters.start or page.today
    facts = await _facts(datasette, page.now)
    listing = await _run(datasette, data.week_listing, filters, page.now, 0, 80, facts)
    occurrences, total = listing.rows, listing.total
    page.expire_at(listing.changes_at)
    page.expire_at(facts.next_choice_change(page.now))
    choices = await _run(datasette, data.filter_choices, page.lang, page.now, facts)
    links = feed_links(page, data.Filters(quartier=filters.quartier))
    return page.context(
        "affiche",
        filters=filters,
        choices=choices,
        first=first,
        last=first + dt.timedelta(days=data.WEEK_DAYS - 1),
        days=data.group_by_day(occurrences, first),
        total=total,
        feed=links["https"],
        qr=qr_svg(links["https"], page._("QR code de l'agenda du quartier") + " "
                  + links["https"]),
        pdf_url=(page.url("/agenda/affiche.pdf", filters.params())
                 if weasyprint_available() else None),
    )


@cached(lambda: weasyprint_available())
async def poster(datasette: Any, request: Any, page: Page) -> Response:
    """The A4 weekly poster of one quartier (or of all), printable from the browser."""
    context = await _poster_context(page, datasette, request)
    return page.render("poster.html", context)


async def poster_pdf(datasette: Any, request: Any) -> Response:
    """The poster as a PDF through WeasyPrint; 404 with an explanation when it is missing."""
    page = Page(datasette, request)
    if not weasyprint_available():
        return not_found(page, page._("Le PDF n'est pas disponible sur ce serveur : "
                                      "imprimez l'affiche depuis votre navigateur."))
    import weasyprint

    context = await _poster_context(page, datasette, request)
    context["pdf"] = True
    html = i18n.environment(page.lang).get_template("poster.html").render(context)
    css = (i18n.TEMPLATES_DIR.parent.parent / "static" / "resident" / "resident.css")
    # Nothing is fetched while rendering (not even our own stylesheet over HTTP): the CSS is
    # given as text and every URL but data: is refused.
    fetcher = weasyprint.URLFetcher(allowed_protocols=("data",))
    document = weasyprint.HTML(string=html, base_url=page.absolute("/"), url_fetcher=fetcher)
    stylesheet = weasyprint.CSS(string=css.read_text(encoding="utf-8"), url_fetcher=fetcher)
    pdf = await asyncio.to_thread(document.write_pdf, stylesheets=[stylesheet])
    return Response(pdf, status=200, content_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="affiche.pdf"'})


@cached()
async def organisations(datasette: Any, request: Any, page: Page) -> Response:
    """The directory of organisations."""
    rows = await _run(datasette, data.organisations)
    return page.render("organisations.html", page.context("annuaire", organisations=rows))


@cached()
async def organisation(datasette: Any, request: Any, page: Page) -> Response:
    """One organisation: contact details, opening hours, services and coming events."""
    org_id = unquote(request.url_vars["org_id"])
    record = await _run(datasette, data.organisation, org_id)
    if record is None:
        return not_found(page)
    services = await _run(datasette, data.services, org_id)
    events = await _run(datasette, data.organisation_events, org_id, page.now)
    page.expire_at(_first_end(events))
    context = page.context(
        "annuaire",
        org=record,
        description=_paragraphs(record.get("description")),
        schedule=week_schedule(record.get("opening_hours"), page.today),
        services=services,
        events=events,
    )
    return page.render("organisation.html", context)


@cached()
async def services(datasette: Any, request: Any, page: Page) -> Response:
    """The directory of services (data.inclusion services), with opening hours."""
    rows = await _run(datasette, data.services)
    names = {o["id"]: o["name"] for o in await _run(datasette, data.organisations)}
    return page.render("services.html", page.context("services", services=rows,
                                                     org_names=names))


@cached()
async def service(datasette: Any, request: Any, page: Page) -> Response:
    """One service: what, for whom, where, when (opening hours), how to reach it."""
    service_id = unquote(request.url_vars["service_id"])
    record = await _run(datasette, data.service, service_id)
    if record is None:
        return not_found(page)
    org = None
    if record.get("_organisation_id"):
        org = await _run(datasette, data.organisation, str(record["_organisation_id"]))
    context = page.context(
        "services",
        service=record,
        org=org,
        description=_paragraphs(record.get("_description")),
        schedule=week_schedule(record.get("_opening_hours"), page.today),
    )
    return page.render("service.html", context)


def not_found(page: Page, message: str | None = None) -> Response:
    """A 404 page in the resident layout."""
    return page.render("not_found.html", page.context("", message=message), status=404)


def unknown_address(page: Page) -> Response:
    """The 404 page of an address that is no page of Tissu (publish/web/not_found.py)."""
    return not_found(page, page._("Cette adresse ne correspond à aucune page de Tissu. "
                                  "Vérifiez le lien, ou repartez de l'agenda."))


def _first_end(sessions: list[data.Occurrence]) -> dt.datetime | None:
    """When the first of the listed sessions ends (aware UTC): the list changes then."""
    ends = [moment for moment in (data.parse_utc(o.end_utc) for o in sessions if o.end_utc)
            if moment is not None]
    return min(ends, default=None)


def _paragraphs(text: object) -> list[str]:
    if not text:
        return []
    blocks = [b.strip() for b in str(text).replace("\r\n", "\n").split("\n\n")]
    return [b for b in blocks if b][:30]


_ID = r"(?P<{}>[^/]+)"
ROUTES = [
    (r"^/$", home),
    (r"^/agenda/evenement/" + _ID.format("event_id") + r"/evenement\.ics$", event_ics),
    (r"^/agenda/evenement/" + _ID.format("event_id") + r"$", event),
    (r"^/agenda/abonnement$", subscribe),
    (r"^/recherche$", search),
    (r"^/agenda/affiche\.pdf$", poster_pdf),
    (r"^/agenda/affiche$", poster),
    (r"^/annuaire$", organisations),
    (r"^/annuaire/organisation/" + _ID.format("org_id") + r"$", organisation),
    (r"^/annuaire/services$", services),
    (r"^/annuaire/service/" + _ID.format("service_id") + r"$", service),
]
