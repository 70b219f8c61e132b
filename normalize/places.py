"""Places: LOCATION strings → known Pantin venues, postal code, city and quartier.

- ``data/places.yaml``: known venues (name, aliases, and only facts a cited public page gives:
  address, quartier, WGS 84 position; see its header). :func:`place_gaps` lists what is missing.
- ``data/quartiers.yaml``: quartier names with the page attesting each, and street → quartier
  (null unless a cited page ties the whole street to one quartier).

Matching is accent- and case-insensitive, expands the abbreviations used in local agendas ("MQ"
→ maison de quartier, "CMS" → centre municipal de santé, "av." → avenue, "4" → quatre…),
ignores small words and word order (rapidfuzz ``token_sort_ratio``). A place is only matched
when the location does not name another city; a street is only looked up when the location (or
the caller) says the city is Pantin, because every town has a rue Victor-Hugo.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process
from sqlmodel import Session

from normalize.fold import fold, words
from schemas.models import Place

DATA = Path(__file__).resolve().parent.parent / "data"
PLACES_FILE = DATA / "places.yaml"
QUARTIERS_FILE = DATA / "quartiers.yaml"
HOME_CITY = "Pantin"
HOME_POSTAL_CODES = frozenset({"93500"})
PANTIN_BOX = (48.88, 48.92, 2.38, 2.43)
"""(south, north, west, east) bounds in WGS 84 degrees around the commune of Pantin."""
NAME_THRESHOLD = 90.0
STREET_THRESHOLD = 92.0

_ABBREVIATIONS = {
    "mq": "maison de quartier", "mdq": "maison de quartier", "cms": "centre municipal de sante",
    "ccas": "ccas", "bib": "bibliotheque", "bibli": "bibliotheque", "biblio": "bibliotheque",
    "mediatheque": "bibliotheque", "media": "bibliotheque", "av": "avenue", "ave": "avenue",
    "bd": "boulevard", "bld": "boulevard", "boul": "boulevard", "pl": "place", "r": "rue",
    "imp": "impasse", "ch": "chemin",
    "st": "saint", "ste": "sainte", "ctre": "centre", "4": "quatre", "cine": "cinema",
    "hdv": "hotel de ville", "gymn": "gymnase", "gym": "gymnase",
}
_STOPWORDS = frozenset({"de", "du", "des", "la", "le", "les", "l", "d", "au", "aux", "et", "a",
                        "pantin", "salle"})
_POSTAL = re.compile(r"(?<!\d)(\d{5})(?!\d)\s*([A-Za-zÀ-ÿ' \-]+)?")
_STREET_TYPES = (r"rue|r\.|avenue|av\.?|ave|boulevard|bd\.?|bld\.?|place|pl\.?|quai|all[ée]e|"
                 r"all\.|impasse|imp\.|chemin|ch\.|"
                 r"square|villa|passage|sentier|cours|cit[ée]|route|sente|esplanade|parvis|"
                 r"promenade")
_STREET = re.compile(
    rf"(?:(\d+(?:\s?-\s?\d+)?(?:\s?(?:bis|ter))?)\s*,?\s+)?(?<!\w)((?:{_STREET_TYPES})\s[^,\n;()]+)",
    re.IGNORECASE)


def place_key(text: str | None) -> str:
    """Comparable key of a venue or street name: folded, abbreviations expanded, small words
    and "Pantin" dropped. ``"MQ des 4-Chemins"`` → ``"maison quartier quatre chemins"``."""
    tokens: list[str] = []
    for token in words(text).split():
        tokens.extend(_ABBREVIATIONS.get(token, token).split())
    return " ".join(t for t in tokens if t not in _STOPWORDS)


@dataclass(frozen=True)
class KnownPlace:
    """One entry of data/places.yaml."""

    id: str
    name: str
    kind: str | None
    aliases: tuple[str, ...]
    address: str | None
    postal_code: str | None
    city: str | None
    quartier: str | None
    lat: float | None
    lon: float | None
    verified: bool = False
    """True when the page in ``source`` states the name and street address."""
    coordinates_verified: bool = False
    """True when ``coordinates_source`` gives ``lat``/``lon`` (always, since a position without
    a cited source is refused by :func:`load_places`)."""
    source: str | None = None
    coordinates_source: str | None = None
    quartier_source: str | None = None
    note: str | None = None


@dataclass
class ParsedLocation:
    """What :func:`parse_location` read from a LOCATION string (all optional)."""

    name: str | None = None
    street_number: str | None = None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None


@dataclass
class Resolution:
    """Everything known about where an event happens; ``quartier_from`` says how it was found
    (``place``, ``street`` or None)."""

    place_id: str | None = None
    place_score: float = 0.0
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    quartier: str | None = None
    quartier_from: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=2)
def load_places(path: Path = PLACES_FILE) -> tuple[KnownPlace, ...]:
    """The venues of ``data/places.yaml``.

    Raises:
        ValueError: an entry without ``id`` or ``name``, a duplicate ``id``, an address marked
            ``verified`` without ``source``, or a position (``lat``/``lon``) without
            ``coordinates_source`` or outside Pantin (names the entry).
    """
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    places: list[KnownPlace] = []
    seen: set[str] = set()
    for position, entry in enumerate(document.get("places") or [], start=1):
        if not entry.get("id") or not entry.get("name"):
            raise ValueError(f"{path} : lieu n°{position} : 'id' et 'name' sont obligatoires")
        if entry["id"] in seen:
            raise ValueError(f"{path} : lieu n°{position} : id en double {entry['id']!r}")
        seen.add(entry["id"])
        where = f"{path} : lieu {entry['id']!r}"
        if entry.get("verified") and not (entry.get("source") and entry.get("address")):
            raise ValueError(f"{where} : adresse 'verified' sans 'source' ni 'address'")
        lat, lon = entry.get("lat"), entry.get("lon")
        if (lat is None) != (lon is None):
            raise ValueError(f"{where} : 'lat' et 'lon' vont ensemble")
        if lat is not None and not entry.get("coordinates_source"):
            raise ValueError(f"{where} : position sans 'coordinates_source' (jamais inventée)")
        if lat is not None and not (PANTIN_BOX[0] <= lat <= PANTIN_BOX[1]
                                    and PANTIN_BOX[2] <= lon <= PANTIN_BOX[3]):
            raise ValueError(f"{where} : position ({lat}, {lon}) hors de Pantin")
        places.append(KnownPlace(
            id=entry["id"], name=entry["name"], kind=entry.get("kind"),
            aliases=tuple(entry.get("aliases") or ()), address=entry.get("address"),
            postal_code=str(entry["postal_code"]) if entry.get("postal_code") else None,
            city=entry.get("city"), quartier=entry.get("quartier"),
            lat=lat, lon=lon, verified=bool(entry.get("verified")),
            coordinates_verified=lat is not None, source=entry.get("source"),
            coordinates_source=entry.get("coordinates_source"),
            quartier_source=entry.get("quartier_source"), note=entry.get("note"),
        ))
    return tuple(places)


@lru_cache(maxsize=2)
def load_streets(path: Path = QUARTIERS_FILE) -> dict[str, str | None]:
    """Street key (:func:`place_key`) → quartier name, or None when no cited source ties the
    whole street to one quartier (boundary streets, streets crossing quartiers, unknown).

    Raises:
        ValueError: a street whose quartier is not among ``quartiers:``, or one tied to a
            quartier as ``verified`` without a ``source`` (names the street).
    """
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    names = {q["name"] for q in document.get("quartiers") or []}
    streets: dict[str, str | None] = {}
    for entry in document.get("streets") or []:
        quartier = entry.get("quartier")
        if quartier is not None and quartier not in names:
            raise ValueError(f"{path} : rue {entry.get('street')!r} : quartier inconnu {quartier!r}")
        if entry.get("verified") and not entry.get("source"):
            raise ValueError(f"{path} : rue {entry.get('street')!r} : 'verified' sans 'source'")
        streets[place_key(entry["street"])] = quartier
    return streets


def parse_location(text: str | None) -> ParsedLocation:
    """Split a LOCATION string into venue name, street, postal code and city.

    ``"Maison de quartier des Courtillières, 12 av. du Général-Leclerc 93500 Pantin"`` →
    name ``Maison de quartier des Courtillières``, number ``12``, street ``av. du
    Général-Leclerc``, postal code ``93500``, city ``Pantin``.
    """
    result = ParsedLocation()
    if not text or not text.strip():
        return result
    rest = " ".join(text.split())
    postal = _POSTAL.search(rest)
    if postal:
        result.postal_code = postal.group(1)
        if postal.group(2) and postal.group(2).strip(" -"):
            result.city = postal.group(2).strip(" -").title()
        rest = (rest[: postal.start()] + rest[postal.end():]).strip(" ,-")
    street = _STREET.search(rest)
    if street:
        result.street_number = street.group(1).replace(" ", "") if street.group(1) else None
        result.street = street.group(2).strip(" ,.-")
        after = rest[street.end():].strip(" ,-")
        if result.city is None and after and fold(after) == fold(HOME_CITY):
            result.city = HOME_CITY
        rest = rest[: street.start()].strip(" ,-")
    else:
        segments = [s.strip() for s in rest.split(",") if s.strip()]
        if result.city is None and len(segments) > 1 and fold(segments[-1]) == fold(HOME_CITY):
            result.city = HOME_CITY
            segments = segments[:-1]
        rest = ", ".join(segments)
    if result.city is None and re.search(rf"(?i)\b{HOME_CITY}\b\s*$", rest) and "," in rest:
        result.city = HOME_CITY
        rest = rest[: rest.rfind(",")]
    result.name = rest.strip(" ,-") or None
    return result


def _is_home(parsed: ParsedLocation, default_city: str | None) -> bool | None:
    """True: the location is in Pantin; False: it names another city; None: it does not say."""
    if parsed.postal_code:
        return parsed.postal_code in HOME_POSTAL_CODES
    if parsed.city:
        return fold(parsed.city) == fold(HOME_CITY)
    if default_city:
        return fold(default_city) == fold(HOME_CITY)
    return None


@lru_cache(maxsize=2)
def _choices(places: tuple[KnownPlace, ...]) -> tuple[list[str], list[KnownPlace]]:
    keys: list[str] = []
    owners: list[KnownPlace] = []
    for place in places:
        for label in (place.name, *place.aliases):
            key = place_key(label)
            if key:
                keys.append(key)
                owners.append(place)
    return keys, owners


def match_place(text: str | None, places: tuple[KnownPlace, ...] | None = None,
                allow_single: bool = True) -> tuple[KnownPlace, float] | None:
    """The known place a venue name designates, with a score 0–100, or None.

    One-word keys ("mairie", "ccas", "cnd") must match exactly, and only when
    ``allow_single`` (the caller knows the location is in Pantin); longer ones need a
    ``token_sort_ratio`` of at least :data:`NAME_THRESHOLD`.
    """
    key = place_key(text)
    if not key:
        return None
    keys, owners = _choices(places or load_places())
    best = process.extractOne(key, keys, scorer=fuzz.token_sort_ratio)
    if best is None:
        return None
    _choice, score, index = best
    single = len(keys[index].split()) == 1 or len(key.split()) == 1
    if single and (not allow_single or key != keys[index]):
        return None
    if score < NAME_THRESHOLD:
        return None
    return owners[index], float(score)


def _address_match(parsed: ParsedLocation, places: tuple[KnownPlace, ...]) -> KnownPlace | None:
    if not parsed.street:
        return None
    wanted = place_key(f"{parsed.street_number or ''} {parsed.street}")
    for place in places:
        if place.address and place_key(place.address) == wanted and parsed.street_number:
            return place
    return None


def street_quartier(street: str | None) -> tuple[bool, str | None]:
    """(known, quartier) for a street of Pantin; ``known`` is False when the street is not in
    data/quartiers.yaml, ``quartier`` None when the street crosses several quartiers."""
    key = place_key(street)
    if not key:
        return False, None
    streets = load_streets()
    if key in streets:
        return True, streets[key]
    best = process.extractOne(key, list(streets), scorer=fuzz.ratio)
    if best and best[1] >= STREET_THRESHOLD:
        return True, streets[best[0]]
    return False, None


def resolve_location(location: str | None, *, postal_code: str | None = None,
                     city: str | None = None, default_city: str | None = None) -> Resolution:
    """Where an event happens, from its LOCATION string and any structured fields.

    Args:
        location: the source's LOCATION / location text.
        postal_code, city: structured fields the source gave, which win over parsing.
        default_city: the city to assume when nothing names one (e.g. a Pantin-only source).

    Returns:
        A :class:`Resolution`; a matched place brings its id, address, quartier and position.
    """
    parsed = parse_location(location)
    parsed.postal_code = postal_code or parsed.postal_code
    parsed.city = city or parsed.city
    result = Resolution(postal_code=parsed.postal_code, city=parsed.city)
    home = _is_home(parsed, default_city)
    places = load_places()
    place: KnownPlace | None = None
    if home is not False:
        place = _address_match(parsed, places) if home else None
        if place is not None:
            result.place_score = 100.0
        else:
            for candidate in (parsed.name, location):
                found = match_place(candidate, places, allow_single=bool(home))
                if found:
                    place, result.place_score = found
                    break
    if place is not None:
        result.place_id = place.id
        result.address = place.address
        result.postal_code = result.postal_code or place.postal_code
        result.city = result.city or place.city
        result.latitude, result.longitude = place.lat, place.lon
        if place.quartier:
            result.quartier, result.quartier_from = place.quartier, "place"
    if parsed.street and result.address is None:
        result.address = " ".join(p for p in (parsed.street_number, parsed.street) if p)
    if result.quartier is None and parsed.street and (home or (home is None and place)):
        known, quartier = street_quartier(parsed.street)
        if known and quartier:
            result.quartier, result.quartier_from = quartier, "street"
        elif known:
            result.notes.append(f"{parsed.street} : quartier non établi (rue-frontière, rue qui "
                                "traverse plusieurs quartiers, ou aucune source)")
    if result.city is None and home and place is None and default_city:
        result.city = default_city
    return result


def sync_places(session: Session) -> int:
    """Create or update the Place rows from data/places.yaml; returns how many. Commits."""
    count = 0
    for known in load_places():
        row = session.get(Place, known.id) or Place(id=known.id, name=known.name)
        row.name, row.kind, row.address = known.name, known.kind, known.address
        row.postal_code, row.city, row.quartier = known.postal_code, known.city, known.quartier
        row.latitude, row.longitude = known.lat, known.lon
        row.coordinates_verified = known.coordinates_verified
        row.aliases = json.dumps(list(known.aliases), ensure_ascii=False)
        address_note = (f"adresse vérifiée : {known.source}" if known.verified and known.source
                        else "adresse non vérifiée")
        position_note = (f"position : {known.coordinates_source}" if known.coordinates_verified
                         else "position inconnue (aucune source citée)")
        row.source_note = f"data/places.yaml : {address_note} ; {position_note}"
        session.add(row)
        count += 1
    session.commit()
    return count


@dataclass(frozen=True)
class PlaceGap:
    """What :func:`place_gaps` found missing for one venue (labels in French)."""

    id: str
    name: str
    missing: tuple[str, ...]
    note: str | None = None


def place_gaps(places: tuple[KnownPlace, ...] | None = None) -> list[PlaceGap]:
    """The venues of data/places.yaml that lack a cited fact, in file order.

    ``missing`` lists, in French: ``adresse`` (no address verified against a cited page),
    ``position`` (no cited latitude/longitude), ``quartier`` (no quartier, or one with no
    cited source). Venues with nothing missing are left out.
    """
    gaps: list[PlaceGap] = []
    for place in places or load_places():
        missing = []
        if not (place.verified and place.address and place.source):
            missing.append("adresse")
        if not place.coordinates_verified:
            missing.append("position")
        if not (place.quartier and place.quartier_source):
            missing.append("quartier")
        if missing:
            gaps.append(PlaceGap(place.id, place.name, tuple(missing), place.note))
    return gaps
