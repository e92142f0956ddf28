"""`python -m federation up | verify | destroy` as a user runs them, on the three local control
planes of federation_env (what is real and what is played: see test_stacks.py). No Consul runs
here, so verify runs with --kubernetes-only.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from federation_env import DATACENTERS, LB_ADDRESS, NAMESPACE, Federation, federation

pytestmark = pytest.mark.integration

# dc1's gateway after the change: a NodePort behind a static name (a NodePort alone has no node
# address on these planes, which have no Nodes, so verify could not compare it).
NODEPORT_GATEWAY = {"serviceType": "NodePort", "nodePort": 30001, "wanAddress": "dc1-gateway.consul.test"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with federation(tmp_path_factory.mktemp("cli")) as fed:
        for stack in DATACENTERS:
            fed.project.write_stack(stack)
        yield fed
        assert not fed.errors(), fed.errors()


def verify(env: Federation) -> tuple[subprocess.CompletedProcess, list[dict]]:
    done = env.cli("verify", "--kubernetes-only", "--json", timeout=300)
    rows = json.loads(done.stdout)["rows"]
    assert rows, done.stderr
    return done, rows


def rows_of(rows: list[dict], check: str) -> dict[str, dict]:
    found = {r["datacenter"]: r for r in rows if r["check"] == check}
    assert found, f"no {check!r} rows in {rows}"
    return found


def test_up_of_every_stack_from_nothing(env):
    done = env.cli("up", "--gate-timeout", "0")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    prefixed = {dc: [i for i, line in enumerate(lines) if line.startswith(f"[{dc}] ")] for dc in DATACENTERS}
    assert all(prefixed.values()), prefixed
    # The primary finished before any secondary started.
    assert max(prefixed["dc1"]) < min(prefixed["dc2"] + prefixed["dc3"])
    summary = done.stdout[done.stdout.index("up summary:"):]
    for dc in DATACENTERS:
        assert any(line.split()[:3] == [dc, "ok", "create"] for line in summary.splitlines()), summary


def test_preview_of_every_stack_after_up_changes_nothing(env):
    done = env.cli("preview")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("preview summary:"):].splitlines()[1:]
    assert sorted(line.split()[0] for line in summary if line.strip()) == list(DATACENTERS), summary
    for line in summary:
        assert line.split()[1] == "ok" and "create" not in line and "update" not in line, line


def test_verify_passes_after_up(env):
    done, rows = verify(env)
    assert {r["datacenter"] for r in rows} == set(DATACENTERS)
    kubernetes = [r for r in rows if r["source"] == "kubernetes"]
    assert kubernetes and all(r["status"] == "passed" for r in kubernetes), \
        "\n".join(f"{r['datacenter']} {r['check']}: {r['status']}: {r['detail']}" for r in kubernetes
                  if r["status"] != "passed")
    consul = [r for r in rows if r["source"] == "consul"]
    assert consul and all(r["status"] == "not checked" and r["detail"] == "--kubernetes-only" for r in consul)
    assert rows_of(rows, "primary_gateways current")["dc1"]["detail"].startswith(f"advertised {LB_ADDRESS['dc1']}:443")
    # the harness's tls-init makes one real CA, whose certificates every datacenter's servers hold
    tls = rows_of(rows, "TLS: every server's CA trusted")
    assert sorted(tls) == list(DATACENTERS) and all(" dc3 sha256:" in r["detail"] for r in tls.values()), tls
    assert done.returncode == 0, done.stdout


def test_consul_rows_are_not_checked_when_no_consul_answers(env):
    """No Consul runs here: the service proxy has nothing behind it. Those rows say why, never
    "passed", and without --kubernetes-only they fail the run."""
    done = env.cli("verify", "--json", timeout=600)
    rows = json.loads(done.stdout)["rows"]
    consul = [r for r in rows if r["source"] == "consul"]
    assert {r["datacenter"] for r in consul} == set(DATACENTERS)
    assert all(r["status"] == "not checked" for r in consul), consul
    assert all(r["detail"].startswith(("Consul not reachable", "could not read Consul's answer")) for r in consul), consul
    assert sum(r["check"] == "ACL replication running" for r in consul) == 2
    assert done.returncode == 1


def test_destroying_only_the_primary_is_refused(env):
    done = env.cli("destroy", "--stacks", "dc1", timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to destroy the primary dc1" in done.stderr
    assert "dc2 (" in done.stderr and "dc3 (" in done.stderr
    assert NAMESPACE in env.namespaces("dc1")


def test_a_gateway_change_up_on_the_primary_only_is_reported_stale_then_fixed(env):
    project = env.project
    project.overrides["dc1"] = {"meshGateway": NODEPORT_GATEWAY}
    project.write_stack("dc1")
    done = env.cli("up", "--gate-timeout", "0", "--stacks", "dc1")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "[dc2]" not in done.stdout and "[dc3]" not in done.stdout

    done, rows = verify(env)
    assert done.returncode == 1
    stale = [r for r in rows if r["status"] == "failed"]
    assert stale, rows
    for row in stale:
        assert "re-run up on the primary and then the secondaries" in row["detail"], row
        assert "consul-k8s#417" in row["detail"]
    # The secondaries still hold the copy that advertises the load balancer address.
    copies = rows_of(rows, "federation secret = primary's")
    assert sorted(dc for dc, r in copies.items() if r["status"] == "failed") == ["dc2", "dc3"]
    assert copies["dc2"]["detail"].startswith(
        f"stale: its copy's primary_gateways are {LB_ADDRESS['dc1']}:443, dc1's are now dc1-gateway.consul.test:30001")
    table = env.cli("verify", "--kubernetes-only", timeout=300)
    assert table.returncode == 1 and "FAILED" in table.stdout and "consul-k8s#417" in table.stdout

    done = env.cli("up", "--gate-timeout", "0")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = {line.split()[0]: line for line in done.stdout[done.stdout.index("up summary:"):].splitlines()[1:]
               if line.strip()}
    assert summary["dc1"].split()[1:3] == ["ok", "same"], summary  # only unchanged resources
    for dc in ("dc2", "dc3"):  # the new primary_gateways reach each secondary's Release, in place
        assert "update " in summary[dc] and "same " in summary[dc], summary
        assert "create" not in summary[dc] and "replace" not in summary[dc] and "delete" not in summary[dc], summary
    done, rows = verify(env)
    assert all(r["status"] == "passed" for r in rows_of(rows, "federation secret = primary's").values())
    current = rows_of(rows, "primary_gateways current")["dc1"]
    assert (current["status"], current["detail"]) == (
        "passed", "advertised dc1-gateway.consul.test:30001 = the gateway's address")
    assert done.returncode == 0, done.stdout


def test_destroy_leaves_no_namespace(env):
    done = env.cli("destroy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    primary = [i for i, line in enumerate(lines) if line.startswith("[dc1] ")]
    secondaries = [i for i, line in enumerate(lines) if line.startswith(("[dc2] ", "[dc3] "))]
    assert primary and secondaries and max(secondaries) < min(primary)
    for context in DATACENTERS:
        assert NAMESPACE not in env.namespaces(context)
