"""Real servers for the tests, on free loopback ports, always stopped afterwards: Redis,
PostgreSQL, nginx (Debian's, installed with apt-get when missing: CI runs as root on a fresh
machine), and `rpl-cds serve` instances that a test may kill like a crashed pod."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fhir_server import free_port
from tests.serve import wait_until_healthy

PG_BIN = Path("/usr/lib/postgresql")
CLI = Path(sys.executable).parent / "rpl-cds"


def apt_install(package: str, find) -> object:
    """find() (a path, or None); when None, apt-get install the package (as root) and try again.
    Fails the test, naming the package, when it stays missing."""
    found = find()
    if found:
        return found
    problem = "apt-get is not available or this is not root"
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        problem = (done.stderr or done.stdout)[-2000:]
        found = find()
    if not found:
        pytest.fail(f"this test needs Debian's {package}, which is missing and could not be installed:\n{problem}")
    return found


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


# -- Redis ------------------------------------------------------------------------------------
def redis_server_binary() -> str:
    def find():
        return shutil.which("redis-server") or (os.path.exists("/usr/bin/redis-server") and "/usr/bin/redis-server")

    return str(apt_install("redis-server", find))


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        _stop(self.process)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A throw-away Redis (no disk) on a free port; stopped at the end, even if the test stopped it."""
    import redis

    binary = redis_server_binary()
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if probe.ping():
                    break
            except redis.RedisError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server on port {port} did not answer PING")
            time.sleep(0.05)
        yield RedisServer(url, process)
    finally:
        probe.close()
        _stop(process)


# -- PostgreSQL -------------------------------------------------------------------------------
def postgres_bin() -> Path:
    """The folder with initdb and postgres; installs Debian's postgresql when missing."""
    def find() -> Path | None:
        on_path = shutil.which("initdb")
        if on_path:
            return Path(os.path.realpath(on_path)).parent
        versions = sorted(PG_BIN.glob("*/bin/initdb")) if PG_BIN.exists() else []
        return versions[-1].parent if versions else None

    return apt_install("postgresql", find)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL (fsync off) on a free port; yields its SQLAlchemy URL."""
    import psycopg

    bin_dir = postgres_bin()
    # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="rpl-cds-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "rpl", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        port = free_port()
        server = subprocess.Popen(
            [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    psycopg.connect(f"postgresql://rpl@127.0.0.1:{port}/postgres", connect_timeout=1).close()
                    break
                except psycopg.OperationalError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("the throw-away PostgreSQL server did not start")
                    time.sleep(0.2)
            yield f"postgresql+psycopg://rpl@127.0.0.1:{port}/postgres"
        finally:
            _stop(server, timeout=30)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- nginx ------------------------------------------------------------------------------------
def nginx_binary() -> str:
    def find():
        return shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")

    return str(apt_install("nginx", find))


NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log {home}/access.log;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    client_max_body_size 5m;
    # One connection per call: Balancer.route reloads nginx to change its upstreams, and a
    # reload closes idle keep-alive connections, on which a client may be sending right then
    # (ingress-nginx changes a Service's endpoints without a reload; this is the test's own).
    keepalive_timeout 0;
    upstream rpl_cds {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://rpl_cds;
            proxy_set_header Host $host;
            # Round robin; a server that refuses the connection or times out is skipped and the
            # call goes to the next. nginx retries a POST only when it was not sent yet
            # (no non_idempotent): a POST that reached a server is never sent twice, as that
            # would store feedback twice, and a second use of its JWT is refused as a replay.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


@dataclass
class Balancer:
    url: str
    port: int
    home: Path
    process: subprocess.Popen | None = None  # set once nginx runs

    def write_config(self, upstreams: list[str]) -> None:
        servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=30s;" for u in upstreams)
        # As root, nginx would hand its workers to 'nobody', who cannot use pytest's private folders.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (self.home / "nginx.conf").write_text(
            NGINX_CONF.format(user=user, home=self.home, servers=servers, port=self.port), encoding="utf-8")

    def route(self, upstreams: list[str]) -> None:
        """Sends new calls to these upstreams only, as when a Service's endpoints change: nginx
        reloads, and its old worker finishes the calls it has. Returns once the old worker has
        stopped taking calls."""
        assert self.process is not None
        log = self.home / "error.log"
        started, stopping = (log.read_text().count(s) for s in ("start worker process ", "gracefully shutting down"))
        self.write_config(upstreams)
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while (log.read_text().count("start worker process ") <= started
               or log.read_text().count("gracefully shutting down") <= stopping):
            assert self.process.poll() is None and time.monotonic() < deadline, "nginx did not reload:\n" + log.read_text()
            time.sleep(0.05)


@contextmanager
def nginx_balancer(upstreams: list[str], home: Path, port: int | None = None) -> Iterator[Balancer]:
    """nginx on a free port, round robin over upstreams ("127.0.0.1:PORT")."""
    binary = nginx_binary()
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    balancer = Balancer(f"http://127.0.0.1:{port}", port, home)
    balancer.write_config(upstreams)
    process = subprocess.Popen([binary, "-p", str(home), "-c", str(home / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    balancer.process = process
    try:
        deadline = time.monotonic() + 15
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                pytest.fail(f"nginx did not start: {process.stderr.read().decode(errors='replace')}"
                            f"{(home / 'error.log').read_text() if (home / 'error.log').exists() else ''}")
            time.sleep(0.05)
        yield balancer
    finally:
        _stop(process)
        process.stderr.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- the service ------------------------------------------------------------------------------
@dataclass
class ServiceInstance:
    """`rpl-cds serve` (gunicorn) in its own process group, so that killing the group takes the
    master and its workers at once, as when a pod dies."""

    url: str
    port: int
    process: subprocess.Popen
    stdout: Path
    stderr: Path

    def crash(self) -> None:
        """SIGKILL to the master and every worker; returns once the port refuses connections."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _listening(self.port):
            assert time.monotonic() < deadline, "the killed instance still accepts connections"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        else:  # the master is gone; make sure no worker of its group lingers
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_service(env: dict[str, str], log_dir: Path, port: int | None = None, workers: int = 1,
                  extra_args: tuple[str, ...] = (), cwd: Path | None = None) -> ServiceInstance:
    """Starts `rpl-cds serve` without waiting; see wait_healthy. The caller must stop() it."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = log_dir / "serve-stdout.log", log_dir / "serve-stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *extra_args],
            env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
        )
    return ServiceInstance(f"http://127.0.0.1:{port}", port, process, stdout, stderr)


def wait_healthy(instance: ServiceInstance, timeout: float = 45) -> None:
    wait_until_healthy(instance.url, instance.process, instance.stdout, instance.stderr, timeout)
