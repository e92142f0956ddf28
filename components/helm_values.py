"""Consul chart values for a primary and a secondary datacenter, as pure functions of config.

These functions feed both the Helm Release and the chart-tier tests (which render them with the
real chart), so what is rendered is what is deployed; the unit tier pins their result per stack
case in tests/unit/expected/. No Pulumi types here: secondaries pass in plain values resolved
from the primary's stack outputs.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional

from .settings import DatacenterConfig, MeshGatewayConfig
from .constants import (FED_CA_CERT, FED_CA_KEY, FED_GOSSIP_KEY, FED_REPLICATION_TOKEN,
                        FED_SERVER_CONFIG, GOSSIP_SECRET_KEY)

# The port the mesh gateway Service listens on (the chart's default, pinned so the WAN port we
# advertise for a static address cannot drift from it).
GATEWAY_SERVICE_PORT = 443

# A pod annotation whose change restarts the pods that read the TLS CA only when they start (the
# servers, the mesh gateways, the connect injector): each stage of ``rotate-tls-ca`` raises the
# primary's tlsCaStage, and every datacenter's Release upgrade then rolls them.
TLS_CA_STAGE_ANNOTATION = "consul-federation/tls-ca-stage"
CA_READERS = ("server", "meshGateway", "connectInject")


def required_federation_keys(acls: bool, gossip: bool) -> list[str]:
    """Keys a secondary needs in the primary's federation secret."""
    keys = [FED_CA_CERT, FED_CA_KEY, FED_SERVER_CONFIG]
    if acls:
        keys.append(FED_REPLICATION_TOKEN)
    if gossip:
        keys.append(FED_GOSSIP_KEY)
    return keys


def advertised_port(gateway: MeshGatewayConfig) -> int:
    """The port other datacenters dial for this gateway: traffic arrives on the node port of a
    NodePort Service and on the Service port otherwise. The chart advertises it as
    wanAddress.port for a static address, and verify expects it there."""
    return gateway.node_port if gateway.service_type == "NodePort" else GATEWAY_SERVICE_PORT


def mesh_gateway_values(gateway: MeshGatewayConfig) -> dict[str, Any]:
    service: dict[str, Any] = {"type": gateway.service_type, "port": GATEWAY_SERVICE_PORT}
    if gateway.service_type == "NodePort":
        service["nodePort"] = gateway.node_port
    if gateway.wan_address:
        wan = {"source": "Static", "static": gateway.wan_address, "port": advertised_port(gateway)}
    else:
        # "Service": the load balancer address, the node IP with the node port, or the cluster IP.
        wan = {"source": "Service"}
    return {"enabled": True, "replicas": gateway.replicas, "service": service, "wanAddress": wan}


def _common_values(cfg: DatacenterConfig) -> dict[str, Any]:
    return {
        "global": {
            "name": cfg.global_name,
            "datacenter": cfg.datacenter,
            "tls": {"enabled": True},
            "federation": {"enabled": True},
            "acls": {"manageSystemACLs": cfg.acls},
        },
        "connectInject": {"enabled": True},
        "meshGateway": mesh_gateway_values(cfg.mesh_gateway),
    }


def primary_values(cfg: DatacenterConfig) -> dict[str, Any]:
    """Values of the primary: it creates the CA, the replication token and the federation secret."""
    values = _common_values(cfg)
    g = values["global"]
    g["federation"]["createFederationSecret"] = True
    g["acls"]["createReplicationToken"] = cfg.acls
    if cfg.gossip_encryption:
        g["gossipEncryption"] = {"secretName": cfg.gossip_secret_name, "secretKey": GOSSIP_SECRET_KEY}
    return with_tls_ca_stage(merge_user_values(values, cfg.helm_values), cfg.tls_ca_stage)


def secondary_values(cfg: DatacenterConfig, primary_datacenter: str,
                     k8s_auth_method_host: Optional[str], tls_ca_stage: int = 0) -> dict[str, Any]:
    """Values of a secondary: CA, token, gossip key and server config all come from the
    federation secret imported from the primary (named cfg.federation_secret_name here).
    With ACLs, the secondary's server-acl-init logs in to the primary through an auth method that
    calls this cluster's API at k8sAuthMethodHost. `tls_ca_stage` is the primary's."""
    secret = cfg.federation_secret_name
    values = _common_values(cfg)
    g = values["global"]
    g["tls"]["caCert"] = {"secretName": secret, "secretKey": FED_CA_CERT}
    g["tls"]["caKey"] = {"secretName": secret, "secretKey": FED_CA_KEY}
    g["federation"]["primaryDatacenter"] = primary_datacenter
    if k8s_auth_method_host:
        g["federation"]["k8sAuthMethodHost"] = k8s_auth_method_host
    if cfg.acls:
        g["acls"]["replicationToken"] = {"secretName": secret, "secretKey": FED_REPLICATION_TOKEN}
    if cfg.gossip_encryption:
        g["gossipEncryption"] = {"secretName": secret, "secretKey": FED_GOSSIP_KEY}
    values["server"] = {
        "extraVolumes": [{
            "type": "secret",
            "name": secret,
            "items": [{"key": FED_SERVER_CONFIG, "path": "config.json"}],
            "load": True,
        }],
    }
    return with_tls_ca_stage(merge_user_values(values, cfg.helm_values), tls_ca_stage)


def with_tls_ca_stage(values: dict[str, Any], stage: int) -> dict[str, Any]:
    """The stage annotation on every CA reader's pods, after the user's annotations (a YAML text
    the chart templates in); none at stage 0, so installs that never rotated keep their values."""
    if not stage:
        return values
    line = f'{TLS_CA_STAGE_ANNOTATION}: "{stage}"'
    for section in CA_READERS:
        part = values.setdefault(section, {})
        existing = part.get("annotations")
        part["annotations"] = f"{existing.rstrip()}\n{line}" if existing else line
    return values


def merge_user_values(values: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """helmValues merged last, maps recursively (as Helm merges values files).

    Validation has already refused any overlap with OWNED_PATHS, so this only adds.
    """
    merged = copy.deepcopy(values)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_user_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
