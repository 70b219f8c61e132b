"""Réseau Alpha: French-language courses for adults in Île-de-France (https://www.reseau-alpha.org).

THE TEMPLATE FOR A HAND-MADE SITE WITHOUT MARKUP. To add a site, copy this file to
``crawlers/spiders/<site>.py``, change ``name``, the selectors and the field mapping, save one
real page of the site unedited in ``tests/fixtures/html/`` (with its provenance row) and copy
the matching test in ``tests/test_crawlers_spiders.py``. Then register it as
``format: scrapy:<name>`` with the start URL in ``url``. Keep to these rules:

* selectors only (CSS/XPath through parsel), no parsing of dates by guesswork: write down the
  page's date and time formats (here "4 déc. 2025 - 5 mars 2026", "Lundi de 09:00 à 12:00");
* one :class:`EventItem` per recurring slot, with an RFC 5545 RRULE and a ``tzid``, so that
  normalisation expands occurrences (here weekly on the listed days until the course ends);
* the item ``uid`` is the page's own stable link for the thing (here the course's "En savoir
  plus" page), never a position on the page;
* whatever cannot be read goes to the item's or the page's ``problems``, never an exception.

What a structure page holds (checked on tests/fixtures/html/reseau_alpha_abc-formation.html):
``#structure strong`` is the structure's name; each course is a ``#formations
.contact-accordion`` block whose ``h3 a`` is "<title> - <availability>" with the address in
``small``; inside, ``strong.underline`` labels ("Objectifs visés", "Public attendu", "Étendue de
la formation", "Lieu(x) et horaire(s)") are followed by lists or ``<br>``-separated lines.
From a listing page the spider follows structure links (``/structure/apprentissage-du-francais/…``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from parsel import Selector
from scrapy.http import Response, TextResponse

from crawlers.extraction import assign_uids
from crawlers.items import EventItem, PageReport
from crawlers.spiders.base import TissuSpider

TZID = "Europe/Paris"
_MONTHS = {
    "janv": 1, "janvier": 1, "févr": 2, "fevr": 2, "février": 2, "mars": 3, "avr": 4,
    "avril": 4, "mai": 5, "juin": 6, "juil": 7, "juillet": 7, "août": 8, "aout": 8, "sept": 9,
    "septembre": 9, "oct": 10, "octobre": 10, "nov": 11, "novembre": 11, "déc": 12, "dec": 12,
    "décembre": 12,
}
_DAYS = {"lundi": "MO", "mardi": "TU", "mercredi": "WE", "jeudi": "TH", "vendredi": "FR",
         "samedi": "SA", "dimanche": "SU"}
_WEEKDAY = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
# "4 déc. 2025" (the site's short French dates)
_DATE_RE = re.compile(r"(\d{1,2})\s+([a-zéûè]+)\.?\s+(\d{4})", re.IGNORECASE)
# "Lundi de 09:00 à 12:00"
_SLOT_RE = re.compile(r"^(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\s+de\s+"
                      r"(\d{1,2})[:h](\d{2})\s+à\s+(\d{1,2})[:h](\d{2})$", re.IGNORECASE)
_AVAILABILITY = ("places disponibles", "complet", "liste d'attente", "inscriptions closes")
_STRUCTURE_LINK_RE = re.compile(r"/structure/apprentissage-du-francais/[^/#?]+/?$")


def _line(text: str | None) -> str:
    return " ".join((text or "").split())


def french_date(text: str) -> dt.date | None:
    """``"4 déc. 2025"`` → ``date(2025, 12, 4)``; None when unreadable."""
    match = _DATE_RE.search(text)
    if not match:
        return None
    month = _MONTHS.get(match.group(2).lower().rstrip("."))
    if month is None:
        return None
    try:
        return dt.date(int(match.group(3)), month, int(match.group(1)))
    except ValueError:
        return None


def _after_label(block: Selector, label: str) -> list[str]:
    """Non-empty text lines between the ``strong`` whose text starts with ``label`` and the next
    ``strong`` (the page separates lines with ``<br>``)."""
    lines: list[str] = []
    for strong in block.xpath(".//strong"):
        if not _line(strong.xpath("string()").get()).startswith(label):
            continue
        for node in strong.xpath("following-sibling::node()"):
            if node.root is not None and getattr(node.root, "tag", None) == "strong":
                break
            text = _line(node.xpath("string()").get() if hasattr(node.root, "tag")
                         else node.get())
            if text:
                lines.append(text)
        break
    return lines


def _list_after(block: Selector, label: str) -> list[str]:
    """Items of the first ``ul`` after the ``strong`` starting with ``label``."""
    for strong in block.xpath(".//strong"):
        if _line(strong.xpath("string()").get()).startswith(label):
            return [t for t in (_line(li.xpath("string()").get())
                                for li in strong.xpath("following-sibling::ul[1]/li")) if t]
    return []


def _first_day(start: dt.date, days: list[str]) -> dt.date:
    wanted = {_WEEKDAY[d] for d in days}
    for offset in range(7):
        candidate = start + dt.timedelta(days=offset)
        if candidate.weekday() in wanted:
            return candidate
    return start


class ReseauAlphaSpider(TissuSpider):
    """Courses of Réseau Alpha structure pages (``name = "reseau_alpha"``)."""

    name = "reseau_alpha"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """Yield one EventItem per course slot, a PageReport, and structure links to follow."""
        if not isinstance(response, TextResponse):
            yield PageReport(url=response.url, status=response.status,
                             error="ce n'est pas une page HTML")
            return
        items, problems = self.parse_structure(response)
        title = _line(response.xpath("//head/title/text()").get()) or None
        yield from items
        yield PageReport(url=response.url, status=response.status, title=title,
                         events=len(items), problems=problems)
        host = urlsplit(response.url).hostname
        seen = {response.url}
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href).split("#")[0]
            if url in seen or urlsplit(url).hostname != host:
                continue
            seen.add(url)
            if _STRUCTURE_LINK_RE.search(urlsplit(url).path):
                yield response.follow(url, callback=self.parse, errback=self.failed)

    def parse_structure(self, response: TextResponse) -> tuple[list[EventItem], list[str]]:
        """Every course slot of one structure page, and the page's problems (French)."""
        organizer = _line(response.css("#structure strong::text").get()) or None
        items: list[EventItem] = []
        problems: list[str] = []
        for position, block in enumerate(response.css("#formations .contact-accordion"),
                                         start=1):
            found, block_problems = self._course(block, organizer, response)
            items.extend(found)
            problems.extend(f"formation n°{position} : {p}" for p in block_problems)
        return assign_uids(items, response.url), problems

    def _course(self, block: Selector, organizer: str | None,
                response: TextResponse) -> tuple[list[EventItem], list[str]]:
        problems: list[str] = []
        heading = _line(" ".join(block.xpath("./h3/a/text()").getall()))
        title, availability = heading, None
        head, _sep, tail = heading.rpartition(" - ")
        if head and tail.lower() in _AVAILABILITY:
            title, availability = head, tail
        link = block.css("a.readon::attr(href)").get()
        url = response.urljoin(link) if link else None
        span = " ".join(_after_label(block, "Étendue de la formation"))
        dates = [french_date(part) for part in span.split(" - ")] if span else []
        if len(dates) != 2 or None in dates:
            problems.append(f"« {title} » : période illisible {span!r}, ignorée")
            return [], problems
        first, last = dates[0], dates[1]
        assert first is not None and last is not None
        description_parts = []
        if availability:
            description_parts.append(availability + ".")
        for label, name in (("Objectifs visés", "Objectifs visés"),
                            ("Niveau de langue", "Niveau visé"),
                            ("Public attendu", "Public attendu")):
            values = _list_after(block, label)
            if values:
                description_parts.append(f"{name} : " + " ; ".join(values) + ".")
        description = "\n".join(description_parts) or None

        # Lieu(x) et horaire(s): a place line, then its "Lundi de 09:00 à 12:00" lines.
        slots: dict[tuple[str | None, str, str], list[str]] = {}
        place: str | None = _line(block.xpath("./h3/a/small").xpath("string()").get()) or None
        for text in _after_label(block, "Lieu(x) et horaire(s)"):
            match = _SLOT_RE.match(text)
            if match:
                day = _DAYS[match.group(1).lower()]
                start = f"{int(match.group(2)):02d}:{match.group(3)}"
                end = f"{int(match.group(4)):02d}:{match.group(5)}"
                slots.setdefault((place, start, end), []).append(day)
            else:
                place = text.replace(" : ", ", ", 1)
        base = {"title": title, "description": description, "url": url, "tzid": TZID,
                "organizer": organizer, "categories": ["cours de français"],
                "schema_type": "CourseInstance", "syntaxes": ["html"],
                "page_url": response.url}
        if not slots:
            problems.append(f"« {title} » : pas d'horaires, gardée comme période à la journée")
            item = EventItem(uid=url or "", dtstart=first.isoformat(),
                             dtend=(last + dt.timedelta(days=1)).isoformat(),
                             location=place, **base)  # type: ignore[arg-type]
            item.problems = list(problems)
            return [item], problems
        items = []
        until = dt.datetime.combine(last, dt.time(23, 59, 59), tzinfo=ZoneInfo(TZID))
        until_text = until.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        for position, ((slot_place, begins, ends), days) in enumerate(slots.items(), start=1):
            opening = _first_day(first, days)
            uid = url or ""
            if uid and len(slots) > 1:
                uid = f"{uid}#creneau-{position}"
            items.append(EventItem(
                uid=uid,
                dtstart=f"{opening.isoformat()}T{begins}:00",
                dtend=f"{opening.isoformat()}T{ends}:00",
                rrule=f"FREQ=WEEKLY;BYDAY={','.join(days)};UNTIL={until_text}",
                location=slot_place,
                **base,  # type: ignore[arg-type]
            ))
        return items, problems
