"""Serve the newest published database without restarting Datasette.

``publish`` replaces ``tissu-open.db`` with ``os.replace`` (a new inode). Datasette keeps one
SQLite connection per thread per database name, opened with ``immutable=1``, so it would keep
reading the old file until restarted. :class:`ReloadingDatabase` checks the file's identity at
most once per ``CHECK_INTERVAL`` seconds and, when it changed, opens fresh connections (and
forgets cached counts and hash). Connection handling mirrors ``datasette.database.Database``
0.65 (https://docs.datasette.io/en/0.65/internals.html#database-class).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from typing import Any

from datasette import hookimpl
from datasette.database import Database, connections

CHECK_INTERVAL = 1.0
#: How long a read run by :meth:`ReloadingDatabase.execute_here` may keep the event loop.
HERE_BUDGET_MS = 25.0


class TooLongHere(Exception):
    """A read run in the event loop went over its budget and was interrupted."""
DATABASE_NAME = "tissu-open"


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class ReloadingDatabase(Database):
    """A file database that follows atomic replacements of its file."""

    def __init__(self, ds: Any, path: str, is_mutable: bool = False) -> None:
        super().__init__(ds, path=path, is_mutable=is_mutable)
        self._read_connection: sqlite3.Connection | None = None
        self._identity = _identity(path)
        self._generation = 0
        self._checked = time.monotonic()

    def refresh(self, force: bool = False) -> bool:
        """Notice a replaced file; returns True when a new generation starts."""
        now = time.monotonic()
        if not force and now - self._checked < CHECK_INTERVAL:
            return False
        self._checked = now
        identity = _identity(self.path)
        if identity is None or identity == self._identity:
            return False
        self._identity = identity
        self._generation += 1
        self.cached_hash = None
        self.cached_size = None
        self._cached_table_counts = None
        if self._read_connection is not None:
            self._read_connection.close()
            self._read_connection = None
        return True

    def execute_here(self, fn: Any, budget_ms: float | None = None) -> Any:
        """Run ``fn(connection)`` in the calling thread, on a read connection of this
        database kept for that purpose (reopened when the file is replaced); returns what
        ``fn`` returns and raises what it raises.

        For the short reads of the resident pages, called from the event loop: they skip the
        thread pool, where they would wait behind Datasette's own long queries (a search page
        counting and faceting 100 000 rows) and pay two thread switches, which on a loaded
        machine cost more than the reads themselves. The loop waits meanwhile, so SQLite is
        interrupted once ``fn`` has run ``budget_ms`` (default :data:`HERE_BUDGET_MS`) and
        :class:`TooLongHere` is raised: run it in the pool instead (:meth:`execute_fn`).
        """
        self.refresh()
        if self._read_connection is None:
            conn = self.connect()
            self.ds._prepare_connection(conn, self.name)
            self._read_connection = conn
        connection = self._read_connection
        deadline = time.perf_counter() + (budget_ms or HERE_BUDGET_MS) / 1000
        connection.set_progress_handler(lambda: int(time.perf_counter() > deadline), 1000)
        try:
            return fn(connection)
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc) and time.perf_counter() > deadline:
                raise TooLongHere(str(exc)) from exc
            raise
        finally:
            connection.set_progress_handler(None, 0)

    async def execute_fn(self, fn: Any) -> Any:
        self.refresh()
        if self.ds.executor is None:
            return await super().execute_fn(fn)
        key = f"{self.name}@{self._generation}"
        prefix = f"{self.name}@"

        def in_thread() -> Any:
            conn = getattr(connections, key, None)
            if not conn:
                for attr in [a for a in vars(connections) if a.startswith(prefix) and a != key]:
                    old = getattr(connections, attr)
                    delattr(connections, attr)
                    if old in self._all_file_connections:
                        self._all_file_connections.remove(old)
                    old.close()
                conn = self.connect()
                self.ds._prepare_connection(conn, self.name)
                setattr(connections, key, conn)
            return fn(conn)

        return await asyncio.get_event_loop().run_in_executor(self.ds.executor, in_thread)


@hookimpl
def startup(datasette: Any) -> None:
    """Swap the published database for a :class:`ReloadingDatabase` on the same file."""
    database = datasette.databases.get(DATABASE_NAME)
    if database is None or not database.path or isinstance(database, ReloadingDatabase):
        return
    replacement = ReloadingDatabase(datasette, path=database.path,
                                    is_mutable=database.is_mutable)
    datasette.remove_database(DATABASE_NAME)
    datasette.add_database(replacement, name=DATABASE_NAME)
