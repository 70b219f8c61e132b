"""Geocoders: an address → WGS 84 position, postal code, city.

- :class:`OfflineGeocoder` (default): no network; knows the cited positions of the venues of
  ``data/places.yaml`` (none for a venue whose position no public page gives).
- :class:`BANGeocoder`: the Base Adresse Nationale search API
  (https://adresse.data.gouv.fr/api-doc/adresse, ``GET /search/?q=…&limit=1``, answer a GeoJSON
  FeatureCollection whose features have ``geometry.coordinates`` = [lon, lat] and
  ``properties`` label, score (0–1), postcode, city, citycode, type). Answers are cached in a
  JSON file so that an address is asked once; tested only against a local fake server.

Normalisation uses :func:`geocode_unknown_location` for a LOCATION that names no known venue:
with ``TISSU_GEOCODER=offline`` (default) it does nothing; with ``TISSU_GEOCODER=ban`` it asks
the BAN at ``TISSU_BAN_URL`` for the street address the LOCATION contains, cached in
``TISSU_GEOCODE_CACHE`` (tissu/settings.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import requests

from normalize.fold import words
from normalize.places import HOME_CITY, parse_location, resolve_location, street_quartier

if TYPE_CHECKING:
    from tissu.settings import Settings

BAN_URL = "https://api-adresse.data.gouv.fr"
MAX_BODY_BYTES = 1_000_000
GEOCODERS = ("offline", "ban")
HOME_CITYCODE = "93055"  # code INSEE de Pantin
log = logging.getLogger(__name__)


@dataclass
class GeocodeResult:
    """A position (WGS 84 degrees) and what the geocoder says of the address.

    ``score`` is 0–1 (BAN's score; 1.0 for a known venue); ``precision`` is BAN's ``type``
    (housenumber, street, locality, municipality) or ``venue`` (cited position of a known venue).
    """

    latitude: float | None
    longitude: float | None
    label: str | None = None
    postal_code: str | None = None
    city: str | None = None
    citycode: str | None = None
    score: float = 0.0
    precision: str | None = None
    quartier: str | None = None
    """Quartier of Pantin from data/quartiers.yaml (set by :func:`geocode_unknown_location`)."""


class Geocoder(Protocol):
    """Anything that turns an address into a :class:`GeocodeResult` (or None when unknown)."""

    def geocode(self, address: str, postal_code: str | None = None) -> GeocodeResult | None:
        """Geocode one address; never raises for bad input or network trouble."""
        ...


class OfflineGeocoder:
    """Known venues only (data/places.yaml); no network, no guess."""

    def geocode(self, address: str, postal_code: str | None = None) -> GeocodeResult | None:
        """Cited position (WGS 84) of the known venue ``address`` designates, or None (unknown
        venue, or a venue whose position no cited source gives)."""
        found = resolve_location(address, postal_code=postal_code, default_city=HOME_CITY)
        if found.place_id is None or found.latitude is None or found.longitude is None:
            return None
        return GeocodeResult(found.latitude, found.longitude, label=found.address,
                             postal_code=found.postal_code, city=found.city, score=1.0,
                             precision="venue", quartier=found.quartier)


class BANGeocoder:
    """Base Adresse Nationale search with a JSON file cache.

    Args:
        base_url: API root (``BAN_URL``; a local fake server in tests).
        cache_path: JSON file of past answers (query key → result or null); None: memory only.
        min_score: answers below this BAN score are treated as "not found".
        timeout: seconds for connect and read.
        max_failures: after this many failed requests in a row (network, HTTP or format
            error), the geocoder stops asking for ``pause`` seconds (600; cache still read), so
            that an unreachable BAN cannot slow a whole harvest; then one request probes it.
    """

    def __init__(self, base_url: str = BAN_URL, cache_path: Path | None = None,
                 min_score: float = 0.6, timeout: float = 10.0, max_failures: int = 3,
                 pause: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_failures = max_failures
        self.pause = pause
        self.failures = 0
        self._paused_at = 0.0
        self.cache_path = Path(cache_path) if cache_path else None
        self.min_score = min_score
        self.timeout = timeout
        self.requests = 0
        self._cache: dict[str, dict[str, object] | None] = {}
        if self.cache_path and self.cache_path.exists():
            try:
                self._cache = json.loads(self.cache_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("cache de géocodage illisible %s : %s", self.cache_path, exc)

    @staticmethod
    def _key(address: str, postal_code: str | None) -> str:
        return f"{words(address)}|{postal_code or ''}"

    def _save(self) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._cache, ensure_ascii=False, sort_keys=True), "utf-8")
        tmp.replace(self.cache_path)

    def geocode(self, address: str, postal_code: str | None = None) -> GeocodeResult | None:
        """Best BAN match for ``address`` (restricted to ``postal_code`` when given).

        Network errors, HTTP errors, bodies over 1 MB and malformed JSON give None and are
        not cached (they may be temporary); "no match" answers are cached. After
        ``max_failures`` errors in a row, None without asking for ``pause`` seconds.
        """
        if not address or not address.strip():
            return None
        key = self._key(address, postal_code)
        if key in self._cache:
            cached = self._cache[key]
            return GeocodeResult(**cached) if cached else None  # type: ignore[arg-type]
        if self.failures >= self.max_failures:
            if time.monotonic() - self._paused_at < self.pause:
                return None  # BAN unreachable or broken: not asked for a while
            self.failures = self.max_failures - 1  # one probe; a new failure pauses again
        params = {"q": address, "limit": "1"}
        if postal_code:
            params["postcode"] = postal_code
        self.requests += 1
        try:
            with requests.get(f"{self.base_url}/search/", params=params, timeout=self.timeout,
                              stream=True, allow_redirects=False) as response:
                if response.status_code != 200:
                    log.warning("BAN : HTTP %s pour %r", response.status_code, address)
                    return self._failed()
                body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
            if len(body) > MAX_BODY_BYTES:
                log.warning("BAN : réponse trop grande pour %r", address)
                return self._failed()
            document = json.loads(body)
            result = self._parse(document)
        except (requests.RequestException, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("BAN : %r : %s", address, exc)
            return self._failed()
        self.failures = 0
        self._cache[key] = asdict(result) if result else None
        self._save()
        return result

    def _failed(self) -> GeocodeResult | None:
        """Count one failed request; always None (the caller returns it)."""
        self.failures += 1
        if self.failures == self.max_failures:
            self._paused_at = time.monotonic()
            log.warning("BAN : %d échecs de suite, géocodage suspendu %d s", self.failures,
                        self.pause)
        return None

    def _parse(self, document: dict[str, object]) -> GeocodeResult | None:
        features = document.get("features")
        if not isinstance(features, list) or not features:
            return None
        feature = features[0]
        props = feature.get("properties") or {}
        score = float(props.get("score") or 0.0)
        if score < self.min_score:
            return None
        lon, lat = feature["geometry"]["coordinates"][:2]
        return GeocodeResult(latitude=float(lat), longitude=float(lon), label=props.get("label"),
                             postal_code=props.get("postcode"), city=props.get("city"),
                             citycode=props.get("citycode"), score=score,
                             precision=props.get("type"))


def make_geocoder(settings: Settings) -> OfflineGeocoder | BANGeocoder:
    """The geocoder ``settings.geocoder`` names: ``offline`` or ``ban`` (``settings.ban_url``,
    cache file ``settings.geocode_cache``).

    Raises:
        ValueError: any other value of ``TISSU_GEOCODER`` (message in French).
    """
    if settings.geocoder == "offline":
        return OfflineGeocoder()
    if settings.geocoder == "ban":
        return BANGeocoder(settings.ban_url, cache_path=settings.geocode_cache)
    raise ValueError(f"TISSU_GEOCODER doit valoir {' ou '.join(GEOCODERS)} "
                     f"(reçu {settings.geocoder!r})")


@lru_cache(maxsize=4)
def _ban_for(mode: str, url: str, cache: str) -> BANGeocoder | None:
    """One BAN geocoder per setting for the whole process (None when offline or invalid)."""
    if mode == "ban":
        return BANGeocoder(url, cache_path=Path(cache))
    if mode != "offline":
        log.warning("TISSU_GEOCODER=%r inconnu : géocodage hors ligne (valeurs : %s)", mode,
                    ", ".join(GEOCODERS))
    return None


def geocode_unknown_location(location: str | None, postal_code: str | None = None,
                             settings: Settings | None = None) -> GeocodeResult | None:
    """Position of a LOCATION that names no known venue, from the BAN when
    ``TISSU_GEOCODER=ban``; None otherwise.

    Only the street address found in ``location`` is sent (``"12 rue Berthier, 93500 Pantin"``
    → ``q="12 rue Berthier"``, ``postcode=93500``; a city named without postal code is added to
    ``q``); a LOCATION without a street is never sent. When the BAN answers with Pantin
    (citycode 93055), ``quartier`` comes from data/quartiers.yaml. Never raises: network and
    format trouble give None (logged), as does an unknown ``TISSU_GEOCODER`` value.

    Args:
        location: the event's LOCATION text.
        postal_code: a postal code the source gave (wins over the one in ``location``).
        settings: defaults to :func:`tissu.settings.get_settings` (environment).
    """
    if not location or not location.strip():
        return None
    if settings is None:
        if os.environ.get("TISSU_GEOCODER", "offline").strip().lower() in ("", "offline"):
            return None  # fast path: the default costs nothing per event
        from tissu.settings import get_settings

        settings = get_settings()
    geocoder = _ban_for(settings.geocoder, settings.ban_url, str(settings.geocode_cache))
    if geocoder is None:
        return None
    parsed = parse_location(location)
    if not parsed.street:
        return None
    query = " ".join(p for p in (parsed.street_number, parsed.street) if p)
    code = postal_code or parsed.postal_code
    if not code and parsed.city:
        query = f"{query} {parsed.city}"
    try:
        found = geocoder.geocode(query, postal_code=code)
    except Exception as exc:  # noqa: BLE001 - a geocoder never costs the event
        log.warning("géocodage impossible pour %r : %s", location, exc)
        return None
    if found is None or found.latitude is None:
        return None
    if found.citycode == HOME_CITYCODE:
        known, quartier = street_quartier(parsed.street)
        if known and quartier:
            found = replace(found, quartier=quartier)
    return found
