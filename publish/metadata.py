"""Datasette metadata for the published database: title, licences, sources, descriptions.

See https://docs.datasette.io/en/0.65/metadata.html. The compilation is under Licence Ouverte 2.0;
each source keeps its own licence, listed with its link.
"""

from __future__ import annotations

import html
import math
import sqlite3
from pathlib import Path
from typing import Any

from publish.columns import PUBLIC_TABLES

LICENCE = "Licence Ouverte 2.0 (Etalab)"
LICENCE_URL = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"


def build_metadata(db_path: Path) -> dict[str, Any]:
    """Metadata dictionary for ``datasette --metadata``, read from the published database."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        sources = connection.execute(
            "SELECT id, name, publisher_name, licence, url FROM sources ORDER BY id"
        ).fetchall()
        longest = connection.execute(
            "SELECT max(julianday(end_utc) - julianday(start_utc)) FROM occurrences"
        ).fetchone()[0]
    finally:
        connection.close()
    items = "".join(
        f"<li><strong>{html.escape(name)}</strong> ({html.escape(publisher)}) — licence : "
        f"{html.escape(licence)} — <a href=\"{html.escape(url)}\">{html.escape(url)}</a></li>"
        if url.startswith(("http://", "https://"))
        else f"<li><strong>{html.escape(name)}</strong> ({html.escape(publisher)}) — licence : "
        f"{html.escape(licence)} — fichier {html.escape(url)}</li>"
        for _id, name, publisher, licence, url in sources
    )
    description = (
        "<p>Tout ce que les associations et les services municipaux de Pantin proposent en "
        "matière de solidarité, réuni en un seul agenda ouvert. Compilation sous "
        f"<a href=\"{LICENCE_URL}\">{LICENCE}</a> ; chaque source garde sa licence :</p>"
        f"<ul>{items}</ul>"
    )
    tables: dict[str, Any] = {}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as connection:
        present = {t: {r[1] for r in connection.execute(f'PRAGMA table_info("{t}")')}
                   for (t,) in connection.execute(
                       "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    for table, spec in PUBLIC_TABLES.items():
        if table not in present:
            continue
        columns: dict[str, str] = spec["columns"]  # type: ignore[assignment]
        tables[table] = {
            "title": spec.get("title", table),
            "description": spec["description"],
            "columns": {c: d for c, d in columns.items() if c in present[table]},
            "license": LICENCE,
            "license_url": LICENCE_URL,
            "source": spec.get("source_note", "Sources listées dans la table sources"),
        }
        facets = [f for f in _FACETS.get(table, [])
                  if (f["array"] if isinstance(f, dict) else f) in present[table]]
        if facets:
            tables[table]["facets"] = facets
    tables["events"]["fts_table"] = "events_fts"
    tables["events"]["fts_pk"] = "rowid"
    tables["events"]["sort_desc"] = "dtstart_utc"
    tables["events"]["label_column"] = "title"
    tables["occurrences"]["sort"] = "start_utc"
    tables["events_fts"] = {"hidden": True}
    if "upcoming" in present:
        tables["upcoming"] = {
            "title": "À venir",
            "description": "Vue : séances pas encore terminées des événements encore publiés "
                           "par leur source, dans l'ordre chronologique.",
            "license": LICENCE,
            "license_url": LICENCE_URL,
            "columns": _view_columns(present["upcoming"]),
        }
    return {
        "title": "Tissu — agenda solidaire de Pantin",
        "description_html": description,
        "license": LICENCE,
        "license_url": LICENCE_URL,
        "source": "Associations et services municipaux de Pantin (voir la table sources)",
        "source_url": "https://github.com/tissu-pantin/tissu",
        "databases": {
            "tissu-open": {
                "description_html": description,
                "license": LICENCE,
                "license_url": LICENCE_URL,
                "tables": tables,
                "queries": canned_queries(present.get("events", set()),
                                          math.ceil(longest or 0) + 1),
            }
        },
    }


# Facets shown on each table page (Datasette "facets" metadata; arrays are JSON lists).
_FACETS: dict[str, list[Any]] = {
    "events": ["source_id", "quartier", {"array": "themes"}, {"array": "publics"}, "status",
               "gratuit", "organisation_id"],
    "occurrences": ["status", "all_day"],
    "sources": ["publisher_type", "format", "licence", "status"],
    "services": [{"array": "thematiques"}, {"array": "publics"}],
    "changes": ["kind", "run_id"],
}

# "This week": occurrences not yet ended that start within the next 7 days (UTC text compare;
# SQLite's 'localtime' is the server's zone, not necessarily Paris, so it is not used).
# The unary + keeps SQLite on the (start_utc, end_utc, event_id) index: the start range is
# short (the past horizon plus 7 days), "not yet ended" is most of the table.
_WEEK = ("+o.end_utc >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now') AND o.start_utc < "
         "strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+7 days')")
_LIVE = "e.removed_at_source IS NULL"


def canned_queries(event_columns: set[str],
                   longest_days: int | None = None) -> dict[str, dict[str, str]]:
    """The canned queries, written for the columns the published ``events`` table has.

    ``longest_days`` (the longest occurrence, in whole days, rounded up) bounds the start of
    the occurrences still running now, so "this week" scans only that much of the index.

    "Gratuit" uses ``events.gratuit`` when enrichment filled it, else a full-text search for
    "gratuit"/"entrée libre"; "Pour les seniors" uses ``publics`` (code ``seniors``) and the theme
    ``seniors-isolement``.
    """
    week = _WEEK
    if longest_days is not None:
        week += (f" AND o.start_utc >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', "
                 f"'-{longest_days} days')")
    canonical = " AND (e.is_canonical IS NULL OR e.is_canonical = 1)" \
        if "is_canonical" in event_columns else ""
    select = ("SELECT o.start_local AS debut, o.end_local AS fin, "
              "COALESCE(o.title, e.title) AS titre, COALESCE(o.location, e.location) AS lieu, "
              "e.quartier, e.themes AS themes, e.url, o.event_id FROM occurrences o "
              "JOIN events e ON e.id = o.event_id")
    upcoming = "o.end_utc >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
    if "gratuit" in event_columns:
        free = "e.gratuit = 1"
    else:
        free = ("e.rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH "
                "'gratuit OR gratuite OR \"entree libre\"')")
    seniors = ["e.themes LIKE '%\"seniors-isolement\"%'"]
    if "publics" in event_columns:
        seniors.insert(0, "e.publics LIKE '%\"seniors\"%'")
    return {
        "cette_semaine": {
            "title": "Cette semaine",
            "description": "Les séances des 7 prochains jours, dans l'ordre chronologique.",
            "sql": f"{select} WHERE {week} AND {_LIVE}{canonical} ORDER BY o.start_utc",
        },
        "par_quartier": {
            "title": "Cette semaine, par quartier",
            "description": "Nombre de séances des 7 prochains jours dans chaque quartier, et la "
                           "prochaine d'entre elles.",
            # one covering index: occurrences(start_utc, end_utc, live, quartier, …)
            "sql": ("SELECT COALESCE(o.quartier, '(quartier non précisé)') AS quartier, "
                    "count(*) AS seances, count(DISTINCT o.event_id) AS evenements, "
                    "min(o.start_local) AS prochaine FROM occurrences o "
                    f"WHERE {week} AND o.live = 1 GROUP BY o.quartier ORDER BY seances DESC"),
        },
        "gratuit": {
            "title": "Gratuit",
            "description": "Séances à venir des événements gratuits.",
            "sql": f"{select} WHERE {upcoming} AND {_LIVE}{canonical} AND {free} "
                   "ORDER BY o.start_utc LIMIT 500",
        },
        "seniors": {
            "title": "Pour les seniors",
            "description": "Séances à venir destinées aux seniors (public « seniors » ou thème "
                           "« seniors et isolement »).",
            "sql": f"{select} WHERE {upcoming} AND {_LIVE}{canonical} "
                   f"AND ({' OR '.join(seniors)}) ORDER BY o.start_utc LIMIT 500",
        },
        "nouveautes": {
            "title": "Nouveautés de la semaine",
            "description": "Événements apparus dans Tissu depuis 7 jours, les plus récents "
                           "d'abord.",
            "sql": ("SELECT e.first_seen_at AS ajoute_le, e.title AS titre, e.dtstart_local "
                    "AS debut, e.location AS lieu, e.quartier, e.themes, e.url, e.id "
                    "FROM events e WHERE e.first_seen_at >= strftime('%Y-%m-%dT%H:%M:%SZ', "
                    f"'now', '-7 days') AND {_LIVE}{canonical} ORDER BY e.first_seen_at DESC"),
        },
        "a_venir": {
            "title": "À venir",
            "description": "Séances à venir, dans l'ordre chronologique",
            "sql": "SELECT * FROM upcoming LIMIT 200",
        },
    }


def _view_columns(columns: set[str]) -> dict[str, str]:
    """Descriptions of the ``upcoming`` view's columns, taken from its tables."""
    occurrences: dict[str, str] = PUBLIC_TABLES["occurrences"]["columns"]  # type: ignore[assignment]
    events: dict[str, str] = PUBLIC_TABLES["events"]["columns"]  # type: ignore[assignment]
    known = {"occurrence_id": occurrences["id"], "event_id": occurrences["event_id"],
             "status": "confirmed | tentative | cancelled (séance ou événement annulé)"}
    return {c: known.get(c) or occurrences.get(c) or events.get(c, c) for c in sorted(columns)}
