"""What every connector returns: source records plus warnings and errors, never an exception.

A connector turns the bytes of one source into :class:`ParsedRecord` objects (one per VEVENT or
feed item). It never raises on bad input: problems are collected as :class:`Problem` with the line
number when known, so that one broken record costs only that record.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A warning or error found while parsing, in plain French.

    ``line`` is 1-based in the source file when known.
    """

    message: str
    line: int | None = None
    code: str = ""

    def __str__(self) -> str:
        return f"ligne {self.line} : {self.message}" if self.line else self.message


@dataclass
class ParsedRecord:
    """One record read from a source, before normalisation.

    Attributes:
        uid: the source's own identifier (RFC 5545 UID, feed GUID/link), or a deterministic
            repaired one when ``uid_repaired``.
        recurrence_id: RECURRENCE-ID as ISO text for an override, '' otherwise.
        kind: 'event' (has event dates) or 'news' (a feed item without event dates).
        payload_format: 'ical' (self-contained VCALENDAR text) or 'json'.
        payload: the text stored in ``SourceRecord.payload``.
        hash_basis: the text hashed for change detection (payload without volatile parts).
        line: first line of the record in the source, when known.
    """

    uid: str
    kind: str
    payload_format: str
    payload: str
    hash_basis: str
    recurrence_id: str = ""
    uid_repaired: bool = False
    line: int | None = None
    #: What the connector already parsed, handed to normalisation in the same run so that it
    #: does not parse ``payload`` again: for iCalendar ``(VEVENT, [VTIMEZONE, …])`` as
    #: icalendar components. Never stored; None when not available.
    parsed: Any = field(default=None, repr=False, compare=False)

    @property
    def content_hash(self) -> str:
        """SHA-256 hex digest of ``hash_basis``."""
        return hashlib.sha256(self.hash_basis.encode("utf-8")).hexdigest()


@dataclass
class ParseResult:
    """Everything a connector found in one payload."""

    records: list[ParsedRecord] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    detected_format: str = ""
    #: False when the payload is known to hold only part of the source (an API page whose
    #: ``total`` exceeds its items): records absent from it are then not marked removed.
    complete: bool = True
    #: The calendar's or feed's own title (X-WR-CALNAME, RSS/Atom/JSON Feed title), '' if none.
    title: str = ""
    #: Website crawls only: every page answer of the crawl (``url``, ``method``, ``status``,
    #: ``sha256``, ``etag``, ``last_modified``), to tell next time whether a page changed.
    pages: list[dict[str, Any]] = field(default_factory=list)
    #: What a parsing child prepared after the parse (:class:`ParsePool`, e.g. the source's
    #: normalised events, normalize.pipeline.prepare_events); never stored; None when absent.
    prepared: Any = field(default=None, repr=False, compare=False)

    @property
    def events(self) -> int:
        """Number of event records."""
        return sum(1 for r in self.records if r.kind == "event")

    @property
    def news(self) -> int:
        """Number of feed items kept as news (no event dates)."""
        return sum(1 for r in self.records if r.kind == "news")


def stable_hash(*parts: str, length: int = 16) -> str:
    """A short deterministic hex digest of ``parts`` (used for repaired identifiers)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def mixed_utf8(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, reading each invalid byte as Windows-1252 (Latin-1 where undefined).

    Returns the text and the number of valid multi-byte UTF-8 characters met, which tells a
    UTF-8 file with a few stray Latin-1 bytes (many) from a Latin-1 file (none).
    """
    out: list[str] = []
    multibyte = 0
    position = 0
    while position < len(data):
        try:
            chunk = data[position:].decode("utf-8")
            out.append(chunk)
            multibyte += sum(1 for char in chunk if ord(char) > 0x7F)
            break
        except UnicodeDecodeError as exc:
            chunk = data[position: position + exc.start].decode("utf-8")
            out.append(chunk)
            multibyte += sum(1 for char in chunk if ord(char) > 0x7F)
            bad = data[position + exc.start: position + exc.start + 1]
            try:
                out.append(bad.decode("cp1252"))
            except UnicodeDecodeError:
                out.append(bad.decode("latin-1"))
            position += exc.start + 1
    return "".join(out), multibyte


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, list[Problem]]:
    """Decode bytes to text: BOM first, then UTF-8, then the declared charset, then Windows-1252.

    A file that is UTF-8 except for a few invalid bytes (text pasted from two tools) keeps its
    UTF-8 characters and reads only the invalid bytes as Windows-1252. Returns the text and a
    warning when the bytes were not valid UTF-8.
    """
    problems: list[Problem] = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), problems
    except UnicodeDecodeError:
        pass
    text, multibyte = mixed_utf8(data)
    if multibyte:
        problems.append(Problem("le fichier mêle UTF-8 et Windows-1252 : octets invalides lus "
                                "un par un", code="encoding"))
        return text, problems
    for charset in (declared, "cp1252", "latin-1"):
        if not charset:
            continue
        try:
            text = data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
        problems.append(
            Problem(f"le fichier n'est pas en UTF-8 ; lu comme {charset}", code="encoding")
        )
        return text, problems
    return data.decode("utf-8", errors="replace"), problems


def parse_with_time_limit(
    parser: Callable[[bytes, str], ParseResult], data: bytes, source_id: str, seconds: float
) -> ParseResult:
    """Run ``parser(data, source_id)`` for at most ``seconds``; never raises.

    The parser runs in a daemon thread. When it overruns, the run goes on without it: the result
    is an error "lecture interrompue" (the thread, which Python cannot kill, finishes or dies
    with the process; its result is discarded). An exception from the parser becomes an error
    too, so one source's bad bytes never stop the others.
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = parser(data, source_id)
        except BaseException as exc:  # noqa: BLE001 - reported below, never raised
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"parse-{source_id}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return ParseResult(errors=[Problem(
            f"lecture interrompue : le fichier demande plus de {seconds:g} s de traitement",
            code="time-limit")])
    if "error" in box:
        return ParseResult(errors=[Problem(f"erreur interne du lecteur ({box['error']!r})",
                                           code="internal")])
    result = box.get("result")
    if not isinstance(result, ParseResult):
        return ParseResult(errors=[Problem("erreur interne du lecteur (aucun résultat)",
                                           code="internal")])
    return result


def content_hint(data: bytes) -> str:
    """A French hint on what ``data`` actually is, for "wrong format" messages.

    Returns e.g. " (le fichier est vide)", " (c'est un calendrier iCalendar : indiquez
    « format: ical »)", " (c'est une page web)", or "" when nothing is recognised.
    """
    head = data[:65536].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        return " (le fichier est vide)"
    if b"begin:vcalendar" in head or head.startswith(b"begin:vevent"):
        return " (c'est un calendrier iCalendar : indiquez « format: ical »)"
    if b"<rss" in head or b"<rdf:rdf" in head:
        return " (c'est un flux RSS : indiquez « format: rss »)"
    if b"<feed" in head and b"http://www.w3.org/2005/atom" in head:
        return " (c'est un flux Atom : indiquez « format: atom »)"
    if b"<html" in head or b"<!doctype html" in head:
        return " (c'est une page web)"
    if head.startswith((b"{", b"[")):
        return " (c'est du JSON : « format: openagenda » ou « format: datainclusion » ?)"
    return ""


NO_JSON = object()  # sentinel: the bytes were not JSON


def load_json(data: bytes, result: ParseResult) -> Any:
    """Decode JSON bytes for a JSON connector, reporting into ``result`` instead of raising.

    Returns the document, or :data:`NO_JSON` after adding one error with the line and column
    of the fault (and any charset warning from :func:`decode_text`).
    """
    text, problems = decode_text(data)
    result.warnings.extend(problems)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        result.errors.append(Problem(f"JSON illisible : {exc.msg} (colonne {exc.colno})",
                                     line=exc.lineno, code="json"))
        return NO_JSON


# --- Parsing in child processes ----------------------------------------------------------------
# A harvest parses (and prepares the normalisation of) several sources at once in child
# processes: the main process keeps fetching and writing the store while its children use the
# other cores. A child that overruns its time limit is killed, which a thread cannot be.


#: ``(module, function)`` called in the child after a successful parse, with the full parse
#: result (icalendar components included) and the keyword arguments of the task; its return
#: value (picklable) comes back as :attr:`ParseResult.prepared`.
Prepare = tuple[str, str, dict[str, Any]]


def _strip_components(result: ParseResult) -> ParseResult:
    """A copy of ``result`` without what the connector parsed (not picklable cheaply)."""
    from dataclasses import replace

    return replace(result, records=[replace(r, parsed=None) if r.parsed is not None else r
                                    for r in result.records])


def _child_loop(connection: Any) -> None:
    """Body of a parsing child: answer tasks from ``connection`` until it sends None or closes.

    Each task is ``((module, function), data, source_id, prepare)`` (``parser`` None: ``data``
    is a :class:`ParseResult` already, only ``prepare`` runs); the answers are ``("parsed",
    ParseResult)`` as soon as the parse is over (the parent's time limit stops there), then
    ``("prepared", value)`` (None when ``prepare`` is None or failed: the parent then does that
    work itself).
    """
    import signal
    from importlib import import_module

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        parser, data, source_id, prepare = task
        try:
            if parser is None:
                result = data
            else:
                module, function = parser
                result = getattr(import_module(module), function)(data, source_id)
            if not isinstance(result, ParseResult):
                raise TypeError("aucun résultat")
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised
            connection.send(("parsed", ParseResult(errors=[Problem(
                f"erreur interne du lecteur ({exc!r})", code="internal")])))
            connection.send(("prepared", None))
            continue
        connection.send(("parsed", _strip_components(result) if parser is not None else None))
        prepared = None
        if prepare is not None:
            module, function, kwargs = prepare
            try:
                prepared = getattr(import_module(module), function)(result, **kwargs)
            except Exception:  # noqa: BLE001 - the parent does the work itself
                prepared = None
        del result
        connection.send(("prepared", prepared))


class _Child:
    """One parsing child process and the parent's end of its pipe."""

    def __init__(self, context: Any) -> None:
        from connectors.processes import start_child

        self.process, self.connection = start_child(context, _child_loop, (), "tissu-parse")

    def stop(self, wait: float = 2.0) -> None:
        """Let the child finish (its pipe is closed), then kill it if it has not after ``wait``
        seconds."""
        from connectors.processes import stop_child

        stop_child(self.process, self.connection, wait)

    def kill(self) -> None:
        """Kill the child now (no-op when it has ended) and close the pipe."""
        from connectors.processes import stop_child

        stop_child(self.process, self.connection)


class ParsePool:
    """``processes`` child processes that parse sources' bytes, one source at a time each.

    :meth:`parse` is called from the parent's threads (one per child is enough) and blocks
    until a child is free and has answered. A parse longer than ``seconds`` gets its child
    killed (and replaced): the result is the error "lecture interrompue" naming the limit. The
    children are started when first needed (by the calling thread), from the process's fork
    server (:mod:`connectors.processes`: the parsing libraries preloaded once, shared with the
    feed doctor's checks); use the pool as a context manager, or call :meth:`close`.
    """

    def __init__(self, processes: int) -> None:
        import queue

        self._context = self.context()
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        self.processes = max(1, processes)
        self._started = 0

    @staticmethod
    def context() -> Any:
        """The multiprocessing context of the children: :func:`connectors.processes.context`
        (``forkserver`` preloading the parsers, shared with the feed doctor's checks)."""
        from connectors import processes

        return processes.context()

    @staticmethod
    def warm_up() -> None:
        """Start the fork server now, on a side thread, so that its imports (~1 s) overlap
        with the caller's work before the first :meth:`parse`. Never raises."""
        from connectors import processes

        processes.start_server_soon()

    def _start(self) -> _Child:
        child = _Child(self._context)
        with self._lock:
            self._children.append(child)
        return child

    def _take(self) -> _Child:
        """An idle child; a new one while fewer than ``processes`` are running."""
        import queue

        wait = 0.0
        while True:
            try:
                return self._idle.get(timeout=wait) if wait else self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                start = self._started < self.processes
                self._started += start
            if start:
                return self._start_counted()
            wait = 1.0  # a child may end without a replacement: look again each second

    def _start_counted(self) -> _Child:
        """Start a child already counted in ``_started``; uncount it when starting fails."""
        try:
            return self._start()
        except BaseException:
            with self._lock:
                self._started -= 1
            raise

    def _replace(self, child: _Child) -> None:
        """Kill ``child`` and start another in its place; never raises (when that fails, the
        next :meth:`parse` starts one)."""
        import contextlib

        from connectors.processes import in_use

        with in_use():  # the fork server stays up until the replacement has started
            child.kill()
            with self._lock:
                if child in self._children:
                    self._children.remove(child)
                closed = self._closed
            if closed:
                return
            with contextlib.suppress(Exception):
                self._idle.put(self._start_counted())

    def parse(self, parser: tuple[str, str] | None, data: bytes | ParseResult, source_id: str,
              seconds: float, prepare: Prepare | None = None) -> ParseResult:
        """``parser(data, source_id)`` in a child; never raises.

        ``parser`` is ``(module, function)``, e.g. ``connectors.PARSERS["ical"]``; None when
        ``data`` is a :class:`ParseResult` already (a crawl's): only ``prepare`` runs, and
        ``data`` is returned with its :attr:`~ParseResult.prepared` set.

        ``seconds`` bounds the parse, then ``prepare`` alike (not the wait for a free child);
        ``prepare`` runs in the child after the parse and its value is returned as
        :attr:`ParseResult.prepared` (None when it failed, overran or the child died: the
        caller then does that work itself). A parser exception gives the error "erreur interne du lecteur",
        as :func:`parse_with_time_limit`.
        """
        def failed(message: str, code: str) -> ParseResult:
            if isinstance(data, ParseResult):  # only preparing: the caller does it
                return data
            return ParseResult(errors=[Problem(message, code=code)])

        child: _Child | None = self._take()
        assert child is not None
        try:
            child.connection.send((parser, data, source_id, prepare))
            if not child.connection.poll(seconds):
                self._replace(child)
                child = None
                return failed(f"lecture interrompue : le fichier demande plus de {seconds:g} s "
                              "de traitement (lecture arrêtée)", "time-limit")
            kind, result = child.connection.recv()
            if isinstance(data, ParseResult) and kind == "parsed":
                result = data
            if kind != "parsed" or not isinstance(result, ParseResult):
                raise EOFError(kind)
            try:
                if not child.connection.poll(seconds):  # preparing is bounded alike
                    raise EOFError("prepare")
                kind, prepared = child.connection.recv()
            except (EOFError, OSError):  # died or stuck while preparing: the parse is good
                self._replace(child)
                child = None
                return result
            result.prepared = prepared if kind == "prepared" else None
            return result
        except (EOFError, OSError, ValueError) as exc:
            code = child.process.exitcode if child is not None else None
            if child is not None:
                self._replace(child)
                child = None
            return failed("erreur interne du lecteur (processus de lecture arrêté : "
                          f"{code if code is not None else exc!r})", "internal")
        finally:
            if child is not None:
                self._idle.put(child)

    def close(self) -> None:
        """Stop every child (those busy are killed), then, on a side thread, the fork server
        when no other child runs (:func:`connectors.processes.stop_server_soon`: a long-lived
        process such as ``tissu run`` does not keep it after its harvest). Idempotent."""
        from connectors.processes import stop_server_soon

        with self._lock:
            self._closed = True
            children, self._children = list(self._children), []
        for child in children:
            child.stop()
        stop_server_soon()

    def __enter__(self) -> ParsePool:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
