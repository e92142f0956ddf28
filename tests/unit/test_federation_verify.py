"""`python -m federation verify`: the rows' verdicts from Kubernetes objects as the API returns
them (kubernetes client models; the integration tier reads real ones), and the exit code rule."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from components.config import parse_config
from federation import cluster_access as access, verify as v

pytestmark = pytest.mark.unit


def cfg(role="primary", **gateway):
    raw = {"role": role, "datacenter": "dc1" if role == "primary" else "dc2", "kubeContext": "ctx"}
    if role == "secondary":
        raw["primaryStack"] = "organization/consul-federation/dc1"
    if gateway:
        raw["meshGateway"] = gateway
    return parse_config(raw)


def service(kind, ingress=None, node_port=None):
    return client.V1Service(
        spec=client.V1ServiceSpec(type=kind, cluster_ip="10.96.0.10", selector={"component": "mesh-gateway"},
                                  ports=[client.V1ServicePort(port=443, node_port=node_port)]),
        status=client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus(ingress=ingress)))


def federation_secret(gateways, **extra):
    config = json.dumps({"primary_datacenter": "dc1", "primary_gateways": gateways})
    return {"caCert": "Y2E=", "serverConfigJSON": base64.b64encode(config.encode()).decode(), **extra}


def row(status, source=v.KUBERNETES):
    return v.Row("dc1", "dc1", "check", source, status, "")


def test_exit_code_rule():
    assert v.exit_code([row(v.PASSED), row(v.NOT_CHECKED, v.CONSUL)], kubernetes_only=True) == 0
    assert v.exit_code([row(v.PASSED), row(v.NOT_CHECKED, v.CONSUL)], kubernetes_only=False) == 1
    assert v.exit_code([row(v.PASSED), row(v.NOT_CHECKED)], kubernetes_only=True) == 1
    assert v.exit_code([row(v.PASSED), row(v.FAILED, v.CONSUL)], kubernetes_only=True) == 1
    assert v.exit_code([], kubernetes_only=True) == 1


@pytest.mark.parametrize("config, svc, host_ips, expected", [
    (cfg(), service("LoadBalancer", [client.V1LoadBalancerIngress(ip="203.0.113.7")]), [], ["203.0.113.7:443"]),
    (cfg(), service("LoadBalancer", [client.V1LoadBalancerIngress(hostname="gw.example.com")]), [],
     ["gw.example.com:443"]),
    (cfg(serviceType="NodePort", nodePort=30001), service("NodePort", node_port=30001), ["10.0.0.5", "10.0.0.5"],
     ["10.0.0.5:30001"]),
    (cfg(serviceType="NodePort", nodePort=30001, wanAddress="gw.dc1.test"), service("NodePort", node_port=30001),
     [], ["gw.dc1.test:30001"]),
    (cfg(serviceType="ClusterIP", wanAddress="gw.dc1.test"), service("ClusterIP"), [], ["gw.dc1.test:443"]),
    (cfg(serviceType="ClusterIP"), service("ClusterIP"), [], ["10.96.0.10:443"]),
])
def test_gateway_addresses_as_the_chart_advertises_them(config, svc, host_ips, expected):
    assert v.gateway_addresses(config, svc, host_ips) == (expected, "")


def test_gateway_addresses_unknown_say_why():
    addresses, why = v.gateway_addresses(cfg(), service("LoadBalancer"), [])
    assert addresses is None and "no ingress address (Pending)" in why
    addresses, why = v.gateway_addresses(cfg(serviceType="NodePort", nodePort=30001),
                                         service("NodePort", node_port=30001), [])
    assert addresses is None and why.startswith("no node address is known")


def test_digest_ignores_key_order_and_sees_any_change():
    a = federation_secret(["127.0.1.1:443"], caKey="a2V5")
    assert access.data_digest(a) == access.data_digest(dict(reversed(list(a.items()))))
    assert access.data_digest(a) != access.data_digest({**a, "caKey": "b3RoZXI="})


class FakeDatacenter(access.Datacenter):
    """A Datacenter whose API answers are given, not fetched."""

    def __init__(self, config, secrets=None, proxy_defaults=None, stack=None):
        self.stack = stack or config.datacenter
        self.cfg = config
        self.secrets = secrets or {}
        self.custom = self
        self.proxy_defaults = proxy_defaults

    def secret_data(self, name):
        return self.secrets.get(name)

    def get_namespaced_custom_object(self, *args, **kwargs):
        if self.proxy_defaults is None:
            raise ApiException(status=404, reason="Not Found")
        return self.proxy_defaults


class FakeCore:
    """The two reads gateway_rows makes: the gateway Service and its pods."""

    def __init__(self, svc, host_ips):
        self.svc, self.host_ips = svc, host_ips

    def read_namespaced_service(self, name, namespace, **_):
        return self.svc

    def list_namespaced_pod(self, namespace, label_selector, **_):
        assert label_selector == "component=mesh-gateway"
        return client.V1PodList(items=[client.V1Pod(status=client.V1PodStatus(host_ip=ip)) for ip in self.host_ips])


@pytest.mark.parametrize("host_ips, expected", [
    (["10.0.0.5"], (v.PASSED, "NodePort: 10.0.0.5:30002")),
    # the node port exists, but the address the other datacenters dial was not seen: no pass
    ([], (v.NOT_CHECKED, "NodePort 30002; no node address is known (no gateway pod reports a host IP) and "
                         "no meshGateway.wanAddress is set")),
])
def test_a_nodeport_gateway_passes_only_with_a_known_node_address(host_ips, expected):
    dc = FakeDatacenter(cfg("secondary", serviceType="NodePort", nodePort=30002))
    dc.core = FakeCore(service("NodePort", node_port=30002), host_ips)
    rows, addresses, _ = v.gateway_rows(dc)
    assert [(r.check, r.status, r.detail) for r in rows] == [("gateway Service address", *expected)]
    assert addresses == (["10.0.0.5:30002"] if host_ips else None)


@pytest.mark.parametrize("status, expected", [
    (None, (v.NOT_CHECKED, "no status: nothing has reported whether Consul accepted it "
                           "(the controller sets status.conditions Synced)")),
    ({"conditions": [{"type": "Synced", "status": "True"}]}, (v.PASSED, "Synced True")),
    ({"conditions": [{"type": "Synced", "status": "False", "reason": "ConsulAgentError",
                      "message": "writing config entry"}]},
     (v.FAILED, "Synced False: ConsulAgentError: writing config entry")),
])
def test_proxy_defaults_synced(status, expected):
    obj = {"spec": {"meshGateway": {"mode": "local"}}, **({"status": status} if status else {})}
    got = v.proxy_defaults_row(FakeDatacenter(cfg(), proxy_defaults=obj))
    assert (got.status, got.detail) == expected
    missing = v.proxy_defaults_row(FakeDatacenter(cfg()))
    assert (missing.status, missing.detail) == (v.FAILED, "ProxyDefaults consul/global does not exist: run up")


def test_primary_gateways_current_stale_and_unknown():
    dc = FakeDatacenter(cfg(), secrets={"consul-federation": federation_secret(["127.0.1.1:443"])})
    assert v.primary_gateways_row(dc, ["127.0.1.1:443"], "").status == v.PASSED
    stale = v.primary_gateways_row(dc, ["dc1-gateway.test:30001"], "")
    assert stale.status == v.FAILED
    assert stale.detail == (
        "stale: the federation secret advertises 127.0.1.1:443, the gateway is now at dc1-gateway.test:30001; "
        "re-run up on the primary and then the secondaries: python -m federation up (consul-k8s#417)")
    unknown = v.primary_gateways_row(dc, None, "no node address")
    assert (unknown.status, unknown.detail) == (
        v.NOT_CHECKED, "advertised 127.0.1.1:443; the gateway's address is unknown: no node address")


def test_secondary_copy_is_compared_by_digest_and_no_value_is_printed():
    primary_data = federation_secret(["127.0.1.1:443"], caKey="c2VjcmV0LWtleQ==")
    primary = FakeDatacenter(cfg(), {"consul-federation": primary_data})
    same = FakeDatacenter(cfg("secondary"), {"consul-federation": dict(primary_data)})
    assert v.secret_copy_row(same, primary, primary_data).status == v.PASSED
    older = FakeDatacenter(cfg("secondary"), {"consul-federation": federation_secret(["10.0.0.1:443"], caKey="c2VjcmV0LWtleQ==")})
    got = v.secret_copy_row(older, primary, primary_data)
    assert (got.status, got.detail) == (v.FAILED, (
        "stale: its copy's primary_gateways are 10.0.0.1:443, dc1's are now 127.0.1.1:443; re-run up on the "
        "primary and then the secondaries: python -m federation up (consul-k8s#417)"))
    rotated = FakeDatacenter(cfg("secondary"), {"consul-federation": federation_secret(["127.0.1.1:443"], caKey="b2xk")})
    got = v.secret_copy_row(rotated, primary, primary_data)
    assert got.status == v.FAILED and got.detail.startswith("differs from dc1's (sha256 ")
    assert got.detail.endswith("pulumi up --refresh -s dc2 writes it back; then restart dc2's servers "
                               "(kubectl -n consul delete pod -l component=server) to load it")
    assert "c2VjcmV0LWtleQ" not in got.detail and "secret-key" not in got.detail
    missing = v.secret_copy_row(FakeDatacenter(cfg("secondary")), primary, primary_data)
    assert missing.detail == "no federation secret consul/consul-federation: run up on dc2 (after the primary)"


def test_the_tls_row_reads_each_datacenters_ca_file_and_server_certificate_from_its_secrets():
    """The primary's CA file is the chart's ca-cert Secret, a secondary's the caCert of its copy;
    a trust stage (dc2 trusting both) passes while dc1's servers have the new CA's certificates,
    the naive change (dc2 trusting the old one alone) fails naming dc1; no tls-init yet: not checked."""
    from test_federation_tls_ca_rotation import NEW, OLD, server_cert
    from federation import tls_ca

    def b64(text):
        return base64.b64encode(text.encode()).decode()

    def datacenters(dc2_trusts):
        dc1 = FakeDatacenter(cfg(), {"consul-ca-cert": {"tls.crt": b64(OLD.cert + NEW.cert)},
                                     "consul-server-cert": {"tls.crt": b64(server_cert(NEW, "dc1"))}})
        dc2 = FakeDatacenter(cfg("secondary"), {"consul-federation": {"caCert": b64(dc2_trusts)},
                                                "consul-server-cert": {"tls.crt": b64(server_cert(OLD, "dc2"))}})
        return dc1, dc2, {"dc1": v.tls_material(dc1), "dc2": v.tls_material(dc2)}

    dc1, dc2, material = datacenters(OLD.cert + NEW.cert)
    got = [v.tls_row(dc, material) for dc in (dc1, dc2)]
    assert [(r.check, r.source, r.status) for r in got] == [(v.TLS_TRUST, v.KUBERNETES, v.PASSED)] * 2
    assert got[1].detail.endswith(f"dc1 {tls_ca.fingerprint(NEW.cert)}, dc2 {tls_ca.fingerprint(OLD.cert)}")
    dc1, dc2, material = datacenters(OLD.cert)
    got = v.tls_row(dc2, material)
    assert got.status == v.FAILED and "holds no CA of the server certificate of dc1" in got.detail
    assert v.tls_row(dc1, material).status == v.PASSED
    fresh = FakeDatacenter(cfg(), {"consul-ca-cert": {"tls.crt": b64(OLD.cert)}})
    got = v.tls_row(fresh, {"dc1": v.tls_material(fresh), "dc2": material["dc2"]})
    assert (got.status, got.detail) == (v.NOT_CHECKED, "no consul/consul-server-cert (the chart's tls-init has not run)")
    got = v.tls_row(dc2, {"dc1": v.tls_material(fresh), "dc2": material["dc2"]})
    assert got.status == v.NOT_CHECKED and got.detail.endswith("not read: dc1: no consul/consul-server-cert "
                                                               "(the chart's tls-init has not run)")


def test_table_has_a_header_and_a_line_per_row():
    rows = [v.Row("dc1", "dc1", "server StatefulSet ready", v.KUBERNETES, v.PASSED, "1/1 ready"),
            v.Row("dc2", "dc2", "federation secret = primary's", v.KUBERNETES, v.FAILED, "differs")]
    lines = v.table(rows).splitlines()
    assert lines[0].split() == ["DATACENTER", "CHECK", "STATUS", "DETAIL"]
    assert lines[2].split()[0] == "dc2" and "FAILED" in lines[2] and lines[2].endswith("differs")


def statefulset(ready, replicas=1, generation=2, observed=2):
    return client.V1StatefulSet(metadata=client.V1ObjectMeta(name="consul-server", generation=generation),
                                spec=client.V1StatefulSetSpec(replicas=replicas, selector=client.V1LabelSelector(),
                                                              template=client.V1PodTemplateSpec(),
                                                              service_name="consul-server"),
                                status=client.V1StatefulSetStatus(replicas=replicas, ready_replicas=ready,
                                                                  observed_generation=observed))


@pytest.mark.parametrize("obj, expected", [
    (statefulset(ready=1), (v.PASSED, "1/1 ready")),
    (statefulset(ready=None), (v.FAILED, "0/1 ready")),
    (statefulset(ready=2, replicas=3), (v.FAILED, "2/3 ready")),
    (statefulset(ready=1, observed=1), (v.FAILED, "1/1 ready (rollout not observed yet)")),
])
def test_ready_means_every_replica_of_the_current_spec(obj, expected):
    assert v._ready("StatefulSet", client.ApiClient().sanitize_for_serialization(obj)) == expected


def deployment(ready, available, replicas=1):
    return client.V1Deployment(metadata=client.V1ObjectMeta(name="consul-mesh-gateway", generation=3),
                               spec=client.V1DeploymentSpec(replicas=replicas, selector=client.V1LabelSelector(),
                                                            template=client.V1PodTemplateSpec()),
                               status=client.V1DeploymentStatus(replicas=replicas, ready_replicas=ready,
                                                                available_replicas=available, observed_generation=3))


@pytest.mark.parametrize("obj, expected", [
    (deployment(ready=2, available=2, replicas=2), (v.PASSED, "2/2 ready")),
    (deployment(ready=1, available=0), (v.PASSED, "1/1 ready")),  # ready pods count, as in Helm's wait
    (deployment(ready=None, available=None), (v.FAILED, "0/1 ready")),
    (deployment(ready=None, available=None, replicas=0), (v.FAILED, "0/0 ready")),  # scaled to zero
])
def test_the_gateway_deployment_counts_ready_pods_as_the_release_error_hook_does(obj, expected):
    """The object as the client returns it, serialized as workload_rows does."""
    assert v._ready("Deployment", client.ApiClient().sanitize_for_serialization(obj)) == expected


def test_rpc_row_asks_every_other_datacenter_and_names_the_ones_consul_cannot_reach(monkeypatch):
    """The request verify sends (the leader of each other datacenter, by ?dc=) and what it makes
    of Consul's own error, of a proxy's error and of a hang."""
    import urllib3

    asked = []
    answers = {"dc2": b'"10.244.2.6:8300"',
               "dc3": ApiException(status=500, reason="Internal Server Error"),
               "dc4": b'""'}
    answers["dc3"].body = "rpc error making call: No path to datacenter\n"

    def consul_get(dc, path, query, token):
        asked.append((dc.stack, path, query, token))
        answer = answers[dict(query)["dc"]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(access, "consul_get", consul_get)
    dc1 = FakeDatacenter(cfg())
    row = v.rpc_row(dc1, ["dc2", "dc3", "dc4"], "t0ken")
    assert asked == [("dc1", "/v1/status/leader", [("dc", other)], "t0ken") for other in ("dc2", "dc3", "dc4")]
    assert (row.check, row.status, row.detail, row.source) == (
        "RPC reaches every datacenter", v.FAILED,
        "dc3: rpc error making call: No path to datacenter; dc4: no leader", v.CONSUL)

    answers["dc3"] = answers["dc4"] = b'"10.244.3.6:8300"'
    assert v.rpc_row(dc1, ["dc2", "dc3", "dc4"], "t0ken").status == v.PASSED

    proxy = ApiException(status=503, reason="Service Unavailable")
    proxy.body = '{"kind":"Status","message":"no endpoints available for service consul-server"}'
    answers["dc3"] = proxy
    got = v.rpc_row(dc1, ["dc2", "dc3"], "t0ken")
    assert got.status == v.NOT_CHECKED and "service proxy (503 Service Unavailable" in got.detail
    answers["dc3"] = urllib3.exceptions.ReadTimeoutError(None, "/v1/status/leader", "read timed out")
    got = v.rpc_row(dc1, ["dc2", "dc3"], "t0ken")
    assert got.status == v.NOT_CHECKED and got.detail.startswith(
        "Consul not reachable: ReadTimeoutError asking for the leader of dc3 (no answer within 10 s")


def test_consul_rows_ask_consul_what_the_rows_say(monkeypatch):
    """The requests behind the Consul rows of a secondary, each pinned: WAN members (?wan=1; the
    LAN pool would list only the datacenter's own servers), the catalog, ACL replication,
    ProxyDefaults, and the leader of every other datacenter. Each answer given is Consul's
    documented sample, so the rows also pass through their parsers."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "consul"
    bodies = {"/v1/agent/members": "agent-members.json", "/v1/catalog/datacenters": "catalog-datacenters.json",
              "/v1/acl/replication": "acl-replication.json", "/v1/status/leader": "status-leader.json"}
    asked = []

    def consul_get(dc, path, query, token):
        asked.append((path, query, token))
        if path == "/v1/config/proxy-defaults/global":
            return b'{"Kind": "proxy-defaults", "Name": "global", "MeshGateway": {"Mode": "local"}}'
        if path == "/v1/operator/keyring":
            return b"[]"
        return (fixtures / bodies[path]).read_bytes()

    monkeypatch.setattr(access, "consul_get", consul_get)
    primary, secondary = FakeDatacenter(cfg()), FakeDatacenter(cfg("secondary"))
    rows = v.consul_rows(secondary, primary, ["dc1", "dc2"], "t0ken")
    assert asked == [("/v1/agent/members", [("wan", "1")], "t0ken"), ("/v1/catalog/datacenters", [], "t0ken"),
                     ("/v1/acl/replication", [], "t0ken"), ("/v1/config/proxy-defaults/global", [], "t0ken"),
                     ("/v1/operator/keyring", [("local-only", "true")], "t0ken"),
                     ("/v1/status/leader", [("dc", "dc1")], "t0ken")]
    assert [r.check for r in rows] == ["WAN members alive", "catalog has every datacenter", "ACL replication running",
                                       "ProxyDefaults global replicated", "gossip keyring: one primary key",
                                       "RPC reaches every datacenter"]
    assert rows and all(r.source == v.CONSUL and r.status in (v.PASSED, v.FAILED) for r in rows)


def test_each_datacenters_keyring_row_asks_its_own_lan_pool_and_compares_it_with_the_primarys_secret(monkeypatch):
    """Every datacenter's row lists its own LAN pool (?local-only, through its own API server: no
    Serf query over the WAN pool); its primary key must be the one in the primary's gossip
    Secret (compared, never printed)."""
    key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
    asked = []

    def consul_get(dc, path, query, token):
        asked.append((dc.stack, path, query))
        keyring = json.dumps([{"WAN": False, "Datacenter": dc.cfg.datacenter, "Segment": "", "Keys": {key: 1},
                               "PrimaryKeys": {key: 1}, "NumNodes": 1}]).encode()
        return {"/v1/operator/keyring": keyring, "/v1/catalog/datacenters": b'["dc1", "dc2"]',
                "/v1/agent/members": b"[]", "/v1/status/leader": b'"10.244.2.6:8300"', "/v1/acl/replication": b"{}",
                "/v1/config/proxy-defaults/global": b"{}"}[path]

    monkeypatch.setattr(access, "consul_get", consul_get)
    secret = {"consul-gossip-encryption-key": {"key": base64.b64encode(key.encode()).decode()}}
    primary = FakeDatacenter(cfg(), secrets=secret)
    secondary = FakeDatacenter(cfg("secondary"), stack="dc2")
    for dc in (primary, secondary):
        row = {r.check: r for r in v.consul_rows(dc, primary, ["dc1", "dc2"], "t0ken")}[v.GOSSIP_KEYRING]
        assert (dc.stack, "/v1/operator/keyring", [("local-only", "true")]) in asked
        assert row.status == v.PASSED, row
        assert row.detail == "primary key sha256:1a529216c579 (= the gossip Secret's) on every member of 1 pool(s)"
        assert v.GOSSIP_KEYRING in v._consul_checks(dc, primary, ["dc1", "dc2"])
    other = base64.b64encode(b"WbL6oaTPom+7RG7Q/INbJWKy09OLar/Hf2SuOAdoQE4=").decode()
    primary.secrets = {"consul-gossip-encryption-key": {"key": other}}
    row = {r.check: r for r in v.consul_rows(secondary, primary, ["dc1", "dc2"], "t0ken")}[v.GOSSIP_KEYRING]
    assert row.status == v.FAILED and "a rotation stopped half-way" in row.detail and key not in row.detail
    no_gossip = FakeDatacenter(parse_config({"role": "primary", "datacenter": "dc1", "kubeContext": "ctx",
                                             "gossipEncryption": "false"}))
    assert v.GOSSIP_KEYRING not in v._consul_checks(no_gossip, no_gossip, ["dc1"])


def test_an_error_consul_itself_answers_fails_the_row_with_its_words(monkeypatch):
    """A 500 in Consul's plain text (seen for the keyring while a secondary could not reach the
    primary) is an answer: the row fails quoting it; a service proxy's JSON Status is not."""
    consul = ApiException(status=500, reason="Internal Server Error")
    consul.body = "1 error occurred:\n\t* dc2 error: rpc error making call: No path to datacenter\n"
    proxy = ApiException(status=503, reason="Service Unavailable")
    proxy.body = '{"kind":"Status","message":"no endpoints available for service consul-server"}'
    answers = {"/v1/operator/keyring": consul}

    def consul_get(dc, path, query, token):
        answer = answers.get(path, b'["dc1"]' if path == "/v1/catalog/datacenters" else b"[]")
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(access, "consul_get", consul_get)
    primary = FakeDatacenter(cfg(), secrets={"consul-gossip-encryption-key": {"key": "a2V5"}})
    row = {r.check: r for r in v.consul_rows(primary, primary, ["dc1"], "t0ken")}[v.GOSSIP_KEYRING]
    assert (row.status, row.detail) == (
        v.FAILED, "Consul answered 500: 1 error occurred: * dc2 error: rpc error making call: No path to datacenter")
    answers["/v1/operator/keyring"] = proxy
    row = {r.check: r for r in v.consul_rows(primary, primary, ["dc1"], "t0ken")}[v.GOSSIP_KEYRING]
    assert row.status == v.NOT_CHECKED and "service proxy (503 Service Unavailable" in row.detail


def test_a_keyring_listing_whose_answers_got_lost_is_asked_again_and_nothing_else_is(monkeypatch):
    lost = ApiException(status=500, reason="Internal Server Error")
    lost.body = "1 error occurred:\n\t* WAN error: 2/3 nodes reported success\n"
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = "Permission denied"
    answers, asked, slept = [lost, lost, b"[]"], [], []

    def consul_get(dc, path, query, token):
        asked.append((path, query))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(access, "consul_get", consul_get)
    dc1 = FakeDatacenter(cfg())
    assert access.keyring_get(dc1, access.KEYRING_QUERY, "t0ken", sleep=slept.append) == b"[]"
    assert asked == [("/v1/operator/keyring", [("relay-factor", "2")])] * 3 and slept == [3.0, 3.0]
    answers[:] = [lost, lost, lost]
    with pytest.raises(ApiException):
        access.keyring_get(dc1, access.KEYRING_QUERY, "t0ken", sleep=slept.append)
    answers[:] = [denied, b"[]"]
    with pytest.raises(ApiException) as raised:
        access.keyring_get(dc1, access.KEYRING_QUERY, "t0ken", sleep=slept.append)
    assert raised.value is denied


def test_a_stack_that_cannot_be_read_says_why_and_what_to_do(monkeypatch):
    """No backend: PULUMI_BACKEND_URL / pulumi login --local, not the CLI's output; a stack not
    in the backend: what creates it."""
    from pulumi import automation as auto

    from federation import runner as stack_runner
    from federation.stack_plan import Plan

    def load_config(runner, name):
        if name == "dc1":
            raise auto.errors.CommandError(auto.CommandResult(
                "", "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions", 3))
        raise auto.errors.StackNotFoundError(auto.CommandResult("", "no stack named 'dc2' found", 255))

    monkeypatch.setattr(access, "load_config", load_config)
    plan = Plan("consul-federation", "dc1", ("dc2",), frozenset({"dc1", "dc2"}))
    rows = v.collect(plan, None, kubernetes_only=True)
    assert [(r.stack, r.status, r.detail) for r in rows] == [
        ("dc1", v.FAILED, stack_runner.NO_BACKEND),
        ("dc2", v.FAILED, "stack dc2 does not exist in the backend yet: python -m federation up creates it")]
    assert "PULUMI_BACKEND_URL" in stack_runner.NO_BACKEND and "pulumi login --local" in stack_runner.NO_BACKEND


def test_an_unreachable_cluster_names_its_context_server_and_what_to_check(tmp_path, monkeypatch):
    """Not "MaxRetryError": the context, the kubeconfig's server URL, the socket's reason and what
    to check."""
    import socket

    from federation.stack_plan import Plan

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-dc1",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "contexts": [{"name": "kind-dc1", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    monkeypatch.setattr(access, "load_config", lambda runner, name: parse_config(
        {"role": "primary", "datacenter": "dc1", "kubeContext": "kind-dc1", "kubeconfig": str(kubeconfig)}))
    rows = v.collect(Plan("consul-federation", "dc1", (), frozenset({"dc1"})), None, kubernetes_only=True)
    assert [(r.check, r.status, r.detail) for r in rows] == [("Kubernetes API", v.NOT_CHECKED, (
        f"cannot reach the Kubernetes API server of context kind-dc1 (https://127.0.0.1:{port}; kubeconfig "
        f"{kubeconfig}): Connection refused. Check that the cluster is running, that this machine can reach "
        "that address (VPN, firewall, proxy), and that the context's server in the kubeconfig is current (a "
        "re-created cluster often has a new address or port)"))]


def test_a_cluster_that_refuses_verifys_reads_says_which_and_what_to_check(tmp_path):
    from stack_matrix import write_contexts

    kubeconfig = write_contexts(tmp_path / "kubeconfig", ["ctx"])
    dc = FakeDatacenter(cfg())
    dc.kube = access.resolve_cluster(kubeconfig, "ctx")
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = '{"kind":"Status","message":"statefulsets.apps is forbidden: User \\"ci\\" cannot get"}'
    [got] = v._unreachable(dc, denied)
    assert got.detail == (
        f"the Kubernetes API server of context ctx (no server in the kubeconfig; kubeconfig {kubeconfig}) "
        "answered 403 Forbidden: statefulsets.apps is forbidden: User \"ci\" cannot get. Check the context's "
        "credentials and that its user may read namespace consul")


def test_a_request_that_timed_out_says_so():
    import urllib3

    assert access.network_cause(urllib3.exceptions.ReadTimeoutError(None, "/version", "read timed out")) == \
        "no answer within 10 s"
