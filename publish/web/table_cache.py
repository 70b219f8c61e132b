"""Datasette's full-text search pages of the published file, kept in memory once served.

The published database is an immutable file (``datasette serve -i``; ``publish`` writes a new
one and renames it over the old, publish/web/reload.py follows it). A table page
(``/tissu-open/<table>`` and ``/tissu-open/<table>.json``, with its filters and facets) reads
nothing but that file and the URL: SQL on a table (not a view or a canned query, which may
read the clock through ``'now'``) answers the same as long as the file is the same. So a
search page served once is served again, byte for byte (the time its queries took included),
from memory until another file is published, like a cache in front of Datasette would
(docs/deploy.md). A search that was never asked before is still computed by Datasette, its
count and facets included: nothing is left out or estimated.

Only searches (``_search=`` or ``_search_<column>=``, not empty) are kept: they are what
costs Datasette seconds (counting and faceting up to every event of the file), and Datasette's
plain table pages stay as Datasette serves them (the W3 benchmark's reference, BENCHMARKS.md).

Kept only when the answer is the file's: a ``GET`` of a table of the published database,
``200`` with no ``Set-Cookie``, no ``_timelimit`` or ``_trace`` asked; requests with
credentials (``Authorization``, a ``ds_actor`` cookie) are never served from it. A page on
which Datasette says that facets timed out (``facet_time_limit_ms``: a matter of load, not of
the file) is kept ``TIMED_OUT_SECONDS`` only, saying so, then computed again. The key is the
file, the path, the query string, the ``Host`` and the scheme (Datasette writes absolute URLs
in its JSON).

Bounded like the resident pages' cache (publish/web/page_cache.py, the same class): at most
``MAX_ENTRIES`` pages and ``MAX_BYTES`` bytes, least recently used first out; a page over an
eighth of ``MAX_BYTES`` is not kept. ``TISSU_PAGE_CACHE=0`` turns it off too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Any

from publish.web import page_cache

DATABASE = "tissu-open"
MAX_ENTRIES = 512
MAX_BYTES = 64 * 1024 * 1024
#: A page where Datasette says some facets timed out (a matter of load, not of the file) is
#: served again for this long only, then computed afresh.
TIMED_OUT_SECONDS = 60
#: Datasette's table page and its JSON: ``/tissu-open/<table>`` or ``/tissu-open/<table>.json``
#: (a table name never contains ``/``; ``%``-encoded names are compared decoded).
_TABLE_PATH = re.compile(rf"^/{re.escape(DATABASE)}/([^/]+?)(\.json)?$")
_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)
#: Query-string parameters whose pages depend on more than the file.
_UNCACHED_ARGS = re.compile(rb"(?:^|&)_(?:timelimit|trace)=")
#: A full-text search with words: ``_search=…`` or ``_search_<column>=…``.
_SEARCH_ARG = re.compile(rb"(?:^|&)_search(?:_[^=&]+)?=[^&]")
#: What Datasette writes when a facet was cut short by ``facet_time_limit_ms``.
_TIMED_OUT = (b'class="facets-timed-out"', b'"facets_timed_out": ["')

TABLE_PAGES = page_cache.PageCache(MAX_ENTRIES, MAX_BYTES)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> bytes:
    return b", ".join(value for key, value in scope.get("headers", []) if key.lower() == name)


async def _cacheable_table(datasette: Any, scope: Scope) -> bool:
    """True when the request asks for a full-text search of a table of the published file,
    without credentials or arguments that make the page depend on more than the file."""
    if scope.get("type") != "http" or scope.get("method") != "GET":
        return False
    match = _TABLE_PATH.match(scope.get("path") or "")
    query = scope.get("query_string") or b""
    if match is None or _UNCACHED_ARGS.search(query) or not _SEARCH_ARG.search(query):
        return False
    if _header(scope, b"authorization") or b"ds_actor=" in _header(scope, b"cookie"):
        return False
    try:
        database = datasette.get_database(DATABASE)
    except KeyError:
        return False
    if not database.is_mutable and match.group(1) in await _tables(database):
        queries = (datasette.metadata("queries", database=DATABASE) or {})
        return match.group(1) not in queries
    return False


_TABLES: dict[tuple[object, ...], frozenset[str]] = {}


async def _tables(database: Any) -> frozenset[str]:
    """The tables (not views) of an immutable database, read once per file."""
    key = (database.path, getattr(database, "_identity", None))
    known = _TABLES.get(key)
    if known is None:
        known = frozenset(await database.table_names())
        _TABLES.clear()  # one file served at a time
        _TABLES[key] = known
    return known


async def _send_entry(send: Send, entry: page_cache.Entry) -> None:
    await send({"type": "http.response.start", "status": entry.status,
                "headers": list(entry.headers)})
    await send({"type": "http.response.body", "body": entry.body})


#: Pages being computed now, by key: the requests for the same page wait for that one.
_COMPUTING: dict[Hashable, asyncio.Future[page_cache.Entry | None]] = {}


def wrap(datasette: Any) -> Callable[[App], App]:
    """The ``asgi_wrapper`` of the plugin: serve search pages from :data:`TABLE_PAGES`.

    One request computes a page missing from the cache; the requests for the same page that
    arrive meanwhile wait for it (or, when an expired copy from the same file is there, are
    served that copy) instead of computing it again, so that a crowd asking for a page that
    takes Datasette a second does not make it compute that page once per visitor.
    """
    from publish.web import resident

    def wrapper(app: App) -> App:
        async def cached_app(scope: Scope, receive: Receive, send: Send) -> None:
            if not page_cache.enabled() or not await _cacheable_table(datasette, scope):
                await app(scope, receive, send)
                return
            file = resident._file_identity(datasette)
            if file is None:
                await app(scope, receive, send)
                return
            key = (file, scope["path"], scope.get("query_string") or b"",
                   _header(scope, b"host"), scope.get("scheme", "http"))
            now = dt.datetime.now(dt.UTC)
            entry = TABLE_PAGES.get(file, key, now)
            if entry is not None:
                await _send_entry(send, entry)
                return
            computing = _COMPUTING.get(key)
            if computing is not None:
                entry = TABLE_PAGES.peek(file, key) or await asyncio.shield(computing)
                if entry is not None:
                    await _send_entry(send, entry)
                    return
                await app(scope, receive, send)  # that request was not kept: compute
                return
            computing = _COMPUTING[key] = asyncio.get_running_loop().create_future()
            entry = None
            try:
                entry = await _compute(app, scope, receive, send, now)
            finally:  # waiting requests get the page, or None and compute it themselves
                del _COMPUTING[key]
                computing.set_result(entry)
            if entry is not None:
                TABLE_PAGES.put(file, key, entry)
        return cached_app
    return wrapper


async def _compute(app: App, scope: Scope, receive: Receive, send: Send,
                   now: dt.datetime) -> page_cache.Entry | None:
    """Let Datasette answer (sent as it comes) and return the answer as an entry to keep, or
    None when it is not to be kept (not 200, sets a cookie)."""
    start: Message = {}
    chunks: list[bytes] = []

    async def keep(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
        await send(message)

    await app(scope, receive, keep)
    headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
    body = b"".join(chunks)
    if start.get("status") != 200 or any(k.lower() == b"set-cookie" for k, _ in headers):
        return None
    until = _NEVER
    if any(marker in body for marker in _TIMED_OUT):
        until = now + dt.timedelta(seconds=TIMED_OUT_SECONDS)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return page_cache.Entry(body, 200, etag, now, until, tuple(headers))
