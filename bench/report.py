"""The results table of BENCHMARKS.md, rewritten from one ``bench/results/*.json`` report.

Only the part between ``<!-- bench:results:start -->`` and ``<!-- bench:results:end -->`` is
replaced; the prose around it is kept.

Run alone: ``python -m bench.report bench/results/<date>.json`` rewrites the table from a report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


def _n(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}".replace(",", " ")
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


def _ok(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "–"
    met = value >= target if higher else value <= target
    return "oui" if met else "**non**"


def rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per figure: workload, what, figure, reference (floor/ceiling), ratio, target, met."""
    out: list[list[str]] = []
    w = report.get("workloads", {})

    def missing(name: str, label: str) -> None:
        value = w.get(name)
        reason = "non lancé" if value is None else value.get("reason", value.get("status"))
        out.append([label, "non mesurable", "–", "–", "–", "–", str(reason)[:120]])

    w1 = w.get("W1+W2", {})
    if w1.get("status") == "ok":
        corpus, floor = w1["corpus"], w1["floor"]
        label = f"W1 ({corpus['sources']} sources, {corpus['events']} évén.)"
        one = w1["one_process_sqlite"]
        out.append([label, "1 processus, SQLite : collecte+publication",
                    f"{_n(one['seconds'])} s, {_n(one['events_per_s'], 0)} évén./s, "
                    f"RSS max {_n(one['peak_rss_mb'], 0)} Mo",
                    f"plancher icalendar/feedparser/extruct {_n(floor['events_per_s'], 0)} "
                    "évén./s", _n(one["ratio_to_floor"], 2), "≥ 0,5",
                    _ok(one["ratio_to_floor"], 0.5)])
        two = w1.get("two_workers_postgresql", {})
        if "ratio_to_floor" in two:
            out.append([label, "2 travailleurs, PostgreSQL",
                        f"{_n(two['seconds'])} s, {_n(two['events_per_s'], 0)} évén./s, "
                        f"RSS max {_n(two['peak_rss_mb'], 0)} Mo",
                        f"plancher {_n(floor['events_per_s'], 0)} évén./s",
                        _n(two["ratio_to_floor"], 2), "≥ 0,9", _ok(two["ratio_to_floor"], 0.9)])
        else:
            out.append([label, "2 travailleurs, PostgreSQL", "non mesurable", "–", "–", "≥ 0,9",
                        str(two.get("reason", "–"))])
        w2 = w1["w2"]
        out.append(["W2 (même collecte, rien n'a changé)", "collecte+publication",
                    f"{_n(w2['seconds'])} s ({w2['not_modified']} réponses 304 sur "
                    f"{w2['requests']} requêtes)", f"W1 {_n(one['seconds'])} s",
                    _n(w2["share_of_w1"], 3), "≤ 0,05", _ok(w2["share_of_w1"], 0.05, False)])
    else:
        missing("W1+W2", "W1/W2")

    w3 = w.get("W3", {})
    if w3.get("status") == "ok":
        occurrences = w3["database"]["occurrences"]
        static = w3.get("static_file_ceiling", {})
        default = w3.get("datasette_default_table", {})
        for key, label, target_p95 in (
                ("resident_week_by_quartier", "page résidente « cette semaine », par quartier",
                 30),
                ("resident_week_uncached", ("la même, une adresse différente à chaque "
                                            "requête (rendue sans cache)"), 30),
                ("resident_search_page", "page de recherche des habitants (/recherche)", 100),
                ("resident_search_uncached", ("la même, une adresse différente à chaque "
                                              "requête (sans cache)"), 100),
                ("datasette_search_page", ("page de recherche plein texte (Datasette), "
                                           "copie gardée en mémoire"), 100),
                ("datasette_search_uncached", ("la même, une adresse différente à chaque "
                                               "requête (calculée par Datasette)"), 100),
                ("search_json", "recherche plein texte, JSON, copie gardée", 100),
                ("search_json_uncached", ("la même, une adresse différente à chaque "
                                          "requête"), 100),
                ("week_json", "séances de la semaine, JSON", None),
                ("datasette_default_table", "page de table par défaut de Datasette (référence)",
                 None),
                ("static_file_ceiling", "fichier statique (plafond)", None)):
            r = w3.get(key, {})
            if "req_per_s" not in r or not r.get("requests"):
                reason = r.get("reason") or "aucune réponse complète pendant la mesure (> 20 s)"
                out.append([f"W3 ({_n(occurrences)} séances, 10 clients)", label,
                            "0 req/s", "–", "–",
                            f"p95 ≤ {target_p95} ms" if target_p95 else "–",
                            f"**non** ({str(reason)[:100]})"])
                continue
            figure = (f"{_n(r['req_per_s'])} req/s ; p50 {_n(r['p50_ms'])} / p95 "
                      f"{_n(r['p95_ms'])} / p99 {_n(r['p99_ms'])} ms")
            reference = (f"statique {_n(static.get('req_per_s'))} req/s"
                         if key != "static_file_ceiling" else "–")
            ratio = _n(r["req_per_s"] / static["req_per_s"], 3) if static.get("req_per_s") \
                and key != "static_file_ceiling" else "–"
            target, met = "–", "–"
            if target_p95 is not None:
                target, met = f"p95 ≤ {target_p95} ms", _ok(r["p95_ms"], target_p95, False)
            if key in ("resident_week_by_quartier", "resident_week_uncached") \
                    and default.get("req_per_s"):
                vs = r["req_per_s"] / default["req_per_s"]
                target += f" ; ≥ 6 × table par défaut ({_n(vs, 2)} ×)"
                met = "oui" if (r["p95_ms"] <= 30 and vs >= 6) else "**non**"
            out.append([f"W3 ({_n(occurrences)} séances, 10 clients)", label, figure, reference,
                        ratio, target, met])
    else:
        missing("W3", "W3")

    w4 = w.get("W4", {})
    if w4.get("status") == "ok":
        label = f"W4 ({_n(w4['events_in_store'])} évén., {_n(w4['feed_events'])} à venir)"
        out.append([label, "export iCalendar (agenda.ics)",
                    f"{_n(w4['ics']['seconds'], 2)} s ({_n(w4['ics']['events_per_s'], 0)} "
                    f"évén./s) ; aller-retour {'valide' if w4['roundtrip']['valid'] else '**invalide**'}",
                    f"icalendar seul {_n(w4['icalendar_floor']['seconds'], 2)} s",
                    _n(w4["ics_speed_ratio"], 2), "≥ 1 (au moins aussi rapide)",
                    _ok(w4["ics_speed_ratio"], 1.0)])
        out.append([label, "export JSON-LD", f"{_n(w4['jsonld']['seconds'], 2)} s", "–", "–",
                    "–", "–"])
        out.append([label, "exports CSV (toutes les tables)", f"{_n(w4['csv']['seconds'], 2)} s",
                    "–", "–", "–", "–"])
    else:
        missing("W4", "W4")

    w5 = w.get("W5", {})
    if w5.get("status") == "ok" and w5.get("precision") is not None:
        out.append([f"W5 ({_n(w5['events'])} évén., {_n(w5['truth_pairs'])} paires vraies)",
                    "dédoublonnage",
                    f"{_n(w5['seconds'], 2)} s ; précision {_n(w5['precision'], 4)}, rappel "
                    f"{_n(w5['recall'], 4)}", "vérité du générateur", "–",
                    "≤ 5 s ; P ≥ 0,995 ; R ≥ 0,98",
                    "oui" if (w5["seconds"] <= 5 and w5["precision"] >= 0.995
                              and w5["recall"] >= 0.98) else "**non**"])
    else:
        missing("W5", "W5")

    w6 = w.get("W6", {})
    if w6.get("status") == "ok" and "ratio" in w6:
        out.append([f"W6 ({w6['pages']} pages, {w6['events']} évén.)",
                    "extraction schema.org + normalisation",
                    f"{_n(w6['tissu']['items_per_s'], 0)} items/s",
                    f"city-scrapers-core {_n(w6['city_scrapers_core']['items_per_s'], 0)} "
                    "items/s", _n(w6["ratio"], 3), "–", "–"])
    else:
        missing("W6", "W6")
    return out


def table(report: dict[str, Any], source: Path | str) -> str:
    """The Markdown block written between the markers."""
    machine = report.get("machine", {})
    commands = list(dict.fromkeys(
        [report.get("command")]
        + [w.get("command") for w in report.get("workloads", {}).values() if w.get("command")]))
    head = (f"Run of {report.get('started_utc')} (scale `{report.get('scale')}`, commit "
            f"`{report.get('git')}`), command(s) {'; '.join(f'`{c}`' for c in commands)}, "
            "raw figures in "
            f"`{source}`. Machine: {machine.get('cpus')} cores, Python {machine.get('python')}, "
            f"load average at start {', '.join(f'{x:.1f}' for x in machine.get('load_average', []))}.")
    lines = [head, "",
             "| charge | mesure | chiffre | plancher / plafond (même exécution) | rapport | cible "
             "| atteinte |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |"
              for row in rows(report)]
    return "\n".join(lines)


def update_benchmarks_md(path: Path, report: dict[str, Any], source: Path | str) -> None:
    """Replace the results block of ``path`` (created with the markers when absent)."""
    block = f"{START}\n{table(report, source)}\n{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    path.write_text(before + block + after, encoding="utf-8")


if __name__ == "__main__":
    report_path = Path(sys.argv[1])
    update_benchmarks_md(Path(__file__).resolve().parent.parent / "BENCHMARKS.md",
                         json.loads(report_path.read_text(encoding="utf-8")), report_path)
