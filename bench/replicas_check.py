"""Check on this machine: two Datasette replicas behind one nginx serve the same published file.

Not a test (it needs nginx from Debian's packages: ``apt-get install -y nginx-light``); run it
after ``tissu publish``:

    .venv/bin/python -m bench.replicas_check [--out data/publish]

It starts two ``tissu serve`` processes on 127.0.0.1 over the same immutable ``tissu-open.db``,
an nginx on 127.0.0.1 with both as one upstream and a cache for ``/exports/`` (the configuration
of docs/deploy.md, with paths under a temporary folder), then checks that:

1. each replica answers, and both give byte-identical JSON for the same query;
2. nginx spreads requests over both replicas (``X-Upstream`` header) and gives the same JSON;
3. an export is served from nginx's cache the second time (``X-Cache-Status: HIT``);
4. when one replica stops, nginx keeps answering from the other.

Prints one line per check and exits 1 if one fails. Stops only the processes it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    proxy_cache_path {tmp}/cache levels=1:2 keys_zone=tissu_exports:10m max_size=1g
                     inactive=6h use_temp_path=off;
    upstream tissu_datasette {{
        least_conn;
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=5s;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port_nginx};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_next_upstream error timeout http_502 http_503;
        add_header X-Upstream $upstream_addr always;
        location /exports/ {{
            proxy_pass http://tissu_datasette;
            proxy_cache tissu_exports;
            proxy_cache_valid 200 10m;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating http_502 http_503;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location / {{
            proxy_pass http://tissu_datasette;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read(), dict(response.headers)


def wait_for(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            get(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    """Stop a ``tissu serve`` started in its own session, with its Datasette child."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "publish",
                        help="publication folder holding tissu-open.db and exports/")
    args = parser.parse_args(argv)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        print("nginx absent : apt-get install -y nginx-light")
        return 2
    database = args.out / "tissu-open.db"
    if not database.exists():
        print(f"aucune base publiée dans {args.out} : lancez d'abord « tissu publish »")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="tissu-nginx-"))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
        (tmp / sub).mkdir()
    os.chmod(tmp, 0o755)  # nginx's workers may run as an unprivileged user
    for sub in tmp.iterdir():
        os.chmod(sub, 0o777)
    port_a, port_b, port_nginx = free_port(), free_port(), free_port()
    replicas = [subprocess.Popen([sys.executable, "-m", "tissu.cli", "serve", "--out",
                                  str(args.out), "--port", str(port)], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)  # tissu serve → datasette child
                for port in (port_a, port_b)]
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port_a=port_a, port_b=port_b,
                                      port_nginx=port_nginx), encoding="utf-8")
    failures = 0
    nginx_started = False

    def check(label: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"[{'ok' if ok else 'ÉCHEC'}] {label}" + (f" — {detail}" if detail else ""))

    try:
        started = subprocess.run([nginx, "-p", str(tmp), "-c", str(conf)], capture_output=True,
                                 text=True, timeout=30)
        nginx_started = started.returncode == 0
        check("nginx démarre avec la configuration de docs/deploy.md", nginx_started,
              started.stderr.strip()[-300:])
        query = "/tissu-open/events.json?_shape=array&_size=20&_sort=id"
        for port in (port_a, port_b):
            wait_for(f"http://127.0.0.1:{port}/-/versions.json")
        body_a = get(f"http://127.0.0.1:{port_a}{query}")[1]
        body_b = get(f"http://127.0.0.1:{port_b}{query}")[1]
        check("les deux répliques donnent le même JSON", body_a == body_b and len(body_a) > 2,
              f"{len(body_a)} octets")
        if not nginx_started:
            return 1
        base = f"http://127.0.0.1:{port_nginx}"
        wait_for(base + "/-/versions.json")
        upstreams: Counter[str] = Counter()
        same = True
        for _ in range(20):
            status, body, headers = get(base + query)
            upstreams[headers.get("X-Upstream", "?")] += 1
            same = same and status == 200 and body == body_a
        check("nginx répartit sur les deux répliques", len(upstreams) == 2, dict(upstreams).__repr__())
        check("nginx donne le même JSON que chaque réplique", same)
        exports = sorted(p.name for p in (args.out / "exports").glob("*.ics"))
        if exports:
            path = f"/exports/{exports[0]}"
            first = get(base + path)[2].get("X-Cache-Status")
            second = get(base + path)[2].get("X-Cache-Status")
            check(f"{path} mis en cache par nginx", second == "HIT",
                  f"1re {first}, 2e {second}")
        else:
            check("exports présents", False, "aucun .ics dans exports/")
        stop(replicas[1])
        codes = Counter(get(base + query)[0] for _ in range(6))
        check("une réplique arrêtée : nginx répond avec l'autre", codes == Counter({200: 6}),
              repr(dict(codes)))
    finally:
        if nginx_started:
            subprocess.run([nginx, "-p", str(tmp), "-c", str(conf), "-s", "quit"],
                           capture_output=True, timeout=30)
        for process in replicas:
            stop(process)
        shutil.rmtree(tmp, ignore_errors=True)
    print("tout est bon" if failures == 0 else f"{failures} vérification(s) en échec")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
