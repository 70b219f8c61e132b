"""Shared fixtures: a local HTTP server on 127.0.0.1, paths, a fixed clock."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = ROOT / "data" / "samples"
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


@dataclass
class Route:
    """What the fake server answers on one path; ``body`` may be a callable per hit."""

    body: bytes | Callable[[int], tuple[int, bytes, dict[str, str]]] = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    delay: float = 0.0


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with per-path routes and hit counters."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # silence
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                server.requests.append({k.lower(): v for k, v in self.headers.items()}
                                       | {"path": path})
                route = server.routes.get(path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.delay:
                    time.sleep(route.delay)
                if callable(route.body):
                    status, body, headers = route.body(server.hits[path])
                else:
                    status, body, headers = route.status, route.body, dict(route.headers)
                if route.gzip:
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # A short poll interval makes shutdown (each test's teardown) take ~0.05 s, not 0.5 s.
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(autouse=True)
def _loopback_fetch_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let fetches reach the 127.0.0.1 test server (loopback only; SSRF tests unset it).

    The politeness delay between two requests to one host is set to zero so that end-to-end
    tests fetching several paths from the same server stay fast; tests/test_http.py checks
    the delay with an explicit value.
    """
    monkeypatch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
    monkeypatch.setenv("TISSU_HOST_DELAY", "0")


@pytest.fixture
def http_server() -> Iterator[FakeServer]:
    server = FakeServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def tmp_settings(tmp_path: Path, database_url: str):
    """Settings whose every path lives under ``tmp_path``.

    The working store is ``database_url``: SQLite, and PostgreSQL too when
    TISSU_TEST_POSTGRES_URL is set (CI), so every test using these settings runs on both.
    """
    from tissu.settings import get_settings

    return get_settings(
        database_url=database_url,
        registry=tmp_path / "sources.yaml",
        publish_dir=tmp_path / "publish",
        raw_dir=tmp_path / "raw",
    )


# --- The working store on SQLite and, when configured, on PostgreSQL -----------------------------
# CI (.ci/run) sets TISSU_TEST_POSTGRES_URL when a local PostgreSQL answers; without it the
# PostgreSQL variant is skipped, so `make test` passes on a machine without a server.
POSTGRES_URL = os.environ.get("TISSU_TEST_POSTGRES_URL", "")


def _postgres_schema_url(base: str, schema: str) -> str:
    """``base`` with a libpq ``options`` parameter that puts ``schema`` first on the path."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def _psycopg_conninfo(url: str) -> str:
    """SQLAlchemy URL → libpq URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    return "postgresql://" + url.split("://", 1)[1]


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty working store: a SQLite file, or a PostgreSQL schema of its own.

    Each PostgreSQL test gets a new schema (dropped afterwards), so tests never collide and can
    run while other processes use the same database.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tissu.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("TISSU_TEST_POSTGRES_URL n'est pas défini (variante PostgreSQL)")
    import uuid

    import psycopg

    schema = f"tissu_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_psycopg_conninfo(POSTGRES_URL), autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _postgres_schema_url(POSTGRES_URL, schema)
    finally:
        from schemas.store import dispose_engines

        dispose_engines()
        with psycopg.connect(_psycopg_conninfo(POSTGRES_URL), autocommit=True) as connection:
            connection.execute("SET lock_timeout = '20s'")
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store_settings(tmp_settings):
    """``tmp_settings`` (already on SQLite, then PostgreSQL when configured)."""
    return tmp_settings


@dataclass
class FakeSMTP:
    """A local SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    host: str
    port: int
    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook name
        import email
        from email import policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[FakeSMTP]:
    """An SMTP server on a free 127.0.0.1 port; ``.messages`` are parsed EmailMessage objects."""
    import socket

    from aiosmtpd.controller import Controller

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    fake = FakeSMTP("127.0.0.1", port)
    controller = Controller(fake, hostname="127.0.0.1", port=port)
    controller.start()
    yield fake
    controller.stop()
