"""Run untrusted work in a child process bounded by wall-clock time and memory, then kill it.

Parsing and normalising a file given by a stranger (the feed doctor behind ``tissu check`` and the
registration form's « Vérifier ») can take minutes or gigabytes: recurrence expansion is bounded by
counts, not time, and a thread running a parser cannot be stopped (``connectors.base.
parse_with_time_limit``). :class:`Sandbox` runs a picklable function in a child process instead:

* the child's address space is limited with ``resource.RLIMIT_AS`` (``setrlimit(2)``): an
  allocation past the limit fails (``MemoryError`` in Python), the child reports it and exits;
* the parent waits at most ``Limits.seconds`` for the answer, then kills the child (SIGKILL);
* every failure is a :class:`SandboxError` whose message is plain French and names the limit,
  in seconds or megabytes.

How many runs go at once is the caller's to bound: the doctor gives at most
``TISSU_CHECK_MAX_RUNNING`` checks a place and tells the next one to come back (« busy »).

How the child starts (standard library :mod:`multiprocessing`, no other package):

* from a process with other threads (Datasette/uvicorn serving the form, pytest with its local
  HTTP server), never by ``fork`` — a thread may hold a lock at the moment of the fork — but from
  the ``forkserver``: a clean interpreter started once, which imports the modules of
  :data:`connectors.processes.PRELOAD` (shared with a harvest's parsing children) and then forks
  one child per run. A *spare* child is kept ready: it has already run ``warm_up`` (the first
  reading of the vocabularies, places and language models: ~0.5 s) and waits for its one job; a
  new spare is started after each run. Each run still gets a fresh process: nothing read from one
  file stays for the next.
* from a process with a single thread (``tissu check`` in a terminal) whose address space is
  under half the memory limit, by ``fork``: the child shares what the parent already imported,
  with no second interpreter to start.

The limit counts the child's whole address space, including what it inherited (~200–250 MB of
interpreter and libraries for the doctor's warmed child); it is not the memory the file may use
on top. That is why a big parent does not fork: its child would start near the limit. A fork
forced from a big parent (``start_method="fork"``) gets half the limit above what it inherited
(:func:`fork_limit`), never a limit it already exceeds.

Settings of the doctor's runs (:class:`tissu.settings.Settings`): ``check_time_limit``
(``TISSU_CHECK_TIME_LIMIT``, seconds, default 20) and ``check_memory_mb``
(``TISSU_CHECK_MEMORY_MB``, default 1024); see :meth:`Limits.from_settings`. The ``TISSU_*``
environment of the caller at the time of the run is applied in the child (the forkserver keeps
the one of its start).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, Any, TypeVar

from connectors import processes

if TYPE_CHECKING:
    from tissu.settings import Settings

T = TypeVar("T")

DEFAULT_SECONDS = 20.0
DEFAULT_MEMORY_MB = 1024
#: Longest wait for a child to be ready (interpreter start, imports, warm-up). Not counted in
#: ``Limits.seconds``, which bounds the work on the file only.
STARTUP_SECONDS = 60.0
#: An error in a child whose peak address space reached this share of its limit is reported as
#: the memory limit.
MEMORY_NEAR = 0.9
_READY = "prêt"
_STARTED = "commencé"
_ENV_PREFIX = "TISSU_"


@dataclass(frozen=True)
class Limits:
    """Bounds of one sandboxed run.

    ``seconds``: wall-clock time from the start of the job in the child (its arguments read) to
    its answer. ``memory_mb``:
    ``RLIMIT_AS`` of the child in MiB (1 Mo = 1 048 576 bytes); 0 means no memory limit.
    """

    seconds: float = DEFAULT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB

    @property
    def memory_bytes(self) -> int:
        """``memory_mb`` in bytes (0: unlimited)."""
        return self.memory_mb * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The doctor's limits: ``settings.check_time_limit`` (``TISSU_CHECK_TIME_LIMIT``) and
        ``settings.check_memory_mb`` (``TISSU_CHECK_MEMORY_MB``)."""
        return cls(seconds=settings.check_time_limit, memory_mb=settings.check_memory_mb)

    @classmethod
    def from_env(cls) -> Limits:
        """:meth:`from_settings` of the settings the environment gives now (20 s and 1024 Mo
        when unset).

        Raises:
            ValueError: a ``TISSU_*`` setting with a bad value, e.g. a ``TISSU_CHECK_TIME_LIMIT``
                that is not a positive number (message in French, naming the variable).
        """
        from tissu.settings import get_settings

        return cls.from_settings(get_settings())


class SandboxError(Exception):
    """A sandboxed run gave no result. ``str(error)`` is plain French; ``kind`` says why.

    ``kind``: ``time`` (time limit), ``memory`` (memory limit), ``crash`` (the child died
    without answering), ``error`` (the function raised in the child).
    """

    kind = "error"


class TimeLimitExceeded(SandboxError):
    """The child ran past ``Limits.seconds`` and was killed."""

    kind = "time"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"traitement interrompu après {seconds:g} s (limite de temps "
                         f"{seconds:g} s dépassée)")
        self.seconds = seconds


class MemoryLimitExceeded(SandboxError):
    """The child needed more memory than ``Limits.memory_mb``."""

    kind = "memory"

    def __init__(self, memory_mb: int) -> None:
        super().__init__(f"traitement interrompu : il demande plus de {memory_mb} Mo de "
                         f"mémoire (limite {memory_mb} Mo)")
        self.memory_mb = memory_mb


class ChildCrashed(SandboxError):
    """The child ended without an answer (killed by a signal, or exited)."""

    kind = "crash"


class ChildError(SandboxError):
    """The function raised in the child; the message names the exception."""

    kind = "error"


def single_threaded() -> bool:
    """True when this process has one thread, native ones included (Linux ``/proc``)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _tissu_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(_ENV_PREFIX)}


def _apply_env(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(_ENV_PREFIX) and k not in env]:
        del os.environ[key]
    os.environ.update(env)


def _child_main(conn: Connection, warm_up: Callable[[], object] | None,
                job: tuple[Any, ...] | None) -> None:
    """The child: warm up, take one job (given, or received after saying « prêt »), answer.

    A job given at the start means a child forked from the caller (see :func:`fork_limit`)."""
    forked = job is not None
    if job is None:
        if warm_up is not None:
            try:
                warm_up()
            except Exception:  # noqa: BLE001, S110 - a failed warm-up only costs time
                pass
        try:
            conn.send(_READY)
            job = conn.recv()  # imports the function's module if the forkserver did not
            conn.send(_STARTED)
        except (EOFError, OSError):  # the parent went away or dropped this spare
            return
    fn, args, kwargs, memory_bytes, env = job
    _apply_env(env)
    # pickled before the limit: telling « out of memory » must not need memory
    out_of_memory = bytes(ForkingPickler.dumps(("memory", None)))
    if memory_bytes and forked:
        memory_bytes = fork_limit(memory_bytes, _vm_size())
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    outcome: tuple[str, Any] | None
    try:
        outcome = ("ok", fn(*args, **kwargs))
    except MemoryError:
        outcome = None
    except BaseException as exc:  # noqa: BLE001 - told to the parent, which raises ChildError
        # Near the limit, C code may fail otherwise than by MemoryError (SystemError « error
        # return without exception set », library errors): the peak tells it was memory.
        near_limit = memory_bytes and _peak_bytes() >= MEMORY_NEAR * memory_bytes
        outcome = None if near_limit else ("error", f"{type(exc).__name__}: {exc}")
    try:
        if outcome is None:
            conn.send_bytes(out_of_memory)
        else:
            conn.send(outcome)
    except MemoryError:
        conn.send_bytes(out_of_memory)
    except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
        conn.send(("error", f"résultat impossible à transmettre ({type(exc).__name__}: {exc})"))
    finally:
        conn.close()
    # nothing else to do: skip the interpreter's clean-up, which may itself lack memory
    os._exit(0)


def fork_limit(memory_bytes: int, inherited_bytes: int) -> int:
    """``RLIMIT_AS`` in bytes of a child forked from a parent of ``inherited_bytes`` (VmSize).

    A forked child starts with its parent's whole address space. The automatic choice forks only
    from a parent under half of ``memory_bytes``, which leaves the work at least half the limit;
    a child forked from a bigger parent (``start_method="fork"`` forced: a test process, a
    command that had already read much) gets the same room, half the limit above what it
    inherited, instead of a limit it already exceeds (every allocation would fail at once).
    Never below ``memory_bytes``.
    """
    return max(memory_bytes, inherited_bytes + memory_bytes // 2)


def _status_bytes(field: str) -> int:
    """A size of ``/proc/self/status`` (``VmPeak``, ``VmSize`` …) in bytes, or 0."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _peak_bytes() -> int:
    """This process's peak virtual memory size (``VmPeak``), or 0 where unknown."""
    return _status_bytes("VmPeak")


def _vm_size() -> int:
    """This process's virtual memory size (``VmSize``), or 0 where unknown."""
    return _status_bytes("VmSize")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class Sandbox:
    """Runs functions in child processes, one fresh child per run (see the module).

    Runs at once are not bounded here (the caller does it: :mod:`connectors.doctor`).

    The forkserver's modules are :data:`connectors.processes.PRELOAD`, whoever starts it.

    Args:
        warm_up: a picklable function without arguments that a spare child runs before its job
            (fills caches); its errors are ignored.
        start_method: ``fork`` or ``forkserver``; None chooses per run (``fork`` only when the
            process has a single thread and uses under half the memory limit).
        keep_spare: keep one warmed child waiting (forkserver only).
    """

    def __init__(self, *, warm_up: Callable[[], object] | None = None,
                 start_method: str | None = None, keep_spare: bool = True) -> None:
        if start_method not in {None, "fork", "forkserver"}:
            raise ValueError(f"méthode de démarrage inconnue : {start_method!r}")
        self.warm_up = warm_up
        self.start_method = start_method
        self.keep_spare = keep_spare
        self._lock = threading.Lock()
        self._spare: tuple[BaseProcess, Connection] | None = None

    def run(self, fn: Callable[..., T], /, *args: Any, limits: Limits | None = None,
            **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a child process, within ``limits``; its return value.

        ``fn``, the arguments and the result must be picklable (``fn`` a module-level function).

        Raises:
            TimeLimitExceeded: no answer within ``limits.seconds``; the child was killed.
            MemoryLimitExceeded: an allocation failed past ``limits.memory_mb``.
            ChildError: ``fn`` raised (the message names the exception).
            ChildCrashed: the child died without an answer, or could not start.
        """
        limits = limits or Limits()
        # the fork server stays up from the job's child to the spare that replaces it
        with processes.in_use():
            return self._run(fn, args, kwargs, limits)  # type: ignore[no-any-return]

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             limits: Limits) -> Any:
        job = (fn, args, kwargs, limits.memory_bytes, _tissu_env())
        method = self.start_method or ("fork" if single_threaded() and (
            not limits.memory_bytes or _vm_size() < limits.memory_bytes // 2) else "forkserver")
        process: BaseProcess
        if method == "fork":
            process, conn = processes.start_child(multiprocessing.get_context("fork"),
                                                  _child_main, (None, job), "tissu-sandbox")
        else:
            process, conn = self._take_spare()
        answered = False
        try:
            if method != "fork":
                self._hand_over(process, conn, job)
            deadline = time.monotonic() + limits.seconds
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeLimitExceeded(limits.seconds)
            try:
                kind, value = conn.recv()
            except (EOFError, OSError):
                raise self._crash(process, limits) from None
            answered = True
        finally:
            # it exits right after answering; otherwise it is killed at once
            _discard((process, conn), wait=1.0 if answered else 0.0)
            if method != "fork" and self.keep_spare:
                self._refill()
        if kind == "ok":
            return value
        if kind == "memory":
            raise MemoryLimitExceeded(limits.memory_mb)
        raise ChildError(f"erreur pendant le traitement : {value}")

    @staticmethod
    def _hand_over(process: BaseProcess, conn: Connection, job: tuple[Any, ...]) -> None:
        """Wait for the spare's « prêt », give it the job, wait until it has unpickled it."""
        for expected in (_READY, _STARTED):
            try:
                ready = conn.poll(STARTUP_SECONDS) and conn.recv() == expected
            except (EOFError, OSError):
                ready = False
            if not ready:
                raise ChildCrashed(f"le processus de vérification n'a pas démarré en "
                                   f"{STARTUP_SECONDS:g} s (code {process.exitcode})")
            if expected == _READY:
                conn.send(job)

    @staticmethod
    def _crash(process: BaseProcess, limits: Limits) -> ChildCrashed:
        process.join(1.0)
        code = process.exitcode
        if code is not None and code < 0:
            memory = (f", sans doute faute de mémoire (limite {limits.memory_mb} Mo)"
                      if limits.memory_mb and -code in (signal.SIGSEGV, signal.SIGABRT,
                                                        signal.SIGBUS, signal.SIGKILL) else "")
            return ChildCrashed(f"le traitement s'est arrêté brutalement (signal "
                                f"{_signal_name(-code)}){memory}")
        return ChildCrashed(f"le traitement s'est arrêté sans répondre (code de sortie {code})")

    def _start_spare(self) -> tuple[BaseProcess, Connection]:
        return processes.start_child(processes.context(), _child_main, (self.warm_up, None),
                                     "tissu-sandbox")

    def _take_spare(self) -> tuple[BaseProcess, Connection]:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare[0].is_alive():
            return spare
        if spare is not None:
            _discard(spare)
        return self._start_spare()

    def _refill(self) -> None:
        with self._lock:
            if self._spare is not None:
                return
            try:
                self._spare = self._start_spare()
            except Exception:  # noqa: BLE001 - the next run starts its own child
                self._spare = None

    def prepare(self) -> None:
        """Start the forkserver and a warmed spare child now (e.g. when a server starts)."""
        self._refill()

    def close(self) -> None:
        """Stop the spare child, if any."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            _discard(spare)


def _discard(spare: tuple[BaseProcess, Connection], wait: float = 1.0) -> None:
    """Close the pipe (a waiting spare reads EOF and exits), give the child ``wait`` seconds to
    end, kill it if it has not (:func:`connectors.processes.stop_child`)."""
    process, conn = spare
    if processes.stop_child(process, conn, wait) is not None:
        process.close()  # its pipe to the fork server now, not when collected
