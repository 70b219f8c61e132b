"""The HTTP layer against a local server: 304, gzip (honest and lying), slow, huge, redirects,
retries with backoff, politeness, User-Agent, no cookies; raw snapshots and their retention."""

from __future__ import annotations

import datetime as dt
import gzip
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlmodel import Session

import connectors.http as http_module
from connectors.harvest import harvest_source
from connectors.http import FetchError, TooLargeError, TooSlowError, fetch, human_size
from schemas.models import Source
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES, Route
from tissu import USER_AGENT

FAST = {"retries": 0, "backoff": 0.01, "host_delay": 0}
ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"


@contextmanager
def raw_server(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 whose ``handler`` writes raw HTTP bytes (for lying servers)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)  # the request; its content does not matter here
                    handler(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed.ics"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k.replace('_', '-')}: {v}"
                                                         for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------- conditional GET, identity


def test_conditional_get_sends_validators_and_user_agent(http_server):
    def answer(hit: int) -> tuple[int, bytes, dict[str, str]]:
        request = http_server.requests[-1]
        if request.get("if-none-match") == '"v1"':
            return 304, b"", {"ETag": '"v1"'}
        return 200, ICS, {"ETag": '"v1"', "Last-Modified": "Sun, 29 Nov 2026 10:00:00 GMT"}

    http_server.routes["/a.ics"] = Route(answer)
    first = fetch(http_server.url("/a.ics"), **FAST)
    assert (first.status, first.content, first.etag) == (200, ICS, '"v1"')
    assert first.last_modified == "Sun, 29 Nov 2026 10:00:00 GMT"
    again = fetch(http_server.url("/a.ics"), etag=first.etag, last_modified=first.last_modified,
                  **FAST)
    assert again.not_modified and again.status == 304 and again.content == b""
    sent = http_server.requests[-1]
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Sun, 29 Nov 2026 10:00:00 GMT"
    assert sent["user-agent"] == USER_AGENT
    assert "tissu" in USER_AGENT.lower() and "https://" in USER_AGENT
    assert "gzip" in sent["accept-encoding"]
    assert "cookie" not in sent and "authorization" not in sent


# ---------------------------------------------------------------------------- compression


def test_gzip_body_is_decompressed(http_server):
    body = (SAMPLES / "fablab_cottbus.ics").read_bytes()
    http_server.routes["/g.ics"] = Route(body, gzip=True)
    result = fetch(http_server.url("/g.ics"), **FAST)
    assert result.content == body
    assert result.headers["Content-Encoding"] == "gzip"


def test_gzip_whose_trailer_lies_about_its_length_is_an_error(http_server):
    packed = bytearray(gzip.compress(ICS))
    packed[-4:] = struct.pack("<I", len(ICS) + 1000)  # ISIZE says 1000 bytes more
    http_server.routes["/lie.ics"] = Route(bytes(packed), headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="compressé.*invalide ou mensonger"):
        fetch(http_server.url("/lie.ics"), **FAST)


def test_gzip_cut_short_with_a_content_length_that_lies_is_an_error():
    packed = gzip.compress(ICS * 50)
    short = packed[: len(packed) // 2]

    def handler(conn: socket.socket) -> None:  # announces the whole size, sends half
        conn.sendall(head(Content_Encoding="gzip", Content_Length=str(len(packed))) + short)

    with raw_server(handler) as url, pytest.raises(FetchError, match="incomplète"):
        fetch(url, retries=1, backoff=0.01, host_delay=0)


def test_gzip_with_content_length_smaller_than_the_stream_is_detected():
    packed = gzip.compress(ICS * 50)

    def handler(conn: socket.socket) -> None:  # announces half: the client stops reading there
        conn.sendall(head(Content_Encoding="gzip", Content_Length=str(len(packed) // 2)) + packed)

    with raw_server(handler) as url, pytest.raises(FetchError, match="tronqué"):
        fetch(url, **FAST)


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib", "raw-deflate"])
def test_deflate_zlib_wrapped_or_raw(http_server, wbits):
    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(ICS * 3) + packer.flush()
    http_server.routes["/d.ics"] = Route(body, headers={"Content-Encoding": "deflate"})
    assert fetch(http_server.url("/d.ics"), **FAST).content == ICS * 3


def test_gzip_bomb_stopped_at_the_decompressed_size_limit(http_server):
    bomb = gzip.compress(b"\0" * (30 * 1024 * 1024))  # 30 MB of zeros in ~30 KB
    assert len(bomb) < 100_000
    http_server.routes["/bomb.ics"] = Route(bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="trop volumineuse"):
        fetch(http_server.url("/bomb.ics"), max_bytes=1024 * 1024, **FAST)


# ----------------------------------------------------------------------------- size, time


def test_fifty_megabyte_one_line_file_is_refused_while_streaming():
    sent = {"bytes": 0}
    block = b"x" * 65536

    def handler(conn: socket.socket) -> None:  # no Content-Length: only streaming can stop it
        conn.sendall(head(Content_Type="text/calendar"))
        for _ in range(50 * 16):  # 50 MB, one line
            conn.sendall(block)
            sent["bytes"] += len(block)

    started = time.monotonic()
    with raw_server(handler) as url, pytest.raises(FetchError, match="trop volumineuse"):
        fetch(url, **FAST)  # default max_bytes: 20 MB
    assert time.monotonic() - started < 20
    assert sent["bytes"] < 50 * 1024 * 1024


def test_declared_length_over_the_limit_is_refused_before_reading(http_server):
    http_server.routes["/big.ics"] = Route(b"x" * 2000)
    with pytest.raises(TooLargeError, match=r"\(2 Ko annoncés, limite 1000 octets\)"):
        fetch(http_server.url("/big.ics"), max_bytes=1000, **FAST)


def test_sizes_in_the_messages_are_in_human_units():
    def handler(conn: socket.socket) -> None:  # announces 3 GiB, sends nothing of it
        conn.sendall(head(Content_Type="text/calendar", Content_Length="3221225472"))

    with raw_server(handler) as url, pytest.raises(TooLargeError) as caught:
        fetch(url, **FAST)  # default max_bytes: 20 MB
    assert str(caught.value) == "réponse trop volumineuse (3 Go annoncés, limite 20 Mo)"
    assert [human_size(n) for n in (0, 1, 864, 1024, 1536, 20 * 2**20, 3 * 2**30)] == [
        "0 octet", "1 octet", "864 octets", "1 Ko", "1,5 Ko", "20 Mo", "3 Go"]


def test_slow_server_dribbling_bytes_is_cut_by_the_deadline():
    def handler(conn: socket.socket) -> None:
        conn.sendall(head(Content_Type="text/calendar"))
        for _ in range(200):  # one byte every 50 ms: each read is well within the read timeout
            conn.sendall(b"B")
            time.sleep(0.05)

    started = time.monotonic()
    with raw_server(handler) as url, pytest.raises(TooSlowError,
                                                   match=r"trop lent : arrêté après \d+ octets"):
        fetch(url, deadline=1.0, timeout=(2, 2), **FAST)
    assert time.monotonic() - started < 2.5


def test_read_timeout_is_retried_then_reported(http_server):
    http_server.routes["/sleepy.ics"] = Route(ICS, delay=1.0)
    with pytest.raises(FetchError, match="ne répond pas à temps.*2 tentatives"):
        fetch(http_server.url("/sleepy.ics"), timeout=(2, 0.2), retries=1, backoff=0.01,
              host_delay=0)
    assert http_server.hits["/sleepy.ics"] == 2


def test_timeouts_come_from_settings(monkeypatch, tmp_settings):
    seen: dict = {}

    def spy(url, **kwargs):
        seen.update(kwargs)
        raise FetchError("arrêt")

    monkeypatch.setattr("connectors.harvest.fetch", spy)
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        source = _source("t", "http://127.0.0.1:9/t.ics")
        session.add(source)
        session.commit()
        harvest_source(session, source, tmp_settings, NOW)
    assert seen["timeout"] == (10, 30)
    assert seen["max_bytes"] == 20 * 1024 * 1024


# ------------------------------------------------------------------------------- retries


def test_500_then_200_is_retried(http_server):
    http_server.routes["/flaky.ics"] = Route(
        lambda hit: (500, b"oops", {}) if hit == 1 else (200, ICS, {}))
    result = fetch(http_server.url("/flaky.ics"), retries=2, backoff=0.01, host_delay=0)
    assert result.content == ICS and result.attempts == 2
    assert http_server.hits["/flaky.ics"] == 2


def test_persistent_503_gives_up_after_retries_with_exponential_backoff(http_server, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(http_module.time, "sleep", slept.append)
    http_server.routes["/down.ics"] = Route(b"", status=503)
    with pytest.raises(FetchError, match="HTTP 503.*3 tentatives"):
        fetch(http_server.url("/down.ics"), retries=2, backoff=0.5, host_delay=0)
    assert http_server.hits["/down.ics"] == 3
    assert slept == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_4xx_is_not_retried(http_server, status):
    http_server.routes["/gone.ics"] = Route(b"", status=status)
    with pytest.raises(FetchError, match=f"HTTP {status}"):
        fetch(http_server.url("/gone.ics"), retries=3, backoff=0.01, host_delay=0)
    assert http_server.hits["/gone.ics"] == 1


# ----------------------------------------------------------------------------- redirects


def test_relative_redirect_is_followed_and_recorded(http_server):
    http_server.routes["/old.ics"] = Route(b"", status=301, headers={"Location": "/new.ics"})
    http_server.routes["/new.ics"] = Route(ICS)
    result = fetch(http_server.url("/old.ics"), **FAST)
    assert result.content == ICS
    assert result.url == http_server.url("/new.ics")
    assert result.redirects == [http_server.url("/old.ics")]


def test_redirect_loop_is_a_clear_error(http_server):
    http_server.routes["/a"] = Route(b"", status=302, headers={"Location": "/b"})
    http_server.routes["/b"] = Route(b"", status=302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="boucle de redirections") as caught:
        fetch(http_server.url("/a"), **FAST)
    assert str(caught.value).count("→") == 2
    assert http_server.hits == {"/a": 1, "/b": 1}


def test_too_many_redirects(http_server):
    for n in range(10):
        http_server.routes[f"/r{n}"] = Route(b"", status=307, headers={"Location": f"/r{n + 1}"})
    with pytest.raises(FetchError, match="trop de redirections \\(plus de 3\\)"):
        fetch(http_server.url("/r0"), max_redirects=3, **FAST)
    assert sum(http_server.hits.values()) == 4


def test_cookies_set_by_a_redirect_are_not_sent_back(http_server):
    http_server.routes["/login"] = Route(b"", status=302,
                                         headers={"Location": "/feed", "Set-Cookie": "sid=secret"})
    http_server.routes["/feed"] = Route(ICS, headers={"Set-Cookie": "other=1"})
    assert fetch(http_server.url("/login"), **FAST).content == ICS
    assert all("cookie" not in request for request in http_server.requests)


# ---------------------------------------------------------------------------- politeness


def test_politeness_delay_between_requests_to_the_same_host(http_server):
    http_server.routes["/p.ics"] = Route(ICS)
    url = http_server.url("/p.ics")
    fetch(url, retries=0, host_delay=0.4)
    started = time.monotonic()
    fetch(url, retries=0, host_delay=0.4)
    assert time.monotonic() - started >= 0.35
    # another host (here: another port) does not wait
    other = http_server.url("/p.ics").replace("127.0.0.1", "localhost")
    started = time.monotonic()
    fetch(other, retries=0, host_delay=0.4)
    assert time.monotonic() - started < 0.35


# ------------------------------------------------------------ raw snapshots and retention


def _source(source_id: str, url: str) -> Source:
    return Source(id=source_id, name=source_id, publisher_name="Asso", publisher_type="association",
                  format="ical", url=url, licence="Licence Ouverte 2.0")


def test_raw_snapshot_kept_only_when_changed_and_retention_applies(http_server, tmp_settings):
    from dataclasses import replace

    settings = replace(tmp_settings, raw_retention=2)
    versions = [ICS.replace(b"VERSION:2.0", b"VERSION:2.0\r\nX-N:" + str(n).encode())
                for n in range(4)]
    current = {"body": versions[0]}
    http_server.routes["/s.ics"] = Route(lambda hit: (200, current["body"], {}))
    engine = make_engine(settings.database_url)
    folder = settings.raw_dir / "snap"
    with Session(engine) as session:
        source = _source("snap", http_server.url("/s.ics"))
        session.add(source)
        session.commit()
        harvest_source(session, source, settings, NOW)
        harvest_source(session, source, settings, NOW + dt.timedelta(hours=1))  # same bytes
        snapshots = sorted(folder.iterdir())
        assert [p.name for p in snapshots] == ["20261129T120000000000Z.ics"]
        assert snapshots[0].read_bytes() == versions[0]
        for n in (1, 2, 3):
            current["body"] = versions[n]
            harvest_source(session, source, settings, NOW + dt.timedelta(hours=1 + n))
    kept = sorted(folder.iterdir())
    assert [p.name for p in kept] == ["20261129T150000000000Z.ics", "20261129T160000000000Z.ics"]
    assert [p.read_bytes() for p in kept] == versions[2:]


def test_harvest_records_an_unchanged_run_on_304(http_server, tmp_settings):
    def answer(hit: int) -> tuple[int, bytes, dict[str, str]]:
        if http_server.requests[-1].get("if-none-match") == '"abc"':
            return 304, b"", {"ETag": '"abc"'}
        return 200, ICS, {"ETag": '"abc"'}

    http_server.routes["/c.ics"] = Route(answer)
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        source = _source("cond", http_server.url("/c.ics"))
        session.add(source)
        session.commit()
        first = harvest_source(session, source, tmp_settings, NOW)
        second = harvest_source(session, source, tmp_settings, NOW + dt.timedelta(hours=6))
        assert source.etag == '"abc"'
    assert first.status == "ok" and second.status == "unchanged"
    assert http_server.requests[-1]["if-none-match"] == '"abc"'
    assert len(list((tmp_settings.raw_dir / "cond").iterdir())) == 1


def test_chunked_gzip_body():
    packed = gzip.compress(ICS * 20)

    def handler(conn: socket.socket) -> None:
        conn.sendall(head(Content_Encoding="gzip", Transfer_Encoding="chunked"))
        for start in range(0, len(packed), 7):
            piece = packed[start:start + 7]
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    with raw_server(handler) as url:
        assert fetch(url, **FAST).content == ICS * 20


def test_connection_failures_are_said_in_french(http_server):
    """The trial saw « connexion impossible à https://… (SSLError) »: the class name of the
    exception. An https:// address served in plain HTTP, and a port where nobody listens."""
    plain = http_server.url("/a.ics").replace("http://", "https://")
    http_server.routes["/a.ics"] = Route(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    with pytest.raises(FetchError) as tls:
        fetch(plain, **FAST)
    assert "échec de la connexion chiffrée HTTPS" in str(tls.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/a.ics"
    with pytest.raises(FetchError) as refused:
        fetch(closed, **FAST)
    assert "le serveur refuse la connexion ou ne répond pas" in str(refused.value)
    assert "Error" not in str(tls.value) + str(refused.value)
