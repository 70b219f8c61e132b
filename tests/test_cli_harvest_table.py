"""The « Collecte par source » table of ``tissu harvest`` (tissu.cli.harvest_table)."""

from __future__ import annotations

import io

from rich.console import Console

from tissu.cli import UNCHANGED_LISTED, harvest_table
from tissu.pipeline import SourceSummary


def drawn(summaries: list[SourceSummary], width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
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
    assert "asso-008" in rows[1] and "en échec" in rows[1]
    assert "asso-009" in rows[2] and "inchangée" in rows[2]
    assert "… 497 autres sources" in rows[3] and "inchangée" in rows[3]


def test_the_state_is_in_french():
    # the trial: the « état » column showed ok / failed / partial / unchanged
    summaries = [SourceSummary("a-ok", "ok"), SourceSummary("b-failed", "failed"),
                 SourceSummary("c-partial", "partial"), SourceSummary("d-unchanged", "unchanged")]
    rows = {line.split()[0]: line for line in drawn(summaries).splitlines()
            if line.strip().startswith(("a-", "b-", "c-", "d-"))}
    assert rows["a-ok"].split()[1] == "ok"
    assert "en échec" in rows["b-failed"] and "failed" not in rows["b-failed"].replace(
        "b-failed", "")
    assert "partielle" in rows["c-partial"]
    assert "inchangée" in rows["d-unchanged"]
    # a seed source no longer in the registry (tissu.pipeline.RETIRED)
    retired = drawn([SourceSummary("e-retired", "retired", warnings=["e-retired : retirée"])])
    assert next(line for line in retired.splitlines() if line.startswith("e-retired")).split()[
        1] == "retirée"
    assert "unchanged" not in drawn(summaries).replace("d-unchanged", "")


def test_the_table_is_readable_at_80_columns():
    # the trial (output piped, 80 columns): « vacances-sc… » and « avertisseme… »
    summaries = [SourceSummary("vacances-scolaires-zone-b", "partial", records=1234,
                               events=1200, occurrences=45678, warnings=["w"] * 12),
                 SourceSummary("chicago-housing-trust-fund", "unchanged"),
                 SourceSummary("albi", "failed", errors=["albi : HTTP 500"])]
    text = drawn(summaries, width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in text
    header = next(line for line in lines if line.startswith("source"))
    assert header.split() == ["source", "état", "fiches", "évén.", "séances", "avert.",
                              "erreurs"]
    row = next(line for line in lines if line.startswith("vacances-scolaires-zone-b "))
    assert row.split() == ["vacances-scolaires-zone-b", "partielle", "1234", "1200", "45678",
                           "12", "0"]
    assert next(line for line in lines if "chicago" in line).split()[0] == (
        "chicago-housing-trust-fund")


def test_a_narrow_screen_folds_the_id_and_never_cuts_a_count():
    summaries = [SourceSummary("vacances-scolaires-zone-b", "ok", records=123456)]
    text = drawn(summaries, width=60)
    assert "123456" in text and "…" not in text
    assert "".join(line.split()[0] for line in text.splitlines()
                   if line and not line.startswith((" ", "─", "source"))
                   and line.split()[0] not in ("ok",)).startswith("vacances-scolaires-zone-b")


def test_long_warnings_fold_under_their_own_text_at_80_columns(monkeypatch):
    from tissu import cli

    console = Console(file=io.StringIO(), width=80, color_system=None)
    monkeypatch.setattr(cli, "console", console)
    url = "http://agenda.aquitaine.fr/Printemps-des-vins-de-Blaye-Cotes-de-Bordeaux,7649.html"
    cli._print_harvest_warnings([SourceSummary("aquitaine", "ok", warnings=[
        f"aquitaine : {url} : heure sans fuseau, lue à l'heure de Paris"])])
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "Avertissements de aquitaine (1) :"
    assert lines[1].startswith("  - http://agenda.aquitaine.fr/")  # not a dash alone
    assert all(line.startswith("    ") for line in lines[2:])  # folded under the text
    assert all(len(line) <= 80 for line in lines)
    assert "".join(line.strip() for line in lines[1:]).replace(" ", "") == (
        f"-{url}:heuresansfuseau,lueàl'heuredeParis")
