"""Run one spider in this process and write its items as JSON lines.

Twisted's reactor cannot be restarted inside one process, so ``connectors.html`` runs every crawl
as a child process::

    python -m crawlers.run --spider generic --url https://example.org/agenda \\
        --output items.jsonl [--now 2026-11-29T12:00:00+00:00] [--max-pages 50] [--depth 2] \\
        [--timeout 300] [--delay 1] [--set SCRAPY_SETTING=VALUE ...]

Each line of the output is an ``EventItem`` (``"kind": "event"``), a ``PageReport``
(``"kind": "page"``) or, last, ``{"kind": "stats", "finish_reason": ..., "stats": {...}}``.
Exit status: 0 when the crawl ran (even if it found nothing), 2 for bad arguments (unknown
spider, missing URL).
"""

from __future__ import annotations

import argparse
import sys

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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
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
