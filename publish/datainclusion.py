"""The directory (organisations and services) exported in data.inclusion schema v1.

Writes ``datainclusion/structures.json`` and ``datainclusion/services.json``: JSON arrays of
records of the v1 ``structure`` and ``service`` models
(https://schema.data.inclusion.beta.gouv.fr/, JSON Schemas copied in ``schemas/datainclusion/``).
Every record is validated with jsonschema (Draft 2020-12, formats checked); a record that does not
validate is left out and reported in ``datainclusion/rapport.json`` with the reasons, in French.

Mapping: an organisation becomes a structure (``source`` is the data.inclusion source it came from,
``tissu`` for the publishers of our own sources); a service keeps its v1 codes. ``date_maj`` is the
record's own date when known, else the date of its last change seen by Tissu (UTC).
Private contacts (e-mail, telephone) are never exported.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "datainclusion"
TISSU_SOURCE = "tissu"


@cache
def validator(model: str) -> Draft202012Validator:
    """The jsonschema validator of a v1 model: ``structure`` or ``service``."""
    schema = json.loads((SCHEMA_DIR / f"{model}.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FormatChecker())


@dataclass
class DataInclusionOutcome:
    """Paths written and the records left out (id → French reasons)."""

    structures: Path
    services: Path
    written: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)


def _text(value: object, minimum: int = 1, maximum: int | None = None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) < minimum:
        return None
    return text[:maximum] if maximum else text


def _uri(value: object) -> str | None:
    text = _text(value)
    return text if text and text.startswith(("http://", "https://")) else None


def _codes(raw: object) -> list[str] | None:
    try:
        values = json.loads(str(raw)) if raw else []
    except json.JSONDecodeError:
        return None
    if not isinstance(values, list):
        return None
    unique = list(dict.fromkeys(str(v) for v in values))
    return unique or None


def _date(row: dict[str, Any], fallback: dt.date) -> str:
    for key in ("date_maj", "updated_at", "first_seen_at"):
        value = row.get(key)
        if value:
            return str(value)[:10]
    return fallback.isoformat()


def _address(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "adresse": _text(row.get("address")),
        "complement_adresse": _text(row.get("address_extra")),
        "code_postal": _text(row.get("postal_code")),
        "commune": _text(row.get("city")),
        "code_insee": _text(row.get("insee_code")),
        "latitude": row.get("latitude"),
        "longitude": row.get("longitude"),
    }


def structure_record(row: dict[str, Any], last_change: str | None,
                     today: dt.date) -> dict[str, Any]:
    """An ``organisations`` row → a data.inclusion v1 ``structure`` dict (not yet validated)."""
    imported = bool(row.get("source_uid"))
    record: dict[str, Any] = {
        "source": (row.get("source_id") if imported else None) or TISSU_SOURCE,
        "id": str(row.get("source_uid") or row["id"]),
        "nom": _text(row.get("name"), 1, 150),
        "date_maj": str(row["date_maj"])[:10] if row.get("date_maj")
        else (last_change or today.isoformat())[:10],
        "site_web": _uri(row.get("website")),
        "description": _text(row.get("description"), 5, 10000),
        "siret": _text(row.get("siret")),
        "lien_source": _uri(row.get("source_link")),
        "horaires_accueil": _text(row.get("opening_hours")),
        "accessibilite_lieu": _uri(row.get("accessibility_url")),
        "reseaux_porteurs": _codes(row.get("networks")),
        **_address(row),
    }
    return {k: v for k, v in record.items() if v is not None}


def service_record(row: dict[str, Any], structures: dict[str, dict[str, Any]],
                   today: dt.date) -> dict[str, Any]:
    """A ``services`` row → a data.inclusion v1 ``service`` dict (not yet validated)."""
    structure = structures.get(str(row.get("organisation_id")), {})
    types = _codes(row.get("types"))
    frais = _codes(row.get("frais"))
    record: dict[str, Any] = {
        "source": structure.get("source") or row.get("source_id") or TISSU_SOURCE,
        "structure_id": structure.get("id") or str(row.get("organisation_id") or ""),
        "id": str(row.get("source_uid") or row["id"]),
        "nom": _text(row.get("name"), 1, 150),
        "description": _text(row.get("description"), 5, 10000)
        or _text(row.get("summary"), 5, 10000),
        "date_maj": _date(row, today),
        "type": types[0] if types else None,
        "thematiques": _codes(row.get("thematiques")),
        "publics": _codes(row.get("publics")),
        "publics_precisions": _text(row.get("publics_precisions")),
        "frais": frais[0] if frais else None,
        "frais_precisions": _text(row.get("frais_precisions")),
        "modes_accueil": _codes(row.get("modes_accueil")),
        "conditions_acces": _text(row.get("conditions_acces")),
        "horaires_accueil": _text(row.get("opening_hours")),
        "lien_source": _uri(row.get("source_link")),
        "lien_mobilisation": _uri(row.get("mobilisation_url")),
        **_address(row),
    }
    return {k: v for k, v in record.items() if v is not None}


def _errors(model: str, record: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(objet)'} : {e.message}"
            for e in validator(model).iter_errors(record)]


def write_datainclusion(connection: sqlite3.Connection, out_dir: Path,
                        now: dt.datetime) -> DataInclusionOutcome:
    """Write ``structures.json``, ``services.json`` and ``rapport.json`` into ``out_dir``."""
    from publish.exports import write_atomic

    connection.row_factory = sqlite3.Row
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    today = now.astimezone(dt.UTC).date()
    outcome = DataInclusionOutcome(out_dir / "structures.json", out_dir / "services.json")
    last_change: dict[str, str] = {}
    event_columns = {r[1] for r in connection.execute("PRAGMA table_info(events)")}
    if "organisation_id" in event_columns:
        last_change = {org: when for org, when in connection.execute(
            "SELECT organisation_id, max(updated_at) FROM events "
            "WHERE organisation_id IS NOT NULL GROUP BY organisation_id")}
    structures: dict[str, dict[str, Any]] = {}
    if "organisations" in tables:
        for sql_row in connection.execute("SELECT * FROM organisations ORDER BY id"):
            row = dict(sql_row)
            record = structure_record(row, last_change.get(row["id"]), today)
            errors = _errors("structure", record)
            if errors:
                outcome.rejected[f"structure {row['id']}"] = errors
                continue
            structures[str(row["id"])] = record
    services: list[dict[str, Any]] = []
    if "services" in tables:
        for sql_row in connection.execute("SELECT * FROM services ORDER BY id"):
            row = dict(sql_row)
            if row.get("removed_at_source"):
                continue
            record = service_record(row, structures, today)
            errors = _errors("service", record)
            if errors:
                outcome.rejected[f"service {row['id']}"] = errors
                continue
            services.append(record)
    structure_list = list(structures.values())
    write_atomic(outcome.structures, json.dumps(structure_list, ensure_ascii=False,
                                                indent=1).encode("utf-8"))
    write_atomic(outcome.services, json.dumps(services, ensure_ascii=False,
                                              indent=1).encode("utf-8"))
    outcome.written = {"structures": len(structure_list), "services": len(services)}
    report = {"schema": "data.inclusion v1", "written": outcome.written,
              "rejected": outcome.rejected}
    write_atomic(out_dir / "rapport.json",
                 json.dumps(report, ensure_ascii=False, indent=1).encode("utf-8"))
    return outcome
