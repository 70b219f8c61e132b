"""Datasette metadata for the published database: title, licences, sources, descriptions.

See https://docs.datasette.io/en/0.65/metadata.html. The compilation is under Licence Ouverte 2.0;
each source keeps its own licence, listed with its link.
"""

from __future__ import annotations

import html
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
    for table, spec in PUBLIC_TABLES.items():
        tables[table] = {
            "description": spec["description"],
            "columns": spec["columns"],
            "license": LICENCE,
            "license_url": LICENCE_URL,
            "source": "Sources listées dans la table sources",
        }
    tables["events"]["fts_table"] = "events_fts"
    tables["events"]["fts_pk"] = "rowid"
    tables["events"]["sort_desc"] = "dtstart_utc"
    tables["occurrences"]["sort"] = "start_utc"
    tables["events_fts"] = {"hidden": True}
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
                "queries": {
                    "a_venir": {
                        "title": "À venir",
                        "description": "Séances à venir, dans l'ordre chronologique",
                        "sql": "SELECT * FROM upcoming LIMIT 200",
                    }
                },
            }
        },
    }
