"""The whole program (__main__.py) per stack configuration, under Pulumi mocks.

Values are collected while the program runs and asserted after it finished, with every output
resolved; nothing is asserted inside an apply callback.
"""

from __future__ import annotations

import base64

import pytest

from components.config import ConfigError
from components.helm_values import primary_values
from pulumi_mocks import (GOSSIP_KEY, Run, federation_data, primary_outputs, run_program,
                          ProgramFailed)
from stack_matrix import AUTH_HOST, CASES, PRIMARY_REF, Case, case, primary, secondary

pytestmark = pytest.mark.unit

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
PROVIDER = "pulumi:providers:kubernetes"
PROXY_DEFAULTS = "kubernetes:consul.hashicorp.com/v1alpha1:ProxyDefaults"
STACK_REF = "pulumi:pulumi:StackReference"
RANDOM = "random:index/randomPassword:RandomPassword"


def numbers_as_ints(node):
    """Mocks carry numbers as floats (protobuf Struct); compare them as the ints we wrote."""
    if isinstance(node, dict):
        return {k: numbers_as_ints(v) for k, v in node.items()}
    if isinstance(node, list):
        return [numbers_as_ints(v) for v in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node


def run_case(c: Case, **kwargs) -> Run:
    stacks = kwargs.pop("stacks", None)
    if c.role == "secondary" and stacks is None:
        p = c.primary
        stacks = {PRIMARY_REF: primary_outputs(
            p["datacenter"], p.get("acls", True), p.get("gossipEncryption", True))}
    federation = None
    if c.role == "primary":
        cfg = c.parsed()
        federation = {f"{cfg.namespace}/{cfg.federation_secret_name}":
                      federation_data(cfg.datacenter, cfg.acls, cfg.gossip_encryption)}
    return run_program(c.config, c.stack, stacks=stacks, federation=federation, **kwargs)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def ran(request):
    return request.param, run_case(request.param)


def test_component_and_children(ran):
    c, run = ran
    kind = "PrimaryDatacenter" if c.role == "primary" else "SecondaryDatacenter"
    component = run.one(f"consul-federation:index:{kind}")
    assert component.name == c.stack and not component.custom
    for reg in run.registrations:
        if reg is component:
            continue
        assert reg.parent, f"{reg.type} {reg.name} has no parent"
        # Every resource lives under the datacenter component (directly or via GossipEncryptionKey).
        parent = run.by_urn(reg.parent)
        assert parent is component or run.by_urn(parent.parent) is component, reg.name


def test_every_kubernetes_resource_uses_this_clusters_provider(ran):
    c, run = ran
    provider = run.one(PROVIDER)
    assert provider.inputs["context"] == c.config["kubeContext"]
    assert provider.inputs["kubeconfig"]  # strict mode needs an explicit kubeconfig too
    k8s = [r for r in run.registrations if r.type.startswith("kubernetes:")]
    assert {r.type for r in k8s} >= {NAMESPACE, SECRET, RELEASE, PROXY_DEFAULTS}
    for reg in k8s:
        assert run.provider_urn(reg) == provider.urn, f"{reg.name} uses {reg.provider!r}"


def test_release_gets_the_values_function_output(ran):
    c, run = ran
    release = run.one(RELEASE)
    cfg = c.parsed()
    assert numbers_as_ints(release.inputs["values"]) == c.chart_values()
    assert release.inputs["name"] == cfg.release_name
    assert release.inputs["namespace"] == cfg.namespace
    assert release.inputs["chart"] == "consul"
    assert release.inputs["version"] == "2.0.3"
    assert release.inputs["repositoryOpts"] == {"repo": "https://helm.releases.hashicorp.com"}
    assert "skipAwait" not in release.inputs  # Helm waits: ProxyDefaults needs a ready injector
    assert release.inputs["timeout"] == 900
    assert not release.secret_paths(), "values must stay reviewable in pulumi preview --diff"


def test_ordering(ran):
    c, run = ran
    release = run.one(RELEASE)
    names = lambda urns: {run.by_urn(u).name for u in urns}  # noqa: E731
    deps = names(release.dependencies)
    assert f"{c.stack}-namespace" in deps
    pd = run.one(PROXY_DEFAULTS)
    assert release.name in names(pd.dependencies)
    if c.role == "primary":
        if c.config.get("gossipEncryption", True):
            assert f"{c.stack}-gossip-key-secret" in deps
        read = next(r for r in run.all(SECRET) if r.read_id)
        assert release.name in names(read.dependencies)
    else:
        assert f"{c.stack}-federation-secret" in deps
        # The primary's stack is read before anything else is registered.
        order = [r.type for r in run.registrations]
        assert order.index(STACK_REF) < min(order.index(t) for t in (PROVIDER, NAMESPACE, SECRET, RELEASE))


def test_proxy_defaults(ran):
    c, run = ran
    pd = run.one(PROXY_DEFAULTS)
    assert pd.inputs["apiVersion"] == "consul.hashicorp.com/v1alpha1"
    assert pd.inputs["kind"] == "ProxyDefaults"
    assert pd.inputs["metadata"] == {"name": "global", "namespace": c.parsed().namespace}
    assert pd.inputs["spec"] == {"meshGateway": {"mode": c.config.get("meshGateway", {}).get("mode", "local")}}


def test_stack_outputs(ran):
    c, run = ran
    cfg = c.parsed()
    expected = {
        "datacenter": cfg.datacenter, "role": cfg.role, "namespace": cfg.namespace,
        "chartVersion": "2.0.3", "aclsEnabled": cfg.acls, "gossipEncryptionEnabled": cfg.gossip_encryption,
    }
    if c.role == "primary":
        expected["federationSecret"] = federation_data(cfg.datacenter, cfg.acls, cfg.gossip_encryption)
        assert run.secret_outputs == {"federationSecret"}
    else:
        expected["primaryDatacenter"] = "dc1"
        assert run.secret_outputs == set()
    assert run.outputs == expected


def test_gossip_key_secret(ran):
    c, run = ran
    gossip_on = c.config.get("gossipEncryption", True)
    created = [r for r in run.all(SECRET) if not r.read_id]
    if c.role == "secondary":
        assert not run.all(RANDOM)
        return
    if not gossip_on:
        assert not run.all(RANDOM) and not created
        return
    assert run.one(RANDOM).inputs == {"length": 64, "special": False}
    secret = run.one("consul-federation:index:GossipEncryptionKey")
    (gossip,) = [r for r in created if r.parent == secret.urn]
    cfg = c.parsed()
    assert gossip.inputs["metadata"]["name"] == cfg.gossip_secret_name
    assert gossip.inputs["stringData"] == {"key": GOSSIP_KEY}
    assert gossip.secret_paths() == {"stringData"}


def test_federation_secret_flow(ran):
    c, run = ran
    cfg = c.parsed()
    if c.role == "primary":
        (read,) = [r for r in run.all(SECRET) if r.read_id]
        assert read.read_id == f"{cfg.namespace}/{cfg.federation_secret_name}"
        return
    (copy,) = run.all(SECRET)
    p = c.primary
    exported = primary_outputs(p["datacenter"], p.get("acls", True), p.get("gossipEncryption", True))
    assert copy.inputs["data"] == exported["federationSecret"]  # byte for byte, still base64
    assert copy.secret_paths() == {"data"}
    assert copy.inputs["metadata"]["name"] == cfg.federation_secret_name
    assert copy.inputs["metadata"]["namespace"] == cfg.namespace


# --- Cross-stack checks -----------------------------------------------------------------------

def secondary_failure(config=None, outputs=None, stacks=None, config_error=True) -> ProgramFailed:
    stacks = stacks if stacks is not None else {PRIMARY_REF: outputs if outputs is not None else primary_outputs()}
    with pytest.raises(ProgramFailed) as info:
        run_program(config or secondary(), "dc2", stacks=stacks)
    assert isinstance(info.value.error, ConfigError) or not config_error
    # Nothing but the component and the stack reference was registered.
    assert set(info.value.types()) <= {"consul-federation:index:SecondaryDatacenter", STACK_REF}
    return info.value


def test_primary_not_deployed():
    failure = secondary_failure(outputs={})
    assert "pulumi up -s dc1" in str(failure.error) and "deploy the primary first" in str(failure.error)


def test_primary_stack_unknown():
    """The engine's own read error wins the race here; it names the stack, and nothing else
    was registered."""
    failure = secondary_failure(stacks={}, config_error=False)
    assert "organization/consul-federation/dc1" in str(failure.error)


def test_datacenter_must_differ_from_primary():
    failure = secondary_failure(secondary("dc1"))
    assert failure.error.errors == [
        "consul-federation:datacenter: 'dc1' is the primary's datacenter name; every datacenter "
        "of a federation needs its own name"]


def test_acls_and_gossip_must_match_primary():
    errors = secondary_failure(outputs=primary_outputs(acls=False, gossip=False)).error.errors
    assert len(errors) == 2
    assert errors[0].startswith("consul-federation:acls: True differs from the primary 'dc1' (False)")
    assert errors[1].startswith("consul-federation:gossipEncryption: True differs from the primary 'dc1' (False)")


def test_federation_secret_missing_keys():
    outputs = primary_outputs()
    del outputs["federationSecret"]["replicationToken"]
    error = secondary_failure(outputs=outputs).error
    assert "lacks replicationToken" in str(error)
    assert "8f7c2a7e" not in str(error)  # no secret material in messages


def test_chart_version_skew_is_reported():
    run = run_case(case("dc2"), stacks={PRIMARY_REF: primary_outputs(chart_version="1.9.11")})
    assert any("chart version skew" in w and "1.9.11" in w for w in run.warnings)
    assert not any("skew" in w for w in run_case(case("dc2")).warnings)


def test_config_errors_register_nothing():
    with pytest.raises(ProgramFailed) as info:
        run_program({"role": "primary", "datacenter": "Bad_DC", "kubeContext": "x",
                     "meshGateway": {"serviceType": "NodePort"}})
    assert isinstance(info.value.error, ConfigError)
    assert len(info.value.error.errors) == 2
    assert info.value.registrations == []


# --- k8sAuthMethodHost ------------------------------------------------------------------------

def kubeconfig(tmp_path, server):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""
apiVersion: v1
kind: Config
clusters:
- name: c2
  cluster: {{server: "{server}"}}
contexts:
- name: dc2
  context: {{cluster: c2, user: u}}
users:
- name: u
  user: {{token: t}}
""")
    return str(path)


def auth_host_run(config, endpoints=None, env=None) -> tuple[Run, object]:
    run = run_program(config, "dc2", stacks={PRIMARY_REF: primary_outputs()}, endpoints=endpoints, env=env)
    values = run.one(RELEASE).inputs["values"]
    return run, values["global"]["federation"].get("k8sAuthMethodHost")


def without_host(**extra):
    config = secondary(**extra)
    del config["k8sAuthMethodHost"]
    return config


def test_auth_host_from_kubeconfig(tmp_path):
    path = kubeconfig(tmp_path, "https://dc2.example.com:6443")
    run, host = auth_host_run(without_host(kubeconfig=path))
    assert host == "https://dc2.example.com:6443"
    assert not run.all("kubernetes:core/v1:Endpoints")
    assert run.one(PROVIDER).inputs["kubeconfig"] == path


def test_auth_host_from_kubeconfig_env(tmp_path):
    path = kubeconfig(tmp_path, "https://198.51.100.7")
    run, host = auth_host_run(without_host(), env={"KUBECONFIG": f"{tmp_path}/none:{path}"})
    assert host == "https://198.51.100.7"
    assert run.one(PROVIDER).inputs["kubeconfig"] == path  # the file that defines the context


@pytest.mark.parametrize("server", ["https://127.0.0.1:44123", "https://localhost:6443", "https://[::1]:6443"])
def test_auth_host_loopback_reads_endpoints(tmp_path, server):
    endpoints = [{"addresses": [{"ip": "172.18.0.3"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    run, host = auth_host_run(without_host(kubeconfig=kubeconfig(tmp_path, server)), endpoints=endpoints)
    assert host == "https://172.18.0.3:6443"
    read = run.one("kubernetes:core/v1:Endpoints")
    assert read.read_id == "default/kubernetes"
    assert run.provider_urn(read) == run.one(PROVIDER).urn


def test_auth_host_configured_wins(tmp_path):
    config = secondary(kubeconfig=kubeconfig(tmp_path, "https://dc2.example.com:6443"))
    run, host = auth_host_run(config)
    assert host == AUTH_HOST and not run.all("kubernetes:core/v1:Endpoints")


def test_auth_host_unknown_warns(tmp_path):
    run, host = auth_host_run(without_host(kubeconfig=kubeconfig(tmp_path, "https://127.0.0.1:1")), endpoints=[])
    assert host is None
    assert any("k8sAuthMethodHost" in w for w in run.warnings)


# --- Other settings reaching the resources ----------------------------------------------------

def test_chart_path_and_release_timeout(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: consul\nversion: 2.0.3\n")
    run = run_program(primary(chartPath=str(tmp_path), releaseTimeoutSeconds=45),
                      federation={"consul/consul-federation": federation_data()})
    release = run.one(RELEASE)
    assert release.inputs["chart"] == str(tmp_path)
    assert "version" not in release.inputs and "repositoryOpts" not in release.inputs
    assert release.inputs["timeout"] == 45


def test_namespace_release_and_repo_settings():
    config = primary(namespace="mesh", releaseName="hc", chartRepo="https://charts.example.com",
                     chartVersion="1.9.11")
    run = run_program(config, federation={"mesh/consul-federation": federation_data()})
    release = run.one(RELEASE)
    assert (release.inputs["name"], release.inputs["namespace"], release.inputs["version"]) == ("hc", "mesh", "1.9.11")
    assert release.inputs["repositoryOpts"] == {"repo": "https://charts.example.com"}
    assert run.one(NAMESPACE).inputs["metadata"]["name"] == "mesh"
    assert run.outputs["chartVersion"] == "1.9.11" and run.outputs["namespace"] == "mesh"
    assert numbers_as_ints(release.inputs["values"]) == primary_values(case("dc1").parsed().__class__(
        role="primary", datacenter="dc1", kube_context="dc1", namespace="mesh", release_name="hc",
        chart_version="1.9.11", chart_repo="https://charts.example.com"))


def test_gossip_key_has_the_consul_keygen_format():
    from components.gossip_key import gossip_key_from_seed

    key = gossip_key_from_seed("x" * 64)
    assert len(key) == 44 and len(base64.b64decode(key, validate=True)) == 32
    assert gossip_key_from_seed("y" * 64) != key


def test_federation_data_stays_secret_even_if_the_reference_does_not_say_so():
    """Older backends report no secret output names: the copy in the secondary's cluster is a
    secret input all the same."""
    run = run_program(secondary(), "dc2", stacks={PRIMARY_REF: primary_outputs()}, mark_secret_outputs=False)
    (copy,) = run.all(SECRET)
    assert copy.secret_paths() == {"data"}
