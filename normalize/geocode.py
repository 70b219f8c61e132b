"""Geocoders: an address → WGS 84 position, postal code, city.

- :class:`OfflineGeocoder` (default): no network; knows the venues of ``data/places.yaml`` and
  the streets of ``data/quartiers.yaml`` (positions only for known venues).
- :class:`BANGeocoder`: the Base Adresse Nationale search API
  (https://adresse.data.gouv.fr/api-doc/adresse, ``GET /search/?q=…&limit=1``, answer a GeoJSON
  FeatureCollection whose features have ``geometry.coordinates`` = [lon, lat] and
  ``properties`` label, score (0–1), postcode, city, citycode, type). Answers are cached in a
  JSON file so that an address is asked once; tested only against a local fake server.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import requests

from normalize.fold import words
from normalize.places import HOME_CITY, resolve_location

BAN_URL = "https://api-adresse.data.gouv.fr"
MAX_BODY_BYTES = 1_000_000
log = logging.getLogger(__name__)


@dataclass
class GeocodeResult:
    """A position (WGS 84 degrees) and what the geocoder says of the address.

    ``score`` is 0–1 (BAN's score; 1.0 for a known venue); ``precision`` is BAN's ``type``
    (housenumber, street, locality, municipality) or ``venue`` / ``approximate-venue``.
    """

    latitude: float | None
    longitude: float | None
    label: str | None = None
    postal_code: str | None = None
    city: str | None = None
    citycode: str | None = None
    score: float = 0.0
    precision: str | None = None


class Geocoder(Protocol):
    """Anything that turns an address into a :class:`GeocodeResult` (or None when unknown)."""

    def geocode(self, address: str, postal_code: str | None = None) -> GeocodeResult | None:
        """Geocode one address; never raises for bad input or network trouble."""
        ...


class OfflineGeocoder:
    """Known venues only (data/places.yaml); no network, no guess."""

    def geocode(self, address: str, postal_code: str | None = None) -> GeocodeResult | None:
        """Position of the known venue ``address`` designates, or None."""
        found = resolve_location(address, postal_code=postal_code, default_city=HOME_CITY)
        if found.place_id is None or found.latitude is None or found.longitude is None:
            return None
        return GeocodeResult(found.latitude, found.longitude, label=found.address,
                             postal_code=found.postal_code, city=found.city, score=1.0,
                             precision="approximate-venue")


class BANGeocoder:
    """Base Adresse Nationale search with a JSON file cache.

    Args:
        base_url: API root (``BAN_URL``; a local fake server in tests).
        cache_path: JSON file of past answers (query key → result or null); None: memory only.
        min_score: answers below this BAN score are treated as "not found".
        timeout: seconds for connect and read.
    """

    def __init__(self, base_url: str = BAN_URL, cache_path: Path | None = None,
                 min_score: float = 0.6, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
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
        not cached (they may be temporary); "no match" answers are cached.
        """
        if not address or not address.strip():
            return None
        key = self._key(address, postal_code)
        if key in self._cache:
            cached = self._cache[key]
            return GeocodeResult(**cached) if cached else None  # type: ignore[arg-type]
        params = {"q": address, "limit": "1"}
        if postal_code:
            params["postcode"] = postal_code
        self.requests += 1
        try:
            with requests.get(f"{self.base_url}/search/", params=params, timeout=self.timeout,
                              stream=True, allow_redirects=False) as response:
                if response.status_code != 200:
                    log.warning("BAN : HTTP %s pour %r", response.status_code, address)
                    return None
                body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
            if len(body) > MAX_BODY_BYTES:
                log.warning("BAN : réponse trop grande pour %r", address)
                return None
            document = json.loads(body)
            result = self._parse(document)
        except (requests.RequestException, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("BAN : %r : %s", address, exc)
            return None
        self._cache[key] = asdict(result) if result else None
        self._save()
        return result

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
