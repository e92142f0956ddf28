"""The whole program (__main__.py) per stack configuration, under Pulumi mocks.

Values are collected while the program runs and asserted after it finished, with every output
resolved; nothing is asserted inside an apply callback. The Release of each stack case is
compared with its reviewed file in tests/unit/expected/ (regen_expected.py rewrites them).
"""

from __future__ import annotations

import base64

import pytest
import yaml

from components.config import ConfigError
from components.settings import KEYS
from components.gossip_key import gossip_key_from_seed
from pulumi_mocks import (GOSSIP_KEY, ProgramFailed, Run, federation_data, primary_outputs,
                          run_case, run_program)
from regen_expected import expected_path, release_document
from stack_matrix import AUTH_HOST, CASES, PRIMARY_REF, case, primary, secondary, write_kubeconfig

pytestmark = pytest.mark.unit

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
ENDPOINTS = "kubernetes:core/v1:Endpoints"
PROVIDER = "pulumi:providers:kubernetes"
PROXY_DEFAULTS = "kubernetes:consul.hashicorp.com/v1alpha1:ProxyDefaults"
STACK_REF = "pulumi:pulumi:StackReference"
RANDOM = "random:index/randomPassword:RandomPassword"
SECONDARY = "consul-federation:index:SecondaryDatacenter"


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def ran(request):
    return request.param, run_case(request.param)


def test_release_is_the_reviewed_one(ran):
    c, run = ran
    with open(expected_path(c.id), encoding="utf-8") as handle:
        expected = yaml.safe_load(handle)
    assert release_document(run) == expected
    assert run.one(RELEASE).secret_inputs == set(), "values must stay reviewable in pulumi preview --diff"


def test_component_and_children(ran):
    c, run = ran
    kind = "PrimaryDatacenter" if c.role == "primary" else "SecondaryDatacenter"
    component = run.one(f"consul-federation:index:{kind}")
    assert component.name == c.stack and not component.custom and component.parent is None
    children = [r for r in run.registrations if r is not component]
    assert children
    for reg in children:
        # Every resource lives under the datacenter component (directly or via GossipEncryptionKey).
        assert reg.parent == c.stack or run.named(reg.parent).parent == c.stack, reg.name


def test_every_kubernetes_resource_uses_this_clusters_provider(ran):
    c, run = ran
    provider = run.one(PROVIDER)
    assert provider.inputs["context"] == c.config["kubeContext"]
    assert provider.inputs["kubeconfig"]  # strict mode needs an explicit kubeconfig too
    k8s = [r for r in run.registrations if r.type.startswith("kubernetes:")]
    assert {r.type for r in k8s} >= {NAMESPACE, SECRET, RELEASE} | ({PROXY_DEFAULTS} if c.role == "primary" else set())
    for reg in k8s:
        assert reg.provider == provider.name, f"{reg.name} uses {reg.provider!r}"


def test_ordering(ran):
    c, run = ran
    release = run.one(RELEASE)
    assert f"{c.stack}-namespace" in release.depends_on
    if c.role == "primary":
        assert run.one(PROXY_DEFAULTS).depends_on == [release.name]
        assert (f"{c.stack}-gossip-key" in release.depends_on) == c.config.get("gossipEncryption", True)
        (read,) = [r for r in run.all(SECRET) if r.read_id]
        assert read.depends_on == [release.name]
    else:
        assert f"{c.stack}-federation-secret" in release.depends_on
        # The primary's stack reached the engine before any Kubernetes resource.
        order = [typ for typ, _ in run.engine]
        assert order.index(STACK_REF) < min(order.index(t) for t in (PROVIDER, NAMESPACE, SECRET, RELEASE))


def test_proxy_defaults_only_in_the_primary(ran):
    """Consul replicates ProxyDefaults from the primary; a secondary's own is refused."""
    c, run = ran
    if c.role == "secondary":
        assert run.all(PROXY_DEFAULTS) == [] and run.registrations
        return
    pd = run.one(PROXY_DEFAULTS)
    assert pd.inputs["api_version"] == "consul.hashicorp.com/v1alpha1"
    assert pd.inputs["kind"] == "ProxyDefaults"
    assert pd.inputs["metadata"] == {"name": "global", "namespace": c.parsed().namespace}
    assert pd.inputs["spec"] == {"meshGateway": {"mode": c.config.get("meshGateway", {}).get("mode", "local")}}


def test_stack_outputs(ran):
    c, run = ran
    cfg = c.parsed()
    expected = {
        "datacenter": cfg.datacenter, "role": cfg.role, "namespace": cfg.namespace,
        "chartVersion": "2.0.3", "aclsEnabled": cfg.acls, "gossipEncryptionEnabled": cfg.gossip_encryption,
        "tlsCaStage": 0,
    }
    if c.role == "primary":
        expected["federationSecret"] = federation_data(cfg.datacenter, cfg.acls, cfg.gossip_encryption)
        if cfg.gossip_encryption:
            expected["gossipKeys"] = {"generation": 0, "current": GOSSIP_KEY, "next": GOSSIP_KEY_1}
        assert run.secret_outputs == ({"federationSecret", "gossipKeys"} if cfg.gossip_encryption
                                      else {"federationSecret"})
    else:
        expected["primaryDatacenter"] = "dc1"
        expected["k8sAuthMethodHost"] = AUTH_HOST
        assert run.secret_outputs == set()
    assert run.outputs == expected


def test_gossip_key_secret(ran):
    c, run = ran
    created = [r for r in run.all(SECRET) if not r.read_id]
    if c.role == "secondary":
        assert not run.all(RANDOM)
        return
    if not c.config.get("gossipEncryption", True):
        assert not run.all(RANDOM) and not created
        return
    assert run.one(RANDOM).inputs == {"length": 64, "special": False}
    (gossip,) = created
    assert gossip.parent == f"{c.stack}-gossip-key"
    assert gossip.inputs["metadata"] == {"name": c.parsed().gossip_secret_name, "namespace": c.parsed().namespace}
    assert gossip.inputs["string_data"] == {"key": GOSSIP_KEY}
    assert gossip.secret_inputs == {"string_data"}


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
    assert copy.secret_inputs == {"data"}
    assert copy.inputs["metadata"]["name"] == cfg.federation_secret_name
    assert copy.inputs["metadata"]["namespace"] == cfg.namespace
    # a hand edit's field manager must not block the up that restores the copy
    assert copy.inputs["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}


# --- Cross-stack checks -----------------------------------------------------------------------

def secondary_failure(config=None, outputs=None, stacks=None) -> ProgramFailed:
    """The program's failure; asserts that no Kubernetes resource (nor its provider) reached the
    engine: only the component and the stack reference did."""
    stacks = stacks if stacks is not None else {PRIMARY_REF: outputs if outputs is not None else primary_outputs()}
    with pytest.raises(ProgramFailed) as info:
        run_program(config or secondary(), "dc2", stacks=stacks)
    assert info.value.types() == [SECONDARY, STACK_REF]
    return info.value


def test_primary_not_deployed():
    error = secondary_failure(outputs={}).error
    assert isinstance(error, ConfigError)
    assert error.errors == [
        "consul-federation:primaryStack: stack 'organization/consul-federation/dc1' has no outputs "
        "datacenter, aclsEnabled, gossipEncryptionEnabled, chartVersion, federationSecret yet; "
        "deploy the primary first: pulumi up -s dc1"]


def test_primary_stack_unknown():
    """The engine's own read error; it names the stack, and nothing else reached the engine."""
    error = secondary_failure(stacks={}).error
    assert "organization/consul-federation/dc1" in str(error)


def test_every_disagreement_is_reported_at_once():
    error = secondary_failure(secondary("dc1"), outputs=primary_outputs(acls=False, gossip=False)).error
    assert isinstance(error, ConfigError)
    assert error.errors == [
        "consul-federation:datacenter: 'dc1' is the primary's datacenter name; every datacenter "
        "of a federation needs its own name",
        "consul-federation:acls: True differs from the primary 'dc1' (False); if it is enabled in "
        "one datacenter it must be enabled in all: set the same value in both stacks",
        "consul-federation:gossipEncryption: True differs from the primary 'dc1' (False); if it is "
        "enabled in one datacenter it must be enabled in all: set the same value in both stacks"]


def test_a_primary_stack_that_is_a_secondary_is_named_as_such():
    """primaryStack naming another secondary (or this one, once deployed): its outputs say so."""
    outputs = {**primary_outputs("dc3"), "role": "secondary"}
    del outputs["federationSecret"]
    assert secondary_failure(outputs=outputs).error.errors == [
        "consul-federation:primaryStack: 'organization/consul-federation/dc1' is the stack of the secondary "
        "'dc3', not of the primary; set it to the primary's stack (the one with role: primary)"]


@pytest.mark.parametrize("reference", ["organization/consul-federation/dc2", "dc2", "organization/dc2"])
def test_a_primary_stack_that_is_this_stack_is_refused(reference):
    """Not 'deploy the primary first: pulumi up -s dc2', which would be this very stack."""
    error = secondary_failure(secondary(primaryStack=reference), stacks={reference: {}}).error
    assert error.errors == [f"consul-federation:primaryStack: {reference!r} is this stack; set it to the "
                            "primary's stack (the one with role: primary)"]


def test_federation_secret_missing_keys():
    outputs = primary_outputs()
    del outputs["federationSecret"]["replicationToken"]
    error = secondary_failure(outputs=outputs).error
    assert error.errors == ["consul-federation:primaryStack: the federation secret of "
                            "'organization/consul-federation/dc1' lacks replicationToken; run pulumi up -s dc1 again"]
    assert "8f7c2a7e" not in str(error)  # no secret material in messages


def test_chart_version_skew_is_reported():
    run = run_case(case("dc2"), stacks={PRIMARY_REF: primary_outputs(chart_version="1.9.11")})
    skew = [w for w in run.warnings if "chart version skew" in w]
    assert len(skew) == 1 and "1.9.11" in skew[0]
    assert not any("skew" in w for w in run_case(case("dc2")).warnings)


def test_config_errors_register_nothing():
    with pytest.raises(ProgramFailed) as info:
        run_program({"role": "primary", "datacenter": "Bad_DC", "kubeContext": "x",
                     "meshGateway": {"serviceType": "NodePort"}})
    assert isinstance(info.value.error, ConfigError)
    assert len(info.value.error.errors) == 2
    assert info.value.engine == []


# --- Configuration through pulumi.Config ------------------------------------------------------

def test_unknown_top_level_keys_are_reported():
    with pytest.raises(ProgramFailed) as info:
        run_program(primary(meshgateway={"mode": "local"}, kube_context="x", colour="blue"))
    assert info.value.error.errors == [
        "consul-federation:colour is not a setting of this program; allowed: " + ", ".join(KEYS),
        "consul-federation:kube_context is not a setting of this program; did you mean 'kubeContext'?",
        "consul-federation:meshgateway is not a setting of this program; did you mean 'meshGateway'?"]


def test_an_object_setting_that_is_not_json_is_one_error_among_the_others():
    with pytest.raises(ProgramFailed) as info:
        run_program(primary(meshGateway="NodePort", datacenter="DC1"))
    assert [e.split(":")[1] for e in info.value.error.errors] == ["datacenter", "meshGateway"]
    assert "'NodePort' is not valid; expected an object" in info.value.error.errors[1]


SECRET_VALUES = {"server": {"extraConfig": '{"license_note": "acme-1234"}'}}


@pytest.mark.parametrize("c", [case("dc1"), case("dc2")], ids=lambda c: c.id)
def test_secret_helm_values_make_the_release_values_secret(c):
    """`pulumi config set --secret --path helmValues...` marks the whole helmValues key secret:
    the Release's values carry it as a secret, never in plaintext."""
    run = run_case(c.__class__(c.id, {**c.config, "helmValues": SECRET_VALUES}, c.primary),
                   secret_keys=("helmValues",))
    release = run.one(RELEASE)
    assert release.secret_inputs == {"values"}
    assert release.inputs["values"]["server"]["extraConfig"] == SECRET_VALUES["server"]["extraConfig"]


def test_a_secret_mesh_gateway_makes_the_release_values_secret():
    """A gateway address set with --secret (an internal DNS name) reaches the values as one."""
    c = case("dc1")
    gateway = {"serviceType": "NodePort", "nodePort": 30001, "wanAddress": "gw.internal.example"}
    run = run_case(c.__class__(c.id, {**c.config, "meshGateway": gateway}, c.primary), secret_keys=("meshGateway",))
    release = run.one(RELEASE)
    assert release.secret_inputs == {"values"}
    assert release.inputs["values"]["meshGateway"]["wanAddress"]["static"] == "gw.internal.example"


def test_secret_chart_repository_and_auth_host_stay_secret(chart_repository):
    chart_repository.served["https://user:pw@charts.example.com"] = chart_repository.EVERY_VERSION
    run = run_program(secondary(chartRepo="https://user:pw@charts.example.com"), "dc2",
                      stacks={PRIMARY_REF: primary_outputs()},
                      secret_keys=("chartRepo", "k8sAuthMethodHost"))
    release = run.one(RELEASE)
    assert release.secret_inputs == {"repository_opts", "values"}
    assert "k8sAuthMethodHost" in run.secret_outputs and run.outputs["k8sAuthMethodHost"] == AUTH_HOST


def test_helm_values_stay_plain():
    c = case("dc1")
    run = run_case(c.__class__(c.id, {**c.config, "helmValues": {"ui": {"enabled": True}}}))
    release = run.one(RELEASE)
    assert release.secret_inputs == set() and release.inputs["values"]["ui"] == {"enabled": True}


# --- k8sAuthMethodHost ------------------------------------------------------------------------

def kubeconfig(tmp_path, server):
    return write_kubeconfig(tmp_path / "kubeconfig", server)


def auth_host_run(config, endpoints=None, env=None) -> tuple[Run, object]:
    """The run and the host it derived; the Release's value and the stack output must agree."""
    run = run_program(config, "dc2", stacks={PRIMARY_REF: primary_outputs()}, endpoints=endpoints, env=env)
    host = run.one(RELEASE).inputs["values"]["global"]["federation"].get("k8sAuthMethodHost")
    assert run.outputs["k8sAuthMethodHost"] == host
    return run, host


def without_host(**extra):
    config = secondary(**extra)
    del config["k8sAuthMethodHost"]
    return config


def test_auth_host_from_kubeconfig(tmp_path):
    path = kubeconfig(tmp_path, "https://dc2.example.com:6443")
    run, host = auth_host_run(without_host(kubeconfig=path))
    assert host == "https://dc2.example.com:6443"
    assert not run.all(ENDPOINTS)
    assert run.one(PROVIDER).inputs["kubeconfig"] == path


def test_auth_host_from_kubeconfig_env(tmp_path):
    path = kubeconfig(tmp_path, "https://198.51.100.7")
    run, host = auth_host_run(without_host(), env={"KUBECONFIG": f"{tmp_path}/none:{path}"})
    assert host == "https://198.51.100.7"
    assert run.one(PROVIDER).inputs["kubeconfig"] == path  # the file that defines the context


@pytest.mark.parametrize("server", ["https://127.0.0.1:44123", "https://localhost:6443", "https://[::1]:6443"])
def test_auth_host_loopback_reads_endpoints(tmp_path, server):
    endpoints = [{"addresses": [{"ip": "172.18.0.3"}],
                  "ports": [{"name": "metrics", "port": 9000}, {"name": "https", "port": 6443, "protocol": "TCP"}]}]
    run, host = auth_host_run(without_host(kubeconfig=kubeconfig(tmp_path, server)), endpoints=endpoints)
    assert host == "https://172.18.0.3:6443"
    read = run.one(ENDPOINTS)
    assert read.read_id == "default/kubernetes"
    assert read.provider == run.one(PROVIDER).name


def test_auth_host_configured_wins(tmp_path):
    config = secondary(kubeconfig=kubeconfig(tmp_path, "https://dc2.example.com:6443"))
    run, host = auth_host_run(config)
    assert host == AUTH_HOST and not run.all(ENDPOINTS)


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
    assert "version" not in release.inputs and "repository_opts" not in release.inputs
    assert release.inputs["timeout"] == 45


def test_namespace_release_and_repo_settings(chart_repository):
    chart_repository.served["https://charts.example.com"] = ["1.9.11"]
    config = primary(namespace="mesh", releaseName="hc", chartRepo="https://charts.example.com",
                     chartVersion="1.9.11")
    run = run_program(config, federation={"mesh/consul-federation": federation_data()})
    release = run.one(RELEASE)
    assert (release.inputs["name"], release.inputs["namespace"], release.inputs["version"]) == ("hc", "mesh", "1.9.11")
    assert release.inputs["repository_opts"] == {"repo": "https://charts.example.com"}
    assert run.one(NAMESPACE).inputs["metadata"] == {"name": "mesh"}
    assert run.outputs["chartVersion"] == "1.9.11" and run.outputs["namespace"] == "mesh"
    assert chart_repository.asked == ["https://charts.example.com"]  # chartVersion checked there


def test_gossip_key_has_the_consul_keygen_format():
    key = gossip_key_from_seed("x" * 64)
    assert len(key) == 44 and len(base64.b64decode(key, validate=True)) == 32
    assert gossip_key_from_seed("y" * 64) != key


# The keys of GOSSIP_SEED's generations 1-3, as `openssl dgst -sha256 -hmac <seed>` gives the
# HMAC of "consul gossip key generation <n>" (an implementation other than the program's).
GOSSIP_KEY_1 = "hNTT7w6qlBa1AGyS25MM/+fs+1tvLVdEx/hNaz48JlE="
GOSSIP_KEY_2 = "N3Yo6gH3mF0Dwe1th9uu4Ipfd/KyRqTtl6u6RTKxhWw="
GOSSIP_KEY_3 = "kn+sVyld5QgSReY/MOf2lS8yVsW1VBA78TFcK9fLtPk="


def test_a_gossip_key_generation_writes_its_key_and_upgrades_the_release():
    """Generation 2: the Secret holds its key; the outputs name the keys around it (for the
    rotation to recognise them in Consul's keyring); the Release gets a description, so Helm
    upgrades it and the federation secret's hook copies the new key."""
    run = run_program(primary(gossipKeyGeneration="2"))
    (gossip,) = [r for r in run.all(SECRET) if not r.read_id]
    assert gossip.inputs["string_data"] == {"key": GOSSIP_KEY_2}
    assert run.outputs["gossipKeys"] == {"generation": 2, "current": GOSSIP_KEY_2, "next": GOSSIP_KEY_3,
                                         "previous": GOSSIP_KEY_1}
    assert "gossipKeys" in run.secret_outputs
    assert run.one(RELEASE).inputs["description"] == "gossip key generation 2"
    assert "description" not in run_program(primary()).one(RELEASE).inputs


def test_a_tls_ca_stage_rolls_every_ca_reader_of_the_primary_and_of_its_secondaries():
    """Stage 4 (from the primary's stack file; the secondary reads it from the primary's output):
    one pod annotation each on the servers, mesh gateways and injector, after any the user set;
    the stage is exported by both. Stage 0 leaves the values as they were before rotation."""
    line = 'consul-federation/tls-ca-stage: "4"'
    run = run_program(primary(tlsCaStage="4", helmValues={"server": {"annotations": "team: payments"}}))
    values = run.one(RELEASE).inputs["values"]
    assert values["server"]["annotations"] == f"team: payments\n{line}"
    assert values["meshGateway"]["annotations"] == line
    assert values["connectInject"]["annotations"] == line
    assert run.outputs["tlsCaStage"] == 4
    run = run_program(secondary(), "dc2", stacks={PRIMARY_REF: {**primary_outputs(), "tlsCaStage": 4}})
    values = run.one(RELEASE).inputs["values"]
    assert [values[s]["annotations"] for s in ("server", "meshGateway", "connectInject")] == [line] * 3
    assert run.outputs["tlsCaStage"] == 4
    unrotated = run_program(primary()).one(RELEASE).inputs["values"]
    assert "annotations" not in unrotated.get("server", {}) and "annotations" not in unrotated["meshGateway"]


def test_gossip_key_generations_differ_and_keep_the_keygen_format():
    keys = [gossip_key_from_seed("x" * 64, n) for n in range(4)]
    assert len(set(keys)) == 4
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in keys)
    with pytest.raises(ValueError):
        gossip_key_from_seed("x" * 64, -1)


def test_federation_data_stays_secret_even_if_the_reference_does_not_say_so():
    """Older backends report no secret output names: the copy in the secondary's cluster is a
    secret input all the same (the SDK marks a Secret's data)."""
    run = run_program(secondary(), "dc2", stacks={PRIMARY_REF: primary_outputs()}, mark_secret_outputs=False)
    (copy,) = run.all(SECRET)
    assert copy.secret_inputs == {"data"}
