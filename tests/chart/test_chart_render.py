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

from components.config import ConfigError, parse_config
from components.helm_values import merge_user_values
from components.values_guard import chart_keys, leaf_paths, shipped_versions, unknown_paths
from pulumi_mocks import ROOT
from stack_matrix import AUTH_HOST, CASES, Case, case, primary
from localcluster.tools import consul_charts, ensure

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
        assert federation_json, "no federation-config.json rendered"
        assert all(f.get("primary_datacenter") == "" for f in federation_json)  # consul-k8s#1873
        return
    volume = secret_volumes(server)[f"userconfig-{secret}"]
    assert volume == {"secretName": secret, "items": [{"key": "serverConfigJSON", "path": "config.json"}]}
    mounts = {m["name"]: m["mountPath"] for m in server["containers"][0]["volumeMounts"]}
    assert mounts[f"userconfig-{secret}"] == f"/consul/userconfig/{secret}"
    assert f"-config-dir=/consul/userconfig/{secret}" in command  # loaded, not just mounted
    assert federation_json, "no federation-config.json rendered"
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
    # The endpoints controller registers the gateway in Consul with the WAN address these
    # annotations describe; create-federation-secret then copies it into primary_gateways.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    wan = {k.rsplit("/", 1)[1]: v for k, v in annotations.items() if "gateway-wan" in k}
    expected_port = gw.node_port if gw.service_type == "NodePort" else 443
    assert wan == {
        "gateway-wan-address-source": "Static" if gw.wan_address else "Service",
        "gateway-wan-address-static": gw.wan_address or "",
        "gateway-wan-port": str(expected_port),
    }


@pytest.mark.parametrize("c,version", matrix())
def test_tls_init_signs_with_the_federation_ca_in_secondaries(c, version):
    """The primary's tls-init makes the CA; a secondary's signs its server certificate with the
    primary's CA cert and key from the federation secret (so the datacenters trust each other)."""
    r = render(c, version)
    cfg = c.parsed()
    job = r.get("Job", f"{cfg.resource_prefix}-tls-init")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    command = script(pod(job)["containers"][0])
    assert "consul-k8s-control-plane tls-init" in command
    assert f"-dc={cfg.datacenter}" in command
    assert f"-name-prefix={cfg.resource_prefix}" in command
    assert f'-additional-dnsname="*.server.{cfg.datacenter}.consul"' in command
    if cfg.is_primary:
        assert "-ca=" not in command and "-key=" not in command
        assert secret_refs(pod(job)) == set()
        return
    mounts = {m["name"]: m["mountPath"] for m in pod(job)["containers"][0]["volumeMounts"]}
    volumes = secret_volumes(pod(job))
    assert "-ca=/consul/tls/ca/cert/tls.crt" in command and "-key=/consul/tls/ca/key/tls.key" in command
    by_path = {mounts[name]: volume for name, volume in volumes.items()}
    fed = cfg.federation_secret_name
    assert by_path["/consul/tls/ca/cert"] == {"secretName": fed, "items": [{"key": "caCert", "path": "tls.crt"}]}
    assert by_path["/consul/tls/ca/key"] == {"secretName": fed, "items": [{"key": "caKey", "path": "tls.key"}]}


@pytest.mark.parametrize("c,version", [p for p in matrix() if p.values[0].config.get("acls", True)])
def test_server_acl_init_arguments(c, version):
    """The primary creates the replication token; a secondary replicates with it and registers
    an auth method in the primary that calls this cluster's API at k8sAuthMethodHost."""
    r = render(c, version)
    cfg = c.parsed()
    job = r.get("Job", f"{cfg.resource_prefix}-server-acl-init")
    command = script(pod(job)["containers"][0])
    flags = set(re.findall(r"(-[a-z-]+)(?:=(\S*))?", command))
    assert ("-federation", "true") in flags
    assert ("-resource-prefix", "${CONSUL_FULLNAME}") in flags and f'CONSUL_FULLNAME="{cfg.resource_prefix}"' in command
    env = {e["name"]: e.get("value") for e in pod(job)["containers"][0]["env"]}
    assert env["CONSUL_DATACENTER"] == cfg.datacenter
    if cfg.is_primary:
        assert ("-create-acl-replication-token", "true") in flags
        assert not [f for f in flags if f[0] in ("-auth-method-host", "-acl-replication-token-file")]
        return
    assert ("-auth-method-host", AUTH_HOST) in flags
    assert ("-acl-replication-token-file", "/consul/acl/tokens/acl-replication-token") in flags
    assert not [f for f in flags if f[0] == "-create-acl-replication-token"]
    mounts = {m["name"]: m["mountPath"] for m in pod(job)["containers"][0]["volumeMounts"]}
    volumes = secret_volumes(pod(job))
    by_path = {mounts[name]: volume for name, volume in volumes.items()}
    assert by_path["/consul/acl/tokens"] == {
        "secretName": cfg.federation_secret_name,
        "items": [{"key": "replicationToken", "path": "acl-replication-token"}]}


@pytest.mark.parametrize("c,version", matrix())
def test_proxy_defaults_admission_is_served_by_the_connect_injector(c, version):
    """ProxyDefaults is admitted only by the connect injector's webhook (failurePolicy Fail), which
    is why the Release must be ready before the program creates ProxyDefaults; the webhook
    cert manager keeps the CA bundle of every webhook configuration it names (the validating one
    exists from chart 1.3 on; chart 1.2.1 renders none)."""
    r = render(c, version)
    cfg = c.parsed()
    p, ns = cfg.resource_prefix, cfg.namespace
    mutating = r.get("MutatingWebhookConfiguration", f"{p}-connect-injector")
    configurations = [mutating]
    if version == "1.2.1":
        assert r.find("ValidatingWebhookConfiguration", f"{p}-connect-injector") is None
    else:
        validating = r.get("ValidatingWebhookConfiguration", f"{p}-connect-injector")
        assert validating["webhooks"], "the validating configuration has no webhooks"
        assert {w["clientConfig"]["service"]["name"] for w in validating["webhooks"]} == {f"{p}-connect-injector"}
        configurations.append(validating)
    hooks = [w for w in mutating["webhooks"] if any("proxydefaults" in rule["resources"] for rule in w["rules"])]
    assert len(hooks) == 1, mutating["webhooks"]
    (hook,) = hooks
    assert hook["failurePolicy"] == "Fail"
    assert sorted(op for rule in hook["rules"] for op in rule["operations"]) == ["CREATE", "UPDATE"]
    assert hook["clientConfig"]["service"] == {"name": f"{p}-connect-injector", "namespace": ns,
                                               "path": "/mutate-v1alpha1-proxydefaults"}
    service = r.get("Service", f"{p}-connect-injector")
    injector = r.get("Deployment", f"{p}-connect-injector")
    labels = injector["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (config,) = json.loads(r.get("ConfigMap", f"{p}-webhook-cert-manager-config")["data"]["webhook-config.json"])
    assert {config["name"]} == {c["metadata"]["name"] for c in configurations}
    assert f"{p}-connect-injector.{ns}.svc" in config["tlsAutoHosts"]


def server_config(r: Render, prefix: str) -> dict[str, Any]:
    """The server agent's JSON config files, merged (the chart renders one file per concern)."""
    data = r.get("ConfigMap", f"{prefix}-server-config")["data"]
    merged: dict[str, Any] = {}
    for name in ("acl-config.json", "tls-config.json", "federation-config.json"):
        merged.update(json.loads(data.get(name, "{}")))
    return merged


@pytest.mark.parametrize("version", CHART_VERSIONS)
@pytest.mark.parametrize("pair", ["", "acls-off-", "gossip-off-", "global-name-"])
def test_acl_and_tls_agree_across_datacenters(pair, version):
    """Both datacenters of a pair run their servers with the same ACL setting, verified TLS and
    mesh-gateway WAN federation: Consul refuses to federate otherwise."""
    configs = []
    for dc in ("dc1", "dc2"):
        c = case(pair + dc).on_chart(version)
        configs.append(server_config(render(c, version), c.parsed().resource_prefix))
    expected_acls = case(pair + "dc1").parsed().acls
    for config in configs:
        assert config.get("acl", {}).get("enabled", False) == expected_acls
        assert config["tls"]["defaults"]["verify_outgoing"] is True
        assert config["tls"]["internal_rpc"]["verify_server_hostname"] is True
        assert config["connect"]["enable_mesh_gateway_wan_federation"] is True


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


@pytest.mark.parametrize("version", CHART_VERSIONS)
def test_a_tls_ca_stage_annotates_the_pod_templates_of_every_ca_reader(version):
    """What rotate-tls-ca relies on to restart the readers of the CA: the stage annotation lands
    on the pod templates of the servers, the mesh gateways and the connect injector of the primary
    and of a secondary, next to a user's own annotation, with the chart's config checksum kept."""
    from components.helm_values import primary_values, secondary_values
    from stack_matrix import secondary

    user = {"server": {"annotations": "team: payments"}}
    primary_cfg = parse_config(primary(chartVersion=version, tlsCaStage="4", helmValues=user))
    secondary_cfg = parse_config(secondary(chartVersion=version, helmValues=user))
    for values in (primary_values(primary_cfg), secondary_values(secondary_cfg, "dc1", AUTH_HOST, 4)):
        done = helm_template(consul_charts()[version], values)
        assert done.returncode == 0, done.stderr
        r = Render([d for d in yaml.safe_load_all(done.stdout) if d])
        readers = [r.get("StatefulSet", "consul-server"), r.get("Deployment", "consul-mesh-gateway"),
                   r.get("Deployment", "consul-connect-injector")]
        annotations = [obj["spec"]["template"]["metadata"]["annotations"] for obj in readers]
        assert [a.get("consul-federation/tls-ca-stage") for a in annotations] == ["4", "4", "4"]
        assert annotations[0]["team"] == "payments" and "consul.hashicorp.com/config-checksum" in annotations[0]
