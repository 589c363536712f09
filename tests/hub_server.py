"""A local stand-in for the Hugging Face Hub's file-resolve endpoint (``HF_ENDPOINT``), for download tests.

``HEAD`` / ``GET /<org>/<repo>/resolve/<revision>/<path>`` answer as the Hub does for a plain file: the
commit (``X-Repo-Commit``), an ``ETag`` (the sha256 for large files, as LFS does), ``Content-Length``,
``Range`` requests with 206 partial content, ``X-Error-Code: EntryNotFound`` for a missing file and
``GatedRepo`` for a gated repository without a token. It listens on 127.0.0.1 only, in a daemon thread,
and stops itself after ``lifetime`` seconds (or when its ``with`` block ends).
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_MIN = 1024  # files at least this big get a sha256 ETag (as LFS files on the Hub)


class HubServer:
    def __init__(self, repos: dict[str, dict[str, bytes]], *, gated: tuple[str, ...] = (), token: str | None = None,
                 drop_first_get_after: dict[str, int] | None = None, lifetime: float = 120.0):
        self.repos, self.gated, self.token = repos, set(gated), token
        self.drop = dict(drop_first_get_after or {})
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                server._answer(self, body=False)

            def do_GET(self):
                server._answer(self, body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    def __enter__(self) -> "HubServer":
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def stop(self) -> None:
        self.timer.cancel()
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def _error(self, h, status: int, code: str) -> None:
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", code)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _answer(self, h, body: bool) -> None:
        rng = h.headers.get("Range")
        self.requests.append((h.command, h.path, rng))
        parts = h.path.split("/")
        # /org/repo/resolve/rev/path...
        if len(parts) < 6 or parts[3] != "resolve":
            return self._error(h, 404, "RepoNotFound")
        repo, path = f"{parts[1]}/{parts[2]}", "/".join(parts[5:])
        if repo not in self.repos:
            return self._error(h, 401, "RepoNotFound")
        if repo in self.gated and h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(h, 403, "GatedRepo")
        data = self.repos[repo].get(path)
        if data is None:
            return self._error(h, 404, "EntryNotFound")
        etag = hashlib.sha256(data).hexdigest() if len(data) >= LFS_MIN else hashlib.sha1(data).hexdigest()
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        h.send_response(206 if rng else 200)
        h.send_header("X-Repo-Commit", COMMIT)
        h.send_header("ETag", f'"{etag}"')
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(data) - start))
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if not body:
            return
        cut = self.drop.pop(path, None) if not rng else None
        if cut is not None:  # a connection that breaks mid-file
            h.wfile.write(data[:cut])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(data[start:])
