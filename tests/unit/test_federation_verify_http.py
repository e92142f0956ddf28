"""`verify`'s Consul rows over real HTTP: the kubernetes client's request (URL, query, token
header, timeout) to a loopback server that answers as the API server's service proxy in front of
Consul 1.16 would, with a realistic federation (several servers per datacenter, a member that
left, a failed one, LAN members with client agents, replication never synced, a datacenter out of
reach). Played: the API server and Consul (answers in Consul's documented formats); real: the
kubernetes client, the kubeconfig, the HTTP exchange and verify's code from the request to the row."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from components.config import parse_config
from federation import cluster_access as access, stack_plan, verify as v

pytestmark = pytest.mark.unit

TOKEN = "8f246b77-f3e1-ff88-5b48-8ec93abf3e05"  # a made-up bootstrap token
PROXY = "/api/v1/namespaces/consul/services/https:consul-server:8501/proxy"


def member(name, dc, status, role="consul", addr="10.244.1.5"):
    return {"Name": name, "Addr": addr, "Port": 8302, "Status": status,
            "Tags": {"dc": dc, "role": role, "port": "8300"},
            "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}


WAN = [member("consul-server-0.dc1", "dc1", 1), member("consul-server-1.dc1", "dc1", 1),
       member("consul-server-2.dc1", "dc1", 3),  # scaled down: left, gracefully
       member("consul-server-0.dc2", "dc2", 1), member("consul-server-1.dc2", "dc2", 1),
       member("consul-server-0.dc3", "dc3", 4)]  # failed
LAN = {dc: [member(f"consul-server-0", dc, 1), member("node-a", dc, 1, role="node"), member("node-b", dc, 4, role="node")]
       for dc in ("dc1", "dc2")}
NEVER_SYNCED = {"Enabled": True, "Running": True, "SourceDatacenter": "dc1", "ReplicationType": "tokens",
                "ReplicatedIndex": 0, "ReplicatedTokenIndex": 0, "LastSuccess": "0001-01-01T00:00:00Z",
                "LastError": "0001-01-01T00:00:00Z", "LastErrorMessage": ""}
PROXY_DEFAULTS = {"Kind": "proxy-defaults", "Name": "global", "MeshGateway": {"Mode": "local"},
                  "CreateIndex": 28, "ModifyIndex": 28}


class Consul(BaseHTTPRequestHandler):
    """One datacenter's server behind the service proxy; `answers` maps (path, query) to
    (status, body); anything else is a 404 of the API server, so an unexpected URL shows."""

    datacenter = "dc1"
    requests: list[tuple[str, str, str, str]] = []
    slow: set[tuple[str, str]] = set()
    garbled: set[tuple[str, str]] = set()
    secrets: dict[str, dict[str, str]] = {}

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self.requests.append((self.datacenter, url.path, url.query, self.headers.get("X-Consul-Token", "")))
        secret = url.path.rpartition("/api/v1/namespaces/consul/secrets/")[2]
        if secret and secret in self.secrets:
            return self.reply(200, json.dumps({"kind": "Secret", "apiVersion": "v1",
                                               "metadata": {"name": secret, "namespace": "consul"},
                                               "data": self.secrets[secret]}))
        if not url.path.startswith(PROXY):
            return self.reply(404, json.dumps({"kind": "Status", "message": f"no route {url.path}"}))
        if self.headers.get("X-Consul-Token") != TOKEN:
            return self.reply(403, "ACL not found")
        path, query = url.path[len(PROXY):], url.query
        if (path, query) in self.slow:
            time.sleep(0.8)
        if (path, query) in self.garbled:  # a proxy's error page, with a 200
            return self.reply(200, "<html><body>upstream connect error</body></html>")
        answers = {
            ("/v1/agent/members", "wan=1"): (200, json.dumps(WAN)),
            ("/v1/agent/members", ""): (200, json.dumps(LAN[self.datacenter])),
            ("/v1/catalog/datacenters", ""): (200, json.dumps(["dc1", "dc2", "dc3"])),
            ("/v1/acl/replication", ""): (200, json.dumps(NEVER_SYNCED)),
            ("/v1/config/proxy-defaults/global", ""): (200, json.dumps(PROXY_DEFAULTS)),
            ("/v1/status/leader", "dc=dc1"): (200, json.dumps("10.244.1.5:8300")),
            ("/v1/status/leader", "dc=dc2"): (200, json.dumps("10.244.2.5:8300")),
            ("/v1/status/leader", "dc=dc3"): (500, "No path to datacenter"),
        }
        if (path, query) not in answers:
            return self.reply(404, json.dumps({"kind": "Status", "message": f"unexpected {path}?{query}"}))
        self.reply(*answers[path, query])

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body[:1] in "[{\"" else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def federation(tmp_path, monkeypatch):
    """dc1 (primary) and dc2, each a kubeconfig context whose API server is a loopback server."""
    Consul.requests = []
    Consul.slow = set()
    Consul.garbled = set()
    Consul.secrets = {}
    servers, contexts, clusters = {}, [], []
    for dc in ("dc1", "dc2"):
        handler = type(f"Consul_{dc}", (Consul,), {"datacenter": dc})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[dc] = server
        clusters.append({"name": dc, "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}})
        contexts.append({"name": f"ctx-{dc}", "context": {"cluster": dc, "user": "u"}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": clusters,
                                          "contexts": contexts, "current-context": "ctx-dc1",
                                          "users": [{"name": "u", "user": {"token": "k8s-token"}}]}))
    made = {}
    for dc, role in (("dc1", "primary"), ("dc2", "secondary")):
        raw = {"role": role, "datacenter": dc, "kubeContext": f"ctx-{dc}", "kubeconfig": str(kubeconfig),
               "gossipEncryption": False}
        if role == "secondary":
            raw["primaryStack"] = "organization/consul-federation/dc1"
        made[dc] = access.Datacenter(dc, parse_config(raw))
    monkeypatch.setattr(access, "TIMEOUT", 0.3)
    yield made
    for server in servers.values():
        server.shutdown()
        server.server_close()


def rows_by_check(rows):
    assert rows
    return {r.check: (r.status, r.detail) for r in rows}


def test_the_primary_rows_from_a_realistic_federation(federation):
    dc1 = federation["dc1"]
    rows = rows_by_check(v.consul_rows(dc1, dc1, ["dc1", "dc2", "dc3"], TOKEN))
    assert rows == {
        # the member that left is gone on purpose; the failed one is not
        "WAN members alive": (v.FAILED, "no alive server of dc3; consul-server-0.dc3 (dc3) failed"),
        "catalog has every datacenter": (v.PASSED, "catalog has dc1, dc2, dc3"),
        v.RPC_TO_EVERY_DATACENTER: (v.FAILED, "dc3: No path to datacenter"),
    }
    asked = [(dc, path[len(PROXY):], query, token) for dc, path, query, token in Consul.requests]
    assert asked == [("dc1", "/v1/agent/members", "wan=1", TOKEN), ("dc1", "/v1/catalog/datacenters", "", TOKEN),
                     ("dc1", "/v1/status/leader", "dc=dc2", TOKEN), ("dc1", "/v1/status/leader", "dc=dc3", TOKEN)]


def test_a_secondary_whose_replication_never_synced_fails(federation):
    rows = rows_by_check(v.consul_rows(federation["dc2"], federation["dc1"], ["dc1", "dc2"], TOKEN))
    assert rows["ACL replication running"] == (
        v.FAILED, "never synced: no replication round from dc1 has succeeded yet (LastSuccess is zero)")
    assert rows[v.PROXY_DEFAULTS_REPLICATED][0] == v.PASSED
    assert rows["WAN members alive"] == (v.FAILED, "consul-server-0.dc3 (dc3) failed")
    assert rows[v.RPC_TO_EVERY_DATACENTER] == (v.PASSED, "leader of dc1 answered")


def test_a_wrong_token_is_consuls_own_refusal_on_every_row(federation):
    dc1 = federation["dc1"]
    rows = v.consul_rows(dc1, dc1, ["dc1", "dc2"], "not-the-token")
    assert rows and all(r.status == v.FAILED for r in rows), rows
    assert {r.detail for r in rows if r.check != v.RPC_TO_EVERY_DATACENTER} == {"Consul answered 403: ACL not found"}
    assert [r.detail for r in rows if r.check == v.RPC_TO_EVERY_DATACENTER] == ["dc2: ACL not found"]


def test_a_consul_that_does_not_answer_in_time_is_not_checked(federation):
    dc1 = federation["dc1"]
    Consul.slow = {("/v1/catalog/datacenters", ""), ("/v1/status/leader", "dc=dc2")}
    rows = rows_by_check(v.consul_rows(dc1, dc1, ["dc1", "dc2"], TOKEN))
    assert rows["catalog has every datacenter"][0] == v.NOT_CHECKED
    assert rows["catalog has every datacenter"][1].startswith("Consul not reachable")
    assert rows[v.RPC_TO_EVERY_DATACENTER][0] == v.NOT_CHECKED
    assert "asking for the leader of dc2 (no answer within 0.3 s" in rows[v.RPC_TO_EVERY_DATACENTER][1]


def test_a_proxy_error_is_not_blamed_on_consul(federation):
    """The API server's own 404 (a Service that does not exist: another globalName) is "not
    checked", never a Consul verdict."""
    dc1 = federation["dc1"]
    other = access.Datacenter("dc1", parse_config({"role": "primary", "datacenter": "dc1", "kubeContext": "ctx-dc1",
                                              "kubeconfig": dc1.cfg.kubeconfig, "globalName": "other",
                                              "gossipEncryption": False}))
    rows = v.consul_rows(other, other, ["dc1", "dc2"], TOKEN)
    assert rows and all(r.status == v.NOT_CHECKED for r in rows), rows
    assert rows[0].detail.startswith("Consul not reachable through the API server's service proxy (404 Not Found: "
                                     "no route /api/v1/namespaces/consul/services/https:other-server:8501/proxy")


def test_an_answer_not_in_consuls_format_is_not_checked(federation):
    dc1 = federation["dc1"]
    Consul.garbled = {("/v1/agent/members", "wan=1")}
    rows = rows_by_check(v.consul_rows(dc1, dc1, ["dc1", "dc2"], TOKEN))
    assert rows["WAN members alive"][0] == v.NOT_CHECKED
    assert rows["WAN members alive"][1].startswith("could not read Consul's answer: members: not JSON")


def test_the_bootstrap_token_comes_from_the_primarys_secret_or_the_rows_say_why_not(federation):
    dc1 = federation["dc1"]
    assert access.bootstrap_token(dc1) == (None, "no bootstrap ACL token in consul/consul-bootstrap-acl-token")
    Consul.secrets = {"consul-bootstrap-acl-token": {"token": base64.b64encode(TOKEN.encode()).decode()}}
    assert access.bootstrap_token(dc1) == (TOKEN, "")


def test_without_the_bootstrap_token_every_consul_row_says_so(federation, monkeypatch):
    """collect() over both datacenters (stack settings given, clusters over HTTP): no token, no
    Consul request, and no Consul row passes."""
    configs = {name: dc.cfg for name, dc in federation.items()}
    monkeypatch.setattr(access, "load_config", lambda runner, name: configs[name])
    plan = stack_plan.Plan("consul-federation", "dc1", ("dc2",), frozenset({"dc1", "dc2"}))
    every = v.collect(plan, runner=None, kubernetes_only=False)
    tls = [r for r in every if r.check == v.TLS_TRUST]  # from Secrets, not Consul: no token needed
    assert [(r.datacenter, r.source, r.status) for r in tls] == [("dc1", v.KUBERNETES, v.NOT_CHECKED),
                                                                  ("dc2", v.KUBERNETES, v.NOT_CHECKED)]
    assert tls[0].detail == "no consul/consul-ca-cert or consul/consul-server-cert (the chart's tls-init has not run)"
    rows = [r for r in every if r.source == v.CONSUL]
    assert rows and {(r.status, r.detail) for r in rows} == {
        (v.NOT_CHECKED, "no bootstrap ACL token in consul/consul-bootstrap-acl-token")}
    assert not [path for _, path, _, _ in Consul.requests if path.startswith(PROXY)]
    Consul.secrets = {"consul-bootstrap-acl-token": {"token": base64.b64encode(TOKEN.encode()).decode()}}
    rows = [r for r in v.collect(plan, runner=None, kubernetes_only=False) if r.source == v.CONSUL]
    assert ("dc2", "ACL replication running", v.FAILED) in {(r.datacenter, r.check, r.status) for r in rows}
