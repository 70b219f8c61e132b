"""W6: the HTML path beside a peer, on the same saved pages, without network or crawl engine.

- Tissu: ``crawlers.extraction.extract_events`` (schema.org JSON-LD, microdata, RDFa, h-event)
  on each page, the item → JSON payload step of ``connectors/html.py``, then
  ``normalize.events.normalize_json_record`` (UTC and Paris times, one occurrence each).
- Peer: city-scrapers-core (PyPI ``city-scrapers-core``, the ``bench`` extra only): a
  ``CityScrapersSpider`` reading the same JSON-LD into ``Meeting`` items the way City Bureau
  spiders do (``get_id``, ``get_status``), then its ``DefaultValuesPipeline`` and
  ``MeetingPipeline``.

Both are fed the same ``scrapy.http.HtmlResponse`` objects built in memory, so the figure is the
cost of extraction + item processing, items per second.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any


def _pages(count: int, events_per_page: int) -> tuple[list[Any], int]:
    from scrapy.http import HtmlResponse

    from bench.generator import generate

    corpus = generate(count, events_per_page, seed=11, formats=("html",))
    responses = [HtmlResponse(url=f"https://{s.id}.bench.tissu/agenda", body=s.content,
                              encoding="utf-8") for s in corpus.sources]
    return responses, corpus.events


def tissu_items(responses: list[Any], now: dt.datetime) -> int:
    """Extract and normalise every event of ``responses``; returns the events normalised."""
    from connectors.html import PAYLOAD_KEYS
    from normalize.events import Horizon, RecordView, normalize_json_record

    from crawlers.extraction import extract_events

    horizon = Horizon.around(now, 30, 365)
    done = 0
    for response in responses:
        extraction = extract_events(response, now)
        for item in extraction.events:
            payload = json.dumps({key: getattr(item, key) for key in PAYLOAD_KEYS},
                                 ensure_ascii=False, sort_keys=True)
            record = RecordView(uid=item.uid, recurrence_id="", payload_format="json",
                                payload=payload, content_hash="")
            normalize_json_record("bench", record, horizon)
            done += 1
    return done


def peer_items(responses: list[Any]) -> int:
    """city-scrapers-core: a spider over the same JSON-LD, then its default pipelines."""
    from city_scrapers_core.constants import NOT_CLASSIFIED
    from city_scrapers_core.items import Meeting
    from city_scrapers_core.pipelines import DefaultValuesPipeline, MeetingPipeline
    from city_scrapers_core.spiders import CityScrapersSpider

    class SchemaOrgSpider(CityScrapersSpider):
        name = "bench_schema_org"
        agency = "Bench"
        timezone = "Europe/Paris"

        def parse(self, response):  # type: ignore[no-untyped-def]
            for script in response.css('script[type="application/ld+json"]::text').getall():
                data = json.loads(script)
                for node in data.get("@graph", [data]):
                    if node.get("@type") != "Event":
                        continue
                    start = dt.datetime.fromisoformat(node["startDate"])
                    end = dt.datetime.fromisoformat(node["endDate"]) if node.get("endDate") \
                        else None
                    place = node.get("location") or {}
                    meeting = Meeting(
                        title=node.get("name", ""), description=node.get("description", ""),
                        classification=NOT_CLASSIFIED,
                        start=start.replace(tzinfo=None), end=end.replace(tzinfo=None)
                        if end else None, all_day=False, time_notes="",
                        location={"name": place.get("name", ""),
                                  "address": place.get("address", "")},
                        links=[], source=node.get("url") or response.url,
                    )
                    meeting["status"] = self._get_status(meeting)
                    meeting["id"] = self._get_id(meeting)
                    yield meeting

    spider = SchemaOrgSpider()
    pipelines = [DefaultValuesPipeline(), MeetingPipeline()]
    done = 0
    for response in responses:
        for item in spider.parse(response):
            for pipeline in pipelines:
                item = pipeline.process_item(item, spider)
            done += 1
    return done


def compare(pages: int, work: Path, events_per_page: int = 25) -> dict[str, Any]:
    """Run both on ``pages`` generated pages; items/s of each and the ratio (ours / peer)."""
    try:
        import city_scrapers_core  # noqa: F401
    except ImportError:
        return {"status": "not measurable",
                "reason": "city-scrapers-core absent: pip install -e '.[bench]'"}
    responses, events = _pages(pages, events_per_page)
    now = dt.datetime.now(dt.UTC)
    tissu_items(responses[:2], now)  # warm imports and caches on both sides
    peer_items(responses[:2])
    start = time.perf_counter()
    ours = tissu_items(responses, now)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = peer_items(responses)
    peer_seconds = time.perf_counter() - start
    return {"pages": pages, "events": events,
            "tissu": {"items": ours, "seconds": ours_seconds, "items_per_s": ours / ours_seconds},
            "city_scrapers_core": {"items": theirs, "seconds": peer_seconds,
                                   "items_per_s": theirs / peer_seconds},
            "ratio": (ours / ours_seconds) / (theirs / peer_seconds)}
