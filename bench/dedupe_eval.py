"""Precision and recall of deduplication on the labelled pairs ``tests/fixtures/dedupe/``.

Each pair goes through the same blocking (same Europe/Paris day, starts at most
``WINDOW_MINUTES`` apart) and scoring (:func:`normalize.dedupe.score_pair`) as a harvest. A pair
counts as *merged* only when the decision is ``same``; pairs sent to review count as not merged
(a missed duplicate until a human decides). Precision = merged true pairs / merged pairs;
recall = merged true pairs / true pairs.

Run: ``.venv/bin/python bench/dedupe_eval.py [--errors]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from normalize.dedupe import WINDOW_MINUTES, score_pair
from normalize.times import PARIS

PAIRS = ROOT / "tests" / "fixtures" / "dedupe" / "pairs.jsonl"


def _event(side: dict[str, Any]) -> dict[str, Any]:
    event = dict(side)
    event["start"] = dt.datetime.fromisoformat(side["start"])
    event["all_day"] = False
    return event


def decide(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, float]:
    """(decision, score) for two events, blocking included."""
    if a["start"].astimezone(PARIS).date() != b["start"].astimezone(PARIS).date():
        return "different", 0.0
    if abs((a["start"] - b["start"]).total_seconds()) > WINDOW_MINUTES * 60:
        return "different", 0.0
    scored = score_pair(a, b)
    return scored.decision, scored.score


def evaluate(path: Path = PAIRS) -> dict[str, Any]:
    """Metrics over the labelled pairs: precision, recall, counts, per-kind errors."""
    tp = fp = fn = tn = review = 0
    errors: list[tuple[str, str, int, str, float]] = []
    per_kind: Counter[str] = Counter()
    wrong_kind: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        decision, score = decide(_event(pair["a"]), _event(pair["b"]))
        merged = decision == "same"
        review += decision == "review"
        per_kind[pair["kind"]] += 1
        if pair["label"] and merged:
            tp += 1
        elif pair["label"]:
            fn += 1
        elif merged:
            fp += 1
        else:
            tn += 1
        if merged != bool(pair["label"]):
            wrong_kind[pair["kind"]] += 1
            errors.append((pair["id"], pair["kind"], pair["label"], decision, score))
    return {
        "pairs": tp + fp + fn + tn, "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "review": review,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "per_kind": dict(per_kind), "wrong_kind": dict(wrong_kind), "errors": errors,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", action="store_true", help="list misclassified pairs")
    args = parser.parse_args(argv)
    m = evaluate()
    print(f"pairs={m['pairs']} positives={m['positives']}  precision={m['precision']:.3f}  "
          f"recall={m['recall']:.3f}  (tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']}, "
          f"sent to review={m['review']})")
    for kind, count in sorted(m["per_kind"].items()):
        print(f"  {kind:24s} {count:4d} pairs, {m['wrong_kind'].get(kind, 0):3d} wrong")
    if args.errors:
        for error in m["errors"]:
            print("  ", error)


if __name__ == "__main__":
    main()
