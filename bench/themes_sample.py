"""Build the theme evaluation set ``tests/fixtures/themes/events.jsonl`` from real corpus files.

Reads the unedited corpus copies in ``tests/fixtures/themes/`` (provenance in
``tests/fixtures/PROVENANCE.md``) and writes one JSON line per sampled event with what theme
assignment sees: ``id``, ``file``, ``key`` (the record's identifier in that file), ``source``
(the name of the category mapping in ``data/mappings/``), ``title``, ``description`` (plain
text) and ``categories`` (the source's own labels). Labels live apart, in ``labels.csv``.

Sampling is deterministic, fixed before any rule was written:
- OpenAgenda Albi: every event with a distinct (title, description);
- Toulouse CSV: every 5th row, plus rows 273 and 278 and 126 and 265 (solidarity-related, picked
  by reading the titles, flagged ``picked``);
- Aquitaine RSS (SPIP, hCalendar): every 4th event item, plus the items whose title says
  "Café linguistique" (flagged ``picked``);
- the single OpenAgenda events and the envelope ``oa_events.response.json``;
- iCalendar: the distinct SUMMARYs of the Chicago housing trust fund, FabLab Cottbus and
  French school holidays (Zone B) calendars.

Run: ``.venv/bin/python bench/themes_sample.py`` (rewrites events.jsonl; labels untouched).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.feeds import parse_feed
from connectors.ical import parse_ical
from normalize.events import Horizon, RecordView, normalize_ical_group
from normalize.text import html_to_text, one_line

FOLDER = ROOT / "tests" / "fixtures" / "themes"
HORIZON = Horizon(dt.datetime(1990, 1, 1, tzinfo=dt.UTC), dt.datetime(1990, 1, 2, tzinfo=dt.UTC))


def _fr(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("fr") or next(iter(value.values()), "") or "")
    return str(value or "")


def _oa_item(file: str, event: dict[str, Any], source: str) -> dict[str, Any]:
    keywords = event.get("keywords") or {}
    kw = keywords.get("fr", []) if isinstance(keywords, dict) else []
    description = " ".join(
        part for part in (
            _fr(event.get("description")),
            html_to_text(_fr(event.get("longDescription"))) or "",
        ) if part
    )
    cats: list[str] = [k for k in kw if k]
    return {
        "file": file, "key": str(event.get("uid")), "source": source,
        "title": one_line(_fr(event.get("title"))) or "",
        "description": description, "categories": cats,
    }


def openagenda() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for event in json.loads((FOLDER / "oa_albi_events.json").read_text(encoding="utf-8")):
        item = _oa_item("oa_albi_events.json", event, "openagenda")
        signature = (item["title"], item["description"])
        if signature in seen:
            continue
        seen.add(signature)
        items.append(item)
    for name in ("oa_begles.event.json", "oa_bunkers.event.json", "oa_quinzaine.event.json",
                 "oa_suzanne.event.json", "oa_visite-gratuite.event.json",
                 "oa_withRegistrationLink.event.json"):
        items.append(_oa_item(name, json.loads((FOLDER / name).read_text(encoding="utf-8")),
                              "openagenda"))
    envelope = json.loads((FOLDER / "oa_events.response.json").read_text(encoding="utf-8"))
    for event in envelope["events"]:
        items.append(_oa_item("oa_events.response.json", event, "openagenda"))
    return items


def toulouse() -> list[dict[str, Any]]:
    name = "agenda_so_toulouse_2013-10-31.csv"
    text = (FOLDER / name).read_bytes().decode("cp1252")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    picked = {273, 278, 126, 265}
    items = []
    for number, row in enumerate(rows, start=1):
        if number % 5 != 0 and number not in picked:
            continue
        categories: list[str] = []
        for column in ("Type de manifestation", "Catégorie de la manifestation",
                       "Thème de la manifestation"):
            categories += [c.strip() for c in (row[column] or "").split(",") if c.strip()]
        item = {
            "file": name, "key": row["Identifiant"], "source": "toulouse-so",
            "title": one_line(row["Nom de la manifestation"]) or "",
            "description": html_to_text(
                "\n".join(p for p in (row["Descriptif court"], row["Descriptif long"]) if p)
            ) or "",
            "categories": categories,
        }
        if number in picked and number % 5 != 0:
            item["picked"] = True
        items.append(item)
    return items


def aquitaine() -> list[dict[str, Any]]:
    name = "agenda_region_aquitaine_spip_rss.xml"
    parsed = parse_feed((FOLDER / name).read_bytes(), "aquitaine")
    items = []
    events = [r for r in parsed.records if r.kind == "event"]
    for number, record in enumerate(events, start=1):
        data = json.loads(record.payload)
        title = one_line(data.get("title")) or ""
        extra = "café linguistique" in title.lower()
        if number % 4 != 0 and not extra:
            continue
        item = {
            "file": name, "key": record.uid, "source": "rss",
            "title": title, "description": html_to_text(data.get("description")) or "",
            "categories": list(data.get("categories") or []),
        }
        if extra and number % 4 != 0:
            item["picked"] = True
        items.append(item)
    return items


def icalendar_files() -> list[dict[str, Any]]:
    items = []
    for name in ("chi_low_income_housing_trust_fund.ics", "fablab_cottbus.ics", "Zone-B.ics"):
        parsed = parse_ical((FOLDER / name).read_bytes(), name)
        seen: set[str] = set()
        for record in parsed.records:
            if record.recurrence_id:
                continue
            view = RecordView(record.uid, "", record.payload_format, record.payload,
                              record.content_hash)
            event = normalize_ical_group("x", record.uid, [view], HORIZON).event
            if event["title"] in seen:
                continue
            seen.add(event["title"])
            items.append({
                "file": name, "key": record.uid, "source": "ical",
                "title": event["title"], "description": event["description"] or "",
                "categories": json.loads(event["categories"]),
            })
    return items


def build() -> list[dict[str, Any]]:
    """All sampled items, each with a unique ``id`` (``<file>#<key>``)."""
    items = openagenda() + toulouse() + aquitaine() + icalendar_files()
    for item in items:
        item["id"] = f"{item['file']}#{item['key']}"
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "duplicate ids"
    return items


def main() -> None:
    items = build()
    with (FOLDER / "events.jsonl").open("w", encoding="utf-8") as handle:
        for item in items:
            ordered = {k: item[k] for k in ("id", "file", "key", "source", "title",
                                             "description", "categories")}
            if item.get("picked"):
                ordered["picked"] = True
            handle.write(json.dumps(ordered, ensure_ascii=False) + "\n")
    by_file: dict[str, int] = {}
    for item in items:
        by_file[item["file"]] = by_file.get(item["file"], 0) + 1
    print(f"{len(items)} events")
    for file, count in sorted(by_file.items()):
        print(f"  {count:4d}  {file}")


if __name__ == "__main__":
    main()
