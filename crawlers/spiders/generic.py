"""The generic spider: schema.org Events and microformats h-events on any site.

Start URL = the registry entry's ``url`` (``format: html``). On each page it yields every event
found by :func:`crawlers.extraction.extract_events`, a :class:`PageReport`, and follows
same-site links that lead to more events:

* next-page links (``rel="next"``, or a link whose text is "Suivant", "Page suivante", "Next",
  "»"…);
* the ``url`` of an event found on the page, when it is on the same site (its detail page);
* links whose path looks like an agenda or an event (``/agenda/``, ``/evenement/``,
  ``/event/``, ``/atelier/``, ``/manifestation/``…).

Depth and page count are bounded by ``DEPTH_LIMIT`` and ``CLOSESPIDER_PAGECOUNT``. JSON answers
holding an ActivityStreams ``Event`` (Mobilizon, Gancio federation) are read too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from scrapy.http import Response, TextResponse

from crawlers.extraction import activity_events, extract_events
from crawlers.items import EventItem, PageReport
from crawlers.spiders.base import TissuSpider

EVENT_PATH_RE = re.compile(
    r"/(agenda|evenements?|événements?|evenement|events?|calendar|calendrier|manifestations?|"
    r"ateliers?|activites?|activités?|rendez-vous|rdv|programme|sorties?)(/|$|[-_?.])",
    re.IGNORECASE,
)
NEXT_TEXT_RE = re.compile(
    r"^\s*(suivant|suivante|page suivante|voir plus|plus d'événements|next|next page|older|"
    r"»|›|>>|>)\s*[»›>]?\s*$",
    re.IGNORECASE,
)
_SKIP_EXTENSIONS = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".svg", ".webp", ".zip", ".doc",
                    ".docx", ".xls", ".xlsx", ".ics", ".mp3", ".mp4", ".css", ".js")


class GenericEventSpider(TissuSpider):
    """Generic schema.org / h-event spider (``name = "generic"``)."""

    name = "generic"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """Yield the page's events, its report, then requests for same-site event links."""
        if not isinstance(response, TextResponse):
            yield from self._parse_binary(response)
            return
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1").lower()
        if "json" in content_type:
            yield from self._parse_json(response.url, response.text, response.status)
            return
        extraction = extract_events(response, self.now)
        yield from extraction.events
        yield PageReport(url=response.url, status=response.status, title=extraction.title,
                         events=len(extraction.events), problems=extraction.problems)
        for link in self.links_to_follow(response, extraction.events):
            yield response.follow(link, callback=self.parse, errback=self.failed)

    def _parse_binary(self, response: Response) -> Iterator[Any]:
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1").lower()
        if "json" in content_type:
            yield from self._parse_json(response.url, response.body.decode("utf-8", "replace"),
                                        response.status)
            return
        yield PageReport(url=response.url, status=response.status,
                         error=f"ce n'est pas une page HTML ({content_type or 'type inconnu'})")

    def _parse_json(self, url: str, text: str, status: int) -> Iterator[Any]:
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield PageReport(url=url, status=status, error=f"JSON illisible ({exc})")
            return
        events, problems = activity_events(data, url, self.now)
        yield from events
        yield PageReport(url=url, status=status, events=len(events), problems=problems)

    def links_to_follow(self, response: TextResponse, events: list[EventItem]) -> list[str]:
        """Same-site URLs worth visiting from this page (absolute, without fragment, deduped)."""
        host = urlsplit(response.url).hostname
        found: list[str] = []

        def keep(href: str | None) -> None:
            if not href:
                return
            url = urldefrag(urljoin(response.url, href.strip()))[0]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or parts.hostname != host:
                return
            if parts.path.lower().endswith(_SKIP_EXTENSIONS) or url == response.url:
                return
            if url not in found:
                found.append(url)

        for href in response.xpath('//a[@rel="next"]/@href | //link[@rel="next"]/@href').getall():
            keep(href)
        for anchor in response.xpath("//a[@href]"):
            text = " ".join(anchor.xpath(".//text()").getall())
            if NEXT_TEXT_RE.match(text) or NEXT_TEXT_RE.match(anchor.attrib.get("title", "")):
                keep(anchor.attrib["href"])
        for event in events:
            keep(event.url)
        for anchor in response.xpath("//a[@href]"):
            href = anchor.attrib["href"]
            if EVENT_PATH_RE.search(urlsplit(urljoin(response.url, href)).path):
                keep(href)
        return found

