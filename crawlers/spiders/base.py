"""What every Tissu spider shares: the start URL and crawl clock arguments, the page report and
plain-French errors for requests that failed (HTTP status, robots.txt, refused address…)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import (
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.python.failure import Failure

from crawlers.items import PageReport


def failure_message(failure: Failure) -> tuple[int, str]:
    """(HTTP status or 0, French reason) for a failed request."""
    if failure.check(HttpError):
        status = failure.value.response.status
        return status, f"le serveur a répondu HTTP {status}"
    if failure.check(IgnoreRequest):
        text = str(failure.value)
        if "robots.txt" in text.lower() or not text:
            return 0, "page interdite aux robots par le fichier robots.txt du site"
        return 0, text
    if failure.check(DNSLookupError):
        return 0, "nom de domaine introuvable"
    if failure.check(TimeoutError, TCPTimedOutError):
        return 0, "le serveur ne répond pas à temps"
    if failure.check(ConnectionRefusedError):
        return 0, "connexion refusée par le serveur"
    return 0, f"échec du téléchargement ({failure.type.__name__ if failure.type else '?'})"


class TissuSpider(scrapy.Spider):
    """Base spider.

    Arguments (``-a`` on the command line, keyword arguments in code):
        url: the start URL (required).
        now: ISO 8601 aware datetime of the crawl (tests freeze it); default: the clock, UTC.
    """

    def __init__(self, url: str | None = None, now: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not url:
            raise ValueError("argument 'url' manquant (adresse de départ)")
        self.start_url = url
        host = urlsplit(url).hostname or ""
        self.allowed_domains = [host] if host else []
        parsed = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.UTC)
        self.now = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    async def start(self) -> AsyncIterator[scrapy.Request]:
        """The start request, with the errback reporting its failure."""
        yield scrapy.Request(self.start_url, callback=self.parse, errback=self.failed,
                             dont_filter=True)

    def failed(self, failure: Failure) -> Iterator[PageReport]:
        """Report a request that got no usable answer (never raises)."""
        status, message = failure_message(failure)
        url = getattr(getattr(failure, "request", None), "url", "") or ""
        yield PageReport(url=url, status=status, error=message)
