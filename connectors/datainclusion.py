"""data.inclusion connector (``format: datainclusion``): structures and services → records.

data.inclusion (https://www.data.inclusion.beta.gouv.fr/, schema
https://schema.data.inclusion.beta.gouv.fr/) publishes the social-inclusion offer of France as
*structures* (organisations) and *services*. Accepted shapes:

- an API page ``{"items": [...], "total", "page", "size", "pages"}`` (v0 and v1 API);
- a bare list of items, or one item;
- ``{"structures": [...], "services": [...]}`` (both lists in one file).

An item with ``structure_id`` is a service, any other item with ``id`` and ``nom`` a structure.
The record ``uid`` is ``structure--<id>`` or ``service--<id>`` where ``<id>`` is the
data.inclusion id prefixed with its producer (``source``) when it is not already (schema v1 ids
look like ``dora--42``; v0 ids were bare, e.g. ``1018`` from producer ``cd35``). The payload is the
item itself (JSON, keys sorted); mapping to Organisation / Service happens in
``normalize.directory``. A ``/sources`` listing (producers: ``slug``, ``nom``) holds neither and is
reported as such.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.base import NO_JSON, ParsedRecord, ParseResult, Problem, load_json

KINDS = ("structure", "service")


def prefixed_id(producer: Any, item_id: Any) -> str:
    """The data.inclusion id with its producer prefix: ('cd35', '1018') → 'cd35--1018'.

    An id that already starts with ``<producer>--`` (schema v1) is returned unchanged.
    """
    ident = str(item_id).strip()
    prod = str(producer).strip() if producer not in (None, "") else ""
    if not prod or ident.startswith(f"{prod}--"):
        return ident
    return f"{prod}--{ident}"


def item_kind(item: dict[str, Any]) -> str | None:
    """'service', 'structure', 'producer' (a /sources entry) or None when unrecognised."""
    if "structure_id" in item:
        return "service"
    if "id" in item and "nom" in item:
        return "structure"
    if "slug" in item and "nom" in item:
        return "producer"
    return None


def _items(document: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(document, list):
        return document, {}
    if isinstance(document, dict):
        if isinstance(document.get("items"), list):
            return document["items"], {k: document.get(k) for k in ("total", "page", "pages",
                                                                     "size")}
        if isinstance(document.get("structures"), list) or isinstance(
            document.get("services"), list
        ):
            return list(document.get("structures") or []) + list(
                document.get("services") or []), {}
        if "id" in document:
            return [document], {}
    return [], {"unknown": True}


def parse_datainclusion(data: bytes, source_id: str) -> ParseResult:
    """Parse data.inclusion JSON bytes into ``structure`` and ``service`` records.

    Never raises. Unreadable JSON is one error with its line; an item without id is an error for
    that item only; a page of a paginated answer (``page < pages`` or ``total`` above the item
    count) is read and marked incomplete, so absent records are not marked removed.
    """
    result = ParseResult(detected_format="datainclusion")
    document = load_json(data, result)
    if document is NO_JSON:
        return result
    items, envelope = _items(document)
    if envelope.get("unknown"):
        result.errors.append(Problem(
            "structure JSON non reconnue : ni réponse paginée « items », ni liste de structures "
            "ou de services data.inclusion", code="shape"))
        return result
    total, page, pages = envelope.get("total"), envelope.get("page"), envelope.get("pages")
    if (isinstance(total, int) and total > len(items)) or (
        isinstance(page, int) and isinstance(pages, int) and page < pages
    ):
        result.complete = False
        result.warnings.append(Problem(
            f"réponse paginée : page {page} sur {pages}, {len(items)} éléments lus sur {total} "
            "annoncés ; les autres pages ne sont pas dans ce fichier", code="pagination"))
    producers = 0
    seen: set[str] = set()
    for position, item in enumerate(items, start=1):
        kind = item_kind(item) if isinstance(item, dict) else None
        if kind == "producer":
            producers += 1
            continue
        if kind is None or item.get("id") in (None, ""):
            result.errors.append(Problem(
                f"élément n°{position} : ni structure ni service reconnaissable (champ « id » "
                "manquant)", code="shape"))
            continue
        uid = f"{kind}--{prefixed_id(item.get('source'), item['id'])}"
        if uid in seen:
            result.warnings.append(Problem(f"élément n°{position} ({uid}) : en double, ignoré",
                                           code="duplicate"))
            continue
        seen.add(uid)
        body = json.dumps(item, ensure_ascii=False, sort_keys=True)
        result.records.append(ParsedRecord(uid=uid, kind=kind, payload_format="json",
                                           payload=body, hash_basis=body))
    if producers:
        result.errors.append(Problem(
            f"liste de {producers} producteurs (réponse /sources de data.inclusion) : elle ne "
            "contient ni structure ni service", code="producers"))
    if not items:
        result.warnings.append(Problem("réponse vide : aucune structure ni aucun service",
                                       code="empty"))
    return result
