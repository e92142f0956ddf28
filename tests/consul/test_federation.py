"""Three datacenters federated for real by ``python -m federation up`` with the program's own
values on chart 1.2.1 (dc1 LoadBalancer gateway, dc2 NodePort, dc3 ClusterIP behind a static
address), then checked by ``python -m federation verify``: Consul's WAN pool, catalog and ACL
replication, as Consul itself reports them. Stopping a gateway breaks what depends on it."""

from __future__ import annotations

import base64
import json
import time

import pytest

from realenv import NAMESPACE
from threedc import (DATACENTERS, KEYRING_ROW, WAN_DISRUPTED, consul_request, restart_server, scale_gateway, wait_failing, wait_passing,
                     wait_verify)

pytestmark = pytest.mark.consul


def test_verify_passes_every_row_for_real(fed, project):
    started = time.monotonic()
    rows = wait_verify(fed, project, timeout=420, window=45)
    print(f"\n[timing] verify passing for 45 s in a row, {time.monotonic() - started:.1f} s after up")
    print(fed.cli(project, "verify").stdout)
    assert rows and all(r["status"] == "passed" for r in rows), rows
    consul = [r for r in rows if r["source"] == "consul"]
    assert {r["datacenter"] for r in consul} == set(DATACENTERS)
    assert len([r for r in consul if "replication" in r["check"]]) == 2
    assert fed.errors() == {}


def test_a_kv_write_in_dc1_is_read_from_dc3(fed, project):
    assert consul_request(fed, "dc1", "PUT", "/v1/kv/federation-check", b"written in dc1") == b"true"
    read = json.loads(consul_request(fed, "dc3", "GET", "/v1/kv/federation-check?dc=dc1"))
    assert base64.b64decode(read[0]["Value"]) == b"written in dc1"


def test_stopping_the_primarys_gateway_fails_verify_until_it_returns(fed, project):
    """WAN traffic really crosses the gateways: with dc1's stopped, the secondaries lose dc1's
    server from the WAN pool (and verify says so, naming the rows); back, it all passes again."""
    wait_verify(fed, project, timeout=240, window=15)
    scale_gateway(fed, "dc1", 0)
    started = time.monotonic()
    try:
        rows = wait_failing(fed, project, {("dc2", "WAN members alive"), ("dc3", "WAN members alive"),
                                           ("dc2", "RPC reaches every datacenter"),
                                           ("dc3", "RPC reaches every datacenter")}, timeout=300)
        print(f"\n[timing] verify fails {time.monotonic() - started:.1f} s after dc1's gateway stopped")
        failed = [(r["datacenter"], r["check"], r["detail"]) for r in rows if r["status"] != "passed"]
        print("\n".join(map(str, failed)))
        wan = {dc: detail for dc, check, detail in failed if check == "WAN members alive"}
        assert all("consul-server-0.dc1 (dc1) failed" in wan[dc] for dc in ("dc2", "dc3")), wan
        rpc = {dc: detail for dc, check, detail in failed if check == "RPC reaches every datacenter"}
        assert all(rpc[dc].startswith("dc1: ") for dc in ("dc2", "dc3")), rpc
        # what depends on dc1's gateway, and nothing of dc2's or dc3's own
        assert {check for _, check, _ in failed} <= {
            "WAN members alive", "RPC reaches every datacenter", "ACL replication running",
            "mesh gateway Deployment ready", KEYRING_ROW}, failed
    finally:
        scale_gateway(fed, "dc1", 1)
    started = time.monotonic()
    wait_verify(fed, project, timeout=600, window=15, ignore=WAN_DISRUPTED)
    print(f"\n[timing] verify passes again {time.monotonic() - started:.1f} s after dc1's gateway returned")
    assert fed.errors() == {}


def test_a_wrong_replication_token_fails_the_replication_row(fed, project):
    """dc3's copy of the federation secret drifts (a wrong replication token, as a hand edit would
    leave it): once its server restarts with it, verify's replication row fails with the token's
    own error, and the copy row names the drift and the way back; never "passed". That way back,
    as the row says it: ``pulumi up --refresh -s dc3`` (the copy forces its field ownership over
    the hand edit's manager) and a server restart, after which its replication and copy rows pass."""
    # after the gateway test WAN membership may still flap for minutes
    wait_verify(fed, project, timeout=600, window=15, ignore=WAN_DISRUPTED)
    core = fed.core("dc3")
    wrong = base64.b64encode(b"00000000-0000-4000-8000-000000000000").decode()
    core.patch_namespaced_secret("consul-federation", NAMESPACE, {"data": {"replicationToken": wrong}})
    restart_server(fed, "dc3")
    started = time.monotonic()
    # first "No path to datacenter" while the restarted server rejoins, then the token's own error
    token_errors = ("ACL not found", "Permission denied")
    rows = wait_failing(fed, project, {("dc3", "ACL replication running")}, timeout=420,
                        because=token_errors)
    print(f"\n[timing] replication row fails {time.monotonic() - started:.1f} s after dc3's server "
          "restarted with a wrong token")
    (row,) = [r for r in rows if (r["datacenter"], r["check"]) == ("dc3", "ACL replication running")]
    print(row["detail"])
    assert row["status"] == "failed" and any(e in row["detail"] for e in token_errors), row
    (copy_row,) = [r for r in rows if r["datacenter"] == "dc3" and r["check"] == "federation secret = primary's"]
    assert copy_row["status"] == "failed" and "pulumi up --refresh -s dc3" in copy_row["detail"], copy_row

    started = time.monotonic()
    project.run("up", "--refresh", "--yes", "--skip-preview", stack="dc3")
    assert fed.secret("dc3", "consul-federation") == fed.secret("dc1", "consul-federation")
    restart_server(fed, "dc3")
    rows = wait_passing(fed, project, {("dc3", "ACL replication running"), ("dc3", "federation secret = primary's")},
                        timeout=600)
    print(f"\n[timing] restored by pulumi up --refresh and a server restart: dc3's replication and copy "
          f"rows pass {time.monotonic() - started:.1f} s later")
    assert [r for r in rows if r["datacenter"] == "dc3" and r["check"] == "ACL replication running"
            and r["status"] == "passed"], rows
    assert fed.errors() == {}
