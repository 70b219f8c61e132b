"""The child processes of Tissu: one fork server per process, one way to stop a child.

Two parts of Tissu run work in child processes started from the standard library's
``forkserver`` (:mod:`multiprocessing`): a harvest's parsing children (:class:`connectors.base.
ParsePool`) and the feed doctor's sandboxed checks (:class:`connectors.sandbox.Sandbox`). A
process has only one fork server, and the modules it imports first (its *preload*) are set
by whoever starts it: this module sets one list, :data:`PRELOAD`, what both need, so that a
check after a harvest (or a harvest after a check) finds its modules imported, whichever
started the server.

:func:`stop_child` ends a child the same way for both; :func:`stop_server_if_idle` stops the
fork server (~90 MB resident) once no child runs, e.g. after the first harvest of ``tissu run``,
whose process then runs the scheduler for days (one source at a time, without parsing
children). The server starts again when next needed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

#: Modules the fork server imports once, before it forks any child: the parsers and the
#: preparation of a harvest's events (ParsePool), then what the doctor's checks read with
#: (Sandbox). Together they cost about as much as either list (~0.9 s, ~90 MB resident),
#: since the doctor imports the parsers and the normalisation. A module that cannot be
#: imported is skipped by the server (its children import it when they need it).
PRELOAD = (
    "connectors.ical", "connectors.feeds", "normalize.pipeline",
    "connectors.doctor", "lingua", "sqlite3", "sqlalchemy.dialects.sqlite",
)

#: The contexts children are started from (``fork``: the sandbox's, from a one-thread process).
Context = ForkServerContext | SpawnContext | ForkContext

_LOCK = threading.Lock()
#: Children being started or work that will start one soon (:func:`in_use`): the fork server
#: is not stopped meanwhile.
_users = 0


def context() -> ForkServerContext | SpawnContext:
    """The ``forkserver`` context, its preload set to :data:`PRELOAD`; ``spawn`` where the
    platform has no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(list(PRELOAD))
    return forkserver


def start_server_soon() -> None:
    """Start the fork server now, on a side thread, so that its imports (~1 s) overlap with the
    caller's work before its first child. Never raises."""
    from multiprocessing import forkserver

    def start() -> None:
        with contextlib.suppress(Exception), in_use():
            forkserver.ensure_running()

    if context().get_start_method() == "forkserver":
        threading.Thread(target=start, name="tissu-forkserver", daemon=True).start()


@contextlib.contextmanager
def in_use() -> Iterator[None]:
    """While inside, :func:`stop_server_if_idle` leaves the fork server running (e.g. between
    the end of one child and the start of its replacement)."""
    global _users
    with _LOCK:
        _users += 1
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1


def start_child(context: Context, target: Callable[..., object], args: tuple[Any, ...],
                name: str) -> tuple[BaseProcess, Connection]:
    """Start ``target(connection, *args)`` in a daemonic child of ``context``.

    Returns the process and the parent's end of a duplex pipe whose other end is the child's
    first argument (closed here, in the parent, so that the child's death reads as EOF).

    Raises:
        OSError: the child could not be started (and whatever ``Process.start`` raises).
    """
    connection, child_end = context.Pipe()
    process = context.Process(target=target, args=(child_end, *args), name=name, daemon=True)
    try:
        with in_use():
            process.start()
    finally:
        child_end.close()
    return process, connection


def stop_child(process: BaseProcess, connection: Connection, wait: float = 0.0) -> int | None:
    """Close the pipe (a child waiting on it reads EOF and ends), give the child ``wait``
    seconds to end, kill it (SIGKILL) if it has not, and reap it.

    Returns its exit code (negative: the signal that ended it; None if it could not be
    reaped within 5 s of the kill). Never raises for a child already ended or a pipe already
    closed.
    """
    with contextlib.suppress(OSError):
        connection.close()
    if wait > 0:
        process.join(wait)
    if process.is_alive():
        process.kill()
    process.join(5)
    return process.exitcode


def stop_server_if_idle() -> bool:
    """Stop this process's fork server when no child runs and none is being started.

    Returns True when it was stopped (or was not running), False when it was left running. The
    server starts again with the next child. The standard library stops it only at exit;
    ``ForkServer._stop`` is the method its own tests use. A child still running holds the
    server's « alive » pipe open (a server's child, or one forked from this process), and the
    server writes the exit code of each of its children: stopping the server under a child
    would block here and lose that code, hence the check, done under the lock that
    :func:`in_use` and :func:`start_child` take.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is None:
        return False
    with _LOCK:
        # any child, not only the server's: a child forked from this process (the sandbox's
        # ``fork`` runs, publish.exports) inherited the « alive » pipe too
        if _users or multiprocessing.active_children():
            return False
        stop()
    return True


def stop_server_soon() -> None:
    """:func:`stop_server_if_idle` on a side thread: the server's own exit (its interpreter
    unloading ~90 MB of modules) takes about a second that the caller need not wait for. A child
    started meanwhile waits for the stop to end, then starts the server again. Never raises."""

    def stop() -> None:
        with contextlib.suppress(Exception):
            stop_server_if_idle()

    threading.Thread(target=stop, name="tissu-forkserver-stop", daemon=True).start()


def server_pid() -> int | None:
    """The process id of this process's fork server, None when it is not running."""
    from multiprocessing import forkserver

    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
