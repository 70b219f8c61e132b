"""The PUBLISH stage as one call: database, exports, Datasette metadata."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from publish.build import build_database
from publish.exports import build_exports
from publish.metadata import build_metadata


@dataclass
class PublishOutcome:
    """Where everything was written."""

    database: Path
    metadata: Path
    exports: dict[str, Path]


def publish(engine: Engine, out_dir: Path, now: dt.datetime) -> PublishOutcome:
    """Build ``out_dir/tissu-open.db``, ``out_dir/metadata.json`` and ``out_dir/exports/``."""
    database = build_database(engine, out_dir)
    exports = build_exports(database, out_dir / "exports", now)
    metadata_path = out_dir / "metadata.json"
    metadata_path.write_text(
        json.dumps(build_metadata(database), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return PublishOutcome(database=database, metadata=metadata_path, exports=exports)
