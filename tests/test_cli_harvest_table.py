"""The « Collecte par source » table of ``tissu harvest`` (tissu.cli.harvest_table)."""

from __future__ import annotations

import io

from rich.console import Console

from tissu.cli import UNCHANGED_LISTED, harvest_table
from tissu.pipeline import SourceSummary


def drawn(summaries: list[SourceSummary]) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(harvest_table(summaries))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_few_unchanged_sources_keep_a_row_each():
    summaries = [SourceSummary(f"asso-{i:02d}", "unchanged") for i in range(UNCHANGED_LISTED)]
    text = drawn(summaries)
    assert all(f"asso-{i:02d}" in text for i in range(UNCHANGED_LISTED))
    assert "autres sources" not in text


def test_many_unchanged_sources_share_one_row_and_the_others_keep_theirs():
    summaries = [SourceSummary(f"asso-{i:03d}", "unchanged") for i in range(500)]
    summaries[7] = SourceSummary("asso-007", "ok", records=12, events=12, occurrences=30)
    summaries[8] = SourceSummary("asso-008", "failed", errors=["asso-008 : HTTP 500"])
    summaries[9] = SourceSummary("asso-009", "unchanged", warnings=["asso-009 : TZID inconnu"])
    text = drawn(summaries)
    rows = [line for line in text.splitlines() if "asso-" in line or "autres" in line]
    assert len(rows) == 4
    assert "asso-007" in rows[0] and "12" in rows[0] and "30" in rows[0]
    assert "asso-008" in rows[1] and "failed" in rows[1]
    assert "asso-009" in rows[2] and "unchanged" in rows[2]
    assert "… 497 autres sources" in rows[3] and "unchanged" in rows[3]
