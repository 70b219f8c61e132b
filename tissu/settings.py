"""Settings read from environment variables, with defaults that work on a fresh clone.

Every setting is an environment variable prefixed ``TISSU_``; nothing else configures Tissu.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
LOCAL_TZ = "Europe/Paris"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} doit être un nombre entier (reçu {raw!r})") from exc


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} doit être un nombre (reçu {raw!r})") from exc


def _positive(name: str, value: float, raw: str, *, zero: bool) -> None:
    """Refuse a negative value (and 0 unless ``zero``) or one that is not finite."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} doit être un nombre positif (reçu {raw!r})")


def _positive_int(name: str, default: int) -> int:
    """:func:`_int`, refusing a negative value (0 is allowed: it means « none » or « no limit »)."""
    value = _int(name, default)
    _positive(name, value, os.environ.get(name, "").strip(), zero=True)
    return value


def _positive_float(name: str, default: float) -> float:
    """:func:`_float`, refusing 0, a negative value, ``nan`` and ``inf``."""
    value = _float(name, default)
    _positive(name, value, os.environ.get(name, "").strip(), zero=False)
    return value


def _parse_processes() -> int:
    """``TISSU_PARSE_PROCESSES`` (negative counts as 0); when unset or not a whole number, the
    number of CPUs this process may use, at most 4, and 0 on one CPU."""
    raw = os.environ.get("TISSU_PARSE_PROCESSES", "").strip()
    if raw:
        try:
            return max(0, int(raw))
        except ValueError:
            pass  # as before this setting moved here: a bad value means « automatic »
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 0 if (cpus or 1) < 2 else min(cpus or 1, 4)


@dataclass(frozen=True)
class Settings:
    """Runtime settings.

    Attributes:
        database_url: SQLAlchemy URL of the working store (``TISSU_DATABASE_URL``);
            default ``sqlite:///data/tissu.db``.
        registry: path of the source registry YAML (``TISSU_REGISTRY``).
        publish_dir: folder receiving ``tissu-open.db`` and ``exports/`` (``TISSU_PUBLISH_DIR``).
        raw_dir: folder of raw payload snapshots (``TISSU_RAW_DIR``).
        horizon_past_days / horizon_future_days: recurrence expansion window around "now", in
            days (``TISSU_HORIZON_PAST_DAYS`` default 30, ``TISSU_HORIZON_FUTURE_DAYS`` 365).
        max_body_bytes: largest accepted HTTP body (``TISSU_MAX_BODY_BYTES``, 20 MB).
        connect_timeout / read_timeout: HTTP timeouts in seconds (10 and 30).
        raw_retention: how many raw snapshots to keep per source (``TISSU_RAW_RETENTION``, 10).
        stale_after_days: a source whose content has not changed for longer than this many days
            gets health ``warning`` (``TISSU_STALE_AFTER_DAYS``, 30).
        kiosk: serve every resident page in kiosk mode (« borne », ``TISSU_KIOSK=1``; off by
            default; ``?borne=1`` turns it on for one visit).
        kiosk_idle_seconds: a kiosk goes back to its home page after this many seconds
            without input (``TISSU_KIOSK_IDLE_SECONDS``, 120).
        moderation_secret: secret that opens the moderation page (``TISSU_MODERATION_SECRET``);
            empty disables the page.
        smtp_host / smtp_port / smtp_user / smtp_password / smtp_from / smtp_starttls: outgoing
            mail (``TISSU_SMTP_*``); with no host, messages are logged instead of sent.
        registration_rate_limit / registration_rate_window: at most this many registrations per
            client IP address per window in seconds (``TISSU_REGISTRATION_RATE_LIMIT`` 5,
            ``TISSU_REGISTRATION_RATE_WINDOW`` 3600).
        check_rate_limit: feed checks (« Vérifier ») per client in that window
            (``TISSU_CHECK_RATE_LIMIT``; None, the default: twice the registrations, see
            tissu.registrations.CheckLimiter).
        publish_debounce: seconds to wait after a harvest that changed data before publishing,
            restarted by each further change (``TISSU_PUBLISH_DEBOUNCE``, 60).
        retry_base / max_backoff: first retry delay after a failed harvest and its ceiling, in
            seconds; the delay doubles after each consecutive failure (``TISSU_RETRY_BASE`` 300,
            ``TISSU_MAX_BACKOFF`` 86400).
        scheduler_sync_interval: seconds between two reconciliations of the scheduler's jobs
            with the registry (``TISSU_SCHEDULER_SYNC_INTERVAL``, 60).
        publisher_alerts: e-mail publishers whose feed failed for 24 h or dropped to zero
            events (``TISSU_PUBLISHER_ALERTS=1``; off by default).
        public_url: public address of the site, used in e-mails (``TISSU_PUBLIC_URL``).
        fetch_retries: extra attempts of one HTTP fetch after a 5xx or a time-out, never after a
            4xx (``TISSU_FETCH_RETRIES``, 2).
        fetch_backoff: first delay between those attempts in seconds, doubled each time
            (``TISSU_FETCH_BACKOFF``, 1.0).
        fetch_deadline: overall limit of one fetch in seconds, redirects and retries included,
            so that a server dribbling bytes is cut off (``TISSU_FETCH_DEADLINE``, 120).
        max_redirects: most HTTP redirects followed by one fetch (``TISSU_MAX_REDIRECTS``, 5).
        host_delay: politeness delay between two requests to the same host, in seconds
            (``TISSU_HOST_DELAY``, 1.0).
        parse_time_limit: longest time one source's parser may run, in seconds
            (``TISSU_PARSE_TIME_LIMIT``, 120).
        parse_processes: child processes that parse a harvest of at least 4 sources
            (``TISSU_PARSE_PROCESSES``; 0: everything in the main process). Default: the
            number of CPUs this process may use, at most 4, and 0 on one CPU; a value that is
            not a whole number also means that default, a negative one 0.
        check_time_limit: longest reading of a file checked by the feed doctor (``tissu
            check``, « Vérifier »), in seconds, also the bound of its download
            (``TISSU_CHECK_TIME_LIMIT``, 20; more than 0).
        check_memory_mb: address space of the child process that reads a checked file, in
            MiB (``TISSU_CHECK_MEMORY_MB``, 1024; 0: no limit).
        check_max_running: checks at once in one process; a further one is told to come
            back (``TISSU_CHECK_MAX_RUNNING``, 2; 0 counts as 1).
        crawl_depth / crawl_max_pages: website crawls (``format: html`` / ``scrapy:<spider>``)
            follow links at most this deep (``TISSU_CRAWL_DEPTH``, 2) and read at most this many
            pages (``TISSU_CRAWL_MAX_PAGES``, 50); ``host_delay`` is their delay per request.
        crawl_timeout: longest website crawl in seconds (``TISSU_CRAWL_TIMEOUT``, 300).
        geocoder: ``offline`` (default: known venues of data/places.yaml only, no network) or
            ``ban`` (Base Adresse Nationale, for LOCATIONs that name no known venue)
            (``TISSU_GEOCODER``).
        ban_url: root of the BAN search API (``TISSU_BAN_URL``,
            https://api-adresse.data.gouv.fr).
        geocode_cache: JSON file caching BAN answers (``TISSU_GEOCODE_CACHE``, default
            ``data/raw/geocode-ban.json``).
    """

    database_url: str = field(
        default_factory=lambda: os.environ.get(
            "TISSU_DATABASE_URL", f"sqlite:///{DATA_DIR / 'tissu.db'}"
        )
    )
    registry: Path = field(
        default_factory=lambda: Path(os.environ.get("TISSU_REGISTRY", DATA_DIR / "sources.yaml"))
    )
    publish_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("TISSU_PUBLISH_DIR", DATA_DIR / "publish"))
    )
    raw_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("TISSU_RAW_DIR", DATA_DIR / "raw"))
    )
    horizon_past_days: int = field(default_factory=lambda: _int("TISSU_HORIZON_PAST_DAYS", 30))
    horizon_future_days: int = field(
        default_factory=lambda: _int("TISSU_HORIZON_FUTURE_DAYS", 365)
    )
    max_body_bytes: int = field(
        default_factory=lambda: _int("TISSU_MAX_BODY_BYTES", 20 * 1024 * 1024)
    )
    connect_timeout: int = field(default_factory=lambda: _int("TISSU_CONNECT_TIMEOUT", 10))
    read_timeout: int = field(default_factory=lambda: _int("TISSU_READ_TIMEOUT", 30))
    raw_retention: int = field(default_factory=lambda: _int("TISSU_RAW_RETENTION", 10))
    stale_after_days: int = field(default_factory=lambda: _int("TISSU_STALE_AFTER_DAYS", 30))
    kiosk: bool = field(
        default_factory=lambda: os.environ.get("TISSU_KIOSK", "").strip().lower()
        in ("1", "true", "yes", "oui")
    )
    kiosk_idle_seconds: int = field(
        default_factory=lambda: _int("TISSU_KIOSK_IDLE_SECONDS", 120)
    )
    moderation_secret: str = field(
        default_factory=lambda: os.environ.get("TISSU_MODERATION_SECRET", "")
    )
    smtp_host: str = field(default_factory=lambda: os.environ.get("TISSU_SMTP_HOST", ""))
    smtp_port: int = field(default_factory=lambda: _int("TISSU_SMTP_PORT", 25))
    smtp_user: str = field(default_factory=lambda: os.environ.get("TISSU_SMTP_USER", ""))
    smtp_password: str = field(default_factory=lambda: os.environ.get("TISSU_SMTP_PASSWORD", ""))
    smtp_from: str = field(
        default_factory=lambda: os.environ.get("TISSU_SMTP_FROM", "tissu@localhost")
    )
    smtp_starttls: bool = field(
        default_factory=lambda: os.environ.get("TISSU_SMTP_STARTTLS", "") == "1"
    )
    registration_rate_limit: int = field(
        default_factory=lambda: _int("TISSU_REGISTRATION_RATE_LIMIT", 5)
    )
    registration_rate_window: int = field(
        default_factory=lambda: _int("TISSU_REGISTRATION_RATE_WINDOW", 3600)
    )
    publish_debounce: int = field(default_factory=lambda: _int("TISSU_PUBLISH_DEBOUNCE", 60))
    retry_base: int = field(default_factory=lambda: _int("TISSU_RETRY_BASE", 300))
    max_backoff: int = field(default_factory=lambda: _int("TISSU_MAX_BACKOFF", 86400))
    scheduler_sync_interval: int = field(
        default_factory=lambda: _int("TISSU_SCHEDULER_SYNC_INTERVAL", 60)
    )
    publisher_alerts: bool = field(
        default_factory=lambda: os.environ.get("TISSU_PUBLISHER_ALERTS", "") == "1"
    )
    public_url: str = field(
        default_factory=lambda: os.environ.get("TISSU_PUBLIC_URL", "http://127.0.0.1:8001")
    )
    fetch_retries: int = field(default_factory=lambda: _int("TISSU_FETCH_RETRIES", 2))
    fetch_backoff: float = field(default_factory=lambda: _float("TISSU_FETCH_BACKOFF", 1.0))
    fetch_deadline: float = field(default_factory=lambda: _float("TISSU_FETCH_DEADLINE", 120.0))
    max_redirects: int = field(default_factory=lambda: _int("TISSU_MAX_REDIRECTS", 5))
    host_delay: float = field(default_factory=lambda: _float("TISSU_HOST_DELAY", 1.0))
    parse_time_limit: float = field(
        default_factory=lambda: _float("TISSU_PARSE_TIME_LIMIT", 120.0)
    )
    parse_processes: int = field(default_factory=_parse_processes)
    check_time_limit: float = field(
        default_factory=lambda: _positive_float("TISSU_CHECK_TIME_LIMIT", 20.0)
    )
    check_memory_mb: int = field(
        default_factory=lambda: _positive_int("TISSU_CHECK_MEMORY_MB", 1024)
    )
    check_max_running: int = field(
        default_factory=lambda: _positive_int("TISSU_CHECK_MAX_RUNNING", 2)
    )
    check_rate_limit: int | None = field(
        default_factory=lambda: _positive_int("TISSU_CHECK_RATE_LIMIT", 0) or None
    )
    crawl_depth: int = field(default_factory=lambda: _int("TISSU_CRAWL_DEPTH", 2))
    crawl_max_pages: int = field(default_factory=lambda: _int("TISSU_CRAWL_MAX_PAGES", 50))
    crawl_timeout: int = field(default_factory=lambda: _int("TISSU_CRAWL_TIMEOUT", 300))
    geocoder: str = field(
        default_factory=lambda: os.environ.get("TISSU_GEOCODER", "offline").strip().lower()
        or "offline"
    )
    ban_url: str = field(
        default_factory=lambda: os.environ.get("TISSU_BAN_URL", "https://api-adresse.data.gouv.fr")
    )
    geocode_cache: Path = field(
        default_factory=lambda: Path(os.environ.get("TISSU_GEOCODE_CACHE",
                                                    DATA_DIR / "raw" / "geocode-ban.json"))
    )


def get_settings(**overrides: object) -> Settings:
    """Return settings from the environment, with explicit ``overrides`` (e.g. from the CLI)."""
    base = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return base
    from dataclasses import replace

    return replace(base, **clean)  # type: ignore[arg-type]
