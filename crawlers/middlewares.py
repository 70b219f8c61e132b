"""Downloader middleware refusing URLs that Tissu must never fetch (SSRF guard)."""

from __future__ import annotations

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

from connectors.http import FetchError, check_url


class UrlGuardMiddleware:
    """Check every request with :func:`connectors.http.check_url` before it is sent.

    Refused: non-http(s) schemes, credentials in the URL, host names resolving to private,
    loopback (unless ``TISSU_ALLOW_LOOPBACK_FETCH=1``), link-local, multicast or reserved
    addresses. Redirect targets and robots.txt requests go through downloader middlewares too,
    so they are checked as well. A refused request raises ``IgnoreRequest`` (the spider's
    errback reports it) and counts in the ``tissu/url_refused`` stat.

    Limit: Scrapy resolves the name again when connecting, so a DNS answer that changes between
    the check and the connection (rebinding) is not caught here.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> UrlGuardMiddleware:
        """Scrapy hook."""
        return cls(crawler)

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        """Raise ``IgnoreRequest`` (French message) when the URL is refused."""
        try:
            check_url(request.url)
        except FetchError as exc:
            if self.stats is not None:
                self.stats.inc_value("tissu/url_refused")
            raise IgnoreRequest(f"adresse refusée : {exc}") from exc
