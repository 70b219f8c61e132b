"""The client address the registration limit counts, under the real server stack.

``tissu serve`` runs ``datasette serve`` (uvicorn). Behind nginx on the same machine every
request comes from 127.0.0.1; uvicorn then takes the client from ``X-Forwarded-For``, so
:func:`publish.web.pages.client_ip` sees each visitor, not the proxy. A request from an address
uvicorn does not trust keeps its own address whatever header it sends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

PLUGIN = '''
from datasette import hookimpl
from datasette.utils.asgi import Response

from publish.web.pages import client_ip


@hookimpl
def register_routes():
    async def who(request):
        return Response.text(client_ip(request))
    return [(r"^/-/client-ip$", who)]
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _client_ip_of(tmp_path: Path, env_extra: dict[str, str]) -> Iterator[Callable[..., str]]:
    """``datasette serve`` with a probe page answering ``client_ip(request)``; yields a function
    ``(headers) → what client_ip saw``; the server is killed on leaving."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "client_ip_probe.py").write_text(PLUGIN, encoding="utf-8")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", "--memory", "--plugins-dir", str(plugins),
         "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **env_extra))
    probe = f"http://127.0.0.1:{port}/-/client-ip"

    def seen(headers: dict[str, str] | None = None) -> str:
        return requests.get(probe, timeout=5, headers=headers or {}).text

    try:
        for _ in range(150):
            try:
                requests.get(probe, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError("datasette serve did not start")
        yield seen
    finally:
        process.kill()
        process.wait()


def test_client_ip_behind_a_local_proxy_is_the_forwarded_client(tmp_path: Path) -> None:
    with _client_ip_of(tmp_path, {}) as seen:
        assert seen() == "127.0.0.1"
        assert seen({"X-Forwarded-For": "203.0.113.9"}) == "203.0.113.9"
        # nginx appends the address it saw: the last entry is the one it vouches for
        assert seen({"X-Forwarded-For": "198.51.100.1, 203.0.113.10"}) == "203.0.113.10"


def test_client_ip_ignores_the_header_from_an_untrusted_peer(tmp_path: Path) -> None:
    # Trust only an address that is not ours: the header is ignored, the peer is counted.
    with _client_ip_of(tmp_path, {"FORWARDED_ALLOW_IPS": "192.0.2.1"}) as seen:
        assert seen({"X-Forwarded-For": "203.0.113.9"}) == "127.0.0.1"
