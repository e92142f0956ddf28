"""A throw-away PostgreSQL 15 server for the integration tier's shared-backend tests: the
binaries of ``tools/ensure.sh postgres`` (Debian's packages, unpacked into the tool cache),
``initdb`` into the test's directory, the server on 127.0.0.1 at a free port with a password of
its own (scram-sha-256, no Unix socket), stopped (fast shutdown) when the context ends.

PostgreSQL refuses to run as root; as root the server runs in a user namespace of its own
(``unshare --user``) as ``nobody``: the files it writes stay root's outside, and nothing else
changes. Queries go through the same psql, as a person would type them."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

NOBODY = 65534


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, workdir: Path, bin_dir: str, user: str = "pulumi", database: str = "pulumi"):
        self.dir = workdir / "postgres"
        self.bin_dir = bin_dir
        self.user, self.database = user, database
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["unshare", "--user", f"--map-user={NOBODY}", f"--map-group={NOBODY}", *argv]

    def url(self, table: str | None = None) -> str:
        """The backend URL a team would put in PULUMI_BACKEND_URL."""
        query = "sslmode=disable" + (f"&table={table}" if table else "")
        return (f"postgres://{self.user}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/"
                f"{self.database}?{query}")

    def __enter__(self) -> "PostgresServer":
        self.dir.mkdir()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        started = time.monotonic()
        done = subprocess.run(self._as_server_user([
            os.path.join(self.bin_dir, "initdb"), "-D", str(self.dir / "data"), "-U", self.user,
            "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
            capture_output=True, text=True, timeout=300)
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        for attempt in range(3):  # a free port may be taken by someone else before the server binds it
            self.port = free_port()
            log = open(self.dir / f"server-{attempt}.log", "w", encoding="utf-8")
            self.proc = subprocess.Popen(self._as_server_user([
                os.path.join(self.bin_dir, "postgres"), "-D", str(self.dir / "data"), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off",
                "-c", "jit=off", "-c", "max_connections=200"]), stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready(timeout=60):
                print(f"\n[timing] PostgreSQL initdb and start: {time.monotonic() - started:.1f} s (port {self.port})")
                self.query(f"CREATE DATABASE {self.database}")
                return self
        raise RuntimeError("PostgreSQL did not start:\n" + (self.dir / "server-2.log").read_text()[-4000:])

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            ready = subprocess.run([os.path.join(self.bin_dir, "pg_isready"), "-q", "-h", "127.0.0.1",
                                    "-p", str(self.port), "-d", "postgres"], capture_output=True)
            if ready.returncode == 0:
                return True
            time.sleep(0.2)
        self.stop()
        return False

    def query(self, sql: str, database: str = "postgres") -> str:
        """psql's unaligned, tuples-only output of `sql` (stops at the first error)."""
        done = subprocess.run(
            [os.path.join(self.bin_dir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password}, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"psql -c {sql!r} failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, checkpoints, exits
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.stop()
