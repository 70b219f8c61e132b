"""Run a long-lived child process (Datasette) until it exits or we are asked to stop.

``tissu serve`` used ``subprocess.call``: SIGTERM ended tissu at once (Python's default) and left
its ``python -m datasette serve`` child running, orphaned, holding the port. Here SIGTERM and
SIGINT are caught and passed on to the child's whole process group (the child is started in a
session of its own, so that whatever it starts is stopped with it), then tissu returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence

#: Seconds a stopped child has to exit after SIGTERM before its process group gets SIGKILL.
STOP_GRACE_SECONDS = 10.0
#: How often the child is polled while waiting (seconds).
POLL_SECONDS = 0.2


def stop_group(child: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process group led by ``child``, then SIGKILL it after ``grace`` seconds.

    ``child`` must have been started with ``start_new_session=True`` (its pid is its group's
    id). A group already gone is not an error. Returns once ``child`` has been reaped.
    """
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:  # the whole group has exited already
            pass
        try:
            child.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # the leader has exited; a member that ignored SIGTERM (the leader's own children) still
    # gets SIGKILL, so that nothing of the group keeps the port
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_until_stopped(command: Sequence[str], env: dict[str, str],
                      stop: threading.Event | None = None,
                      grace: float = STOP_GRACE_SECONDS) -> int:
    """Run ``command`` (a list of arguments) until it exits, or until SIGTERM or SIGINT.

    The child runs in a new session (its own process group). SIGTERM or SIGINT received by this
    process, or ``stop`` set by another thread, stops the child's whole group
    (:func:`stop_group`: SIGTERM, then SIGKILL after ``grace`` seconds). The previous signal
    handlers are put back before returning. Must be called from the main thread (signal
    handlers are installed).

    Returns:
        0 when stopped by a signal or by ``stop``; else the child's exit code (a child killed
        by a signal N: 128 + N, as a shell says it).
    """
    stopping = stop if stop is not None else threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(list(command), env=env, start_new_session=True)
        try:
            while child.poll() is None and not stopping.wait(POLL_SECONDS):
                pass
        finally:
            stop_group(child, grace)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopping.is_set():
        return 0
    code = int(child.returncode or 0)
    return 128 - code if code < 0 else code
