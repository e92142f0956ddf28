"""A stack's lock records in a self-managed backend, read the way the pulumi CLI writes them.

pulumi 3.260.0's self-managed ("diy") backends lock a stack for each update by writing a record
``.pulumi/locks/<org>/<project>/<stack>/<uuid>.json`` (``{"pid", "username", "hostname",
"timestamp"}``) and refuse an update while another record is there; ``pulumi cancel`` deletes them
all. Where the records live:

- ``file://<dir>``: files under ``<dir>``, read directly;
- ``postgres://user:password@host:port/db?sslmode=...&table=...``: rows of one table
  (``pulumi_state`` unless ``table=`` says otherwise; columns ``key``, ``data``, ``updated_at``)
  whose ``key`` is the record's path behind the URL's path (``db/.pulumi/locks/...``) and whose
  ``data`` is ``{"data": "<the record, base64>"}``. Read with ``psql`` (PostgreSQL's client, found
  on PATH), with a read-only SELECT; the password goes to psql in its environment, never on its
  command line. The connection honours the same PG* variables and defaults as the CLI's driver
  (lib/pq: ``sslmode`` defaults to ``require``);
- anything else (S3, GCS, Azure Blob): not read here; ``LocksUnreadable`` says so.

Nothing here writes: removing a lock is ``pulumi cancel`` (federation/recovery.py).
"""

from __future__ import annotations

import base64
import binascii
import glob
import json
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from components.stack_ref import DEFAULT_ORG, StackRef

from . import stacks as stack_files

# The table the postgres backend uses unless its URL names another (`table=`), and what this
# module accepts as a table name: a plain SQL name (the CLI puts it into its SQL as it is, and
# names its index after it, so a schema-qualified name fails there too).
POSTGRES_TABLE = "pulumi_state"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PSQL_TIMEOUT = 30


class LocksUnreadable(Exception):
    """The backend's lock records cannot be read from here; the message says why."""


@dataclass(frozen=True)
class Lock:
    path: str  # the record's file, or its key in the postgres table
    pid: int
    hostname: str
    username: str
    timestamp: str

    def describe(self) -> str:
        return f"pulumi (pid {self.pid}) of {self.username}@{self.hostname} since {self.timestamp}"


def _env(stack: Any, key: str) -> Optional[str]:
    return (getattr(stack.workspace, "env_vars", None) or {}).get(key) or os.environ.get(key)


def backend_url(stack: Any) -> Optional[str]:
    """The stack's backend: PULUMI_BACKEND_URL, else the CLI's current login (credentials.json)."""
    url = _env(stack, "PULUMI_BACKEND_URL")
    if url:
        return url
    home = _env(stack, "PULUMI_HOME") or os.path.expanduser("~/.pulumi")
    try:
        with open(os.path.join(home, "credentials.json"), encoding="utf-8") as handle:
            return json.load(handle).get("current") or None
    except (OSError, ValueError, AttributeError):
        return None


def backend_directory(stack: Any) -> Optional[str]:
    """The directory of a file (``file://``) backend, else None."""
    url = backend_url(stack)
    if not url or not url.startswith("file://"):
        return None
    rest = url[len("file://"):].split("?", 1)[0]
    return os.path.expanduser(unquote(rest)) if rest.startswith("~") else unquote(urlsplit(url).path) or None


def _project(stack: Any) -> str:
    try:
        return stack_files.project_name(stack.workspace.work_dir)
    except OSError:
        return ""


def lock_folders(stack: Any) -> list[str]:
    """The stack's lock folders relative to the backend's root, with a trailing slash: the
    project-scoped layout, then the legacy one."""
    ref = StackRef.parse(stack.name)
    return [f".pulumi/locks/{ref.org or DEFAULT_ORG}/{_project(stack)}/{ref.stack}/",
            f".pulumi/locks/{ref.stack}/"]


def _lock(path: str, raw: dict) -> Lock:
    return Lock(path, int(raw.get("pid", 0)), str(raw.get("hostname", "")), str(raw.get("username", "")),
                str(raw.get("timestamp", "")))


def _file_locks(stack: Any, root: str) -> list[Lock]:
    patterns = [os.path.join(root, *folder.split("/"), "*.json") for folder in lock_folders(stack)]
    locks = []
    for path in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        try:
            with open(path, encoding="utf-8") as handle:
                locks.append(_lock(path, json.load(handle)))
        except (OSError, ValueError, AttributeError):
            continue  # deleted meanwhile (its update ended), or not a lock
    return locks


@dataclass(frozen=True)
class PostgresBackend:
    """What psql needs to read the backend's table: a connection URI without the password (the
    password apart, for psql's environment), the table, and the key prefix (the URL's path)."""

    conninfo: str
    password: Optional[str]
    table: str
    prefix: str

    @classmethod
    def parse(cls, url: str, environ: Optional[dict[str, str]] = None) -> "PostgresBackend":
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        tables = [value for key, value in params if key == "table"]
        table = tables[-1] if tables else POSTGRES_TABLE
        if not _TABLE_NAME.match(table):
            raise LocksUnreadable(f"the backend's table name {table!r} is not a plain SQL name")
        params = [(key, value) for key, value in params if key != "table"]
        if not any(key == "sslmode" for key, _ in params) and not (environ or os.environ).get("PGSSLMODE"):
            params.append(("sslmode", "require"))  # the CLI's driver (lib/pq) requires TLS unless told
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.username is not None:
            netloc = f"{parts.netloc.rsplit('@', 1)[0].split(':', 1)[0]}@{netloc}"
        password = unquote(parts.password) if parts.password is not None else None
        prefix = unquote(parts.path).lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        conninfo = f"postgresql://{netloc}{parts.path}" + (f"?{urlencode(params)}" if params else "")
        return cls(conninfo, password, table, prefix)


# The records under the given folders, as one JSON array (key, and the base64 text of the record);
# the folders are psql variables, quoted by psql (:'name').
_LOCKS_SQL = """SELECT coalesce(json_agg(json_build_object('key', key, 'data', data->>'data') ORDER BY key), '[]'::json)
FROM {table} WHERE left(key, length(:'folder1')) = :'folder1' OR left(key, length(:'folder2')) = :'folder2';
"""


def postgres_locks(stack: Any, url: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[Lock]:
    """The stack's lock records in a postgres backend's table, read with psql."""
    environ = {**os.environ, **(getattr(stack.workspace, "env_vars", None) or {})}
    backend = PostgresBackend.parse(url, environ)
    psql = shutil.which("psql", path=environ.get("PATH"))
    if not psql:
        raise LocksUnreadable("psql (PostgreSQL's client) is not on PATH to read the backend's lock records")
    folders = [backend.prefix + folder for folder in lock_folders(stack)]
    env = {**environ, "PGCONNECT_TIMEOUT": environ.get("PGCONNECT_TIMEOUT") or "10"}
    if backend.password is not None:
        env["PGPASSWORD"] = backend.password
    try:
        done = run([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", f"folder1={folders[0]}",
                    "-v", f"folder2={folders[1]}", "-d", backend.conninfo, "-f", "-"],
                   input=_LOCKS_SQL.format(table=backend.table), env=env, capture_output=True, text=True,
                   timeout=_PSQL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocksUnreadable(f"psql could not read the backend's table {backend.table} ({exc})") from exc
    if done.returncode != 0:
        why = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), f"exit {done.returncode}")
        raise LocksUnreadable(f"psql could not read the backend's table {backend.table} ({why.strip()})")
    locks = []
    try:
        for row in json.loads(done.stdout or "[]"):
            key = str(row["key"])
            folder = next((f for f in folders if key.startswith(f)), None)
            if folder is None or "/" in key[len(folder):] or not key.endswith(".json"):
                continue  # not a record of this stack's folder itself
            locks.append(_lock(key, json.loads(base64.b64decode(row["data"] or "", validate=True))))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise LocksUnreadable(f"a lock record in the backend's table {backend.table} is not one pulumi "
                              f"3.260.0 writes ({exc.__class__.__name__}: {exc})") from exc
    return locks


def stack_locks(stack: Any) -> list[Lock]:
    """The stack's lock records (none without a backend); LocksUnreadable when they cannot be
    read from here."""
    url = backend_url(stack)
    if not url:
        return []
    if url.startswith("file://"):
        root = backend_directory(stack)
        return _file_locks(stack, root) if root else []
    if url.startswith("postgres://"):
        return postgres_locks(stack, url)
    raise LocksUnreadable(f"python -m federation reads the lock records of file:// and postgres:// backends, "
                          f"not of {url.split('://', 1)[0]}://")


def _running(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: treat as held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(lock: Lock, hostname: Optional[str] = None) -> bool:
    """Left by a process of this host that no longer runs (a lock of another host cannot be
    checked from here, so it is never stale)."""
    return lock.hostname == (hostname or socket.gethostname()) and not _running(lock.pid)
