"""NORMALIZE for data.inclusion sources: structure and service records → Organisation, Service.

Fields follow the data.inclusion schema v1 (https://schema.data.inclusion.beta.gouv.fr/,
``structure`` and ``service``); schema v0 items (API v0: ``presentation_resume``/``_detail``,
``typologie``, ``horaires_ouverture``, ``labels_nationaux``, ``types``, ``profils``,
``frais`` as a list, ``pre_requis``) are mapped onto the same columns.

Cleaning, the same for both versions: empty strings and ``0.0, 0.0`` positions count as missing;
control characters go (``\\u0002`` inside words is removed, not turned into a space); SIRET must be
14 digits and RNA ``W`` + 9 digits, or they are dropped with a warning; codes are checked against
the v1 reference lists shipped in ``schemas/datainclusion/``: well-formed codes are kept (v0 codes
too) and those off the v1 list are also listed in ``unknown_codes``, malformed ones (a space
inside) only there; ``horaires_accueil`` is kept as given and checked with ``opening-hours-py``
(OSM opening_hours syntax, https://wiki.openstreetmap.org/wiki/Key:opening_hours).
Contact e-mails and phone numbers go to PRIVATE columns only.

Identifiers: ``datainclusion--<producer>--<data.inclusion id>`` for both tables (the ids are
unique across data.inclusion, so a service harvested from the ``/services`` endpoint links to its
structure harvested by another source from ``/structures``); a service's ``organisation_id`` is
built the same way from its ``structure_id``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import opening_hours
from sqlmodel import Session, select

from connectors.datainclusion import prefixed_id
from normalize.text import html_to_text, one_line
from schemas.models import Organisation, Service, Source, SourceRecord

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "schemas" / "datainclusion"
_LISTS = {
    "thematiques": "thematiques.json",
    "publics": "publics.json",
    "frais": "frais.json",
    "modes_accueil": "modes-accueil.json",
    "types": "types-de-services.json",
    "modes_mobilisation": "modes-mobilisation.json",
}
_SIRET_RE = re.compile(r"^\d{14}$")
_RNA_RE = re.compile(r"^W\d{9}$")
_POSTAL_RE = re.compile(r"^\d{5}$")
_INSEE_RE = re.compile(r"^\w{5}$")
_INNER_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ID_PREFIX = "datainclusion"


@cache
def reference_codes(name: str) -> frozenset[str]:
    """The ``value`` codes of one v1 reference list ('thematiques', 'publics', 'frais',
    'modes_accueil', 'types', 'modes_mobilisation')."""
    entries = json.loads((REFERENCE_DIR / _LISTS[name]).read_text(encoding="utf-8"))
    return frozenset(str(e["value"]) for e in entries)


@dataclass
class DirectoryOutcome:
    """Counts and messages of one directory normalisation."""

    organisations: int = 0
    services: int = 0
    warnings: list[str] = field(default_factory=list)


def _clean(value: Any) -> Any:
    """'' and whitespace-only strings → None; control characters removed inside strings."""
    if isinstance(value, str):
        text = _INNER_CONTROL_RE.sub("", value).strip()
        return text or None
    return value


def _text(item: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = _clean(item.get(key))
        if isinstance(value, str):
            return value
    return None


def _codes(item: dict[str, Any], *keys: str) -> list[str]:
    """A code list from the first key present: list or single string (v1 ``frais``/``type``)."""
    for key in keys:
        value = item.get(key)
        if value is None or value == "" or value == []:
            continue
        values = value if isinstance(value, list) else [value]
        found: list[str] = []
        for code in values:
            code = _clean(code) if isinstance(code, str) else None
            if code and code not in found:
                found.append(code)
        return found
    return []


_CODE_RE = re.compile(r"^[a-z0-9]+(?:-{1,2}[a-z0-9]+)*$")


def _split_known(name: str, codes: list[str], unknown: dict[str, list[str]]) -> list[str]:
    """Flag, don't drop: well-formed codes stay (v0 codes too); those off the v1 list are also
    listed in ``unknown[name]``; malformed codes (spaces, capitals) are only listed there."""
    known = reference_codes(name)
    off_list = [c for c in codes if c not in known]
    if off_list:
        unknown[name] = off_list
    return [c for c in codes if c in known or _CODE_RE.match(c)]


def check_opening_hours(value: str | None) -> bool | None:
    """True when ``value`` parses as OSM opening_hours, False when not, None when empty."""
    if not value:
        return None
    try:
        opening_hours.OpeningHours(value)
    except Exception:  # noqa: BLE001 - ParserError and any other refusal mean "not OSM syntax"
        return False
    return True


def _position(item: dict[str, Any]) -> tuple[float | None, float | None]:
    lat, lon = item.get("latitude"), item.get("longitude")
    if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
        return None, None
    if (lat, lon) == (0, 0) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return float(lat), float(lon)


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _place(item: dict[str, Any], label: str, warnings: list[str]) -> dict[str, Any]:
    postal = _text(item, "code_postal")
    if postal and not _POSTAL_RE.match(postal):
        warnings.append(f"{label} : code postal invalide {postal!r} : ignoré")
        postal = None
    insee = _text(item, "code_insee")
    if insee and not _INSEE_RE.match(insee):
        warnings.append(f"{label} : code Insee invalide {insee!r} : ignoré")
        insee = None
    latitude, longitude = _position(item)
    return {
        "address": _text(item, "adresse"),
        "address_extra": _text(item, "complement_adresse"),
        "postal_code": postal,
        "city": _text(item, "commune"),
        "insee_code": insee,
        "latitude": latitude,
        "longitude": longitude,
    }


def _url(item: dict[str, Any], *keys: str) -> str | None:
    value = _text(item, *keys)
    return value if value and value.startswith(("http://", "https://")) else None


def _is_v0(item: dict[str, Any]) -> bool:
    return any(k in item for k in ("presentation_resume", "presentation_detail", "typologie",
                                   "horaires_ouverture", "labels_nationaux", "profils", "types"))


def structure_columns(source_id: str, item: dict[str, Any],
                      warnings: list[str]) -> dict[str, Any]:
    """One data.inclusion structure (v0 or v1) → Organisation columns (no timestamps)."""
    ident = prefixed_id(item.get("source"), item.get("id"))
    label = f"structure {ident}"
    name = one_line(_text(item, "nom"))
    if not name:
        warnings.append(f"{label} : sans nom")
        name = "(structure sans nom)"
    siret = _text(item, "siret")
    if siret is not None:
        siret = siret.replace(" ", "")
        if not _SIRET_RE.match(siret):
            warnings.append(f"{label} : SIRET invalide {siret!r} (14 chiffres attendus) : ignoré")
            siret = None
    rna = _text(item, "rna")
    if rna is not None and not _RNA_RE.match(rna.upper()):
        warnings.append(f"{label} : RNA invalide {rna!r} (W suivi de 9 chiffres) : ignoré")
        rna = None
    hours = _text(item, "horaires_accueil", "horaires_ouverture")
    hours_valid = check_opening_hours(hours)
    unknown: dict[str, list[str]] = {}
    thematiques = _codes(item, "thematiques")
    known_thematiques = _split_known("thematiques", thematiques, unknown)
    description = _text(item, "description", "presentation_detail", "presentation_resume")
    return {
        "id": f"{ID_PREFIX}--{ident}",
        "name": name,
        "type": _text(item, "typologie"),
        "website": _url(item, "site_web"),
        "source_id": source_id,
        "source_uid": ident,
        "siret": siret,
        "rna": rna.upper() if rna else None,
        "description": html_to_text(description),
        **_place(item, label, warnings),
        "opening_hours": hours,
        "opening_hours_valid": hours_valid,
        "networks": json.dumps(_codes(item, "reseaux_porteurs", "labels_nationaux"),
                               ensure_ascii=False),
        "thematiques": json.dumps(known_thematiques, ensure_ascii=False),
        "source_link": _url(item, "lien_source"),
        "accessibility_url": _url(item, "accessibilite_lieu", "accessibilite"),
        "schema_version": "v0" if _is_v0(item) else "v1",
        "date_maj": _date(item.get("date_maj")),
        "contact_email": _text(item, "courriel"),
        "contact_phone": _text(item, "telephone"),
    }


def service_columns(source_id: str, item: dict[str, Any],
                    warnings: list[str]) -> dict[str, Any]:
    """One data.inclusion service (v0 or v1) → Service columns (no timestamps)."""
    ident = prefixed_id(item.get("source"), item.get("id"))
    label = f"service {ident}"
    name = one_line(_text(item, "nom"))
    if not name:
        warnings.append(f"{label} : sans nom")
        name = "(service sans nom)"
    unknown: dict[str, list[str]] = {}
    columns: dict[str, Any] = {}
    for column, keys in (
        ("types", ("type", "types")),
        ("thematiques", ("thematiques",)),
        ("publics", ("publics", "profils")),
        ("frais", ("frais",)),
        ("modes_accueil", ("modes_accueil",)),
        ("modes_mobilisation", ("modes_mobilisation",)),
    ):
        columns[column] = json.dumps(_split_known(column, _codes(item, *keys), unknown),
                                     ensure_ascii=False)
    if unknown:
        detail = ", ".join(f"{k} : {' ; '.join(v)}" for k, v in sorted(unknown.items()))
        warnings.append(f"{label} : codes hors référentiel data.inclusion v1 ({detail})")
    hours = _text(item, "horaires_accueil", "recurrence")
    conditions = _text(item, "conditions_acces")
    if conditions is None:
        parts = _codes(item, "pre_requis") + _codes(item, "justificatifs")
        conditions = "\n".join(parts) or None
    structure = item.get("structure_id")
    return {
        "id": f"{ID_PREFIX}--{ident}",
        "source_id": source_id,
        "source_uid": ident,
        "organisation_id": f"{ID_PREFIX}--{prefixed_id(item.get('source'), structure)}"
        if structure not in (None, "") else None,
        "name": name,
        "summary": html_to_text(_text(item, "presentation_resume")),
        "description": html_to_text(_text(item, "description", "presentation_detail",
                                           "presentation_resume")),
        **columns,
        "publics_precisions": _text(item, "publics_precisions", "profils_precisions"),
        "frais_precisions": _text(item, "frais_precisions", "frais_autres"),
        "conditions_acces": conditions,
        "opening_hours": hours,
        "opening_hours_valid": check_opening_hours(hours),
        **_place(item, label, warnings),
        "source_link": _url(item, "lien_source"),
        "mobilisation_url": _url(item, "lien_mobilisation", "formulaire_en_ligne", "prise_rdv",
                                 "page_web"),
        "zone": json.dumps(_codes(item, "zone_eligibilite", "zone_diffusion_code"),
                           ensure_ascii=False),
        "unknown_codes": json.dumps(unknown, ensure_ascii=False, sort_keys=True),
        "schema_version": "v0" if _is_v0(item) else "v1",
        "date_maj": _date(item.get("date_maj")),
        "suspended_from": _date(item.get("date_suspension")),
        "contact_email": _text(item, "courriel"),
        "contact_phone": _text(item, "telephone"),
    }


def normalize_directory(session: Session, source: Source, now: dt.datetime) -> DirectoryOutcome:
    """Rebuild the Organisation and Service rows of a data.inclusion ``source``.

    Rows whose record was marked ``removed_at_source`` keep existing with ``removed_at_source``
    set; a record seen again clears it. ``updated_at`` moves only when the record changed.
    Never raises for a bad item: it costs a warning.
    """
    outcome = DirectoryOutcome()
    records = session.exec(
        select(SourceRecord).where(SourceRecord.source_id == source.id,
                                   SourceRecord.kind.in_(("structure", "service")))  # type: ignore[attr-defined]
    ).all()
    structures: set[str] = set()
    pending_links: list[Service] = []
    for record in sorted(records, key=lambda r: (r.kind != "structure", r.id)):
        model: type[Organisation | Service] = (
            Organisation if record.kind == "structure" else Service)
        try:
            item = json.loads(record.payload)
            if record.kind == "structure":
                data = structure_columns(source.id, item, outcome.warnings)
            else:
                data = service_columns(source.id, item, outcome.warnings)
                data["content_hash"] = record.content_hash
        except Exception as exc:  # noqa: BLE001 - one bad item costs only itself
            outcome.warnings.append(f"{record.uid} : élément illisible ({exc})")
            continue
        row: Organisation | Service | None = session.get(model, data["id"])  # type: ignore[assignment]
        if row is None:
            row = model(**data, first_seen_at=now, updated_at=now)
        else:
            if record.last_changed_at and (row.updated_at is None
                                           or record.last_changed_at > row.updated_at):
                row.updated_at = now
            for key, value in data.items():
                setattr(row, key, value)
        row.removed_at_source = record.removed_at_source
        session.add(row)
        if record.kind == "structure":
            structures.add(data["id"])
            outcome.organisations += record.removed_at_source is None
        else:
            pending_links.append(row)  # type: ignore[arg-type]
            outcome.services += record.removed_at_source is None
    session.flush()
    missing = sorted({s.organisation_id for s in pending_links
                      if s.organisation_id and s.organisation_id not in structures
                      and session.get(Organisation, s.organisation_id) is None})
    if missing:
        outcome.warnings.append(
            f"{len(missing)} structure(s) citée(s) par des services mais encore inconnue(s) "
            f"(ex. {missing[0]})")
    session.commit()
    return outcome
