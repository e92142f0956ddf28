"""Three datacenters federated for real by ``python -m federation up`` with the program's own
values on chart 1.2.1 (dc1 LoadBalancer gateway, dc2 NodePort, dc3 ClusterIP behind a static
address), then checked by ``python -m federation verify``: Consul's WAN pool, catalog and ACL
replication, as Consul itself reports them. Stopping a gateway breaks what depends on it."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.request

import pytest

from realenv import NAMESPACE, real_federation

pytestmark = pytest.mark.consul

DATACENTERS = ("dc1", "dc2", "dc3")
STATIC_GATEWAY = "dc3-gateway.consul.test"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    with real_federation(tmp_path_factory.mktemp("fed"), DATACENTERS) as f:
        # what a user of dc3 runs in front of its ClusterIP gateway: a load balancer and a name
        f.clusters["dc3"].expose(STATIC_GATEWAY, NAMESPACE, "consul-mesh-gateway", 443)
        yield f


@pytest.fixture(scope="module")
def project(fed):
    project = fed.project()
    project.overrides["dc3"] = {"meshGateway": {"serviceType": "ClusterIP", "wanAddress": STATIC_GATEWAY}}
    for dc in DATACENTERS:
        project.init_stack(dc)
    started = time.monotonic()
    done = fed.cli(project, "up")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{fed.diagnose()}"
    print(f"\n[timing] python -m federation up, 3 datacenters, real Consul: {time.monotonic() - started:.1f} s")
    return project


def verify(fed, project) -> tuple[int, list[dict]]:
    done = fed.cli(project, "verify", "--json")
    return done.returncode, json.loads(done.stdout)["rows"]


def wait_verify(fed, project, timeout: float, window: float = 60) -> list[dict]:
    """Verify's rows once every run of it has passed for ``window`` seconds in a row. One pass is
    not enough: a member that cannot be reached through its gateway flaps between alive and
    failed, and a single lucky pass would hide it."""
    deadline = time.monotonic() + timeout
    since = None
    while True:
        code, rows = verify(fed, project)
        now = time.monotonic()
        since = (since or now) if code == 0 else None
        if since is not None and now - since >= window:
            return rows
        if now > deadline:
            failing = [r for r in rows if r["status"] != "passed"]
            raise AssertionError(f"verify did not pass for {window:.0f} s in a row within {timeout:.0f} s; "
                                 f"last run's failing rows:\n{json.dumps(failing, indent=1)}\n{fed.diagnose()}")
        time.sleep(5)


def wait_failing(fed, project, checks: set[tuple[str, str]], timeout: float,
                 because: tuple[str, ...] = ("",)) -> list[dict]:
    """Verify's rows once every (datacenter, check) in ``checks`` fails with a detail that
    contains one of ``because`` (or the timeout's)."""
    deadline = time.monotonic() + timeout
    while True:
        code, rows = verify(fed, project)
        failing = {(r["datacenter"], r["check"]) for r in rows if r["status"] == "failed"
                   and any(b in r["detail"] for b in because)}
        if checks <= failing or time.monotonic() > deadline:
            assert code == 1 and checks <= failing, json.dumps(rows, indent=1)
            return rows
        time.sleep(5)


def wait_passing(fed, project, checks: set[tuple[str, str]], timeout: float) -> list[dict]:
    """Verify's rows once every (datacenter, check) in ``checks`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        _, rows = verify(fed, project)
        passing = {(r["datacenter"], r["check"]) for r in rows if r["status"] == "passed"}
        if checks <= passing or time.monotonic() > deadline:
            assert checks <= passing, json.dumps([r for r in rows if r["status"] != "passed"], indent=1)
            return rows
        time.sleep(5)


def test_verify_passes_every_row_for_real(fed, project):
    started = time.monotonic()
    rows = wait_verify(fed, project, timeout=420, window=90)
    print(f"\n[timing] verify passing for 90 s in a row, {time.monotonic() - started:.1f} s after up")
    print(fed.cli(project, "verify").stdout)
    assert rows and all(r["status"] == "passed" for r in rows), rows
    consul = [r for r in rows if r["source"] == "consul"]
    assert {r["datacenter"] for r in consul} == set(DATACENTERS)
    assert len([r for r in consul if "replication" in r["check"]]) == 2
    assert fed.errors() == {}


def consul_request(fed, dc: str, method: str, path: str, body: bytes | None = None) -> bytes:
    """Straight to the datacenter's server pod (its address on the node bridge), with the
    primary's bootstrap token."""
    token = fed.secret("dc1", "consul-bootstrap-acl-token")["token"].decode()
    pod = fed.core(dc).read_namespaced_pod("consul-server-0", NAMESPACE)
    ctx = ssl.create_default_context(cadata=fed.secret("dc1", "consul-ca-cert")["tls.crt"].decode())
    ctx.check_hostname = False
    req = urllib.request.Request(f"https://{pod.status.pod_ip}:8501{path}", data=body, method=method,
                                 headers={"X-Consul-Token": token})
    with urllib.request.urlopen(req, context=ctx, timeout=15) as r:
        return r.read()


def test_a_kv_write_in_dc1_is_read_from_dc3(fed, project):
    assert consul_request(fed, "dc1", "PUT", "/v1/kv/federation-check", b"written in dc1") == b"true"
    read = json.loads(consul_request(fed, "dc3", "GET", "/v1/kv/federation-check?dc=dc1"))
    assert base64.b64decode(read[0]["Value"]) == b"written in dc1"


def scale_gateway(fed, dc: str, replicas: int) -> None:
    from kubernetes import client
    client.AppsV1Api(fed.api(dc)).patch_namespaced_deployment_scale(
        "consul-mesh-gateway", NAMESPACE, {"spec": {"replicas": replicas}})


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
            "mesh gateway Deployment ready"}, failed
    finally:
        scale_gateway(fed, "dc1", 1)
    started = time.monotonic()
    wait_verify(fed, project, timeout=600, window=15)
    print(f"\n[timing] verify passes again {time.monotonic() - started:.1f} s after dc1's gateway returned")
    assert fed.errors() == {}


def restart_server(fed, dc: str) -> None:
    fed.core(dc).delete_namespaced_pod("consul-server-0", NAMESPACE)


def test_a_wrong_replication_token_fails_the_replication_row(fed, project):
    """dc3's copy of the federation secret drifts (a wrong replication token, as a hand edit would
    leave it): once its server restarts with it, verify's replication row fails with the token's
    own error, and the copy row names the drift and the way back; never "passed". That way back,
    as the row says it: ``pulumi up --refresh -s dc3`` (the copy forces its field ownership over
    the hand edit's manager) and a server restart, after which its replication and copy rows pass."""
    wait_verify(fed, project, timeout=240, window=15)
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
