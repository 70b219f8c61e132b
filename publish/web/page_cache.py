"""Rendered resident pages kept in memory, per published file.

The published database is an immutable file (``publish`` writes a new one and renames it over
the old, publish/web/reload.py follows it). A resident page is then a function of the request
(path, query string, language, large print, kiosk mode, host), of the file, and of the clock:
"this week" leaves out the sessions already over and starts today. Each entry therefore keeps
the moment it was rendered and the first moment its page could change (the earliest end of a
session it lists, the next midnight in Europe/Paris, the moment a filter option runs out of
coming events), computed by the view from the same queries. An entry is served only while
``rendered_at <= now < valid_until`` and only for the file it was rendered from: the cache is
emptied as soon as a request sees another file, and an entry rendered from an older file is
never stored under a newer one.

Entries carry a strong ``ETag`` (SHA-256 of the body) so that a browser revalidating with
``If-None-Match`` gets ``304 Not Modified`` (RFC 9110 §13.1.2, §15.4.5).

Bounded: at most ``MAX_ENTRIES`` pages and ``MAX_BYTES`` bytes of bodies, least recently used
first out. ``TISSU_PAGE_CACHE=0`` turns it off (every page rendered afresh).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

MAX_ENTRIES = 2048
MAX_BYTES = 64 * 1024 * 1024


def enabled() -> bool:
    """False when ``TISSU_PAGE_CACHE`` is ``0``, ``off`` or ``non`` (read on each request)."""
    return os.environ.get("TISSU_PAGE_CACHE", "1").strip().lower() not in ("0", "off", "non",
                                                                           "false", "no")


@dataclass(frozen=True)
class Entry:
    """One rendered page: UTF-8 body, HTTP status, strong ETag, validity window (aware UTC),
    and the response headers to send again (``headers``, raw ASGI pairs; empty for the
    resident pages, which set theirs)."""

    body: bytes
    status: int
    etag: str
    rendered_at: dt.datetime
    valid_until: dt.datetime
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def fresh(self, now: dt.datetime) -> bool:
        """True when the page shown at ``now`` (aware) is this one."""
        return self.rendered_at <= now < self.valid_until


def make_entry(html: str, status: int, rendered_at: dt.datetime,
               valid_until: dt.datetime) -> Entry:
    """An :class:`Entry` for ``html``; the ETag is ``"<first 32 hex of SHA-256>"`` of the body."""
    body = html.encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Entry(body, status, etag, rendered_at, valid_until)


class PageCache:
    """A bounded LRU of :class:`Entry` for one published file at a time (thread-safe)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._bytes = 0
        self._file: Hashable | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every page."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get(self, file: Hashable, key: Hashable, now: dt.datetime) -> Entry | None:
        """The page for ``key`` rendered from ``file`` and still right at ``now``, or None.

        ``file`` identifies the published file (path, inode, mtime, size); seeing another one
        empties the cache first.
        """
        with self._lock:
            if file != self._file:
                self._entries.clear()
                self._bytes = 0
                self._file = file
            entry = self._entries.get(key)
            if entry is None or not entry.fresh(now):
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def peek(self, file: Hashable, key: Hashable) -> Entry | None:
        """The page kept for ``key`` from ``file``, even when no longer fresh; None if there is
        none (or ``file`` is not the file being served). Counts neither a hit nor a miss."""
        with self._lock:
            return self._entries.get(key) if file == self._file else None

    def put(self, file: Hashable, key: Hashable, entry: Entry) -> None:
        """Keep ``entry`` for ``key`` when ``file`` is still the file being served.

        A page rendered while another request had already seen a newer file is dropped.
        """
        if entry.valid_until <= entry.rendered_at or len(entry.body) > self.max_bytes // 8:
            return
        with self._lock:
            if file != self._file:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._entries[key] = entry
            self._bytes += len(entry.body)
            while self._entries and (len(self._entries) > self.max_entries
                                     or self._bytes > self.max_bytes):
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.body)


#: The cache of the resident pages (publish/web/resident.py).
PAGES = PageCache()
