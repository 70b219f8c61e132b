"""One fork server per process for the parsing children and the doctor's checks
(connectors/processes.py).

Whichever of a harvest's ParsePool and the doctor's Sandbox starts the fork server, the other's
children find every module of the one preload list imported; the server is stopped after a
harvest when no other child of it runs, and starts again when next needed. Each scenario runs in
a fresh interpreter: the fork server is one per process, and this test process's may have been
started by another test already.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors import processes
from connectors.base import ParseResult

# not tests.conftest: the children import this module, and must not import what they report
ROOT = Path(__file__).resolve().parent.parent


# --- functions run in the children (module level: picklable by name) -------------------------
def preloaded() -> list[str]:
    """The modules of the preload list present in this child, before it imports any of them."""
    return [name for name in processes.PRELOAD if name in sys.modules]


def preloaded_parser(data: bytes, source_id: str) -> ParseResult:
    """A parser (imported by name in a parsing child) whose title lists :func:`preloaded`."""
    return ParseResult(title=" ".join(preloaded()))


def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def run_script(body: str) -> str:
    """Run ``body`` in a fresh interpreter at the project root; its standard output."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(body)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    return result.stdout


SCRIPTS = {
    # the pool starts the server (its own list had neither the doctor nor lingua), then a
    # check runs while the pool's child is still up: the same server
    "pool": """
        from connectors import processes
        from connectors.base import ParsePool
        from connectors.sandbox import Sandbox

        with ParsePool(1) as pool:
            print(pool.parse(("tests.test_processes", "preloaded_parser"), b"", "x", 60).title)
            server = processes.server_pid()
            box = Sandbox(start_method="forkserver")
            print(" ".join(box.run(processes_preloaded)))
            print(processes.server_pid() == server)
            box.close()
    """,
    # a check starts it (its spare child stays up), then a harvest's pool parses
    "sandbox": """
        from connectors import processes
        from connectors.base import ParsePool
        from connectors.sandbox import Sandbox

        box = Sandbox(start_method="forkserver")
        print(" ".join(box.run(processes_preloaded)))
        server = processes.server_pid()
        with ParsePool(1) as pool:
            print(pool.parse(("tests.test_processes", "preloaded_parser"), b"", "x", 60).title)
        print(processes.server_pid() == server)
        box.close()
    """,
}


@pytest.mark.parametrize("first", ["pool", "sandbox"])
def test_the_fork_server_preloads_one_list_whoever_starts_it(first):
    script = "from tests.test_processes import preloaded as processes_preloaded\n"
    lines = run_script(script + textwrap.dedent(SCRIPTS[first])).splitlines()
    assert lines == [" ".join(processes.PRELOAD)] * 2 + ["True"]


def test_a_harvests_pool_stops_the_fork_server_it_leaves_idle():
    output = run_script("""
        import os
        from connectors import processes
        from connectors.base import ParsePool
        from connectors.sandbox import Sandbox

        import time

        def alive(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            return True

        def stopped():  # the pool stops it on a side thread
            deadline = time.monotonic() + 30
            while processes.server_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            return processes.server_pid()

        with ParsePool(1) as pool:
            assert not pool.parse(("connectors.feeds", "parse_feed"), b"<rss/>", "a", 60).records
            server = processes.server_pid()
            print("pendant", server is not None and alive(server))
        print("après", stopped(), alive(server))
        # a check's spare child keeps it: the pool leaves it running
        box = Sandbox(start_method="forkserver")
        box.prepare()
        with ParsePool(1) as pool:
            pool.parse(("connectors.feeds", "parse_feed"), b"<rss/>", "b", 60)
        time.sleep(1)  # time for the pool's side thread to (not) stop it
        server = processes.server_pid()
        print("vérification prête", server is not None and alive(server))
        print("vérification", box.run(os.getpid) != os.getpid())
        box.close()
        print("arrêt", processes.stop_server_if_idle(), processes.server_pid(), alive(server))
    """)
    assert output.splitlines() == [
        "pendant True",
        "après None False",
        "vérification prête True",
        "vérification True",
        "arrêt True None False",
    ]


def test_a_stopped_fork_server_starts_again_for_the_next_harvest():
    from connectors.base import ParsePool

    with ParsePool(1) as pool:
        assert pool.parse(("tests.test_processes", "preloaded_parser"), b"", "a", 60).title
    # stopped by the pool's side thread unless another child of this process runs; the next
    # pool starts it again, possibly while it is being stopped
    with ParsePool(1) as pool:
        result = pool.parse(("tests.test_processes", "preloaded_parser"), b"", "b", 60)
    assert result.title.split() == list(processes.PRELOAD)


def test_a_child_is_stopped_by_closing_its_pipe_or_killed_after_the_wait(tmp_path: Path):
    context = processes.context()
    # waiting on its pipe: it reads EOF and ends by itself, code 0
    process, connection = processes.start_child(context, _wait_on_pipe, (), "tissu-test")
    assert connection.recv() == "prêt"
    assert processes.stop_child(process, connection, wait=10) == 0
    # busy: killed after the wait
    process, connection = processes.start_child(context, _busy, (), "tissu-test")
    assert connection.recv() == "prêt"
    started = time.monotonic()
    assert processes.stop_child(process, connection, wait=0.2) == -9  # SIGKILL
    assert time.monotonic() - started < 5
    assert not process.is_alive()
    # already ended, pipe already closed: nothing to do, no error
    assert processes.stop_child(process, connection) == -9


def _wait_on_pipe(connection) -> None:  # type: ignore[no-untyped-def]
    connection.send("prêt")
    try:
        connection.recv()
    except EOFError:
        return


def _busy(connection) -> None:  # type: ignore[no-untyped-def]
    connection.send("prêt")
    while True:
        time.sleep(0.1)
