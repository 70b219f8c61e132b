"""Item pipelines: check events, then write every item as one JSON line.

``JsonLinesWriterPipeline`` writes to the file named by the ``TISSU_OUTPUT`` Scrapy setting,
flushing after each line so that a crawl stopped by its time limit keeps what it found. When
the spider closes it appends one ``{"kind": "stats", ...}`` line with the finish reason and
Scrapy's counters (pages, HTTP statuses, robots.txt refusals).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

from itemadapter import ItemAdapter
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawlers.extraction import parse_when
from crawlers.items import EventItem


class EventValidationPipeline:
    """Drop an :class:`EventItem` without a readable ``dtstart`` or without ``uid``; count the
    others in the ``tissu/events`` stat."""

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> EventValidationPipeline:
        """Scrapy hook."""
        return cls(crawler)

    def process_item(self, item: Any, spider: Spider | None = None) -> Any:
        """Return the item, or raise ``DropItem`` with a French reason."""
        if not isinstance(item, EventItem):
            return item
        value, _problem = parse_when(item.dtstart)
        if value is None:
            raise DropItem(f"événement sans date de début lisible : {item.title!r}")
        if not item.uid:
            raise DropItem(f"événement sans identifiant : {item.title!r}")
        if self.stats is not None:
            self.stats.inc_value("tissu/events")
        return item


class JsonLinesWriterPipeline:
    """Write items as JSON lines to the ``TISSU_OUTPUT`` file (stdout when unset)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.path = crawler.settings.get("TISSU_OUTPUT")
        self.handle: IO[str] | None = None
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.response_received, signal=signals.response_received)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> JsonLinesWriterPipeline:
        """Scrapy hook."""
        return cls(crawler)

    def _write(self, data: dict[str, Any]) -> None:
        if self.handle is None:
            if self.path:
                # kept open for the whole crawl, closed in spider_closed
                self.handle = Path(self.path).open("a", encoding="utf-8")  # noqa: SIM115
            else:
                import sys

                self.handle = sys.stdout
        self.handle.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        self.handle.flush()

    def process_item(self, item: Any, spider: Spider | None = None) -> Any:
        """Write the item; return it unchanged."""
        self._write(ItemAdapter(item).asdict())
        return item

    def response_received(self, response: Any, request: Any, spider: Spider | None = None
                          ) -> None:
        """Write a ``{"kind": "response", ...}`` line for every final answer (robots.txt too).

        Fields: ``url``, ``method``, ``status``, ``sha256`` (hex, of the body as received),
        ``etag`` and ``last_modified`` (validators, or None); a redirection (3xx) is written
        too, the answer it leads to on its own line. ``connectors.html`` keeps these lines to
        tell, before the next crawl, whether any page changed.
        """

        def header(name: bytes) -> str | None:
            value = response.headers.get(name)
            return value.decode("latin-1") if value else None

        self._write({"kind": "response", "url": response.url, "method": request.method,
                     "status": response.status,
                     "sha256": hashlib.sha256(response.body).hexdigest(),
                     "etag": header(b"ETag"), "last_modified": header(b"Last-Modified")})

    def spider_closed(self, spider: Spider, reason: str) -> None:
        """Write the closing ``stats`` line and close the file."""
        stats = self.crawler.stats.get_stats() if self.crawler.stats else {}
        wanted = {
            key: value for key, value in stats.items()
            if key.startswith(("downloader/response_status_count/", "robotstxt/", "tissu/",
                               "item_dropped_reasons_count/", "downloader/exception_type_count/"))
            or key in ("response_received_count", "item_scraped_count", "item_dropped_count",
                       "request_depth_max", "closespider_pagecount")
        }
        self._write({"kind": "stats", "finish_reason": reason, "stats": wanted})
        if self.handle is not None and self.path:
            self.handle.close()
        self.handle = None
