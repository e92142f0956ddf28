"""Day two on the three real datacenters of day one (conftest.py), before any server restarts:
a gossip key rotation, interrupted right after ``use`` and finished by running it again. Consul,
the chart's binaries and the gateways are real; the clusters' controllers are played.

Not here: a server started afresh (without its keyring file) after the rotation, which would
show that a secondary's copy of the federation secret gives it the new key. After any server
restart, WAN gossip between these datacenters loses packets for minutes (members flap between
alive and failed while indirect probes succeed) and Serf's keyring queries over the WAN pool,
which the rotation makes, fail with "WAN error: 2/3 nodes reported success" for longer than the
tier can wait; the copies are compared with the new key directly instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pulumi_mocks import ROOT
from threedc import DATACENTERS, consul_request, printed_table, verify, wait_verify

pytestmark = pytest.mark.consul

GOSSIP_SECRET = "consul-gossip-encryption-key"


def keyring(fed) -> list[dict]:
    return json.loads(consul_request(fed, "dc1", "GET", "/v1/operator/keyring"))


def rotate(fed, project) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "federation", "rotate-gossip-key", "--project-dir",
                             str(project.dir)], cwd=ROOT, env=project.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_gossip_key_rotation_interrupted_after_use_is_finished_by_running_it_again(fed, project):
    wait_verify(fed, project, timeout=300, window=15)
    printed_table(fed, project, "before the rotation")
    old = fed.secret("dc1", GOSSIP_SECRET)["key"].decode()
    rings = keyring(fed)
    assert rings and all(r["PrimaryKeys"] == {old: r["NumNodes"]} for r in rings), rings

    started = time.monotonic()
    proc = rotate(fed, project)
    seen = []
    for line in proc.stdout:
        seen.append(line.rstrip())
        if line.startswith("[rotate] use reached every member"):
            os.killpg(proc.pid, signal.SIGKILL)  # the operator's laptop goes to sleep
            break
    proc.wait(timeout=60)
    print("\n".join(seen))
    assert seen and seen[-1].startswith("[rotate] use reached every member"), "\n".join(seen)
    rings = keyring(fed)
    (new,) = set(rings[0]["PrimaryKeys"])
    assert new != old and all(r["Keys"] == {old: r["NumNodes"], new: r["NumNodes"]} for r in rings), rings
    code, rows = verify(fed, project)
    (row,) = [r for r in rows if r["check"] == "gossip keyring: one primary key" and r["datacenter"] == "dc1"]
    assert code == 1 and row["status"] == "failed" and "a rotation stopped half-way" in row["detail"], row
    assert fed.secret("dc1", GOSSIP_SECRET)["key"].decode() == old
    printed_table(fed, project, "after the interruption")

    done = fed.cli(project, "rotate-gossip-key")
    print(f"\n[timing] rotation: {time.monotonic() - started:.1f} s in all; the re-run {done.seconds:.1f} s\n"
          + "\n".join(line for line in done.stdout.splitlines() if not line.startswith("[dc")))
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-2000:]}"
    rotation = [line for line in done.stdout.splitlines() if line.startswith("[rotate] ")
                and not line.startswith("[rotate]   ")]
    assert [line.split(":")[0] for line in rotation[:3]] == ["[rotate] write", "[rotate] Pulumi.dc1.yaml",
                                                             "[rotate] remove"], rotation
    assert rotation[-1] == "[rotate] rotated: one key on every member of every datacenter, the old one removed"
    assert old not in done.stdout and new not in done.stdout, "a key was printed"
    assert fed.secret("dc1", GOSSIP_SECRET)["key"].decode() == new
    for dc in DATACENTERS:
        assert fed.secret(dc, "consul-federation")["gossipEncryptionKey"].decode() == new, dc
    rings = keyring(fed)
    assert rings and all(r["Keys"] == {new: r["NumNodes"]} == r["PrimaryKeys"] for r in rings), rings
    stack_file = yaml.safe_load((project.dir / "Pulumi.dc1.yaml").read_text())
    assert str(stack_file["config"]["consul-federation:gossipKeyGeneration"]) == "1"
    # what later modules write to Pulumi.dc1.yaml keeps the generation the rotation set
    project.overrides["dc1"] = {**project.overrides.get("dc1", {}), "gossipKeyGeneration": "1"}

    rows = wait_verify(fed, project, timeout=300, window=15)
    assert rows and all(r["status"] == "passed" for r in rows)
    printed_table(fed, project, "after the rotation")
    assert fed.errors() == {}
