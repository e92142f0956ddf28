"""The exact Helm values of each role: pure functions of typed config, no Pulumi involved."""

import pytest

from components.constants import OWNED_PATHS
from components.helm_values import merge_user_values
from components.values_guard import leaf_paths
from stack_matrix import AUTH_HOST, CASES, case

pytestmark = pytest.mark.unit

FED = "consul-federation"


def test_primary_values_exactly():
    assert case("dc1").chart_values() == {
        "global": {
            "name": "consul",
            "datacenter": "dc1",
            "tls": {"enabled": True},
            "federation": {"enabled": True, "createFederationSecret": True},
            "acls": {"manageSystemACLs": True, "createReplicationToken": True},
            "gossipEncryption": {"secretName": "consul-gossip-encryption-key", "secretKey": "key"},
        },
        "connectInject": {"enabled": True},
        "meshGateway": {
            "enabled": True,
            "replicas": 1,
            "service": {"type": "LoadBalancer", "port": 443},
            "wanAddress": {"source": "Service"},
        },
    }


def test_secondary_values_exactly():
    assert case("dc2").chart_values() == {
        "global": {
            "name": "consul",
            "datacenter": "dc2",
            "tls": {
                "enabled": True,
                "caCert": {"secretName": FED, "secretKey": "caCert"},
                "caKey": {"secretName": FED, "secretKey": "caKey"},
            },
            "federation": {"enabled": True, "primaryDatacenter": "dc1", "k8sAuthMethodHost": AUTH_HOST},
            "acls": {"manageSystemACLs": True,
                     "replicationToken": {"secretName": FED, "secretKey": "replicationToken"}},
            "gossipEncryption": {"secretName": FED, "secretKey": "gossipEncryptionKey"},
        },
        "connectInject": {"enabled": True},
        "meshGateway": {
            "enabled": True,
            "replicas": 1,
            "service": {"type": "LoadBalancer", "port": 443},
            "wanAddress": {"source": "Service"},
        },
        "server": {"extraVolumes": [{
            "type": "secret", "name": FED,
            "items": [{"key": "serverConfigJSON", "path": "config.json"}], "load": True}]},
    }


def test_acls_off():
    assert case("acls-off-dc1").chart_values()["global"]["acls"] == {
        "manageSystemACLs": False, "createReplicationToken": False}
    assert case("acls-off-dc2").chart_values()["global"]["acls"] == {"manageSystemACLs": False}


def test_gossip_off_sets_no_gossip_values():
    assert "gossipEncryption" not in case("gossip-off-dc1").chart_values()["global"]
    assert "gossipEncryption" not in case("gossip-off-dc2").chart_values()["global"]


def test_node_port_gateway():
    gw = case("nodeport-dc1").chart_values()["meshGateway"]
    assert gw["service"] == {"type": "NodePort", "port": 443, "nodePort": 30001}
    assert gw["wanAddress"] == {"source": "Service"}


def test_static_wan_address_advertises_the_node_port():
    gw = case("static-wan-dc2").chart_values()["meshGateway"]
    assert gw["wanAddress"] == {"source": "Static", "static": "gw.example.com", "port": 30001}


def test_static_wan_address_of_a_cluster_ip_gateway_advertises_the_service_port():
    """A ClusterIP gateway behind a static address (dc3 of the consul tier): traffic arrives on the
    service port, 443. The consul tier caught a wrong port here that no other tier saw."""
    from components.config import parse_config
    from components.helm_values import mesh_gateway_values

    cfg = parse_config({"role": "secondary", "datacenter": "dc3", "kubeContext": "dc3",
                        "primaryStack": "organization/consul-federation/dc1",
                        "meshGateway": {"serviceType": "ClusterIP", "wanAddress": "dc3-gateway.consul.test"}})
    assert mesh_gateway_values(cfg.mesh_gateway) == {
        "enabled": True, "replicas": 1, "service": {"type": "ClusterIP", "port": 443},
        "wanAddress": {"source": "Static", "static": "dc3-gateway.consul.test", "port": 443}}


@pytest.mark.parametrize("gateway, port", [
    ({"serviceType": "NodePort", "nodePort": 30001}, 30001),
    ({"serviceType": "NodePort", "nodePort": 30001, "wanAddress": "gw.example.com"}, 30001),
    ({"serviceType": "LoadBalancer"}, 443),
    ({"serviceType": "ClusterIP", "wanAddress": "dc3-gateway.consul.test"}, 443),
])
def test_advertised_port_is_the_node_port_of_a_node_port_gateway_and_the_service_port_otherwise(gateway, port):
    """One rule for the port other datacenters dial: the chart's wanAddress.port and verify's
    expected address both come from it."""
    from components.config import parse_config
    from components.helm_values import advertised_port

    cfg = parse_config({"role": "primary", "datacenter": "dc1", "kubeContext": "dc1", "meshGateway": gateway})
    assert advertised_port(cfg.mesh_gateway) == port


def test_remote_mode_replicas():
    assert case("remote-dc1").chart_values()["meshGateway"]["replicas"] == 2


def test_global_name_names_every_secret_reference():
    values = case("global-name-dc2").chart_values()
    g = values["global"]
    assert g["name"] == "hashi"
    refs = [g["tls"]["caCert"], g["tls"]["caKey"], g["acls"]["replicationToken"], g["gossipEncryption"]]
    assert {r["secretName"] for r in refs} == {"hashi-federation"}
    assert values["server"]["extraVolumes"][0]["name"] == "hashi-federation"
    assert case("global-name-dc1").chart_values()["global"]["gossipEncryption"]["secretName"] == \
        "hashi-gossip-encryption-key"


def test_primary_never_sets_primary_datacenter():
    for c in CASES:
        fed = c.chart_values()["global"]["federation"]
        if c.role == "primary":
            assert "primaryDatacenter" not in fed and fed["createFederationSecret"] is True
        else:
            assert fed["primaryDatacenter"] == "dc1" and "createFederationSecret" not in fed


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_every_value_the_program_sets_is_owned(c):
    """helmValues validation relies on OWNED_PATHS covering everything the program writes."""
    for path in leaf_paths(c.chart_values()):
        assert any(path == o or path.startswith(o + ".") for o in OWNED_PATHS), path


def test_user_values_merge_last_and_deep():
    merged = merge_user_values({"global": {"name": "consul", "tls": {"enabled": True}}},
                               {"global": {"tls": {"verify": False}}, "ui": {"enabled": True}})
    assert merged == {"global": {"name": "consul", "tls": {"enabled": True, "verify": False}},
                      "ui": {"enabled": True}}


def test_helm_values_reach_the_release_values():
    c = case("dc1")
    extra = {"ui": {"enabled": False}, "server": {"replicas": 5}}
    values = c.__class__(c.id, {**c.config, "helmValues": extra}).chart_values()
    assert values["ui"] == {"enabled": False} and values["server"] == {"replicas": 5}
