"""Enrichment of one normalised event: themes, publics, price, registration, accessibility,
language, place and quartier. Called by normalize.pipeline for every event it (re)builds.

Values a source gave in structured form (postal code, city, coordinates, registration URL,
accessibility codes) are kept; text extraction only fills what is missing, except list columns
(accessibility) which are merged. The place columns derived from LOCATION
(:data:`PLACE_DERIVED`) of a stored event being rebuilt are derived again from its current
LOCATION (``given``): a value an earlier LOCATION gave never outlives it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from functools import lru_cache
from typing import Any

from normalize.extract import extract_details
from normalize.geocode import geocode_unknown_location
from normalize.places import HOME_CITY, resolve_location
from normalize.themes import assign_themes, load_mapping


@lru_cache(maxsize=256)
def _mapping_name(source_id: str) -> str | None:
    """The mapping file for a source: ``data/mappings/<source id>.yaml`` if it exists."""
    return source_id if load_mapping(source_id) else None


def _json_list(raw: str | None) -> list[str]:
    try:
        value = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


# Recurring events repeat their title, description and place from week to week and from one
# source to another: each analysis below is a pure function of its text, memoised for the
# process (the reference data they read are loaded once per process too). Results are shared:
# never modify them.
@lru_cache(maxsize=16384)
def _themes(title: str | None, description: str | None, categories: tuple[str, ...],
            mapping: str | None, defaults: tuple[str, ...]) -> Any:
    return assign_themes(title, description, list(categories), mapping=mapping,
                         defaults=list(defaults))


@lru_cache(maxsize=16384)
def _details(title: str | None, description: str | None) -> Any:
    return extract_details(title, description)


@lru_cache(maxsize=4096)
def _where(location: str | None, postal_code: str | None, city: str | None,
           default_city: str | None) -> Any:
    return resolve_location(location, postal_code=postal_code, city=city,
                            default_city=default_city)


#: The event columns :func:`enrich_event` reads (besides the source's id, themes, quartier) and
#: those it writes: a result computed elsewhere on equal inputs may be copied (the
#: normalisation prepared in a parsing child, normalize.pipeline.prepare_events).
ENRICH_READS = ("title", "description", "categories", "location", "postal_code", "city",
                "latitude", "longitude", "registration_url", "accessibility")
ENRICH_WRITES = ("themes", "publics", "gratuit", "price", "registration_required",
                 "registration_url", "registration_phone", "accessibility", "language",
                 "place_id", "postal_code", "city", "latitude", "longitude", "quartier")


#: Event columns enrichment derives from LOCATION when the source did not give them (the
#: place's id and quartier are derived again at every enrichment anyway).
PLACE_DERIVED = ("postal_code", "city", "latitude", "longitude")


def forget_derived_places(event: Any, given: Collection[str]) -> Any:
    """Set to None, in place, each column of :data:`PLACE_DERIVED` that is not in ``given``
    (the columns the source itself set on ``event`` in this normalisation, such as the keys of
    normalize.events' event dict); returns ``event``.

    A stored event being rebuilt still holds the postal code, city and coordinates enrichment
    derived from its previous LOCATION: forgotten, they are derived again from the current one
    (a venue that moved to another town takes that town's postal code), while a postal code or
    a position the source gives (JSON-LD ``geo``, OpenAgenda ``location``) is kept. The
    coordinates go as a pair: one of them not given forgets both.
    """
    for column in ("postal_code", "city"):
        if column not in given:
            setattr(event, column, None)
    if "latitude" not in given or "longitude" not in given:
        event.latitude = event.longitude = None
    return event


def enrich_event(event: Any, source: Any) -> Any:
    """Fill the enrichment columns of ``event`` in place and return it.

    ``event`` is an :class:`~schemas.models.Event` or any object with the same attributes
    (normalize.pipeline passes plain rows it then writes in bulk); ``source`` a
    :class:`~schemas.models.Source` or any object with its ``id``, ``themes`` and ``quartier``.
    Reads only :data:`ENRICH_READS` of ``event``, writes only :data:`ENRICH_WRITES`.

    - ``themes``: :func:`normalize.themes.assign_themes` with the source's categories, its
      mapping file and its registry themes as defaults (never empty);
    - ``publics``, ``gratuit``/``price``, ``registration_*``, ``accessibility``, ``language``:
      :func:`normalize.extract.extract_details` on title and description;
    - ``place_id``, ``postal_code``, ``city``, ``quartier``, ``latitude``/``longitude``:
      :func:`normalize.places.resolve_location` on ``location``; the source registry's
      ``quartier`` is used when no place or street gives one. A LOCATION naming no known
      venue is geocoded by :func:`normalize.geocode.geocode_unknown_location` (BAN, only with
      ``TISSU_GEOCODER=ban``).

    Keeps every value present and fills only what is missing: a stored row being rebuilt goes
    through :func:`forget_derived_places` first (normalize.pipeline), so that its place columns
    follow its current LOCATION.
    """
    categories = _json_list(event.categories)
    themes = _themes(event.title, event.description, tuple(categories),
                     _mapping_name(source.id), tuple(_json_list(source.themes)))
    event.themes = json.dumps(themes.themes, ensure_ascii=False)
    details = _details(event.title, event.description)
    event.publics = json.dumps(details.publics, ensure_ascii=False)
    event.gratuit, event.price = details.price.gratuit, details.price.price
    event.registration_required = details.registration.required
    event.registration_url = event.registration_url or details.registration.url
    event.registration_phone = details.registration.phone
    accessibility = _json_list(event.accessibility)
    for code in details.accessibility:
        if code not in accessibility:
            accessibility.append(code)
    event.accessibility = json.dumps(accessibility, ensure_ascii=False)
    event.language = details.language
    default_city = HOME_CITY if source.quartier else None
    where = _where(event.location, event.postal_code, event.city, default_city)
    quartier = where.quartier
    event.place_id = where.place_id
    event.postal_code = event.postal_code or where.postal_code
    event.city = event.city or where.city
    if event.latitude is None and where.latitude is not None:
        event.latitude, event.longitude = where.latitude, where.longitude
    if where.place_id is None and event.latitude is None:  # TISSU_GEOCODER=ban only
        found = geocode_unknown_location(event.location, event.postal_code)
        if found is not None:
            event.latitude, event.longitude = found.latitude, found.longitude
            event.postal_code, event.city = event.postal_code or found.postal_code, event.city or found.city
            quartier = quartier or found.quartier
    event.quartier = quartier or source.quartier
    return event
