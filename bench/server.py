"""A local HTTP server on 127.0.0.1 serving a generated corpus, like a crowd of small publishers.

Each source answers with ``ETag`` and ``Last-Modified`` and honours ``If-None-Match`` /
``If-Modified-Since`` with ``304 Not Modified`` (RFC 9110 §13), so an unchanged second harvest
costs one small request per source. Requests are counted per path.

Run alone: ``python -m bench.server FOLDER [--port 8765]`` serves ``FOLDER/files``.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import mimetypes
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

_TYPES = {".ics": "text/calendar; charset=utf-8", ".xml": "application/rss+xml; charset=utf-8",
          ".html": "text/html; charset=utf-8"}
_LAST_MODIFIED = email.utils.formatdate(1767225600, usegmt=True)  # 2026-01-01T00:00:00Z


class CorpusServer:
    """Serve ``{path: (bytes, content type)}`` on 127.0.0.1 in a background thread.

    ``hits`` counts requests per path; ``not_modified`` counts the 304 answers.
    """

    def __init__(self, files: dict[str, tuple[bytes, str]], port: int = 0) -> None:
        self.files = {path: (body, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
                      for path, (body, ctype) in files.items()}
        self.hits: Counter[str] = Counter()
        self.not_modified = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] += 1
                entry = server.files.get(path)
                if path == "/robots.txt":
                    entry = (b"User-agent: *\nAllow: /\n", "text/plain", '"robots"')
                if entry is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, ctype, etag = entry
                if (self.headers.get("If-None-Match") == etag
                        or self.headers.get("If-Modified-Since") == _LAST_MODIFIED):
                    with server.lock:
                        server.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", _LAST_MODIFIED)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @classmethod
    def from_folder(cls, folder: Path, port: int = 0) -> CorpusServer:
        """Serve every file of ``folder`` under ``/<name>``."""
        files = {}
        for path in sorted(folder.iterdir()):
            if path.is_file():
                ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
                    "application/octet-stream"
                files["/" + path.name] = (path.read_bytes(), ctype)
        return cls(files, port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with CorpusServer.from_folder(args.folder / "files", args.port) as server:
        print(f"{server.base_url}/  ({len(server.files)} fichiers) — Ctrl+C pour arrêter")
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
