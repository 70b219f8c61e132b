"""A small published Tissu instance for the resident-page tests.

Built from the bundled real samples (``data/samples/``) with ``tissu.pipeline.harvest_all`` and
``publish.run.publish`` at a fixed ``now``; each source gets the themes and quartier a Pantin
registry entry would give it. Served either in process (``Datasette.client``) or over HTTP on
127.0.0.1 by uvicorn in a thread, for Playwright.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path
from typing import Self

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)  # a Sunday, as in tests/conftest.py
SOURCES = [
    ("fablab", "fablab_cottbus.ics", ["numerique"], "Quatre-Chemins"),
    ("portland", "ical_google.ics", ["numerique", "emploi-insertion"], "Centre"),
    ("lisbonne", "issue_48_daylight_aware_repeats.ics", ["seniors-isolement"], "Hoche"),
    ("vacances", "Zone-B.ics", ["famille"], None),
]


def build_instance(folder: Path, now: dt.datetime = NOW) -> Path:
    """Harvest the samples and publish into ``folder/publish``; returns that folder."""
    from publish.run import publish
    from schemas.registry import load_registry
    from schemas.store import make_engine
    from tissu.pipeline import harvest_all
    from tissu.settings import get_settings

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for source_id, name, themes, quartier in SOURCES:
        # a local file of the registry stays inside its folder (schemas/registry.py)
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
        entry = {"id": source_id, "name": f"Agenda {source_id}", "format": "ical",
                 "url": name, "licence": "Licence Ouverte 2.0",
                 "publisher": {"name": f"Association {source_id}", "type": "association",
                               "website": f"https://{source_id}.example.org/"},
                 "themes": themes}
        if quartier:
            entry["quartier"] = quartier
        entries.append(entry)
    registry = folder / "sources.yaml"
    registry.write_text(yaml.safe_dump({"sources": entries}, allow_unicode=True),
                        encoding="utf-8")
    settings = get_settings(database_url=f"sqlite:///{folder / 'tissu.db'}", registry=registry,
                            publish_dir=folder / "publish", raw_dir=folder / "raw")
    engine = make_engine(settings.database_url)
    harvest_all(engine, load_registry(registry), settings, now=now)
    publish(engine, settings.publish_dir, now)
    engine.dispose()
    return settings.publish_dir


_SHARED: dict[str, Path] = {}


def shared_instance() -> Path:
    """One published instance per test process (built once, ~10 s), with the directory sample.

    Lives in a temporary folder removed at exit. Tests must not change it beyond
    :func:`add_directory_sample`, which it already contains.
    """
    if "publish" not in _SHARED:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="tissu-resident-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        publish_dir = build_instance(folder)
        add_directory_sample(publish_dir / "tissu-open.db")
        _SHARED["publish"] = publish_dir
    return _SHARED["publish"]


def make_datasette(publish_dir: Path):
    """A Datasette configured as ``tissu serve`` does: the database and ``/exports/``."""
    from datasette.app import Datasette

    return Datasette([str(publish_dir / "tissu-open.db")], immutables=[],
                     static_mounts=[("exports", str(publish_dir / "exports"))])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThreadServer:
    """uvicorn serving a Datasette app on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="off", ws="none", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


SERVICE_ID = "exemple--epicerie"


def add_directory_sample(database: Path) -> str:
    """Give the published database one service with opening hours, as the directory will have.

    Until the bundled samples include a data.inclusion file, the ``services`` table (columns
    of ``schemas.models.Service``) gets one hand-made row; returns its id.
    """
    import sqlite3

    connection = sqlite3.connect(database)
    try:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        if "services" not in tables:
            connection.execute(
                "CREATE TABLE services (id TEXT PRIMARY KEY, source_id TEXT, organisation_id TEXT,"
                " name TEXT, summary TEXT, description TEXT, opening_hours TEXT, address TEXT,"
                " postal_code TEXT, city TEXT, source_link TEXT, courriel TEXT)")
        columns = [r[1] for r in connection.execute("PRAGMA table_info(services)")]
        if "courriel" not in columns and "email" not in columns:
            # a directory that publishes a generic contact address (data.inclusion courriel)
            connection.execute("ALTER TABLE services ADD COLUMN courriel TEXT")
            columns.append("courriel")
        row = {"id": "exemple--epicerie", "source_id": "exemple",
               "organisation_id": "association-fablab", "name": "Épicerie solidaire",
               "summary": "Produits à petit prix sur orientation d'un travailleur social.",
               "description": "Ouverte aux habitants orientés par le CCAS.",
               "opening_hours": "Tu,Th 14:00-18:00; Sa 10:00-12:30",
               "address": "1 rue de l'Exemple", "postal_code": "93500", "city": "Pantin",
               "source_link": "https://epicerie.example.org/", "courriel": "contact@example.org"}
        keep = {k: v for k, v in row.items() if k in columns}
        connection.execute(
            f"INSERT OR REPLACE INTO services ({', '.join(keep)}) "
            f"VALUES ({', '.join('?' for _ in keep)})", list(keep.values()))
        connection.commit()
    finally:
        connection.close()
    return str(row["id"])
