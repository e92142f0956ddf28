"""A change to every datacenter rolled by ``python -m federation up`` with its gate, on the three
real datacenters of day one (conftest.py); last in the tier, since it restarts every server.

After a server restarts, WAN gossip here loses packets for minutes (threedc.WAN_DISRUPTED): the
waits of this module leave the keyring row out and print it.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from realenv import NAMESPACE
from threedc import DATACENTERS, KEYRING_ROW, WAN_DISRUPTED, consul_request, printed_table, wait_verify

pytestmark = pytest.mark.consul

# A typo in the primary gateway's advertised name: the secondaries learn it through the
# replicated federation states and can no longer reach the primary (the name does not resolve).
TYPO_WAN_ADDRESS = "dc1-gatway.consul.test"


def server_pod(fed, dc: str) -> client.V1Pod:
    return fed.core(dc).read_namespaced_pod("consul-server-0", NAMESPACE)


def set_override(project, dc: str, **settings) -> None:
    project.overrides[dc] = {**project.overrides.get(dc, {}), **settings}
    project.write_stack(dc)


def test_up_stops_after_a_primary_change_that_breaks_the_federation_then_rolls_the_fixed_one(fed, project):
    """A change that restarts every datacenter's servers (a label on their pods), with a typo in
    the primary gateway's advertised name on top: up changes the primary, the gate fails naming
    the rows, and no secondary is touched. With the typo fixed, up rolls dc1, dc2 and dc3 one
    after the other, each checked healthy before the next (a change in the secondaries' copies
    waited for the primary's gateway to be back)."""
    wait_verify(fed, project, timeout=300, window=15, ignore=WAN_DISRUPTED)
    printed_table(fed, project, "before the change")
    before = {dc: server_pod(fed, dc).metadata.uid for dc in DATACENTERS}
    label = {"server": {"extraLabels": {"day-two-change": "1"}}}
    for dc in DATACENTERS[1:]:
        set_override(project, dc, helmValues=label)
    set_override(project, "dc1", helmValues=label, meshGateway={"wanAddress": TYPO_WAN_ADDRESS})

    done = fed.cli(project, "up", "--gate-timeout", "60")
    print(f"\n[timing] up stopped by the gate: {done.seconds:.1f} s\n{done.stdout[-3000:]}")
    assert done.returncode == 1, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "stopped: after up of the primary, the federation was not healthy within 60 s" in done.stdout
    assert "not changed yet: dc2, dc3" in done.stdout
    stop = done.stdout[done.stdout.index("stopped: after up of the primary"):]
    failing = [line.split(":")[0].split(None, 1) for line in stop.splitlines()[1:] if ": FAILED: " in line]
    # which of the federation's rows fail first varies (WAN membership flaps, RPCs fail): what
    # matters is that the gate names them and nothing of dc2's or dc3's changed
    assert failing and {check for _, check in failing} <= {"WAN members alive", "RPC reaches every datacenter",
                                                           "ACL replication running"}, stop
    assert "[dc2]" not in done.stdout and "[dc3]" not in done.stdout
    after_stop = {dc: server_pod(fed, dc).metadata.uid for dc in DATACENTERS}
    assert after_stop["dc1"] != before["dc1"], "the primary's servers were not restarted by the change"
    assert [after_stop[dc] for dc in DATACENTERS[1:]] == [before[dc] for dc in DATACENTERS[1:]]
    printed_table(fed, project, "after the stop")

    set_override(project, "dc1", meshGateway={})
    done = fed.cli(project, "up")
    print(f"\n[timing] gated rolling up of dc1, dc2, dc3 (servers restarted in dc2, dc3): {done.seconds:.1f} s")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}\n{fed.diagnose()}"
    lines = done.stdout.splitlines()
    print("\n".join(line for line in lines if line.startswith("[gate]")))
    healthy = [i for i, line in enumerate(lines) if line.startswith("[gate] healthy")]
    started = {dc: next(i for i, line in enumerate(lines) if line.startswith(f"[{dc}] ")) for dc in DATACENTERS}
    assert len(healthy) == 3, "\n".join(line for line in lines if line.startswith("[gate]"))
    # each secondary's up began after the previous stage was found healthy
    assert started["dc1"] < healthy[0] < started["dc2"] < healthy[1] < started["dc3"] < healthy[2]
    after = {dc: server_pod(fed, dc) for dc in DATACENTERS}
    for dc in DATACENTERS:
        assert after[dc].metadata.uid != before[dc], f"{dc}'s servers were not restarted"
        assert after[dc].metadata.labels.get("day-two-change") == "1"
    print("dc1's gateways in its catalog and in the federation states, after the typo and its fix:\n"
          + consul_request(fed, "dc1", "GET", "/v1/catalog/service/mesh-gateway").decode()[:1500] + "\n"
          + consul_request(fed, "dc2", "GET", "/v1/internal/federation-states").decode()[:2500])
    rows = wait_verify(fed, project, timeout=300, window=15, ignore=WAN_DISRUPTED)
    assert rows and all(r["status"] == "passed" for r in rows if r["check"] != KEYRING_ROW)
    printed_table(fed, project, "after the rolling change")
    assert fed.errors() == {}
