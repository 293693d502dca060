"""A TLS-terminating reverse proxy (Debian's nginx) in front of plain-HTTP backends.

Used where a target under test has no TLS of its own (a portal under gunicorn, a Keycloak with
``--http-enabled``), so that the browser and the clients still reach ``https://<real name>``
and the backend sees what it would see behind a production proxy: the original ``Host``, and
``X-Forwarded-Proto: https``, ``-For``, ``-Host`` and ``-Port: 443``. Bodies and responses
stream through unbuffered (large uploads, long exports), and connections to the backends are
kept alive as in production.

nginx runs in the foreground (``daemon off``) as a child of the test process, with its prefix,
pid file, logs and temp folders all under the proxy's folder, so it never touches
``/etc/nginx`` or ``/var/lib/nginx`` and several proxies can run side by side. Install it with
``make system-deps`` (Debian package ``nginx``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from tests.rig.errors import RigError

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class Route:
    """``https://<name>`` on ``listen_addr:listen_port`` (certificate ``cert``, key ``key``)
    forwarded to ``backend_url`` (``http://host:port``, no path)."""

    name: str
    listen_addr: str
    cert: Path
    key: Path
    backend_url: str
    listen_port: int = 443

    @property
    def url(self) -> str:
        """The URL clients use."""
        port = "" if self.listen_port == 443 else f":{self.listen_port}"
        return f"https://{self.name}{port}"


class TlsProxy:
    """One nginx serving every route; a context manager that starts and stops it.

    Routes may share an address (nginx picks the certificate by SNI and the route by Host).
    """

    def __init__(self, folder: Path, routes: Sequence[Route], *, nginx: str | None = None) -> None:
        if not routes:
            raise RigError("a TLS proxy needs at least one route")
        self.folder = folder
        self.routes = list(routes)
        self.config_path = folder / "nginx.conf"
        self.error_log = folder / "logs" / "error.log"
        self.access_log = folder / "logs" / "access.log"
        self.pid_path = folder / "nginx.pid"
        self._nginx = nginx
        self._process: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        """The whole nginx configuration for these routes."""
        folder = self.folder
        temp = "\n".join(f"    {kind}_temp_path {folder / 'temp' / kind};" for kind in TEMP_KINDS)
        upstreams: dict[str, str] = {}
        for route in self.routes:
            upstreams.setdefault(_backend(route.backend_url), f"backend_{len(upstreams)}")
        upstream_blocks = "\n".join(
            f"""    upstream {label} {{
        server {backend};
        keepalive 16;
    }}"""
            for backend, label in upstreams.items()
        )
        servers = "\n".join(
            _server_block(route, upstreams[_backend(route.backend_url)]) for route in self.routes
        )
        # Run as root only when started by root: the workers then read the 0600 keys and write
        # the temp folders under pytest's 0700 tmp; as another user nginx ignores `user` anyway.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        return f"""# Rendered by tests.rig.proxy for one test session; see its docstring.
{user}daemon off;
master_process on;
worker_processes 1;
pid {self.pid_path};
error_log {self.error_log} warn;
# Graceful stops wait no longer than this for open requests.
worker_shutdown_timeout 5s;

events {{
    worker_connections 1024;
}}

http {{
    access_log {self.access_log};
{temp}
    # Real names such as learn.andaman-nicobar.test are longer than the default buckets allow.
    server_names_hash_bucket_size 128;
    client_max_body_size 60m;
    # Stream both ways: uploads and long responses reach the other side as they come.
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
    # HTTP/1.1 with an empty Connection header keeps upstream connections alive.
    proxy_http_version 1.1;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:rig_ssl:1m;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" "";
    }}

{upstream_blocks}

{servers}
}}
"""

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the configuration, start nginx and wait until every route accepts."""
        if self._process is not None:
            raise RigError("this TLS proxy is already running")
        binary = self._find_nginx()
        for kind in TEMP_KINDS:
            (self.folder / "temp" / kind).mkdir(parents=True, exist_ok=True)
        self.error_log.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.unlink(missing_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        output = (self.folder / "logs" / "nginx.out").open("ab")
        with output:
            self._process = subprocess.Popen(
                # -e: errors before the configuration is read go to the folder too.
                [
                    binary,
                    "-p",
                    f"{self.folder}/",
                    "-c",
                    str(self.config_path),
                    "-e",
                    str(self.error_log),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop nginx gracefully (SIGQUIT), and kill it when it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        """Whether nginx is running."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> TlsProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _find_nginx(self) -> str:
        for candidate in (self._nginx,) if self._nginx else NGINX_CANDIDATES:
            found = shutil.which(candidate)
            if found:
                return found
        raise RigError("nginx is missing; install it with `make system-deps` (Debian's nginx)")

    def _wait_ready(self, timeout: float) -> None:
        """Wait for nginx's pid file (written once it holds its listening sockets), then for
        each route to accept. The pid file comes first because another process listening on
        the same address would otherwise pass for our nginx."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        pending = {(route.listen_addr, route.listen_port) for route in self.routes}
        while True:
            if self._process.poll() is not None:
                raise RigError(
                    f"nginx exited with {self._process.returncode} at start:\n{self._log_tail()}"
                )
            if pending and self._pid_written():
                pending = {where for where in pending if not _accepts(*where)}
            if not pending and self._pid_written():
                return
            if time.monotonic() > deadline:
                raise RigError(
                    f"nginx did not accept on {sorted(pending)} within {timeout:.0f} s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def _pid_written(self) -> bool:
        assert self._process is not None
        try:
            return int(self.pid_path.read_text(encoding="ascii").strip()) == self._process.pid
        except (OSError, ValueError):
            return False

    def _log_tail(self, lines: int = 20) -> str:
        texts = []
        for log in (self.error_log, self.folder / "logs" / "nginx.out"):
            if log.is_file():
                texts.extend(log.read_text(encoding="utf-8", errors="replace").splitlines())
        return "\n".join(texts[-lines:])


def _server_block(route: Route, upstream: str) -> str:
    return f"""    server {{
        listen {_host(route.listen_addr)}:{route.listen_port} ssl;
        server_name {route.name};
        ssl_certificate {route.cert};
        ssl_certificate_key {route.key};

        location / {{
            proxy_pass http://{upstream};
            # $http_host is the Host header as the client sent it (with a port if it had one).
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Port {route.listen_port};
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}"""


def _backend(url: str) -> str:
    """``host:port`` of a plain-HTTP backend URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise RigError(f"a backend is http://host:port without a path, not {url!r}")
    return f"{_host(parts.hostname)}:{parts.port or 80}"


def _host(address: str) -> str:
    """An address as nginx writes it: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
