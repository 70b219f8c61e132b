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
