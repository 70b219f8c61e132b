"""Per-file report over the iCalendar and feed corpus: parsed or not, events found, what was
repaired or reported.

Reads ``../shared/corpus/{ical,feeds}`` when present, otherwise the copies under
``tests/fixtures/`` and ``data/samples/``. Prints a Markdown table.

    .venv/bin/python bench/corpus_report.py
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.feeds import parse_feed
from connectors.ical import parse_ical
from normalize.events import Horizon, RecordView, normalize_ical_group, normalize_json_record

SHARED = ROOT.parent / "shared" / "corpus"
HORIZON = Horizon(dt.datetime(1990, 1, 1, tzinfo=dt.UTC), dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
LABELS = {
    "encoding": "encodage réparé",
    "fallback": "lecture VEVENT par VEVENT",
    "bad-vtimezone": "VTIMEZONE illisible ignoré",
    "bad-property": "propriété illisible retirée",
    "bad-rrule": "RRULE illisible retirée",
    "bad-line": "ligne illisible",
    "bad-folding": "pliage de ligne réparé",
    "empty-parameter": "paramètre vide retiré",
    "no-vcalendar": "VCALENDAR ajouté",
    "no-uid": "UID reconstruit",
    "duplicate": "doublon UID écarté",
    "repeated-property": "propriété répétée",
    "long-line": "ligne trop longue coupée",
    "truncated": "fichier tronqué",
    "empty": "aucun VEVENT",
    "bozo": "XML mal formé lu quand même",
    "pubdate-start": "début lu dans pubDate",
    "no-dtstart": "VEVENT sans DTSTART",
    "bad-dtstart": "DTSTART illisible",
    "bad-vevent": "VEVENT illisible",
    "not-ical": "pas un calendrier",
    "not-feed": "pas un flux",
}


def files(kind: str) -> list[Path]:
    """Corpus files of ``kind`` ('ical' or 'feeds'), from ../shared or the repository copies."""
    if (SHARED / kind).is_dir():
        return sorted(p for p in (SHARED / kind).iterdir() if p.is_file())
    found = {p.name: p for p in (ROOT / "tests" / "fixtures" / kind).iterdir() if p.is_file()}
    for p in (ROOT / "data" / "samples").iterdir():
        wanted = p.name.endswith(".ics") if kind == "ical" else p.name.endswith(".xml")
        if wanted and p.name not in found:
            found[p.name] = p
    return sorted(found.values())


NORMALIZE_LABELS = {
    "heure sans fuseau": "heures flottantes lues à Paris",
    "défini par le fichier (VTIMEZONE)": "fuseau défini par le fichier",
    "inconnu et non défini": "fuseau inconnu lu à Paris",
    "récurrence impossible": "récurrence impossible",
    "règles RRULE": "plusieurs RRULE",
    "date de début illisible": "date de début illisible",
}


def describe(problems, with_lines: bool = False) -> str:
    counts = Counter(p.code or "autre" for p in problems)
    parts = []
    for code, n in counts.items():
        text = LABELS.get(code, code) + (f" ×{n}" if n > 1 else "")
        lines = [str(p.line) for p in problems if p.code == code and p.line]
        if with_lines and lines:
            text += " (l. " + ", ".join(lines[:4]) + ("…" if len(lines) > 4 else "") + ")"
        parts.append(text)
    return ", ".join(parts)


def describe_normalize(warnings: list[str]) -> str:
    counts = Counter(label for w in warnings for key, label in NORMALIZE_LABELS.items()
                     if key in w)
    return ", ".join(label + (f" ×{n}" if n > 1 else "") for label, n in counts.items())


def status(records: int, errors: int) -> str:
    if errors and not records:
        return "non"
    return "partiel" if errors else "oui"


def ical_row(path: Path) -> list[str]:
    started = time.perf_counter()
    result = parse_ical(path.read_bytes(), "bench")
    groups: dict[str, list[RecordView]] = defaultdict(list)
    for r in result.records:
        groups[r.uid].append(RecordView(r.uid, r.recurrence_id, r.payload_format, r.payload,
                                        r.content_hash, r.uid_repaired))
    occurrences = 0
    failures = 0
    normalize_warnings: list[str] = []
    for uid, group in groups.items():
        try:
            normalized = normalize_ical_group("bench", uid, group, HORIZON)
        except ValueError:
            failures += 1
            continue
        occurrences += len(normalized.occurrences)
        normalize_warnings.extend(normalized.warnings)
    seconds = time.perf_counter() - started
    reported = ", ".join(part for part in (describe(result.warnings, True),
                                           describe_normalize(normalize_warnings)) if part)
    return [path.name, status(len(result.records), len(result.errors)),
            str(len(result.records)), str(len(groups) - failures), str(occurrences),
            str(len(result.errors)), reported or "—",
            describe(result.errors, True) or "—", f"{seconds:.1f}"]


def feed_row(path: Path) -> list[str]:
    started = time.perf_counter()
    result = parse_feed(path.read_bytes(), "bench")
    normalize_warnings: list[str] = []
    for r in result.records:
        if r.kind == "event":
            view = RecordView(r.uid, "", r.payload_format, r.payload, r.content_hash)
            try:
                normalize_warnings.extend(normalize_json_record("bench", view, HORIZON).warnings)
            except ValueError:
                normalize_warnings.append("date de début illisible")
    seconds = time.perf_counter() - started
    reported = ", ".join(part for part in (describe(result.warnings, True),
                                           describe_normalize(normalize_warnings)) if part)
    return [path.name, status(len(result.records), len(result.errors)), result.detected_format,
            str(result.events), str(result.news), str(len(result.errors)),
            reported or "—", describe(result.errors) or "—", f"{seconds:.1f}"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    source = SHARED if SHARED.is_dir() else ROOT / "tests/fixtures + data/samples"
    print(f"Corpus : {source}  (horizon des séances 1990–2040)\n")
    print("## iCalendar\n")
    print(table(["fichier", "lu", "VEVENT gardés", "événements (UID)", "séances", "erreurs",
                 "réparé / signalé", "erreurs (lignes)", "s"],
                [ical_row(p) for p in files("ical")]))
    print("\n## Flux RSS / Atom / JSON Feed\n")
    print(table(["fichier", "lu", "format", "événements", "actualités", "erreurs",
                 "réparé / signalé", "erreurs", "s"],
                [feed_row(p) for p in files("feeds")]))


if __name__ == "__main__":
    main()
