"""Schema v1 of the working store (SQLModel tables).

Conventions:
- Every ``*_utc`` or ``*_at`` column holds a timezone-aware datetime in UTC; :class:`UTCDateTime`
  refuses naive values so that no wall-clock time is ever stored without its zone.
- All-day events stay dates (``start_date`` / ``end_date``; ``end_date`` is exclusive as in
  RFC 5545 §3.6.1).
- Identifiers are stable and come from source identity: ``<source>--<uid>`` (STYLE.md §4).
- JSON lists (themes, categories, warnings) are stored as JSON text.

Vocabulary follows RFC 5545 (VEVENT, DTSTART, UID, RECURRENCE-ID, STATUS) and schema.org Event
(https://schema.org/Event).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, DateTime, Index, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# SQLAlchemy's default text form of a DATETIME on SQLite (sqlalchemy.dialects.sqlite.DATETIME)
_SQLITE_DATETIME = ("%(year)04d-%(month)02d-%(day)02d "
                    "%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A DateTime column that stores UTC and always returns aware UTC datetimes.

    Raises:
        ValueError: when given a naive datetime.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime refused: {value!r}")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite, one function doing :meth:`process_bind_param` then SQLite's ``DATETIME``
        formatting (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): the same text, about 1 µs less per
        value than the two steps chained (a harvest binds hundreds of thousands of them).
        Elsewhere, or with another storage format, SQLAlchemy's chain."""
        impl = self.impl_instance.dialect_impl(dialect)
        if dialect.name != "sqlite" or getattr(impl, "_storage_format", None) != _SQLITE_DATETIME:
            return super().bind_processor(dialect)
        utc = dt.UTC

        def process(value: Any) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime refused: {value!r}")
            return value.astimezone(utc).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utc_field(nullable: bool = True, index: bool = False) -> Any:
    """A SQLModel field for an aware UTC datetime."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def text_field(default: str | None = None) -> Any:
    """A SQLModel field for long text (descriptions, payloads)."""
    return Field(default=default, sa_column=Column(Text, nullable=True))


#: Source.status of a seed-registry source no longer listed in data/sources.yaml: not harvested,
#: its events left out of the publication (tissu.pipeline.sync_registry, publish.build).
RETIRED = "retired"


def utcnow() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Source(SQLModel, table=True):
    """A registered source: one feed, calendar or site of one publisher.

    ``contact_email`` is private: it never reaches the published database.
    """

    id: str = Field(primary_key=True, description="Slug of the source, e.g. 'mairie-pantin-agenda'")
    name: str
    publisher_name: str
    publisher_type: str
    publisher_website: str | None = None
    format: str
    url: str
    licence: str
    themes: str = Field(default="[]", description="JSON list of default theme codes")
    quartier: str | None = None
    refresh: str = "6h"
    status: str = Field(default="active", description="active | paused | retired (RETIRED)")
    paused_by_moderator: bool = Field(
        default=False, description="Paused with `tissu sources pause`: wins over the seed registry"
    )
    origin: str = Field(default="registry", description="'registry' or 'registration'")
    contact_email: str | None = Field(default=None, description="PRIVATE")
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    last_attempt_at: dt.datetime | None = utc_field()
    last_success_at: dt.datetime | None = utc_field()
    consecutive_failures: int = 0
    last_error: str | None = text_field()
    # Health (connectors/health.py, refreshed after every run): public.
    health: str | None = Field(default=None, description="ok | warning | failing")
    health_reason: str | None = text_field()
    health_checked_at: dt.datetime | None = utc_field()
    last_changed_at: dt.datetime | None = utc_field()
    items_last_run: int | None = Field(default=None, description="Records read by the last read")
    items_recent: str = Field(default="[]", description="JSON list: records per recent read")
    events_total: int = 0
    events_upcoming: int = 0
    # Incremental runs (tissu/pipeline.py): private bookkeeping, never published.
    normalized_at: dt.datetime | None = utc_field()
    normalized_key: str | None = Field(
        default=None, description="Fingerprint of what the last normalisation depended on")
    normalized_warnings: str = Field(
        default="[]", description="JSON list: warnings of the last normalisation (French)")
    deduped_at: dt.datetime | None = utc_field()
    crawl_pages: str | None = text_field()  # JSON: pages of the last complete crawl + validators


class HarvestRun(SQLModel, table=True):
    """One harvest attempt of one source.

    ``status``: ``ok`` | ``partial`` (some records unreadable) | ``failed`` | ``unchanged``
    (HTTP 304 or identical bytes). ``warnings`` and ``errors`` are JSON lists of French messages.
    A source harvested every 30 minutes adds ~17 000 rows a year: its health reads them through
    the index (source_id, started_at).
    """

    __table_args__ = (Index("ix_harvestrun_source_started", "source_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(index=True)
    started_at: dt.datetime | None = utc_field(nullable=False)
    finished_at: dt.datetime | None = utc_field()
    status: str = "running"
    http_status: int | None = None
    bytes: int | None = None
    content_hash: str | None = None
    records: int = 0
    events: int = 0
    news: int = 0
    occurrences: int = 0
    removed: int = Field(default=0, description="Records marked removed_at_source by this run")
    guarded: int = Field(
        default=0, description="Future events kept by the deletion guard (would have been removed)"
    )
    forced: bool = Field(default=False, description="Run with --force: the guard was lifted")
    warnings: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    errors: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class SourceRecord(SQLModel, table=True):
    """One record as read from a source: a VEVENT (master or RECURRENCE-ID override) or an item.

    ``payload`` is a self-contained excerpt of the source: for iCalendar a VCALENDAR holding the
    VEVENT and the VTIMEZONEs it uses; for feeds a JSON object of the item's event fields.
    ``content_hash`` is the SHA-256 of the payload without volatile properties (DTSTAMP).
    """

    id: str = Field(primary_key=True, description="<source>--<uid>[--<recurrence-id>]")
    source_id: str = Field(index=True)
    uid: str = Field(index=True)
    recurrence_id: str = Field(default="", description="RECURRENCE-ID as ISO text, '' for masters")
    kind: str = Field(default="event", description="'event' or 'news'")
    payload_format: str = Field(description="'ical' or 'json'")
    payload: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str
    uid_repaired: bool = False
    line: int | None = Field(default=None, description="First line of the record in the source")
    first_seen_at: dt.datetime | None = utc_field()
    last_seen_at: dt.datetime | None = utc_field()
    last_changed_at: dt.datetime | None = utc_field()
    removed_at_source: dt.datetime | None = utc_field()
    missing_since: dt.datetime | None = utc_field()  # absent but kept by the deletion guard


class Organisation(SQLModel, table=True):
    """An organisation: the publisher of a source, or a data.inclusion structure.

    Structures (https://schema.data.inclusion.beta.gouv.fr/, schema v1 ``structure``) keep their
    SIRET (14 digits) and RNA (``W`` + 9 digits) when valid, their address and WGS 84 position,
    and their opening hours as an OSM ``opening_hours`` string. ``contact_email`` and
    ``contact_phone`` are PRIVATE: they never reach the published database.
    """

    id: str = Field(primary_key=True)
    name: str
    type: str | None = None
    website: str | None = None
    source_id: str | None = Field(default=None, index=True, description="Source of a structure")
    source_uid: str | None = Field(default=None, description="data.inclusion structure id")
    siret: str | None = Field(default=None, index=True)
    rna: str | None = Field(default=None, index=True)
    description: str | None = text_field()
    address: str | None = None
    address_extra: str | None = None
    postal_code: str | None = None
    city: str | None = None
    insee_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    opening_hours: str | None = Field(default=None, description="OSM opening_hours, as given")
    opening_hours_valid: bool | None = None
    networks: str = Field(default="[]", description="JSON list: reseaux_porteurs / labels")
    thematiques: str = Field(default="[]", description="JSON list of data.inclusion codes")
    source_link: str | None = None
    accessibility_url: str | None = None
    schema_version: str | None = Field(default=None, description="data.inclusion 'v0' or 'v1'")
    date_maj: dt.date | None = None
    contact_email: str | None = Field(default=None, description="PRIVATE")
    contact_phone: str | None = Field(default=None, description="PRIVATE")
    first_seen_at: dt.datetime | None = utc_field()
    updated_at: dt.datetime | None = utc_field()
    removed_at_source: dt.datetime | None = utc_field()
    duplicate_of: str | None = Field(
        default=None, index=True,
        description="Id of the organisation this one duplicates (same SIRET/RNA, or same name "
        "and address); None for a canonical organisation (normalize/organisations.py)")


class Service(SQLModel, table=True):
    """A data.inclusion service offered by a structure (schema v1 ``service``).

    Codes follow the v1 reference lists (thematiques, publics, frais, modes-accueil,
    types-de-services); well-formed codes outside them (v0 codes) stay in their column and are
    also listed in ``unknown_codes`` (JSON object field → list), malformed ones only there. ``opening_hours`` is the OSM ``opening_hours`` string as given;
    ``opening_hours_valid`` says whether it parses. ``contact_email``/``contact_phone`` are
    PRIVATE. Source: https://schema.data.inclusion.beta.gouv.fr/ (v1).
    """

    id: str = Field(primary_key=True, description="<source>--<data.inclusion service id>")
    source_id: str = Field(index=True)
    source_uid: str
    organisation_id: str | None = Field(default=None, index=True)
    name: str
    summary: str | None = text_field()
    description: str | None = text_field()
    types: str = Field(default="[]", description="JSON list of types-de-services codes")
    thematiques: str = Field(default="[]", description="JSON list of thematiques codes")
    publics: str = Field(default="[]", description="JSON list of publics codes")
    publics_precisions: str | None = text_field()
    frais: str = Field(default="[]", description="JSON list of frais codes")
    frais_precisions: str | None = text_field()
    modes_accueil: str = Field(default="[]", description="JSON list of modes-accueil codes")
    modes_mobilisation: str = Field(default="[]", description="JSON list")
    conditions_acces: str | None = text_field()
    opening_hours: str | None = None
    opening_hours_valid: bool | None = None
    address: str | None = None
    address_extra: str | None = None
    postal_code: str | None = None
    city: str | None = None
    insee_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    source_link: str | None = None
    mobilisation_url: str | None = None
    zone: str = Field(default="[]", description="JSON list: zone_eligibilite / zone_diffusion")
    unknown_codes: str = Field(default="{}", description="JSON object: field → codes off-list")
    schema_version: str | None = None
    date_maj: dt.date | None = None
    suspended_from: dt.date | None = None
    contact_email: str | None = Field(default=None, description="PRIVATE")
    contact_phone: str | None = Field(default=None, description="PRIVATE")
    content_hash: str = ""
    first_seen_at: dt.datetime | None = utc_field()
    updated_at: dt.datetime | None = utc_field()
    removed_at_source: dt.datetime | None = utc_field()


class Event(SQLModel, table=True):
    """An event as a series (schema.org Event; one RFC 5545 VEVENT with its recurrence).

    Timed events have ``dtstart_utc``/``dtend_utc`` (aware UTC) and ``tzid`` (IANA name the
    source meant; ``floating`` is true when the source gave no zone and Europe/Paris was assumed).
    All-day events have ``start_date``/``end_date`` (``end_date`` exclusive) and ``all_day``.
    """

    id: str = Field(primary_key=True, description="<source>--<uid>")
    source_id: str = Field(index=True)
    source_uid: str
    uid_repaired: bool = False
    title: str
    description: str | None = text_field()
    all_day: bool = False
    dtstart_utc: dt.datetime | None = utc_field(index=True)
    dtend_utc: dt.datetime | None = utc_field()
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    tzid: str | None = None
    floating: bool = False
    rrule: str | None = None
    status: str = Field(default="confirmed", description="confirmed | tentative | cancelled")
    sequence: int = 0
    location: str | None = None
    url: str | None = None
    organizer: str | None = None
    organisation_id: str | None = None
    categories: str = "[]"
    themes: str = "[]"
    quartier: str | None = None
    source_url: str | None = None
    content_hash: str = ""
    first_seen_at: dt.datetime | None = utc_field()
    updated_at: dt.datetime | None = utc_field()
    removed_at_source: dt.datetime | None = utc_field()
    revision: int = Field(
        default=0,
        description="Tissu's own change counter: +1 each time the content hash changes or the "
        "event leaves/comes back to its source; published SEQUENCE = source SEQUENCE + revision",
    )
    rdate: str = Field(default="[]", description="JSON list of RDATE values (UTC ISO or dates)")
    exdate: str = Field(default="[]", description="JSON list of EXDATE values (UTC ISO or dates)")
    # Details some sources give (OpenAgenda, schema.org): place, registration, audience.
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    registration_url: str | None = None
    accessibility: str = Field(default="[]", description="JSON list: hearing|intellectual|…")
    age_min: int | None = None
    age_max: int | None = None
    attendance_mode: str | None = Field(default=None, description="offline | online | mixed")
    # Enrichment (normalize/extract.py, places.py) and deduplication (normalize/dedupe.py).
    publics: str = Field(default="[]", description="JSON list of data/vocab/publics.yaml codes")
    gratuit: bool | None = Field(default=None, description="True free, False paying, None unknown")
    price: str | None = Field(default=None, description="Price as written, e.g. '5 €', '6 à 12 €'")
    registration_required: bool | None = Field(default=None, description="None when unknown")
    registration_phone: str | None = Field(default=None, description="Public number to register")
    language: str | None = Field(default=None, description="ISO 639-1 code of the text (lingua)")
    place_id: str | None = Field(default=None, index=True, description="data/places.yaml id")
    cluster_id: str | None = Field(default=None, index=True,
                                   description="'cl-' + hash of the sorted member event ids")
    is_canonical: bool = Field(default=True, description="False for duplicates of another event")
    field_sources: str = Field(default="{}", description="JSON: field → event id it came from")


class Place(SQLModel, table=True):
    """A known venue (data/places.yaml), with WGS 84 coordinates when known.

    ``coordinates_verified`` is False for positions read off a map by hand: good to the street,
    not to the door.
    """

    id: str = Field(primary_key=True, description="Slug from data/places.yaml")
    name: str
    kind: str | None = Field(default=None, description="maison-de-quartier | mediatheque | …")
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    quartier: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    coordinates_verified: bool = False
    aliases: str = Field(default="[]", description="JSON list of other spellings")
    source_note: str | None = text_field()


class EventSource(SQLModel, table=True):
    """Provenance: one source record behind a published (canonical) event.

    A canonical event has one row per member of its cluster, itself included.
    """

    id: str = Field(primary_key=True, description="<canonical event id>|<member event id>")
    cluster_id: str = Field(index=True)
    canonical_event_id: str = Field(index=True)
    event_id: str = Field(index=True, description="Member event (events.id)")
    source_id: str
    source_uid: str
    url: str | None = None
    source_url: str | None = None
    publisher_type: str | None = None
    confidence: float = Field(default=1.0, description="Match score with the canonical, 0–1")
    first_seen_at: dt.datetime | None = utc_field()
    last_seen_at: dt.datetime | None = utc_field()


class DedupeDecision(SQLModel, table=True):
    """A reviewed pair of events: same real-world event or not. Never asked twice.

    ``pair_key`` is the two event ids sorted and joined by ``|``.
    """

    pair_key: str = Field(primary_key=True)
    event_a: str
    event_b: str
    score: float = 0.0
    decision: str = Field(default="pending", description="pending | same | different")
    decided_by: str | None = None
    decided_at: dt.datetime | None = utc_field()
    created_at: dt.datetime | None = utc_field()


class Occurrence(SQLModel, table=True):
    """One instance of an event within the expansion horizon.

    ``start_utc``/``end_utc`` are aware UTC; ``start_local``/``end_local`` are ISO 8601 text in
    Europe/Paris with offset. For all-day occurrences ``start_utc`` is local midnight (sorting
    only) and ``start_date``/``end_date`` carry the meaning.
    """

    id: str = Field(primary_key=True, description="<event id>--<YYYYMMDDTHHMMSSZ or YYYYMMDD>")
    event_id: str = Field(index=True)
    recurrence_id: str = ""
    all_day: bool = False
    start_utc: dt.datetime | None = utc_field(nullable=False, index=True)
    end_utc: dt.datetime | None = utc_field()
    start_local: str
    end_local: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    status: str = "confirmed"
    title: str | None = None
    location: str | None = None


class PublishRun(SQLModel, table=True):
    """One run of the PUBLISH stage: what was published and how it differs from the previous run.

    Counts are numbers of events (series); ``new``/``updated``/``cancelled``/``removed`` compare
    with the previous run (see :class:`PublishChange`).
    """

    id: int | None = Field(default=None, primary_key=True)
    started_at: dt.datetime | None = utc_field(nullable=False)
    finished_at: dt.datetime | None = utc_field()
    events: int = 0
    occurrences: int = 0
    upcoming_occurrences: int = 0
    new: int = 0
    updated: int = 0
    cancelled: int = 0
    removed: int = 0
    snapshot: str | None = Field(default=None, description="snapshots/<name> written, if any")


class PublishedEvent(SQLModel, table=True):
    """The state of each event at the last publish (to compute what changed since)."""

    event_id: str = Field(primary_key=True)
    digest: str = Field(description="SHA-256 of the published row")
    status: str = "confirmed"
    title: str = ""
    first_published_at: dt.datetime | None = utc_field()
    last_changed_at: dt.datetime | None = utc_field()
    last_run_id: int | None = None


class PublishChange(SQLModel, table=True):
    """One change between two publishes: ``new`` | ``updated`` | ``cancelled`` | ``removed``."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    changed_at: dt.datetime | None = utc_field(nullable=False)
    event_id: str = Field(index=True)
    kind: str
    title: str = ""


class Registration(SQLModel, table=True):
    """A feed submitted on the registration page, waiting for a moderator (issue 6).

    ``status``: ``pending`` | ``approved`` | ``rejected``. ``contact_email`` is PRIVATE: it never
    reaches the published database. ``client_hash`` is a keyed SHA-256 of the submitter's IP
    address (never the address itself), used only for the per-IP rate limit.
    ``licence`` is ``Licence Ouverte 2.0`` or the name of the source's own licence.
    """

    id: int | None = Field(default=None, primary_key=True)
    submitted_at: dt.datetime | None = utc_field(nullable=False, index=True)
    organisation_name: str
    organisation_type: str
    website: str | None = None
    contact_email: str = Field(description="PRIVATE")
    url: str
    format: str = Field(default="ical", description="ical | rss | atom, as found by the doctor")
    feed_name: str | None = None
    licence: str
    themes: str = Field(default="[]", description="JSON list of default theme codes")
    quartier: str | None = None
    language: str = Field(default="fr", description="Language of the form: fr | en | ar")
    status: str = Field(default="pending", index=True)
    source_id: str | None = Field(default=None, description="Source created on approval")
    decided_at: dt.datetime | None = utc_field()
    decision_note: str | None = text_field()
    client_hash: str = Field(default="", index=True)


class SourceAlert(SQLModel, table=True):
    """An e-mail sent to a source's publisher about its feed (failing 24 h, zero events).

    One row per incident: a new message is sent only after ``closed_at`` is set (recovery).
    ``kind``: ``failing`` | ``empty``.
    """

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(index=True)
    kind: str
    opened_at: dt.datetime | None = utc_field(nullable=False)
    sent_at: dt.datetime | None = utc_field()
    closed_at: dt.datetime | None = utc_field()
