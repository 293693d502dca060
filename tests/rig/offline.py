"""The test host's only sources: an apt proxy to this machine's mirror, and a file server.

Both listen on the host side of the test host's veth, so the guest (which has no other route)
reaches them and nothing else.

The apt proxy is a small forwarding server of the rig's own rather than Debian's
apt-cacher-ng: apt-cacher-ng is a system service with one configuration and one cache per
machine, while each test session needs a proxy bound to its own veth address, started and
stopped with the session (docs/decisions.md). It answers both forms apt-cacher-ng answers:
``http://PROXY/<mirror host>/<path>`` in sources.list, and absolute URLs when named by
``Acquire::http::Proxy``. Only the mirrors in this machine's apt sources are forwarded; package
files (``.deb``, by-hash indices) are immutable and cached on disk, the rest passes through.

The file server serves a folder (the wheelhouse under ``/wheels/``, controller files under
``/files/``); its directory listings are what ``pip install --find-links URL`` reads.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

# Upstream answers and headers that apt reads.
_PASSED_HEADERS = ("Content-Type", "Last-Modified", "ETag", "Content-Length")
_UPSTREAM_TIMEOUT = 60


class _AptProxyHandler(http.server.BaseHTTPRequestHandler):
    server: AptProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._forward(send_body=True)

    def do_HEAD(self) -> None:
        self._forward(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        self.server.log_line(format % args)

    def _forward(self, *, send_body: bool) -> None:
        if self.path.startswith(("http://", "https://")):
            parts = urlsplit(self.path)
            host, path = parts.netloc, parts.path
        else:
            host, _, rest = self.path.lstrip("/").partition("/")
            path = "/" + rest
        scheme = self.server.upstreams.get(host)
        if scheme is None or ".." in path.split("/"):
            self.send_error(403, f"not a mirror of this machine: {host}")
            return
        cached = self.server.cache / host / path.lstrip("/")
        if _immutable(path) and cached.is_file():
            self._send_file(cached, send_body)
            return
        request = urllib.request.Request(f"{scheme}://{host}{path}", method=self.command)
        try:
            upstream = urllib.request.urlopen(request, timeout=_UPSTREAM_TIMEOUT)
        except urllib.error.HTTPError as exc:
            exc.close()
            self.send_error(exc.code, exc.reason)
            return
        except OSError as exc:
            self.send_error(502, f"mirror unreachable: {exc}")
            return
        with upstream:
            self.send_response(200)
            for name in _PASSED_HEADERS:
                if upstream.headers.get(name):
                    self.send_header(name, upstream.headers[name])
            if not upstream.headers.get("Content-Length"):
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not send_body:
                return
            if _immutable(path):
                self._copy_and_cache(upstream, cached)
            else:
                shutil.copyfileobj(upstream, self.wfile)

    def _copy_and_cache(self, upstream: object, cached: Path) -> None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as keep:
                while chunk := upstream.read(1 << 16):  # type: ignore[attr-defined]
                    keep.write(chunk)
                    self.wfile.write(chunk)
            os.replace(tmp, cached)  # only a whole file is ever served from the cache
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _send_file(self, path: Path, send_body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if send_body:
            with path.open("rb") as data:
                shutil.copyfileobj(data, self.wfile)


def _immutable(path: str) -> bool:
    return path.endswith((".deb", ".udeb")) or "/by-hash/" in path


class AptProxy(http.server.ThreadingHTTPServer):
    """Forwards apt's requests for this machine's mirrors, caching package files."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], upstreams: Mapping[str, str], cache: Path, log: Path
    ) -> None:
        super().__init__(address, _AptProxyHandler)
        self.upstreams = dict(upstreams)  # mirror host -> scheme
        self.cache = cache
        self._log = log.open("a", encoding="utf-8")
        self._log_lock = threading.Lock()

    def log_line(self, line: str) -> None:
        with self._log_lock:
            self._log.write(line + "\n")
            self._log.flush()

    def server_close(self) -> None:
        super().server_close()
        self._log.close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def file_server(address: tuple[str, int], folder: Path) -> http.server.ThreadingHTTPServer:
    """A server of ``folder``'s files and directory listings."""
    handler = functools.partial(_QuietFiles, directory=str(folder))
    server = http.server.ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[http.server.HTTPServer]:
    """Run ``server`` on a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, name="rig-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
