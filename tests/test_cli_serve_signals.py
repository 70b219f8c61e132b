"""``tissu serve`` stops its Datasette child on SIGTERM or SIGINT (tissu.supervise).

The trial: ``kill -TERM <pid of tissu serve>`` ended tissu alone; its ``python -m datasette
serve`` child stayed, orphaned, holding the port. Here a real ``tissu serve`` serves a small
published database on a free 127.0.0.1 port, gets the signal, and must be gone within seconds
with its child and the port freed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NOW, ROOT, SAMPLES
from tests.test_publish import make_site, stop
from tissu.cli import port_problem


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A working store (SQLite) with one harvested source, published: (db url, publish dir)."""
    tmp = tmp_path_factory.mktemp("serve")
    served = make_site(tmp, {"lisbon.ics": (
        (SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes(), {})})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
        patch.setenv("TISSU_HOST_DELAY", "0")
        try:
            served.harvest(NOW)
            served.publish(NOW)
        finally:
            stop(served)
    return served.settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # « pid (comm) state ppid … »: comm may hold spaces and parentheses
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_datasette_and_frees_the_port(site, signum, tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        tissu = subprocess.Popen(
            [sys.executable, "-m", "tissu.cli", "serve", "--db", site.database_url,
             "--out", str(site.publish_dir), "--registry", str(site.registry),
             "--port", str(port)],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
            env=os.environ | {"COLUMNS": "120"})
    datasette = None
    try:
        deadline = time.monotonic() + 60  # Datasette's start on a busy 2-core machine
        while not _listening(port):
            assert tissu.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        children = _children(tissu.pid)
        assert len(children) == 1, children  # python -m datasette serve
        datasette = children[0]
        assert "datasette" in Path(f"/proc/{datasette}/cmdline").read_text()

        started = time.monotonic()
        tissu.send_signal(signum)
        assert tissu.wait(timeout=15) == 0, log.read_text()
        while _alive(datasette) and time.monotonic() - started < 15:
            time.sleep(0.05)
        stopped_in = time.monotonic() - started
        assert not _alive(datasette)
        assert not _listening(port)
        assert port_problem("127.0.0.1", port) is None  # « tissu serve » may listen there again
        assert stopped_in < 5, stopped_in
    finally:  # a failed run leaves nothing behind
        if tissu.poll() is None:
            tissu.kill()
            tissu.wait()
        if datasette is not None and _alive(datasette):
            os.kill(datasette, signal.SIGKILL)
    assert "Tissu est servi sur http://127.0.0.1:" in log.read_text()


def _supervisor(tmp_path: Path, shell: str, grace: float) -> tuple[subprocess.Popen[bytes], int]:
    """A process running tissu.supervise.run_until_stopped(sh -c ``shell``); ``shell`` writes
    the pid of a grandchild (``sleep``) to ``pid``. Returns the supervisor and that pid."""
    pid_file = tmp_path / "pid"
    code = ("import os, sys; from tissu.supervise import run_until_stopped; "
            f"sys.exit(run_until_stopped(['sh', '-c', {shell!r}], dict(os.environ), "
            f"grace={grace}))")
    supervisor = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=os.environ |
                                  {"PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert supervisor.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)  # the shell reaches its « wait »
    return supervisor, int(pid_file.read_text())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_what_the_child_started_is_stopped_with_it(tmp_path):
    supervisor, grandchild = _supervisor(tmp_path, "sleep 300 & echo $! > pid; wait", 10)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=10) == 0
    time.sleep(0.2)  # the orphaned grandchild is reaped by init
    assert not _alive(grandchild)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path):
    supervisor, grandchild = _supervisor(
        tmp_path, "trap '' TERM; sleep 300 & echo $! > pid; wait", 0.5)
    started = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=10) == 0
    assert 0.5 <= time.monotonic() - started < 5
    time.sleep(0.2)
    assert not _alive(grandchild)


def test_a_child_that_exits_on_its_own_gives_its_code(tmp_path):
    from tissu.supervise import run_until_stopped

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert run_until_stopped(["sh", "-c", "exit 3"], dict(os.environ)) == 3
    assert run_until_stopped(["sh", "-c", "kill -KILL $$"], dict(os.environ)) == 128 + 9
    # the handlers are put back
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
