"""PostgreSQL as the team's shared backend (issue 19, items 1 and 2): the federation's state in a
real PostgreSQL 15 (tools/ensure.sh postgres; a throw-away server, tests/integration/
postgres_server.py), on two of federation_env's datacenters (dc1 primary, dc2 secondary).

Real: the Pulumi CLI 3.260.0 and its postgres:// backend (state and lock records as rows of one
table), PostgreSQL 15, the providers and two kube-apiservers (what is played: see
test_stacks.py). As a team sets it up (docs/operations.md, "Team set-up: a shared backend"):
PULUMI_BACKEND_URL=postgres://pulumi@127.0.0.1:<port>/pulumi?sslmode=disable with the password
in PGPASSWORD, one passphrase, psql on PATH.

In order, building on each other's state: `python -m federation up` of both datacenters, the
state found in the table and nowhere on disk; `verify --kubernetes-only`; two `pulumi up` of dc1
at once, one refused naming the holder; `python -m federation destroy`; a `pulumi up` killed with
SIGKILL while dc1's Release installs, its lock left in the table and settled by `python -m
federation up`. Times are printed (pytest -s).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from federation_env import NAMESPACE, Timings, federation
from interrupts import LOCKED, kill_all, module_federation, pending, start, two_ups_at_once, wait_installing
from localcluster.tools import ensure
from postgres_server import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.fault]

DATACENTERS = ("dc1", "dc2")
TABLE = "pulumi_state"
# The backend's keys start with the URL's path (the database's name here), then the diy layout.
STACKS = "pulumi/.pulumi/stacks/consul-federation/"
LOCKS = "pulumi/.pulumi/locks/organization/consul-federation/"
FEDERATION_SECRET = "consul-federation"
timed = Timings()
STARTED = time.time()
SEEN: list[dict[str, str]] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with PostgresServer(tmp_path_factory.mktemp("pg"), ensure("postgres")["POSTGRES_BIN_DIR"]) as pg:
        yield pg
    assert pg.proc is not None and pg.proc.returncode == 0  # a clean fast shutdown


@pytest.fixture(scope="module")
def env(tmp_path_factory, server):
    url = f"postgres://{server.user}@127.0.0.1:{server.port}/{server.database}?sslmode=disable"
    with federation(tmp_path_factory.mktemp("pgfed"), DATACENTERS, backend_url=url) as fed:
        # As on a team member's machine: the password apart from the URL, psql on PATH.
        fed.project.env["PGPASSWORD"] = server.password
        fed.project.env["PATH"] = os.pathsep.join([ensure("postgres")["POSTGRES_BIN_DIR"], fed.project.env["PATH"]])
        with module_federation(fed, DATACENTERS, timed):
            yield fed


# ---- what is in the table ------------------------------------------------------------------------

def rows(server: PostgresServer, prefix: str = "") -> dict[str, bytes]:
    """Key -> the blob the CLI stored (decoded from the table's {"data": base64} rows)."""
    out = server.query(f"SELECT coalesce(json_object_agg(key, data->>'data'), '{{}}'::json) FROM {TABLE} "
                       f"WHERE left(key, {len(prefix)}) = '{prefix}'", database=server.database)
    return {key: base64.b64decode(value) for key, value in json.loads(out).items()}


def lock_records(server: PostgresServer, stack: str = "dc1") -> list[dict]:
    return [json.loads(blob) for key, blob in sorted(rows(server, f"{LOCKS}{stack}/").items())]


def checkpoint(server: PostgresServer, stack: str) -> dict:
    return json.loads(rows(server, f"{STACKS}{stack}.json")[f"{STACKS}{stack}.json"])["checkpoint"]


def file_state(*roots: Path) -> list[str]:
    """Pulumi state files (stacks, history, locks, backups) written under these directories since
    the module started."""
    found = []
    for root in roots:
        for path in root.rglob("*") if root.is_dir() else []:
            parts = path.parts
            if path.is_file() and ".pulumi" in parts and {"stacks", "history", "locks", "backups"} & set(parts) \
                    and path.stat().st_mtime >= STARTED - 1:
                found.append(str(path))
    return found


def assert_no_plaintext(server: PostgresServer, secrets: list[dict[str, str]]) -> None:
    """No federation secret seen in a cluster is in any row of the table in plaintext (nor its
    base64 text): the shared passphrase encrypts them."""
    assert secrets
    table = "\n".join(blob.decode(errors="replace") for blob in rows(server).values())
    for data in secrets:
        for name in ("gossipEncryptionKey", "caKey", "replicationToken"):
            plain = base64.b64decode(data[name]).decode()
            assert plain not in table and data[name] not in table, name


def summary_of(out: str, command: str = "up") -> dict[str, str]:
    lines = out[out.index(f"{command} summary:"):].splitlines()[1:]
    return {line.split()[0]: line for line in lines if line.strip()}


# ---- up, verify ----------------------------------------------------------------------------------

def test_federation_up_keeps_every_stack_in_postgres_and_nothing_on_disk(env, server):
    project = env.project
    assert project.state is None and project.env["PULUMI_BACKEND_URL"].startswith("postgres://")
    started = time.monotonic()
    done = env.cli("up", "--gate-timeout", "0")
    timed("python -m federation up dc1, dc2 on postgres://", done.seconds)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = summary_of(done.stdout)
    assert [line.split()[1:3] for line in summary.values()] == [["ok", "create"]] * 2, summary
    # The state is rows of the backend's table: the project's stacks, their history, no lock left.
    keys = set(rows(server))
    assert {f"{STACKS}dc1.json", f"{STACKS}dc2.json", "pulumi/.pulumi/meta.yaml"} <= keys, sorted(keys)
    assert any(k.startswith("pulumi/.pulumi/history/consul-federation/dc2/") for k in keys), sorted(keys)
    assert not [k for k in keys if k.startswith("pulumi/.pulumi/locks/")]
    for stack in DATACENTERS:
        types = [r["type"] for r in checkpoint(server, stack)["latest"]["resources"]]
        assert "kubernetes:helm.sh/v3:Release" in types, types
    assert env.helm_history("dc1") == [(1, "deployed")] and env.helm_history("dc2") == [(1, "deployed")]
    # Nothing on disk: no file backend, no state under PULUMI_HOME or ~/.pulumi.
    assert not (env.workdir / "state").exists()
    assert file_state(env.workdir, Path(project.env["PULUMI_HOME"]), Path.home() / ".pulumi") == []
    # The federation's secrets are in the table encrypted (the shared passphrase), never in plaintext.
    SEEN.extend(env.secret_data(dc, FEDERATION_SECRET) for dc in DATACENTERS)
    assert_no_plaintext(server, SEEN)
    assert server.password not in done.stdout + done.stderr
    timed("postgres scenario: up and its checks", time.monotonic() - started)


def test_verify_kubernetes_only_passes_on_postgres(env):
    done = env.cli("verify", "--kubernetes-only", "--json", timeout=300)
    timed("python -m federation verify --kubernetes-only", done.seconds)
    rows_ = json.loads(done.stdout)["rows"]
    kubernetes = [r for r in rows_ if r["source"] == "kubernetes"]
    assert {r["datacenter"] for r in kubernetes} == set(DATACENTERS)
    assert kubernetes and all(r["status"] == "passed" for r in kubernetes), \
        [r for r in kubernetes if r["status"] != "passed"]
    assert done.returncode == 0, done.stdout[-3000:]


# ---- two people at once --------------------------------------------------------------------------

def test_two_ups_at_once_on_postgres_one_applies_the_other_is_refused_naming_the_holder(env, server):
    project = env.project
    project.run("config", "set", "--path", "consul-federation:meshGateway.mode", "remote", stack="dc1")
    outs, seconds, winner, loser = two_ups_at_once(project)
    timed("two ups at once on postgres: the refused one (from its start)", seconds[loser])
    timed("two ups at once on postgres: the one that applied", seconds[winner])
    assert seconds[loser] < 60
    message = outs[loser]
    # The holder, named by its lock record's URL (credentials masked), user, host and pid.
    holder = re.search(rf"postgres://\*\*\*\*:\*\*\*\*@127\.0\.0\.1:{server.port}/pulumi/\.pulumi/locks/organization/"
                       rf"consul-federation/dc1/[0-9a-f-]+\.json\?sslmode=disable: created by \S+@"
                       rf"{re.escape(socket.gethostname())} \(pid (\d+)\) at \S+", message)
    assert holder, message
    assert server.password not in message
    assert re.search(r"~ \d+ updated", outs[winner]) and "dc1-proxy-defaults" in outs[winner], outs[winner][-3000:]
    proxy = env.harness["dc1"].custom().get_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults", "global")
    assert proxy["spec"]["meshGateway"]["mode"] == "remote"
    assert lock_records(server) == [] and pending(project, "dc1") == []


def test_federation_destroy_on_postgres(env, server):
    done = env.cli("destroy")
    timed("python -m federation destroy dc2, dc1 on postgres://", done.seconds)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    for dc in DATACENTERS:
        assert NAMESPACE not in env.namespaces(dc)
        assert not checkpoint(server, dc)["latest"].get("resources")  # the stacks stay, empty
    assert lock_records(server) == [] and lock_records(server, "dc2") == []


# ---- a killed run ----------------------------------------------------------------------------------

def test_a_killed_up_leaves_its_lock_in_postgres_and_federation_up_settles_it(env, server):
    project = env.project
    proc = start(project, "up", "--yes", "--skip-preview")
    timed("up dc1 until the Release is installing", wait_installing(env, proc))
    kill_all(proc)
    assert env.helm_history("dc1") == [(1, "pending-install")]
    [held] = lock_records(server)
    assert (held["pid"], held["hostname"]) == (proc.pid, socket.gethostname())
    assert pending(project, "dc1") == [("creating", "dc1-consul")]
    refused = project.run("up", "--yes", "--skip-preview", stack="dc1", check=False)
    assert refused.returncode != 0 and LOCKED in refused.stdout + refused.stderr
    assert f"(pid {proc.pid})" in refused.stdout + refused.stderr

    done = env.cli("up", "--gate-timeout", "0")
    timed("python -m federation up recovering the killed dc1 on postgres, then dc2", done.seconds)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    said = [line[len("[dc1] "):] for line in done.stdout.splitlines() if line.startswith("[dc1] ")]
    assert re.fullmatch(rf"the stack's lock was left by pulumi \(pid {proc.pid}\) of \S+@{re.escape(socket.gethostname())} "
                        r"since \S+, which is no longer running \(killed during an update\): removing it "
                        r"\(pulumi cancel\)", said[0]), said[:3]
    assert said[1] == "1 pending operation(s) from an interrupted run (dc1-consul): settling them before up"
    summary = summary_of(done.stdout)
    assert "(recovered from an interrupted run: 1 pending operation(s), a stale lock)" in summary["dc1"], summary
    assert summary["dc2"].split()[1:3] == ["ok", "create"], summary
    assert lock_records(server) == [] and pending(project, "dc1") == []
    assert env.helm_history("dc1") == [(1, "deployed")]
    SEEN.extend(env.secret_data(dc, FEDERATION_SECRET) for dc in DATACENTERS)


def test_at_the_end_no_lock_no_file_state_and_no_secret_in_plaintext(env, server):
    assert not [k for k in rows(server) if k.startswith("pulumi/.pulumi/locks/")]
    assert file_state(env.workdir, Path(env.project.env["PULUMI_HOME"]), Path.home() / ".pulumi") == []
    assert_no_plaintext(server, SEEN)
