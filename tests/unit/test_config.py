"""Configuration validation: every error names the key, the value and what is allowed."""

import os

import pytest

from components.config import ConfigError, parse_config
from components.config_warnings import config_warnings
from components.settings import KEYS, MESH_GATEWAY_KEYS, OBJECT_KEYS, DatacenterConfig
from stack_matrix import primary, secondary

pytestmark = pytest.mark.unit


def errors_of(raw, secret_keys=frozenset()):
    with pytest.raises(ConfigError) as info:
        parse_config(raw, secret_keys)
    return info.value.errors


def only_error(raw, secret_keys=frozenset()):
    errors = errors_of(raw, secret_keys)
    assert len(errors) == 1, errors
    return errors[0]


def test_defaults():
    cfg = parse_config(primary())
    assert cfg == DatacenterConfig(role="primary", datacenter="dc1", kube_context="dc1")
    assert (cfg.namespace, cfg.release_name, cfg.global_name) == ("consul", "consul", "consul")
    assert cfg.chart_version == "2.0.3"
    assert cfg.chart_repo == "https://helm.releases.hashicorp.com"
    assert cfg.acls is True and cfg.gossip_encryption is True and cfg.release_timeout == 900
    gw = cfg.mesh_gateway
    assert (gw.mode, gw.service_type, gw.node_port, gw.replicas, gw.wan_address) == \
        ("local", "LoadBalancer", None, 1, None)
    assert cfg.federation_secret_name == "consul-federation"


def test_booleans_from_stack_yaml_strings():
    cfg = parse_config(primary(acls="false", gossipEncryption="False", releaseTimeoutSeconds="60"))
    assert (cfg.acls, cfg.gossip_encryption, cfg.release_timeout) == (False, False, 60)


@pytest.mark.parametrize("key,value,expect", [
    ("role", "tertiary", "'primary', 'secondary'"),
    ("datacenter", "DC1", "lowercase letters, digits and hyphens"),
    ("datacenter", "dc_1", "lowercase letters, digits and hyphens"),
    ("datacenter", "-dc1", "start and end with a letter or digit"),
    ("namespace", "Consul", "Kubernetes namespace"),
    ("releaseName", "Consul!", "Helm release name"),
    ("globalName", "x" * 39, "at most 38"),
    ("chartVersion", "latest", "such as 2.0.3"),
    ("chartVersion", "0.20.0", "chart 1.0.0 or later, and CI renders the 1.2, 1.8, 1.9, 2.0 lines"),
    ("chartVersion", "0.49.8", "chart 1.0.0 or later, and CI renders the 1.2, 1.8, 1.9, 2.0 lines"),
    ("releaseTimeoutSeconds", 10, "a whole number from 30 to 7200"),
    ("releaseTimeoutSeconds", "soon", "a whole number from 30 to 7200"),
    ("gossipKeyGeneration", -1, "a whole number from 0 to 1000000"),
    ("gossipKeyGeneration", "next", "a whole number from 0 to 1000000"),
    ("tlsCaStage", -1, "a whole number from 0 to 1000000"),
    ("chartRepo", "helm.releases.hashicorp.com", "Helm repository URL"),
    ("acls", "yes", "true or false"),
    ("gossipEncryption", 3, "true or false"),
    ("meshGateway", "NodePort", "object"),
    ("helmValues", ["a"], "object"),
])
def test_bad_value_names_key_value_and_allowed(key, value, expect):
    message = only_error(primary(**{key: value}))
    assert message.startswith(f"consul-federation:{key}: {value!r}"), message
    assert expect in message


def test_tls_ca_stage_belongs_to_the_primary():
    assert parse_config(primary(tlsCaStage="2")).tls_ca_stage == 2
    assert parse_config(secondary()).tls_ca_stage == 0
    message = only_error(secondary(tlsCaStage=2))
    assert message.startswith("consul-federation:tlsCaStage: 2") and "only the primary" in message


def test_gossip_key_generation_belongs_to_a_primary_with_gossip():
    assert parse_config(primary(gossipKeyGeneration="3")).gossip_key_generation == 3
    assert parse_config(primary()).gossip_key_generation == 0
    message = only_error(secondary(gossipKeyGeneration=1))
    assert message.startswith("consul-federation:gossipKeyGeneration: 1") and "only the primary" in message
    message = only_error(primary(gossipKeyGeneration=1, gossipEncryption=False))
    assert "no gossip key to rotate with gossipEncryption: false" in message


@pytest.mark.parametrize("key", ["role", "datacenter", "kubeContext"])
def test_required_keys(key):
    raw = primary()
    del raw[key]
    assert only_error(raw) == f"consul-federation:{key} is required but not set"


@pytest.mark.parametrize("gateway,key,expect", [
    ({"mode": "both"}, "meshGateway.mode", "'local', 'remote'"),
    ({"mode": "none"}, "meshGateway.mode", "'local', 'remote'"),
    ({"serviceType": "Ingress"}, "meshGateway.serviceType", "'LoadBalancer', 'NodePort', 'ClusterIP'"),
    ({"serviceType": "NodePort", "nodePort": 70000}, "meshGateway.nodePort", "1 to 65535"),
    ({"serviceType": "NodePort", "nodePort": "abc"}, "meshGateway.nodePort", "whole number"),
    ({"nodePort": 30001}, "meshGateway.nodePort", "only used with serviceType NodePort"),
    ({"replicas": 0}, "meshGateway.replicas", "1 to 100"),
    ({"wanAddress": "https://gw:443"}, "meshGateway.wanAddress", "host name or IP address"),
])
def test_mesh_gateway_errors(gateway, key, expect):
    message = only_error(primary(meshGateway=gateway))
    assert message.startswith(f"consul-federation:{key}: "), message
    assert expect in message


@pytest.mark.parametrize("gateway, value, port_range", [
    ({"nodePort": 80}, 80, "30000-32767"),
    ({"nodePort": 29999}, 29999, "30000-32767"),
    ({"nodePort": 32768}, 32768, "30000-32767"),
    ({"nodePort": 30001, "nodePortRange": "20000-22767"}, 30001, "20000-22767"),
])
def test_node_port_outside_the_clusters_range(gateway, value, port_range):
    """The API server refuses a nodePort outside its --service-node-port-range: the preview does."""
    assert only_error(primary(meshGateway={"serviceType": "NodePort", **gateway})) == (
        f"consul-federation:meshGateway.nodePort: {value} is not valid; expected a port in the cluster's "
        f"NodePort range {port_range} (the API server refuses any other; Kubernetes' default "
        "--service-node-port-range is 30000-32767: set meshGateway.nodePortRange if the cluster's differs)")


@pytest.mark.parametrize("gateway, port", [
    ({"nodePort": 30000}, 30000),
    ({"nodePort": "32767"}, 32767),
    ({"nodePort": 80, "nodePortRange": "1-1000"}, 80),
    ({"nodePort": 20000, "nodePortRange": " 20000 - 20000 "}, 20000),
])
def test_node_port_inside_the_clusters_range(gateway, port):
    assert parse_config(primary(meshGateway={"serviceType": "NodePort", **gateway})).mesh_gateway.node_port == port


@pytest.mark.parametrize("value", ["30000", "32767-30000", "0-100", "30000-70000", "a-b", 30000])
def test_node_port_range_must_be_a_range(value):
    message = only_error(primary(meshGateway={"serviceType": "NodePort", "nodePort": 30001, "nodePortRange": value}))
    assert message.startswith(f"consul-federation:meshGateway.nodePortRange: {value!r} is not valid; "
                              "expected "), message


def test_node_port_range_belongs_to_node_port_gateways():
    assert only_error(primary(meshGateway={"nodePortRange": "30000-32767"})) == (
        "consul-federation:meshGateway.nodePortRange: '30000-32767' is not valid; nodePortRange is only used "
        "with serviceType NodePort (serviceType is 'LoadBalancer'); remove it")
    message = only_error(primary(meshGateway={"serviceType": "NodePort", "nodePortRange": "20000-20999"}))
    assert "(in the cluster's NodePort range, 20000-20999)" in message


def test_node_port_required_with_node_port_service():
    message = only_error(primary(meshGateway={"serviceType": "NodePort"}))
    assert message.startswith("consul-federation:meshGateway.nodePort is required")
    assert "NodePort" in message


def test_secondary_needs_primary_stack():
    raw = secondary()
    del raw["primaryStack"]
    assert only_error(raw).startswith("consul-federation:primaryStack is required when role is 'secondary'")


@pytest.mark.parametrize("key,value", [
    ("primaryStack", "organization/consul-federation/dc1"),
    ("k8sAuthMethodHost", "https://10.0.0.1:6443"),
])
def test_primary_rejects_secondary_settings(key, value):
    message = only_error(primary(**{key: value}))
    assert message.startswith(f"consul-federation:{key}: {value!r}")
    assert "only secondaries" in message


def test_bad_auth_method_host_and_stack_reference():
    errors = errors_of(secondary(k8sAuthMethodHost="10.0.0.1:6443", primaryStack="a/b/c/d"))
    assert any(e.startswith("consul-federation:k8sAuthMethodHost: '10.0.0.1:6443'") for e in errors)
    assert any(e.startswith("consul-federation:primaryStack: 'a/b/c/d'") for e in errors)
    # plain http would send the auth method's TokenReview and its token unencrypted
    errors = errors_of(secondary(k8sAuthMethodHost="http://10.0.0.1:6443"))
    assert errors == ["consul-federation:k8sAuthMethodHost: 'http://10.0.0.1:6443' is not valid; expected the "
                      "Kubernetes API server URL as https://host[:port], reachable from the primary's pods"]


def test_unknown_keys_suggest_the_nearest():
    errors = errors_of(primary(meshgateway={"mode": "local"}, meshGateway={"serviceTyp": "NodePort"}))
    assert "consul-federation:meshgateway is not a setting of this program; did you mean 'meshGateway'?" in errors
    assert any(e.startswith("consul-federation:meshGateway.serviceTyp is not a setting")
               and "'serviceType'" in e for e in errors)


def test_all_errors_reported_together():
    raw = {"role": "boss", "datacenter": "DC 1", "chartVersion": "0.1.0",
           "meshGateway": {"mode": "x", "serviceType": "NodePort"},
           "helmValues": {"tls": {"enabled": True}}}
    errors = errors_of(raw)
    for needle in ("role:", "datacenter:", "kubeContext is required", "chartVersion:",
                   "meshGateway.mode:", "meshGateway.nodePort is required", "helmValues.tls"):
        assert any(needle in e for e in errors), (needle, errors)
    assert len(errors) == 7
    text = str(ConfigError(errors))
    assert text.startswith("7 configuration error(s)") and "nothing was changed" in text


@pytest.mark.parametrize("key", ["tls", "federation", "acls", "gossipEncryption"])
def test_federation_values_at_top_level_are_refused(key):
    message = only_error(primary(helmValues={key: {"enabled": True}}))
    assert message.startswith(f"consul-federation:helmValues.{key}: '{key}' belongs under 'global'")
    assert f"helmValues.global.{key}" in message


@pytest.mark.parametrize("values,owned", [
    ({"global": {"datacenter": "dc9"}}, "global.datacenter"),
    ({"global": {"tls": {"enabled": False}}}, "global.tls.enabled"),
    ({"global": {"federation": {"primaryDatacenter": "dc1"}}}, "global.federation"),
    ({"global": {"acls": {"manageSystemACLs": False}}}, "global.acls.manageSystemACLs"),
    ({"global": {"gossipEncryption": {"autoGenerate": True}}}, "global.gossipEncryption"),
    ({"meshGateway": {"enabled": False}}, "meshGateway.enabled"),
    ({"meshGateway": {"service": {"nodePort": 30009}}}, "meshGateway.service.nodePort"),
    ({"meshGateway": None}, "meshGateway.enabled"),
    ({"server": {"extraVolumes": []}}, "server.extraVolumes"),
    ({"connectInject": {"enabled": False}}, "connectInject.enabled"),
    ({"fullnameOverride": "x"}, "fullnameOverride"),
])
def test_helm_values_may_not_override_owned_keys(values, owned):
    message = only_error(primary(helmValues=values))
    assert f"{owned} is set by this program" in message, message


def test_helm_values_allowed_next_to_owned_keys():
    cfg = parse_config(primary(helmValues={
        "global": {"tls": {"verify": False}, "acls": {"bootstrapToken": {"secretName": "b", "secretKey": "t"}}},
        "meshGateway": {"service": {"annotations": "a: b\n"}},
        "server": {"replicas": 3, "extraConfig": '{"log_level": "DEBUG"}'},
        "ui": {"enabled": True}}))
    assert cfg.helm_values["server"]["replicas"] == 3


def test_admin_partitions_refused_with_federation():
    message = only_error(primary(helmValues={"global": {"adminPartitions": {"enabled": True}}}))
    assert "admin partitions" in message


def test_chart_path_must_be_a_consul_chart(tmp_path):
    """An unusable chart directory is named with the reason, not only the exception's class."""
    missing = tmp_path / "missing"
    assert only_error(primary(chartPath=str(missing))).endswith(
        f"expected a chart directory containing Chart.yaml (FileNotFoundError: [Errno 2] No such file or "
        f"directory: '{missing / 'Chart.yaml'}')")
    (tmp_path / "Chart.yaml").write_text("name: [consul\n")
    assert only_error(primary(chartPath=str(tmp_path))).endswith(
        "(ParserError: while parsing a flow sequence)")
    (tmp_path / "Chart.yaml").write_text("name: vault\nversion: 0.28.0\n")
    assert "found chart 'vault'" in only_error(primary(chartPath=str(tmp_path)))


def test_chart_path_sets_the_chart_version(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: consul\nversion: 1.9.11\n")
    cfg = parse_config(primary(chartPath=str(tmp_path)))
    assert cfg.chart_version == "1.9.11" and cfg.chart_path == os.path.abspath(tmp_path)
    message = only_error(primary(chartPath=str(tmp_path), chartVersion="2.0.3"))
    assert message.startswith("consul-federation:chartVersion: '2.0.3'") and "1.9.11" in message


def test_warnings():
    assert any("ClusterIP" in w for w in config_warnings(parse_config(primary(meshGateway={"serviceType": "ClusterIP"}))))
    assert any("consul-k8s#1466" in w for w in config_warnings(
        parse_config(primary(helmValues={"server": {"updatePartition": 2}}))))
    assert config_warnings(parse_config(primary())) == []


@pytest.mark.parametrize("version,line", [("1.0.0", "1.0"), ("1.7.9", "1.7"), ("2.1.0", "2.1")])
def test_chart_lines_ci_does_not_render_are_accepted_with_a_warning(version, line):
    cfg = parse_config(primary(chartVersion=version, helmValues={"server": {"no-such-key": 1}}))
    warnings = config_warnings(cfg)
    assert warnings[0] == (f"chart {version}: CI renders no chart of the {line} line (it renders "
                           "the 1.2, 1.8, 1.9, 2.0 lines), so neither this program's values nor helmValues "
                           "keys are checked against it")
    old_line = ("chart {}: of the 1.0-1.7 lines only chart 1.2.1 is tested (CI runs its Consul 1.16.1, "
                "control plane and gateways for real); use 1.2.1 or a 1.8 or later chart").format(version)
    assert warnings[1:] == ([old_line] if version != "2.1.0" else [])


def test_mesh_gateway_mode_is_the_primarys_setting():
    assert only_error(secondary(meshGateway={"mode": "remote"})) == (
        "consul-federation:meshGateway.mode: 'remote' is not valid; the mode is set in the primary's "
        "stack only: ProxyDefaults global is a config entry Consul replicates from the primary to every "
        "datacenter, and a secondary's own copy is refused as managed in a different datacenter "
        "(consul#6327); remove it here")


def test_chart_1_2_1_is_the_tested_chart_of_the_old_lines():
    assert config_warnings(parse_config(primary(chartVersion="1.2.1"))) == []
    (warning,) = config_warnings(parse_config(primary(chartVersion="1.2.0")))
    assert warning.startswith("chart 1.2.0: of the 1.0-1.7 lines only chart 1.2.1 is tested")
    assert only_error(primary(chartVersion="1.2.1", helmValues={"server": {"replica": 5}})) == (
        "consul-federation:helmValues: 'server.replica' is not a value of the Consul chart 1.2.1; "
        "did you mean 'server.replicas'?")


def test_patch_release_without_its_own_key_list_is_checked_against_its_line():
    assert only_error(primary(chartVersion="1.9.12", helmValues={"server": {"replica": 5}})) == (
        "consul-federation:helmValues: 'server.replica' is not a value of the Consul chart 1.9.11; "
        "did you mean 'server.replicas'?")
    (warning,) = config_warnings(parse_config(primary(chartVersion="1.9.12", helmValues={"ui": {"enabled": True}})))
    assert warning == ("chart 1.9.12: helmValues keys were checked against chart 1.9.11, the newest "
                       "of its line this program ships a key list for")


@pytest.mark.parametrize("version", ["2.0.3", "1.9.11", "1.8.16", "1.2.1"])
def test_misspelt_helm_value_names_the_nearest_chart_key(version):
    message = only_error(primary(chartVersion=version, helmValues={"server": {"replica": 5}}))
    assert message == ("consul-federation:helmValues: 'server.replica' is not a value of the Consul "
                       f"chart {version}; did you mean 'server.replicas'?")


def test_free_form_maps_accept_any_key():
    parse_config(primary(helmValues={
        "server": {"extraLabels": {"team": "mesh"}, "resources": {"requests": {"ephemeral-storage": "1Gi"}}}}))


# --- settings set with --secret -----------------------------------------------------------------

def test_secret_settings_are_kept_and_never_shown():
    errors = errors_of(primary(helmValues="s3cr3t", chartRepo="ftp://user:s3cr3t@x"),
                       frozenset({"helmValues", "chartRepo"}))
    assert errors == [
        "consul-federation:chartRepo: (secret value not shown) is not valid; expected a Helm "
        "repository URL (https://..., http://... or oci://...)",
        "consul-federation:helmValues: (secret value not shown) is not valid; expected an object (a YAML mapping)"]
    cfg = parse_config(primary(helmValues={"server": {"extraConfig": "s3cr3t"}}), frozenset({"helmValues"}))
    assert cfg.secret_settings == {"helmValues"} and cfg.is_secret("helmValues", "meshGateway")
    assert "s3cr3t" not in repr(cfg)


@pytest.mark.parametrize("key", ["namespace", "datacenter", "kubeContext", "globalName"])
def test_settings_that_name_objects_cannot_be_secret(key):
    assert only_error(primary(), frozenset({key})) == (
        f"consul-federation:{key} is set as a secret, but it names objects and ends up in resource "
        "names and URNs, which Pulumi never encrypts; set it without --secret (settings that can "
        "be secret: helmValues, meshGateway, k8sAuthMethodHost, chartRepo)")


def test_every_setting_has_one_configuration_key():
    """The key list is derived from the dataclasses: each field names its key once."""
    assert KEYS == ("role", "datacenter", "kubeContext", "kubeconfig", "namespace", "releaseName",
                    "globalName", "chartVersion", "chartRepo", "chartPath", "acls", "gossipEncryption",
                    "meshGateway", "primaryStack", "k8sAuthMethodHost", "helmValues",
                    "releaseTimeoutSeconds", "gossipKeyGeneration", "tlsCaStage")
    assert MESH_GATEWAY_KEYS == ("mode", "serviceType", "nodePort", "nodePortRange", "replicas", "wanAddress")
    assert OBJECT_KEYS == ("meshGateway", "helmValues")
