"""Websites (registry ``format: html`` or ``format: scrapy:<spider>``): a Scrapy crawl stands for
fetch + parse.

Twisted's reactor cannot restart inside one process, so each crawl runs as a child process
(``python -m crawlers.run``) with a hard time limit; its JSON lines (events, page reports, closing
stats, see :mod:`crawlers.run`) become a :class:`ParseResult` whose records carry a JSON payload
shaped like the feed connector's, read by ``normalize.events.normalize_json_record``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import ParsedRecord, ParseResult, Problem
from tissu.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:  # harvest imports this module: no import cycle at run time
    from sqlmodel import Session

    from connectors.harvest import HarvestOutcome, Prefetched
    from schemas.models import HarvestRun, Source

SPIDER_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# payload keys, in the feed connector's vocabulary plus recurrence and online fields
PAYLOAD_KEYS = ("title", "description", "url", "dtstart", "dtend", "tzid", "rrule", "exdates",
                "status", "location", "online_url", "organizer", "categories", "schema_type",
                "dtstart_anchored")
_GRACE_SECONDS = 30
_PAGE_KEYS = ("url", "method", "status", "sha256", "etag", "last_modified")


def is_crawl_format(fmt: str) -> bool:
    """True for ``html`` and ``scrapy:<spider>`` registry formats."""
    return fmt == "html" or fmt.startswith("scrapy:")


def spider_for(fmt: str) -> str:
    """The spider name of a registry format: ``html`` → ``generic``, ``scrapy:x`` → ``x``.

    Raises:
        ValueError: not a crawl format, or a spider name that is not ``[a-z][a-z0-9_]*``.
    """
    if fmt == "html":
        return "generic"
    if not fmt.startswith("scrapy:"):
        raise ValueError(f"format {fmt!r} n'est pas une collecte de site web")
    name = fmt.split(":", 1)[1]
    if not SPIDER_NAME_RE.match(name):
        raise ValueError(f"nom d'araignée invalide {name!r} (minuscules, chiffres, _)")
    return name


def crawl_source(source_id: str, url: str, fmt: str, settings: Settings,
                 now: dt.datetime) -> ParseResult:
    """Crawl one registry source and return its records (never raises).

    Args:
        source_id: registry id (for messages).
        url: start URL, http(s).
        fmt: ``html`` (generic spider) or ``scrapy:<spider>``.
        settings: crawl limits ``crawl_max_pages``, ``crawl_depth``, ``crawl_timeout`` (seconds;
            the child is killed 30 s after it), ``host_delay`` (seconds between requests).
        now: aware datetime of the run (passed to the spider).

    Returns:
        A ParseResult: one ``event`` record per distinct event (JSON payload with ``title``,
        ``description``, ``url``, ``dtstart``/``dtend`` ISO 8601, ``tzid``, ``rrule``,
        ``exdates``, ``status``, ``location``, ``online_url``, ``organizer``, ``categories``);
        ``errors`` when the start page could not be read or the crawl was cut short (so that
        nothing is marked removed at source), ``warnings`` for every page problem.
    """
    key = (source_id, url, fmt, now.isoformat())
    with _PREFETCH_LOCK:
        pending = _PREFETCHED.pop(key, None)
    return (pending or PendingCrawl(source_id, url, fmt, settings, now)).result()


class PendingCrawl:
    """One crawl of a site by the crawl service: started now or by :func:`prefetch_crawls`.

    :meth:`run` submits the job and waits for its end (once, whoever calls it first);
    :meth:`result` runs it if nobody did, waits, and reads the output into a ParseResult.
    """

    def __init__(self, source_id: str, url: str, fmt: str, settings: Settings,
                 now: dt.datetime) -> None:
        self.url, self.fmt, self.settings = url, fmt, settings
        self.host = _host_of(url)
        self.early = ParseResult(detected_format=fmt)
        self.spider = ""
        try:
            self.spider = spider_for(fmt)
        except ValueError as exc:
            self.early.errors.append(Problem(str(exc), code="bad-spider"))
        if not self.early.errors and not url.startswith(("http://", "https://")):
            self.early.errors.append(Problem(
                f"une collecte de site demande une adresse http(s) : {url}", code="bad-url"))
        self.limit = settings.crawl_timeout + _GRACE_SECONDS
        self.now = now
        self.answer: dict[str, Any] | None = None
        self._claimed = False
        self._claim = threading.Lock()
        self._finished = threading.Event()
        self._folder: str | None = None

    @property
    def valid(self) -> bool:
        return not self.early.errors

    def run(self) -> None:
        """Submit the crawl and wait for its end; a no-op when already run. Never raises."""
        with self._claim:
            if self._claimed:
                return
            self._claimed = True
        try:
            if self.valid:
                self._folder = tempfile.mkdtemp(prefix="tissu-crawl-")
                settings = self.settings
                job = {"spider": self.spider, "url": self.url,
                       "output": str(Path(self._folder) / "items.jsonl"),
                       "now": self.now.isoformat(), "max_pages": settings.crawl_max_pages,
                       "depth": settings.crawl_depth, "timeout": settings.crawl_timeout,
                       "delay": settings.host_delay,
                       "set": {"DOWNLOAD_MAXSIZE": str(settings.max_body_bytes),
                               "DOWNLOAD_TIMEOUT": str(settings.read_timeout)}}
                self.answer = crawl_service().crawl(job, self.limit)
        except Exception as exc:  # noqa: BLE001 - reported by result()
            self.answer = {"error": f"{exc!r}"}
        finally:
            self._finished.set()

    def result(self) -> ParseResult:
        """The crawl's records and problems (see :func:`crawl_source`); never raises."""
        result = self.early
        if not self.valid:
            return result
        self.run()
        self._finished.wait()
        answer = self.answer
        if answer is None:
            result.errors.append(Problem(
                f"collecte interrompue après {self.limit} s (limite de temps)",
                code="crawl-timeout"))
        elif answer.get("error"):
            result.errors.append(Problem(
                f"l'araignée {self.spider!r} a échoué ({str(answer['error'])[:300]})",
                code="crawl-failed"))
        lines: list[str] = []
        if self._folder is not None:
            output = Path(self._folder) / "items.jsonl"
            if output.exists():
                lines = output.read_text(encoding="utf-8").splitlines()
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        read_crawl_lines(lines, self.url, self.settings.crawl_max_pages, result)
        return result

    def discard(self) -> None:
        """Remove the output folder of a crawl whose result will not be read."""
        self._finished.wait(self.limit + 5)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


_PREFETCHED: dict[tuple[str, str, str, str], PendingCrawl] = {}
_PREFETCH_LOCK = threading.Lock()


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"


def prefetch_crawls(sources: list[tuple[str, str, str]], settings: Settings, now: dt.datetime,
                    per_host: int = 2, jobs: int = 8) -> int:
    """Start the crawls of ``sources`` (``(source_id, url, format)``) in the background.

    They run in the crawl service, at most ``jobs`` at once and ``per_host`` per host:port,
    while the caller harvests other sources; :func:`crawl_source` with the same source, URL,
    format and ``now`` (aware) then waits for its crawl instead of starting one. Returns how
    many were queued. Never raises.
    """
    from concurrent.futures import ThreadPoolExecutor

    keyed = [((source_id, url, fmt, now.isoformat()),
              PendingCrawl(source_id, url, fmt, settings, now))
             for source_id, url, fmt in sources if is_crawl_format(fmt)]
    keyed = [(key, pending) for key, pending in keyed if pending.valid]
    if not keyed:
        return 0
    pendings = [pending for _key, pending in keyed]
    limits: dict[str, threading.BoundedSemaphore] = {}
    for pending in pendings:
        limits.setdefault(pending.host, threading.BoundedSemaphore(max(1, per_host)))
    with _PREFETCH_LOCK:
        _PREFETCHED.update(keyed)

    def one(pending: PendingCrawl) -> None:
        with limits[pending.host]:
            pending.run()

    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(pendings))),
                              thread_name_prefix="tissu-crawl")
    for pending in pendings:
        pool.submit(one, pending)
    pool.shutdown(wait=False)
    return len(pendings)


def forget_prefetched() -> None:
    """Drop crawls prefetched but never read (their output folders are removed)."""
    with _PREFETCH_LOCK:
        left = list(_PREFETCHED.values())
        _PREFETCHED.clear()
    for pending in left:
        pending.discard()




class CrawlService:
    """One ``python -m crawlers.run --serve`` child for many crawls (see :mod:`crawlers.run`).

    Scrapy and Twisted take seconds to import and Twisted's reactor cannot restart in one
    process: the child is started once (lazily, or early with :meth:`warm_up`) and runs every
    crawl of the harvest, several at once when several threads ask. It is started again when
    the ``TISSU_*`` environment changed (tests), after it died, or after a crawl overran its
    time limit (the child is then killed, and the crawls it was running fail).
    Thread-safe. :meth:`close` (also at interpreter exit) lets running crawls end.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._environment: tuple[tuple[str, str], ...] = ()
        self._waiters: dict[int, tuple[threading.Event, dict[str, Any]]] = {}
        self._next = 0

    @staticmethod
    def _tissu_environment() -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("TISSU_")))

    def _start_locked(self) -> subprocess.Popen[str]:
        environment = self._tissu_environment()
        process = self._process
        if process is not None and process.poll() is None and environment == self._environment:
            return process
        if process is not None:
            self._stop_locked(kill=process.poll() is None and environment == self._environment)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        process = subprocess.Popen(
            [sys.executable, "-m", "crawlers.run", "--serve"], cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1)
        self._process, self._environment = process, environment
        threading.Thread(target=self._read, args=(process,), name="crawl-service",
                         daemon=True).start()
        return process

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if not isinstance(data, dict) or "id" not in data:
                continue
            with self._lock:
                waiter = self._waiters.pop(data["id"], None)
            if waiter is not None:
                waiter[1].update(data)
                waiter[0].set()
        with contextlib.suppress(OSError):  # the child ended (or was replaced): done reading
            process.stdout.close()
        with self._lock:  # the child ended: nobody waits for it any more
            if self._process is process:
                for event, box in self._waiters.values():
                    box.setdefault("error", "le processus de collecte s'est arrêté")
                    event.set()
                self._waiters.clear()

    def _stop_locked(self, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for event, box in self._waiters.values():
            box.setdefault("error", "le processus de collecte s'est arrêté")
            event.set()
        self._waiters.clear()
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        if kill:
            process.kill()
        try:
            process.wait(timeout=None if kill else 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def warm_up(self) -> None:
        """Start the child now, so that its imports overlap with other work. Never raises."""
        with self._lock, contextlib.suppress(OSError):
            self._start_locked()

    def crawl(self, job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Run one crawl job; its answer (``{"id", "error"}``), or None after ``timeout`` s."""
        event, box = threading.Event(), {}  # type: tuple[threading.Event, dict[str, Any]]
        with self._lock:
            try:
                process = self._start_locked()
                self._next += 1
                job = {**job, "id": self._next}
                self._waiters[self._next] = (event, box)
                assert process.stdin is not None
                process.stdin.write(json.dumps(job, ensure_ascii=False) + "\n")
                process.stdin.flush()
            except OSError as exc:
                self._waiters.pop(self._next, None)
                return {"error": f"processus de collecte impossible à lancer ({exc})"}
        if event.wait(timeout):
            return box
        with self._lock:  # overran: stop the child; the next crawl starts another
            if self._process is process:
                self._stop_locked(kill=True)
        return None

    def close(self) -> None:
        """Let running crawls end, then stop the child (no-op when none was started)."""
        with self._lock:
            self._stop_locked(kill=False)


_SERVICE: CrawlService | None = None
_SERVICE_LOCK = threading.Lock()


def crawl_service() -> CrawlService:
    """The process-wide :class:`CrawlService` (closed at interpreter exit)."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            _SERVICE = CrawlService()
            atexit.register(_SERVICE.close)
        return _SERVICE


def _item_from(data: dict[str, object]):  # -> EventItem, imported lazily (Scrapy is heavy)
    from crawlers.items import EventItem

    known = {f.name for f in fields(EventItem)}
    return EventItem(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


def read_crawl_lines(lines: list[str], start_url: str, max_pages: int,
                     result: ParseResult) -> ParseResult:
    """Fill ``result`` from the JSON lines of a crawl (see :mod:`crawlers.run`).

    Events found on several pages (a listing and a detail page) are merged by uid. The start
    page failing, or the crawl stopping on its page or time limit, is an error.
    """
    from crawlers.merge import merge_items  # not crawlers.extraction: extruct is heavy

    events = []
    pages_ok = 0
    start_error: str | None = None
    stats: dict[str, object] | None = None
    for number, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
        except ValueError:
            result.errors.append(Problem("ligne de collecte illisible", number, "bad-line"))
            continue
        kind = data.get("kind")
        if kind == "event":
            try:
                events.append(_item_from(data))
            except TypeError as exc:
                result.warnings.append(Problem(f"événement illisible ({exc})", number))
        elif kind == "page":
            page = data.get("url") or "?"
            if data.get("error"):
                if page.rstrip("/") == start_url.rstrip("/"):
                    start_error = f"{page} : {data['error']}"
                else:
                    result.warnings.append(Problem(f"{page} : {data['error']}", code="page"))
            else:
                pages_ok += 1
                for problem in data.get("problems") or []:
                    result.warnings.append(Problem(f"{page} : {problem}", code="page"))
        elif kind == "stats":
            stats = data
        elif kind == "response" and isinstance(data.get("url"), str) and all(
                p.get("url") != data["url"] for p in result.pages):
            result.pages.append({key: data.get(key) for key in _PAGE_KEYS})
    if start_error:
        result.errors.append(Problem(start_error, code="start-page"))
    elif pages_ok == 0 and not result.errors:
        result.errors.append(Problem("aucune page lue", code="no-page"))
    if stats is not None:
        reason = str(stats.get("finish_reason") or "")
        counters = stats.get("stats") or {}
        if reason == "closespider_pagecount":
            result.errors.append(Problem(
                f"collecte incomplète : limite de {max_pages} pages atteinte", code="page-limit"))
        elif reason == "closespider_timeout":
            result.errors.append(Problem("collecte incomplète : limite de temps atteinte",
                                         code="time-limit"))
        forbidden = counters.get("robotstxt/forbidden") if isinstance(counters, dict) else None
        if forbidden:
            result.warnings.append(Problem(
                f"{forbidden} page(s) non lues : interdites par robots.txt", code="robots"))
    elif lines:
        result.warnings.append(Problem("collecte sans bilan final (interrompue ?)"))
    for item in merge_items(events):
        payload = {key: getattr(item, key) for key in PAYLOAD_KEYS}
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        basis = dict(payload)
        if item.dtstart_anchored:  # the anchor moves with the crawl date: not a change
            basis.pop("dtstart")
            basis.pop("dtend")
        result.records.append(ParsedRecord(
            uid=item.uid, kind="event", payload_format="json", payload=text,
            hash_basis=json.dumps(basis, ensure_ascii=False, sort_keys=True),
            uid_repaired=item.uid_repaired,
        ))
        for problem in item.problems:
            warning = Problem(f"{item.page_url} : {problem}", code="page")
            if warning not in result.warnings:
                result.warnings.append(warning)
    return result


def harvest_crawl(session: Session, source: Source, run: HarvestRun, outcome: HarvestOutcome,
                  settings: Settings, now: dt.datetime, force: bool = False,
                  prefetched: Prefetched | None = None, commit: bool = True) -> HarvestOutcome:
    """``connectors.harvest.harvest_source`` for a website: crawl, then store the records.

    Same outcome rules as a fetched source: ``failed`` when nothing could be read, ``partial``
    when the crawl had errors (start page unreadable, page or time limit reached: nothing is then
    marked removed at source), ``ok`` otherwise; the deletion guard applies. No raw snapshot.

    Unless ``force``, the site is not crawled again when every page of its last complete crawl
    answers the same (:func:`pages_unchanged`): the run is then ``unchanged``, like a feed
    answering 304. After a complete crawl (no error, only GET requests) its pages are kept in
    ``source.crawl_pages``; after any other, that list is cleared so that the next run crawls.
    ``prefetched``: that check or that crawl already done in this run (tissu.pipeline).
    """
    from connectors.harvest import _finish, record_parsed

    if prefetched is not None and (prefetched.crawl_unchanged or prefetched.parsed is not None):
        unchanged, parsed = prefetched.crawl_unchanged, prefetched.parsed
    else:
        unchanged = not force and bool(source.crawl_pages) and pages_unchanged(
            source.crawl_pages or "", settings, source.url)
        parsed = None
    if unchanged:
        # every page of the last complete crawl answered 304 or the same bytes: same crawl
        outcome.status = "unchanged"
        return _finish(session, source, run, outcome, now, commit)
    if parsed is None:
        parsed = crawl_source(source.id, source.url, source.format, settings, now)
    stored = record_parsed(session, source, run, outcome, parsed, now, force)
    complete = stored and not parsed.errors and bool(parsed.pages) and all(
        page.get("method") == "GET" for page in parsed.pages)
    source.crawl_pages = json.dumps(parsed.pages) if complete else None
    return _finish(session, source, run, outcome, now, commit)


def pages_unchanged(crawl_pages: str, settings: Settings, start_url: str | None = None) -> bool:
    """True when every page of the last complete crawl still answers the same (never raises).

    ``crawl_pages`` is the JSON list kept by :func:`harvest_crawl` (see ``ParseResult.pages``).
    Each page is fetched again with ``connectors.http.fetch`` and its validators (ETag,
    Last-Modified): it is unchanged when it answers HTTP 304 or a body of the same SHA-256; a
    page that answered an HTTP error last time is unchanged when it still fails; a redirection
    (3xx), and ``start_url`` when the crawl did not record it, must still lead to one of the
    recorded pages. Any other answer, or a list that cannot be read, means the site must be
    crawled again.
    """
    import hashlib

    from connectors.http import FetchError, fetch

    try:
        pages = json.loads(crawl_pages)
    except ValueError:
        return False
    if not isinstance(pages, list) or not pages or \
            len(pages) > 2 * settings.crawl_max_pages + 1:
        return False
    recorded = {page.get("url") for page in pages if isinstance(page, dict)}
    if start_url and start_url not in recorded:
        pages = [*pages, {"url": start_url, "method": "GET", "status": 301}]
    for page in pages:
        url = page.get("url") if isinstance(page, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or \
                page.get("method") != "GET":
            return False
        status = page.get("status") if isinstance(page.get("status"), int) else 0
        if 300 <= status < 400:  # a redirection must still lead to a recorded page
            try:
                followed = fetch(url, max_bytes=settings.max_body_bytes, retries=0,
                                 timeout=(settings.connect_timeout, settings.read_timeout),
                                 allow_local=False)
            except Exception:  # noqa: BLE001 - when in doubt, crawl
                return False
            if followed.url not in recorded:
                return False
            continue
        try:
            fetched = fetch(url, etag=page.get("etag"), last_modified=page.get("last_modified"),
                            max_bytes=settings.max_body_bytes,
                            timeout=(settings.connect_timeout, settings.read_timeout),
                            retries=0, allow_local=False)
        except FetchError:
            if status >= 400:  # failed last time too: the crawl would read the same
                continue
            return False
        except Exception:  # noqa: BLE001 - when in doubt, crawl
            return False
        if fetched.not_modified and status == 200:
            continue
        if status != 200 or hashlib.sha256(fetched.content).hexdigest() != page.get("sha256"):
            return False
    return True
