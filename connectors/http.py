"""Fetching a source's bytes: local bundled files, or HTTP(S) with requests, treated as hostile.

:func:`fetch` is the one entry point. Every http(s) request it makes:

- goes through an address guard (:func:`check_url`): http and https only, no user name or
  password in the URL, and the host's DNS answers must all be public addresses: loopback,
  private, link-local, multicast, reserved, unspecified and cloud-metadata addresses
  (169.254.169.254, fd00:ec2::254, …) are refused. The guard runs again inside the connection
  itself (:class:`_GuardedHTTPConnection`), which connects to the very address it checked, so a
  DNS answer that changes between check and connect (DNS rebinding) cannot reach a private
  address. Redirects are followed by hand, each hop checked the same way;
- sends an honest User-Agent (:data:`tissu.USER_AGENT`), conditional-GET validators (ETag /
  If-Modified-Since, RFC 9110 §13), no cookie, no credential, no proxy from the environment;
- respects connect and read timeouts, an overall deadline (so a server dribbling bytes is cut
  off), a maximum body size while streaming (compressed and decompressed), a redirect limit
  with loop detection, and a politeness delay per host;
- retries with exponential backoff after a 5xx answer or a time-out, never after a 4xx.

gzip and deflate bodies are decompressed here with :mod:`zlib`, strictly: a gzip stream that is
truncated or whose trailer lies about its length or CRC is an error, not silently short data.

``TISSU_ALLOW_LOOPBACK_FETCH=1`` (tests only) lets loopback addresses through, nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from tissu import USER_AGENT

ALLOW_LOOPBACK_ENV = "TISSU_ALLOW_LOOPBACK_FETCH"

# Cloud instance-metadata endpoints (AWS, GCP, Azure, OpenStack, Oracle, Alibaba, AWS ECS, AWS
# IPv6). Most are link-local or private anyway; they are named so the message says what they are.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 65536


class FetchError(Exception):
    """The bytes could not be obtained; the message is plain French for the source's owner."""


class UnsafeURLError(FetchError):
    """The URL, or an address it resolves or redirects to, must not be fetched (SSRF guard)."""


class TooLargeError(FetchError):
    """The body is, or is announced as, bigger than ``max_bytes`` (on the wire or decompressed)."""


class TooSlowError(FetchError):
    """The fetch ran past its overall deadline (a slow server, or one dribbling its bytes)."""


_SCHEME_RE = re.compile(r"^\s*(webcals?|https?)://", re.IGNORECASE)


def web_url(url: str) -> str:
    """An address as Tissu fetches and stores it: the one place where schemes are read.

    ``webcal://`` and ``webcals://`` (the subscription links of calendar apps: the same file
    over the web) become ``https://``; ``HTTP://`` and ``HTTPS://`` become ``http://`` and
    ``https://`` (a scheme is case-insensitive, RFC 3986 §3.1), spaces before the scheme
    dropped. Any other text (``ftp://…``, a local path) comes back unchanged; nothing else of
    the address is touched (see ``schemas.registry.canonical_url`` to compare addresses).

    >>> web_url("WebCal://exemple.fr/agenda.ics"), web_url("HTTPS://exemple.fr/A")
    ('https://exemple.fr/agenda.ics', 'https://exemple.fr/A')
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        return url
    scheme = match.group(1).lower()
    return ("https" if scheme.startswith("webcal") else scheme) + "://" + url[match.end():]


def human_size(size: int) -> str:
    """A size in bytes in French words with binary units: ``864 octets``, ``1,5 Mo``, ``20 Mo``,
    ``3 Go`` (1 Ko = 1024 octets, 1 Mo = 1 048 576 octets; at most one decimal, comma)."""
    if size < 1024:
        return f"{size} octet{'s' if size > 1 else ''}"
    value = float(size)
    for unit in ("Ko", "Mo", "Go", "To"):
        value /= 1024
        if value < 1024 or unit == "To":
            break
    text = f"{value:.1f}".removesuffix(".0").replace(".", ",")
    return f"{text} {unit}"


@dataclass
class FetchResult:
    """What a fetch returned.

    ``not_modified`` is true on HTTP 304; ``content`` is then empty. ``etag`` and
    ``last_modified`` are the validators to send next time. ``url`` is the final URL after
    redirects; ``redirects`` lists the URLs that redirected, in order; ``attempts`` counts HTTP
    attempts of the last hop (1 when no retry was needed).
    """

    url: str
    content: bytes = b""
    status: int | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    redirects: list[str] = field(default_factory=list)
    attempts: int = 1


# --------------------------------------------------------------------------------------------
# Address guard


def loopback_allowed() -> bool:
    """True when ``TISSU_ALLOW_LOOPBACK_FETCH=1`` (tests only)."""
    return os.environ.get(ALLOW_LOOPBACK_ENV, "") == "1"


def address_problem(address: str, *, allow_loopback: bool | None = None) -> str | None:
    """Why ``address`` (an IPv4 or IPv6 literal) must not be contacted, in French; None if public.

    IPv4 addresses embedded in IPv6 (mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64) are judged
    as the IPv4 address they carry.
    """
    if allow_loopback is None:
        allow_loopback = loopback_allowed()
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"adresse IP illisible ({address})"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            problem = address_problem(str(embedded), allow_loopback=allow_loopback)
            return f"{problem} (dans {ip})" if problem else None
    if ip in METADATA_ADDRESSES:
        return f"{ip} est l'adresse des métadonnées d'un hébergeur (cloud)"
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} est une adresse locale (loopback)"
    if ip.is_unspecified:
        return f"{ip} est une adresse non spécifiée"
    if ip.is_link_local:
        return f"{ip} est une adresse lien-local"
    if ip.is_multicast:
        return f"{ip} est une adresse de multidiffusion (multicast)"
    if ip.is_private:
        return f"{ip} est une adresse de réseau privé"
    if ip.is_reserved:
        return f"{ip} est une adresse réservée"
    if not ip.is_global:
        return f"{ip} n'est pas une adresse publique d'Internet"
    return None


def resolve_public(host: str, port: int) -> list[str]:
    """Resolve ``host`` and return its addresses, in DNS order, if every answer is public.

    Every DNS answer is checked, not only the first, so a name that mixes a public and a private
    address is refused.

    Raises:
        UnsafeURLError: an answer is not a public address (see :func:`address_problem`).
        FetchError: the name does not resolve.
    """
    host = host.strip("[]")
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        problem = address_problem(host)
        if problem:
            raise UnsafeURLError(f"adresse refusée : {problem} ; Tissu ne lit que des adresses "
                                 "publiques d'Internet")
        return [host]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"nom de domaine introuvable : {host}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchError(f"nom de domaine introuvable : {host}")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise UnsafeURLError(
                f"adresse refusée pour {host} : {problem} ; Tissu ne lit que des adresses "
                "publiques d'Internet"
            )
    return addresses


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, refusing anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"adresse illisible : {url!r}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"« {scheme}: »" if scheme else "aucun protocole"
        raise UnsafeURLError(
            f"adresse refusée : seuls http:// et https:// sont acceptés ({shown}) : {url}"
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(
            "adresse refusée : elle contient un identifiant ou un mot de passe ; donnez une "
            "adresse publique, sans « nom@ »"
        )
    if not parts.hostname:
        raise UnsafeURLError(f"adresse refusée : nom de serveur manquant : {url}")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def check_url(url: str) -> str:
    """Check that ``url`` may be fetched and return the IP address it resolves to.

    Used by :func:`fetch` before every request and every redirect, and reusable by any code that
    takes a URL from a user (e.g. the feed doctor).

    Returns:
        The IP address (text) that a connection would use.

    Raises:
        UnsafeURLError: not http(s), user name or password in the URL, or a DNS answer that is
            loopback, private, link-local, multicast, reserved, unspecified or cloud metadata
            (loopback allowed only with ``TISSU_ALLOW_LOOPBACK_FETCH=1``).
        FetchError: the host name does not resolve.
    """
    _scheme, host, port = _split(url)
    return resolve_public(host, port)[0]


# --------------------------------------------------------------------------------------------
# Connections pinned to the checked address


class _GuardedConnectionMixin:
    """Resolve, check and connect to the checked address in one step (no rebinding window)."""

    _dns_host: str
    port: int
    timeout: float | None
    source_address: tuple[str, int] | None
    socket_options: list | None

    def _new_conn(self) -> socket.socket:
        # Resolve and check here, then connect to exactly those literal addresses.
        addresses = resolve_public(self._dns_host, self.port)  # UnsafeURLError / FetchError
        error: OSError | None = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connexion à {self._dns_host} trop lente") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"connexion impossible : {error}")  # type: ignore[arg-type]


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    """TLS still uses the host name for SNI and certificate checks; only the socket is pinned."""


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through the address guard."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def guarded_session() -> requests.Session:
    """A session that refuses cookies, ignores proxies and .netrc, and guards every connection."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment, no .netrc credentials
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # never store or send
    adapter = GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --------------------------------------------------------------------------------------------
# Politeness


_HOST_LOCK = threading.Lock()
_LAST_REQUEST: dict[str, float] = {}


def _polite_wait(url: str, delay: float, deadline: float) -> None:
    """Sleep so that two requests to the same host:port are ``delay`` seconds apart."""
    if delay <= 0:
        return
    parts = urlsplit(url)
    key = f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"
    with _HOST_LOCK:
        last = _LAST_REQUEST.get(key)
        now = time.monotonic()
        start = now if last is None else max(now, last + delay)
        _LAST_REQUEST[key] = start  # reserve the slot, so concurrent fetches queue up
    wait = start - now
    if wait > 0:
        if now + wait > deadline:
            raise TooSlowError("délai dépassé en attendant son tour auprès du même serveur")
        time.sleep(wait)


# --------------------------------------------------------------------------------------------
# Body reading


class _Retryable(FetchError):
    """A failure worth another attempt (5xx, time-out, connection cut mid-body)."""


def _decoder(encoding: str, first: bytes) -> Any:
    """A zlib decompressor for a Content-Encoding, chosen from the first bytes; None if identity.

    "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2) but some servers send raw deflate
    or even gzip under that name; the first bytes tell which.
    """
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip") or first[:2] == b"\x1f\x8b":
        return zlib.decompressobj(wbits=31)
    if encoding == "deflate":
        zlib_header = len(first) >= 2 and (first[0] & 0x0F) == 8 and (
            int.from_bytes(first[:2], "big") % 31 == 0
        )
        return zlib.decompressobj(wbits=15 if zlib_header else -15)
    raise FetchError(f"encodage de contenu non pris en charge : {encoding}")


def _read_body(response: requests.Response, url: str, max_bytes: int, deadline: float,
               read_timeout: float) -> bytes:
    """Stream the body within size and time limits; decompress gzip/deflate strictly."""
    raw: urllib3.HTTPResponse = response.raw
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise FetchError(f"encodage de contenu non pris en charge : {encoding} ({url})")
    decoder: Any = None
    first = True
    too_big = TooLargeError(
        f"réponse trop volumineuse (plus de {human_size(max_bytes)}) : téléchargement arrêté"
    )
    chunks: list[bytes] = []
    received = 0  # bytes on the wire
    produced = 0  # bytes after decompression
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TooSlowError(
                f"téléchargement trop lent : arrêté après {human_size(received)} ({url})"
            )
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.settimeout(max(0.01, min(read_timeout, remaining)))
            except OSError:
                pass
        try:
            data = raw.read1(_CHUNK, decode_content=False)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            if deadline - time.monotonic() <= 0:
                raise TooSlowError(
                    f"téléchargement trop lent : arrêté après {human_size(received)} ({url})"
                ) from exc
            raise _Retryable(f"le serveur a cessé d'envoyer les données ({url})") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(
                f"réponse incomplète : la connexion a été coupée après {received} octets ({url})"
            ) from exc
        if not data:
            break
        received += len(data)
        if received > max_bytes:
            raise too_big
        if first:
            decoder = _decoder(encoding, data)
            first = False
        if decoder is None:
            chunks.append(data)
            produced += len(data)
            continue
        try:
            while data:
                out = decoder.decompress(data, max_bytes + 1 - produced)
                produced += len(out)
                if produced > max_bytes:
                    raise too_big
                chunks.append(out)
                if decoder.eof and decoder.unused_data and decoder.unused_data[:2] == b"\x1f\x8b":
                    data = decoder.unused_data  # another gzip member follows
                    decoder = zlib.decompressobj(wbits=31)
                else:
                    data = decoder.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(
                f"contenu compressé ({encoding}) invalide ou mensonger : {exc} ({url})"
            ) from exc
    if decoder is not None and not decoder.eof:
        raise FetchError(
            f"contenu compressé ({encoding}) tronqué : la fin du flux manque ({url})"
        )
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# fetch


def _settings():  # type: ignore[no-untyped-def]
    from tissu.settings import Settings

    return Settings()


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = 20 * 1024 * 1024,
    timeout: tuple[float, float] = (10, 30),
    session: requests.Session | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    deadline: float | None = None,
    max_redirects: int | None = None,
    host_delay: float | None = None,
    allow_local: bool = True,
) -> FetchResult:
    """Fetch ``url`` (http(s) URL, or a local file path when ``allow_local``).

    Args:
        url: http(s) URL, or a path to a bundled file.
        etag / last_modified: validators from the previous successful fetch.
        max_bytes: largest accepted body (on the wire and decompressed), enforced while
            streaming.
        timeout: (connect, read) seconds.
        session: a requests session to use; it gets the guarded adapter and cookie policy.
        retries: extra attempts after a 5xx or a time-out (default ``Settings.fetch_retries``).
        backoff: first delay between attempts in seconds, doubled each time
            (default ``Settings.fetch_backoff``).
        deadline: overall limit in seconds, redirects and retries included
            (default ``Settings.fetch_deadline``).
        max_redirects: most redirects followed (default ``Settings.max_redirects``).
        host_delay: politeness delay between requests to one host in seconds
            (default ``Settings.host_delay``).
        allow_local: accept a local file path; pass False for URLs typed by a user.

    Raises:
        UnsafeURLError: a URL or redirect target refused by :func:`check_url`.
        TooLargeError: body (announced, on the wire or decompressed) bigger than ``max_bytes``.
        TooSlowError: ``deadline`` exceeded (a slow or dribbling server).
        FetchError: file missing, connection failure, time-out, HTTP status ≥ 400 (after
            retries for 5xx), redirect loop or too many redirects, broken compression.
    """
    has_scheme = "://" in url.split("?", 1)[0][:16]
    if not url.lower().startswith(("http://", "https://")):
        if has_scheme or not allow_local:
            _split(url)  # raises UnsafeURLError with the reason
        return _fetch_file(Path(url), max_bytes)

    settings = None
    if None in (retries, backoff, deadline, max_redirects, host_delay):
        settings = _settings()
    retries = settings.fetch_retries if retries is None else retries  # type: ignore[union-attr]
    backoff = settings.fetch_backoff if backoff is None else backoff  # type: ignore[union-attr]
    limit = settings.fetch_deadline if deadline is None else deadline  # type: ignore[union-attr]
    max_redirects = (
        settings.max_redirects if max_redirects is None else max_redirects  # type: ignore[union-attr]
    )
    host_delay = settings.host_delay if host_delay is None else host_delay  # type: ignore[union-attr]
    end = time.monotonic() + limit

    headers = {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "gzip, deflate",
        "Accept": "text/calendar, application/rss+xml, application/atom+xml, "
        "application/feed+json, application/json, application/xml, text/xml, text/html;q=0.8, "
        "*/*;q=0.5",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    http = session or guarded_session()
    if session is not None:
        http.trust_env = False
        http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = GuardedAdapter(max_retries=0)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
    try:
        return _follow(http, url, headers, etag, last_modified, max_bytes, timeout, retries,
                       backoff, end, limit, max_redirects, host_delay)
    finally:
        if session is None:
            http.close()


def _fetch_file(path: Path, max_bytes: int) -> FetchResult:
    """The bytes of a local file of the seed registry, as a fetch gives them.

    Raises:
        FetchError: missing, not a regular file (a folder, a named pipe, a device: reading one
            could block the harvest), or unreadable (French message naming the path).
        TooLargeError: larger than ``max_bytes``.
    """
    try:
        status = path.stat()
    except OSError as exc:
        raise FetchError(f"fichier introuvable : {path}") from exc
    if stat.S_ISDIR(status.st_mode):
        raise FetchError(f"« {path} » est un dossier, pas un fichier")
    if not stat.S_ISREG(status.st_mode):
        raise FetchError(f"« {path} » n'est pas un fichier ordinaire (tube ou périphérique)")
    if status.st_size > max_bytes:
        raise TooLargeError(f"fichier trop volumineux ({human_size(status.st_size)}, limite "
                            f"{human_size(max_bytes)})")
    try:
        with path.open("rb") as file:
            content = file.read(max_bytes + 1)
    except PermissionError as exc:
        raise FetchError(f"fichier illisible : {path} (droits d'accès)") from exc
    except OSError as exc:
        raise FetchError(f"fichier illisible : {path} (erreur {exc.errno})") from exc
    if len(content) > max_bytes:  # it grew since stat()
        raise TooLargeError(f"fichier trop volumineux (plus de {human_size(max_bytes)})")
    return FetchResult(url=str(path), content=content, status=200)


def _follow(http: requests.Session, url: str, headers: dict[str, str], etag: str | None,
            last_modified: str | None, max_bytes: int, timeout: tuple[float, float],
            retries: int, backoff: float, end: float, limit: float, max_redirects: int,
            host_delay: float) -> FetchResult:
    """Follow redirects by hand, checking each hop before any connection."""
    current = url
    seen = [url]
    for _hop in range(max_redirects + 1):
        check_url(current)  # a clear refusal before any socket is opened
        result, location = _attempts(http, current, headers, etag, last_modified, max_bytes,
                                     timeout, retries, backoff, end, limit, host_delay)
        if location is None:
            assert result is not None
            result.redirects = seen[:-1]
            return result
        target = urljoin(current, location)
        if target in seen:
            chain = " → ".join([*seen[seen.index(target):], target])
            raise FetchError(f"boucle de redirections : {chain}")
        seen.append(target)
        current = target
    raise FetchError(
        f"trop de redirections (plus de {max_redirects}) à partir de {url} ; "
        f"dernière adresse : {current}"
    )


def _attempts(http: requests.Session, url: str, headers: dict[str, str], etag: str | None,
              last_modified: str | None, max_bytes: int, timeout: tuple[float, float],
              retries: int, backoff: float, end: float, limit: float,
              host_delay: float) -> tuple[FetchResult | None, str | None]:
    """One hop with retries; returns (result, None) or (None, redirect location)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            result, location = _once(http, url, headers, etag, last_modified, max_bytes, timeout,
                                     end, limit, host_delay)
            if result is not None:
                result.attempts = attempt
            return result, location
        except _Retryable as exc:
            delay = backoff * (2 ** (attempt - 1))
            if attempt > retries:
                tries = f" (après {attempt} tentatives)" if attempt > 1 else ""
                raise FetchError(f"{exc}{tries}") from exc
            if time.monotonic() + delay >= end:
                raise TooSlowError(f"{exc} ; délai total de {limit:g} s dépassé") from exc
            time.sleep(delay)


def _connection_reason(exc: requests.RequestException) -> str:
    """Why a connection failed, in French words (not the exception's class name)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "échec de la connexion chiffrée HTTPS : certificat refusé ou serveur sans HTTPS"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "le mandataire (proxy) a refusé la connexion"
    if isinstance(exc, requests.ConnectionError):
        return "le serveur refuse la connexion ou ne répond pas"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema
                  | requests.exceptions.MissingSchema):
        return "adresse mal formée"
    return f"erreur du client HTTP : {type(exc).__name__}"


def _once(http: requests.Session, url: str, headers: dict[str, str], etag: str | None,
          last_modified: str | None, max_bytes: int, timeout: tuple[float, float], end: float,
          limit: float, host_delay: float) -> tuple[FetchResult | None, str | None]:
    _polite_wait(url, host_delay, end)
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise TooSlowError(f"délai total de {limit:g} s dépassé ({url})")
    connect, read = timeout
    try:
        response = http.get(url, headers=headers, stream=True, allow_redirects=False,
                            timeout=(min(connect, remaining), min(read, remaining)))
    except requests.Timeout as exc:
        if end - time.monotonic() <= 0:
            raise TooSlowError(f"délai total de {limit:g} s dépassé ({url})") from exc
        raise _Retryable(f"le serveur ne répond pas à temps ({url})") from exc
    except requests.ConnectionError as exc:
        cause = exc.__context__
        while cause is not None and not isinstance(cause, FetchError):
            cause = cause.__context__
        if isinstance(cause, FetchError):
            raise cause from exc
        raise FetchError(f"connexion impossible à {url} ({_connection_reason(exc)})") from exc
    except requests.RequestException as exc:
        raise FetchError(f"connexion impossible à {url} ({_connection_reason(exc)})") from exc
    finally:
        with _HOST_LOCK:
            parts = urlsplit(url)
            key = f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"
            _LAST_REQUEST[key] = max(_LAST_REQUEST.get(key, 0.0), time.monotonic())
    with response:
        status = response.status_code
        if status in _REDIRECTS:
            location = response.headers.get("Location")
            if not location:
                raise FetchError(f"redirection HTTP {status} sans adresse de destination ({url})")
            return None, location
        if status == 304:
            return FetchResult(url=url, status=304, not_modified=True, etag=etag,
                               last_modified=last_modified), None
        if status >= 500:
            raise _Retryable(f"le serveur a répondu HTTP {status} (erreur du serveur) pour {url}")
        if status >= 400:
            raise FetchError(f"le serveur a répondu HTTP {status} pour {url}")
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLargeError(
                f"réponse trop volumineuse ({human_size(int(declared))} annoncés, limite "
                f"{human_size(max_bytes)})"
            )
        content = _read_body(response, url, max_bytes, end, read)
        return FetchResult(
            url=url,
            content=content,
            status=status,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            content_type=response.headers.get("Content-Type"),
            headers=dict(response.headers),
        ), None
