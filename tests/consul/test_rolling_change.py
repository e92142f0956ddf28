"""A change to every datacenter rolled by ``python -m federation up`` with its gate, on the three
real datacenters of day one (conftest.py); after the modules that need no server restarted. The
fixed change also moves the primary's gateway to a new address, in the order docs/day-two.md
gives, and the old address is then retired: every secondary stays federated.

After a server restarts, WAN gossip here loses packets for minutes (threedc.WAN_DISRUPTED): the
waits of this module leave the keyring row out and print it.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from kubernetes import client

from realenv import NAMESPACE
from threedc import DATACENTERS, KEYRING_ROW, WAN_DISRUPTED, consul_request, printed_table, wait_verify

pytestmark = pytest.mark.consul

# A typo in the primary gateway's advertised name: the secondaries learn it through the
# replicated federation states and can no longer reach the primary (the name does not resolve).
# Consul falls back to a secondary's own primary_gateways while they still hold the old address,
# so the break can show after the primary's stage or only after dc2's copy took the typo too.
TYPO_WAN_ADDRESS = "dc1-gatway.consul.test"
# Where the fix moves dc1's gateway: a load balancer and a name in front of it (as dc3's).
MOVED_WAN_ADDRESS = "dc1-gateway-b.consul.test"
STOPPED = re.compile(r"stopped: after up of (the primary|the secondary dc2), the federation was not healthy "
                     r"within 60 s; these rows did not pass:\n((?:  .*\n)+)")


def server_pod(fed, dc: str) -> client.V1Pod:
    return fed.core(dc).read_namespaced_pod("consul-server-0", NAMESPACE)


def answers(address: str, port: int = 443) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def set_override(project, dc: str, **settings) -> None:
    project.overrides[dc] = {**project.overrides.get(dc, {}), **settings}
    project.write_stack(dc)


def test_up_stops_where_a_change_breaks_the_federation_then_rolls_the_fixed_one(fed, project):
    """A change that restarts every datacenter's servers (a label on their pods), with a typo in
    the primary gateway's advertised name on top: the gate fails after the first stage that
    breaks the federation, naming the rows, and dc3 is never touched. With the typo fixed, up
    rolls dc1, dc2 and dc3 one after the other, each checked before the next; the rows the
    broken run left failing are waited for, but stop only the last stage."""
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
    stop = STOPPED.search(done.stdout)
    assert stop, done.stdout[-4000:]
    failing = [line.split(":")[0].split(None, 1) for line in stop.group(2).splitlines() if ": FAILED: " in line]
    # which of the federation's rows fail first varies (WAN membership flaps, RPCs fail): what
    # matters is that the gate names them and dc3 never changed
    assert failing and {check for _, check in failing} <= {"WAN members alive", "RPC reaches every datacenter",
                                                           "ACL replication running",
                                                           "catalog has every datacenter"}, stop.group(0)
    assert "not changed yet: dc3" in done.stdout or "not changed yet: dc2, dc3" in done.stdout
    assert "[dc3]" not in done.stdout
    after_stop = {dc: server_pod(fed, dc).metadata.uid for dc in DATACENTERS}
    assert after_stop["dc1"] != before["dc1"], "the primary's servers were not restarted by the change"
    assert after_stop["dc3"] == before["dc3"], "dc3 changed although the gate stopped before it"
    print(f"stopped after {stop.group(1)}")
    printed_table(fed, project, "after the stop")

    # The fix moves dc1's gateway: its new name answers first, while the old load balancer
    # address still does; up advertises the new one and carries it to each secondary's copy.
    gateway = fed.core("dc1").read_namespaced_service("consul-mesh-gateway", NAMESPACE)
    old_address = gateway.status.load_balancer.ingress[0].ip
    fed.clusters["dc1"].expose(MOVED_WAN_ADDRESS, NAMESPACE, "consul-mesh-gateway", 443)
    set_override(project, "dc1", meshGateway={"wanAddress": MOVED_WAN_ADDRESS})
    done = fed.cli(project, "up", "--gate-timeout", "420")
    print(f"\n[timing] gated rolling up of dc1, dc2, dc3 (servers restarted in dc2, dc3): {done.seconds:.1f} s")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}\n{fed.diagnose()}"
    lines = done.stdout.splitlines()
    print("\n".join(line for line in lines if line.startswith("[gate]")))
    assert stop.group(1) == "the primary" or any(line.startswith("[gate] failing before this up") for line in lines)
    # a stage's gate lets it go on when the federation is healthy, or when only rows the broken
    # run left failing still fail at the end of the wait (dc2's, when its copy took the typo)
    healthy = [i for i, line in enumerate(lines) if line.startswith(("[gate] healthy", "[gate] going on"))]
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

    # Then the old address is retired (the Service is no longer a load balancer): the gated up
    # passes, the old address no longer answers, and every secondary is still federated.
    assert answers(old_address)
    set_override(project, "dc1", meshGateway={"serviceType": "ClusterIP", "wanAddress": MOVED_WAN_ADDRESS})
    done = fed.cli(project, "up", "--gate-timeout", "300")
    print(f"\n[timing] gated up retiring dc1's old gateway address: {done.seconds:.1f} s")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}\n{fed.diagnose()}"
    deadline = time.monotonic() + 60
    while answers(old_address) and time.monotonic() < deadline:
        time.sleep(2)
    assert not answers(old_address), f"{old_address}:443 still answers after the Service left LoadBalancer"
    rows = wait_verify(fed, project, timeout=300, window=15, ignore=WAN_DISRUPTED)
    assert rows and all(r["status"] == "passed" for r in rows if r["check"] != KEYRING_ROW)
    printed_table(fed, project, "after the old gateway address was retired")
    assert fed.errors() == {}
