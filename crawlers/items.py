"""Scrapy items written by Tissu's spiders (read by ``connectors.html``).

Two kinds of item leave a crawl, one JSON object per line:

* :class:`EventItem` — one event found on a page (schema.org Event or subtype, microformats
  h-event, or a site-specific spider's fields). Its fields mirror the JSON payload of the feed
  connector (``connectors.feeds``) so that ``normalize.events.normalize_json_record`` reads both.
* :class:`PageReport` — one page visited: its title, how many events it held and the problems
  met (invalid JSON-LD, an event without start date…), so that a page without events is visible
  in the source's health instead of silently empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EventItem:
    """One event, with dates as ISO 8601 text.

    Attributes:
        uid: schema.org ``@id``, else the event's ``url`` when it names this event only, else a
            deterministic hash (``uid_repaired`` is then true).
        title / description: plain text as published (HTML entities decoded).
        url: the event's own page (absolute), else the page it was found on.
        dtstart: ``YYYY-MM-DD`` (a date, all-day) or ``YYYY-MM-DDTHH:MM[:SS][±HH:MM]``. Without
            offset the time is local to ``tzid`` (or floating when ``tzid`` is empty).
        dtend: same form; for dates it is EXCLUSIVE (RFC 5545 §3.6.1), i.e. schema.org's
            inclusive ``endDate`` plus one day.
        tzid: IANA zone for times without offset (schema.org ``scheduleTimezone``, or the
            site-specific spider's zone).
        rrule: RFC 5545 RRULE value (``FREQ=WEEKLY;BYDAY=WE;UNTIL=…``) from ``eventSchedule``.
        exdates: excluded starts (``exceptDate``), same form as ``dtstart``.
        dtstart_anchored: true when the schedule had no start date and ``dtstart`` is the crawl
            date (the record's change hash then ignores ``dtstart``/``dtend``).
        status: ``confirmed``, ``cancelled`` or ``tentative`` (RFC 5545 STATUS, lower case),
            mapped from schema.org ``eventStatus``.
        location: "name, street, postcode locality" of a Place, or the URL of a VirtualLocation
            when the event is online only.
        online_url: URL of a VirtualLocation, when any.
        organizer: organiser name(s); e-mail addresses are never kept.
        categories: keywords / h-event categories.
        schema_type: schema.org type (``MusicEvent``…) or ``h-event``.
        syntaxes: where the event was read (``json-ld``, ``microdata``, ``rdfa``,
            ``microformat``, ``html``), several when duplicates were merged.
        page_url: the page the event was found on.
        problems: warnings about this event in plain French.
    """

    uid: str
    dtstart: str
    title: str | None = None
    description: str | None = None
    url: str | None = None
    dtend: str | None = None
    tzid: str | None = None
    rrule: str | None = None
    exdates: list[str] = field(default_factory=list)
    dtstart_anchored: bool = False
    status: str = "confirmed"
    location: str | None = None
    online_url: str | None = None
    organizer: str | None = None
    categories: list[str] = field(default_factory=list)
    schema_type: str = "Event"
    syntaxes: list[str] = field(default_factory=list)
    page_url: str = ""
    uid_repaired: bool = False
    problems: list[str] = field(default_factory=list)
    kind: str = "event"


@dataclass
class PageReport:
    """One visited page.

    ``status`` is the HTTP status (0 when the request failed before any answer), ``error`` a
    plain-French reason when the page could not be read, ``problems`` the warnings met while
    extracting (with line numbers when known).
    """

    url: str
    status: int = 0
    title: str | None = None
    events: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    kind: str = "page"
