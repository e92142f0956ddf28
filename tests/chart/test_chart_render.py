"""The program's Helm values, rendered by the real Consul chart with the real helm binary.

The values come from the same functions the Release uses (via tests/stack_matrix.py); helm and
the chart come from tools/ensure.sh. Mocks only show that we pass the values we meant to pass;
this shows that the chart turns them into the objects a federation needs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any, Optional

import pytest
import yaml

from components import ConfigError, parse_config
from components.helm_values import merge_user_values
from components.values_guard import chart_keys, leaf_paths, shipped_versions, unknown_paths
from pulumi_mocks import ROOT
from stack_matrix import CASES, Case, case, primary
from real_tools import consul_charts, ensure

pytestmark = pytest.mark.chart

CHART_VERSIONS = shipped_versions()


class Render:
    """The objects of one `helm template`, looked up by kind and name."""

    def __init__(self, docs: list[dict[str, Any]]):
        self.docs = docs

    def find(self, kind: str, name: str) -> Optional[dict[str, Any]]:
        return next((d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        assert found is not None, f"{kind} {name} not rendered; have {[(d['kind'], d['metadata']['name']) for d in self.docs]}"
        return found

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]


def helm_template(chart_dir: str, values: dict[str, Any], release: str = "consul",
                  namespace: str = "consul") -> subprocess.CompletedProcess:
    """Values go in on stdin: nothing is written to disk."""
    return subprocess.run([ensure("chart")["HELM"], "template", release, chart_dir,
                           "--namespace", namespace, "-f", "-"],
                          input=json.dumps(values), capture_output=True, text=True, timeout=120)


_renders: dict[tuple[str, str], Render] = {}


def render(c: Case, version: str) -> Render:
    key = (c.id, version)
    if key not in _renders:
        cfg = c.parsed()
        done = helm_template(consul_charts()[version], c.chart_values(), cfg.release_name, cfg.namespace)
        assert done.returncode == 0, f"helm template failed for {c.id} on chart {version}:\n{done.stderr}"
        _renders[key] = Render([d for d in yaml.safe_load_all(done.stdout) if d])
    return _renders[key]


def matrix():
    return [pytest.param(c.on_chart(v), v, id=f"{c.id}@{v}") for v in CHART_VERSIONS for c in CASES]


def secret_volumes(pod_spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v["secret"] for v in pod_spec.get("volumes") or [] if "secret" in v}


def secret_refs(pod_spec: dict[str, Any]) -> set[tuple[str, str]]:
    """(secret, key) pairs a pod reads, through env secretKeyRef or secret volume items."""
    refs = set()
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
    for secret in secret_volumes(pod_spec).values():
        for item in secret.get("items") or [{"key": "*"}]:
            refs.add((secret["secretName"], item["key"]))
    return refs


def script(container: dict[str, Any]) -> str:
    return "\n".join(container.get("command", []) + container.get("args", []))


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def test_charts_in_the_cache_are_the_pinned_ones():
    assert sorted(consul_charts()) == sorted(CHART_VERSIONS), "run tools/update-chart-keys.sh"


@pytest.mark.parametrize("version", CHART_VERSIONS)
def test_shipped_key_lists_match_the_charts(version):
    generated = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "gen_chart_keys.py"), consul_charts()[version]],
        capture_output=True, text=True, check=True).stdout
    with open(os.path.join(ROOT, "components", "chart_keys", f"consul-{version}.txt"), encoding="utf-8") as handle:
        assert handle.read() == generated, "stale key list: run tools/update-chart-keys.sh"


@pytest.mark.parametrize("c,version", matrix())
def test_every_value_the_program_sets_exists_in_the_chart(c, version):
    assert unknown_paths(c.chart_values(), version) == []
    keys, free = chart_keys(version)
    assert all(p in keys for p in leaf_paths(c.chart_values()))


@pytest.mark.parametrize("c,version", matrix())
def test_federation_secret_job_only_in_the_primary(c, version):
    r = render(c, version)
    cfg = c.parsed()
    job = r.find("Job", f"{cfg.resource_prefix}-create-federation-secret")
    if not cfg.is_primary:
        assert job is None
        return
    assert job is not None
    hooks = job["metadata"]["annotations"]["helm.sh/hook"]
    assert "post-install" in hooks and "post-upgrade" in hooks
    command = script(pod(job)["containers"][0])
    assert "create-federation-secret" in command
    assert f'-resource-prefix="{cfg.resource_prefix}"' in command
    assert ("-export-replication-token=true" in command) == cfg.acls
    if cfg.gossip_encryption:
        assert (cfg.gossip_secret_name, "key") in secret_refs(pod(job))
        assert "-gossip-key-file=" in command
    else:
        assert "-gossip-key-file" not in command


@pytest.mark.parametrize("c,version", matrix())
def test_server_federation_config(c, version):
    r = render(c, version)
    cfg = c.parsed()
    server = pod(r.get("StatefulSet", f"{cfg.resource_prefix}-server"))
    command = script(server["containers"][0])
    secret = cfg.federation_secret_name
    config_maps = r.of_kind("ConfigMap")
    federation_json = [json.loads(v) for cm in config_maps for k, v in (cm.get("data") or {}).items()
                       if k == "federation-config.json"]
    if cfg.is_primary:
        assert f"/consul/userconfig/{secret}" not in command
        assert all(f.get("primary_datacenter") in ("", cfg.datacenter, None) for f in federation_json)
        return
    volume = secret_volumes(server)[f"userconfig-{secret}"]
    assert volume == {"secretName": secret, "items": [{"key": "serverConfigJSON", "path": "config.json"}]}
    mounts = {m["name"]: m["mountPath"] for m in server["containers"][0]["volumeMounts"]}
    assert mounts[f"userconfig-{secret}"] == f"/consul/userconfig/{secret}"
    assert f"-config-dir=/consul/userconfig/{secret}" in command  # loaded, not just mounted
    # Charts from 0.42 also name the primary in their own federation config; earlier ones take it
    # from config.json above (serverConfigJSON carries primary_datacenter).
    assert all(f.get("primary_datacenter") == c.primary["datacenter"] for f in federation_json)


@pytest.mark.parametrize("c,version", matrix())
def test_secrets_come_from_the_names_the_program_made(c, version):
    r = render(c, version)
    cfg = c.parsed()
    p = cfg.resource_prefix
    server = pod(r.get("StatefulSet", f"{p}-server"))
    tls_init = pod(r.get("Job", f"{p}-tls-init"))
    if cfg.is_primary:
        gossip = (cfg.gossip_secret_name, "key")
        ca_cert, ca_key = (f"{p}-ca-cert", "tls.crt"), (f"{p}-ca-key", "tls.key")
    else:
        fed = cfg.federation_secret_name
        gossip, ca_cert, ca_key = (fed, "gossipEncryptionKey"), (fed, "caCert"), (fed, "caKey")
        # The secondary signs its server certificates with the primary's CA (cert and key).
        assert {ca_cert, ca_key} <= secret_refs(tls_init)
    refs = secret_refs(server)
    assert (gossip in refs) == cfg.gossip_encryption
    assert ca_cert in refs
    acl_init = r.find("Job", f"{p}-server-acl-init")
    assert (acl_init is not None) == cfg.acls
    if cfg.acls and not cfg.is_primary:
        token = (cfg.federation_secret_name, "replicationToken")
        assert token in refs and token in secret_refs(pod(acl_init))
    # Every secret a pod reads is one the chart makes itself or one this program provides.
    provided = {cfg.gossip_secret_name} if cfg.is_primary else {cfg.federation_secret_name}
    for obj in r.of_kind("StatefulSet") + r.of_kind("Deployment") + r.of_kind("DaemonSet") + r.of_kind("Job"):
        for name, _ in secret_refs(pod(obj)):
            assert name.startswith(f"{p}-") or name in provided, (obj["metadata"]["name"], name)


@pytest.mark.parametrize("c,version", matrix())
def test_mesh_gateway_service_and_wan_address(c, version):
    r = render(c, version)
    cfg = c.parsed()
    gw = cfg.mesh_gateway
    service = r.get("Service", f"{cfg.resource_prefix}-mesh-gateway")["spec"]
    assert service["type"] == gw.service_type
    (port,) = service["ports"]
    assert port["port"] == 443
    assert port.get("nodePort") == gw.node_port
    deployment = r.get("Deployment", f"{cfg.resource_prefix}-mesh-gateway")
    assert deployment["spec"]["replicas"] == gw.replicas
    spec = pod(deployment)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    text = "\n".join([script(c) for c in spec.get("containers", []) + spec.get("initContainers", [])]
                     + [f"{k}: {v}" for k, v in annotations.items()])
    expected_port = gw.node_port if gw.service_type == "NodePort" else 443
    if gw.wan_address:
        assert re.search(rf'WAN_ADDR="{re.escape(gw.wan_address)}"|gateway-wan-address-static: {re.escape(gw.wan_address)}', text)
    elif gw.service_type == "NodePort":  # source Service with a NodePort: the node's IP
        assert 'WAN_ADDR="${HOST_IP}"' in text or "gateway-wan-address-source: Service" in text
    else:  # source Service: the load balancer's or the cluster IP
        assert "service-address" in text or "gateway-wan-address-source: Service" in text
    assert re.search(rf'WAN_PORT="{expected_port}"|gateway-wan-port: {expected_port}\b', text), text


@pytest.mark.parametrize("version", CHART_VERSIONS)
@pytest.mark.parametrize("pair", ["dc1", "acls-off-dc1", "gossip-off-dc1", "global-name-dc1"])
def test_acl_and_tls_agree_across_datacenters(pair, version):
    base = pair[:-len("dc1")]
    renders = [render(case(base + dc).on_chart(version), version) for dc in ("dc1", "dc2")]
    prefixes = [case(base + dc).parsed().resource_prefix for dc in ("dc1", "dc2")]

    def acl_enabled(r, p):
        acl = json.loads(r.get("ConfigMap", f"{p}-server-config")["data"].get("acl-config.json", "{}"))
        return acl.get("acl", {}).get("enabled", False)

    def tls_verify(r, p):
        return "verify_outgoing = true" in script(pod(r.get("StatefulSet", f"{p}-server"))["containers"][0])

    assert acl_enabled(*zip_one(renders, prefixes, 0)) == acl_enabled(*zip_one(renders, prefixes, 1))
    assert tls_verify(*zip_one(renders, prefixes, 0)) and tls_verify(*zip_one(renders, prefixes, 1))
    assert acl_enabled(renders[0], prefixes[0]) == case(base + "dc1").parsed().acls


def zip_one(renders, prefixes, i):
    return renders[i], prefixes[i]


# --- Chart `fail`s the program could reach: its own validation refuses them first ------------

def _naive(raw: dict[str, Any], version: str) -> dict[str, Any]:
    """The values a program without our validation would hand to the chart for `raw`."""
    values = Case("naive", {**primary(), "chartVersion": version}).chart_values()
    gateway = raw.get("meshGateway")
    if gateway:
        values["meshGateway"]["service"] = {"type": gateway["serviceType"], "port": 443}
    return merge_user_values(values, raw.get("helmValues", {}))


# (what a user might configure, the key our error names)
REACHABLE_FAILS = [
    (primary(meshGateway={"serviceType": "NodePort"}), "meshGateway.nodePort"),
    (primary(helmValues={"global": {"tls": {"enabled": False}}}), "helmValues.global.tls.enabled"),
    (primary(helmValues={"global": {"federation": {"enabled": False}}}), "helmValues.global.federation.enabled"),
    (primary(helmValues={"connectInject": {"enabled": False}}), "helmValues.connectInject.enabled"),
    (primary(helmValues={"global": {"acls": {"createReplicationToken": False}}}),
     "helmValues.global.acls.createReplicationToken"),
]


@pytest.mark.parametrize("version", CHART_VERSIONS)
@pytest.mark.parametrize("raw,key", REACHABLE_FAILS, ids=[k for _, k in REACHABLE_FAILS])
def test_program_refuses_what_the_chart_would_fail(raw, key, version):
    """Without our validation the chart fails the render; our validation refuses the stack
    first and names the setting."""
    done = helm_template(consul_charts()[version], _naive(raw, version))
    assert done.returncode != 0 and "execution error" in done.stderr, done.stderr
    with pytest.raises(ConfigError) as info:
        parse_config({**raw, "chartVersion": version})
    assert any(f"consul-federation:{key}" in e for e in info.value.errors), info.value.errors
