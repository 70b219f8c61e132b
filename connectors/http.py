"""Fetching a source's bytes: local bundled files, or HTTP(S) with requests.

HTTP fetches send an honest User-Agent, use conditional GET (ETag / If-Modified-Since), respect
connect and read timeouts, and stop reading past ``max_body_bytes`` while streaming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import requests

from tissu import USER_AGENT


class FetchError(Exception):
    """The bytes could not be obtained; the message is plain French for the source's owner."""


@dataclass
class FetchResult:
    """What a fetch returned.

    ``not_modified`` is true on HTTP 304; ``content`` is then empty. ``etag`` and
    ``last_modified`` are the validators to send next time.
    """

    url: str
    content: bytes = b""
    status: int | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = 20 * 1024 * 1024,
    timeout: tuple[float, float] = (10, 30),
    session: requests.Session | None = None,
) -> FetchResult:
    """Fetch ``url`` (http(s) URL or local file path).

    Args:
        url: http(s) URL, or a path to a bundled file.
        etag / last_modified: validators from the previous successful fetch.
        max_bytes: largest accepted body, enforced while streaming.
        timeout: (connect, read) seconds.

    Raises:
        FetchError: file missing, connection failure, time-out, HTTP status ≥ 400, body too big.
    """
    if not url.startswith(("http://", "https://")):
        path = Path(url)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise FetchError(f"fichier introuvable : {path}") from exc
        if size > max_bytes:
            raise FetchError(f"fichier trop volumineux ({size} octets, limite {max_bytes})")
        return FetchResult(url=url, content=path.read_bytes(), status=200)

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    http = session or requests.Session()
    try:
        response = http.get(url, headers=headers, timeout=timeout, stream=True,
                            allow_redirects=True)
    except requests.Timeout as exc:
        raise FetchError(f"le serveur ne répond pas à temps ({url})") from exc
    except requests.RequestException as exc:
        raise FetchError(f"connexion impossible à {url} ({type(exc).__name__})") from exc
    with response:
        if response.status_code == 304:
            return FetchResult(url=response.url, status=304, not_modified=True, etag=etag,
                               last_modified=last_modified)
        if response.status_code >= 400:
            raise FetchError(f"le serveur a répondu HTTP {response.status_code} pour {url}")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"réponse trop volumineuse ({declared} octets, limite {max_bytes})")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                total += len(chunk)
                if total > max_bytes:
                    raise FetchError(f"réponse trop volumineuse (plus de {max_bytes} octets)")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise FetchError(f"lecture interrompue ({type(exc).__name__}) pour {url}") from exc
        return FetchResult(
            url=response.url,
            content=b"".join(chunks),
            status=response.status_code,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            content_type=response.headers.get("Content-Type"),
            headers=dict(response.headers),
        )
