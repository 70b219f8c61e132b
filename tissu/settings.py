"""Settings read from environment variables, with defaults that work on a fresh clone.

Every setting is an environment variable prefixed ``TISSU_``; nothing else configures Tissu.
"""

from __future__ import annotations

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


def get_settings(**overrides: object) -> Settings:
    """Return settings from the environment, with explicit ``overrides`` (e.g. from the CLI)."""
    base = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return base
    from dataclasses import replace

    return replace(base, **clean)  # type: ignore[arg-type]
