"""Run one spider in this process and write its items as JSON lines.

Twisted's reactor cannot be restarted inside one process, so ``connectors.html`` runs every crawl
as a child process::

    python -m crawlers.run --spider generic --url https://example.org/agenda \\
        --output items.jsonl [--now 2026-11-29T12:00:00+00:00] [--max-pages 50] [--depth 2] \\
        [--timeout 300] [--delay 1] [--set SCRAPY_SETTING=VALUE ...]

Each line of the output is an ``EventItem`` (``"kind": "event"``), a ``PageReport``
(``"kind": "page"``), a page answer (``"kind": "response"``) or, last,
``{"kind": "stats", "finish_reason": ..., "stats": {...}}``.
Exit status: 0 when the crawl ran (even if it found nothing), 2 for bad arguments (unknown
spider, missing URL).

``python -m crawlers.run --serve`` is the crawl service ``connectors.html`` keeps for a whole
harvest, so that Scrapy and Twisted are imported once, not once per site: it reads one JSON job
per line on standard input (``{"id", "spider", "url", "output", "now", "max_pages", "depth",
"timeout", "delay", "set": {NAME: VALUE}}``), runs the jobs concurrently in one reactor, each
with its own settings, and writes ``{"id": …, "error": null | "message"}`` on standard output
when a job ends. It prints ``{"ready": true}`` once started and stops when standard input
closes and the running jobs have ended.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings
from scrapy.spiderloader import SpiderLoader


def crawl_settings(output: str | None = None, max_pages: int | None = None,
                   depth: int | None = None, timeout: int | None = None,
                   delay: float | None = None, extra: dict[str, str] | None = None) -> Settings:
    """Scrapy settings: ``crawlers.settings`` plus the limits given (``None`` keeps defaults).

    ``delay`` (seconds) sets both ``DOWNLOAD_DELAY`` and ``AUTOTHROTTLE_START_DELAY``.
    """
    settings = Settings()
    settings.setmodule("crawlers.settings", priority="project")
    overrides: dict[str, object] = {}
    if output:
        overrides["TISSU_OUTPUT"] = output
    if max_pages is not None:
        overrides["CLOSESPIDER_PAGECOUNT"] = max_pages
    if depth is not None:
        overrides["DEPTH_LIMIT"] = depth
    if timeout is not None:
        overrides["CLOSESPIDER_TIMEOUT"] = timeout
    if delay is not None:
        overrides["DOWNLOAD_DELAY"] = delay
        overrides["AUTOTHROTTLE_START_DELAY"] = delay
        overrides["AUTOTHROTTLE_MAX_DELAY"] = max(delay * 10, 0.1)
    overrides.update(extra or {})
    settings.setdict(overrides, priority="cmdline")
    return settings


def available_spiders() -> list[str]:
    """Names of the spiders in ``crawlers.spiders`` (``generic``, ``reseau_alpha``…)."""
    return sorted(SpiderLoader.from_settings(crawl_settings()).list())


def serve(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The crawl service (see the module docstring); returns 0 when standard input closed."""
    import json
    import threading

    from scrapy.crawler import Crawler, CrawlerRunner
    from scrapy.utils.log import configure_logging
    from scrapy.utils.reactor import install_reactor

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    base = crawl_settings()
    install_reactor(base["TWISTED_REACTOR"])
    from twisted.internet import reactor as installed

    reactor: Any = installed
    configure_logging(base)
    loader = SpiderLoader.from_settings(base)
    runner = CrawlerRunner(base)
    state = {"open": True, "running": 0}
    write_lock = threading.Lock()

    def reply(data: dict[str, object]) -> None:
        with write_lock:
            stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            stdout.flush()

    def maybe_stop() -> None:
        if not state["open"] and not state["running"]:
            reactor.stop()

    def finished(error: str | None, job_id: object) -> None:
        state["running"] = int(state["running"]) - 1
        reply({"id": job_id, "error": error})
        maybe_stop()

    def start(job: dict[str, object]) -> None:
        job_id = job.get("id")
        try:
            spider = str(job["spider"])
            if spider not in loader.list():
                raise ValueError(f"araignée inconnue : {spider!r} "
                                 f"(connues : {', '.join(loader.list())})")
            extra = {str(k): str(v) for k, v in dict(job.get("set") or {}).items()}  # type: ignore[call-overload]
            settings = crawl_settings(
                str(job["output"]), _int_or_none(job.get("max_pages")),
                _int_or_none(job.get("depth")), _int_or_none(job.get("timeout")),
                float(job["delay"]) if job.get("delay") is not None else None,  # type: ignore[arg-type]
                extra)
            crawler = Crawler(loader.load(spider), settings)
            deferred = runner.crawl(crawler, url=job["url"], now=job.get("now"))
        except Exception as exc:  # noqa: BLE001 - a bad job is answered, never fatal
            reply({"id": job_id, "error": str(exc)[:300]})
            return
        state["running"] = int(state["running"]) + 1
        deferred.addCallbacks(lambda _result: finished(None, job_id),
                              lambda failure: finished(failure.getErrorMessage()[:300], job_id))

    def closed() -> None:
        state["open"] = False
        maybe_stop()

    def read() -> None:
        for line in stdin:
            if line.strip():
                try:
                    job = json.loads(line)
                except ValueError:
                    continue
                reactor.callFromThread(start, job)
        reactor.callFromThread(closed)

    threading.Thread(target=read, name="crawl-jobs", daemon=True).start()
    reply({"ready": True})
    reactor.run(installSignalHandlers=False)
    return 0


def _int_or_none(value: object) -> int | None:
    return int(value) if value is not None else None  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    if (argv if argv is not None else sys.argv[1:])[:1] == ["--serve"]:
        return serve()
    parser = argparse.ArgumentParser(prog="python -m crawlers.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--output")
    parser.add_argument("--now")
    parser.add_argument("--max-pages", type=int)
    parser.add_argument("--depth", type=int)
    parser.add_argument("--timeout", type=int)
    parser.add_argument("--delay", type=float)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    extra = {}
    for pair in args.set:
        name, _sep, value = pair.partition("=")
        extra[name.strip()] = value
    settings = crawl_settings(args.output, args.max_pages, args.depth, args.timeout, args.delay,
                              extra)
    loader = SpiderLoader.from_settings(settings)
    if args.spider not in loader.list():
        print(f"araignée inconnue : {args.spider!r} (connues : {', '.join(loader.list())})",
              file=sys.stderr)
        return 2
    process = CrawlerProcess(settings)
    process.crawl(loader.load(args.spider), url=args.url, now=args.now)
    process.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
