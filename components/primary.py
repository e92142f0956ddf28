"""The primary datacenter: creates the CA, gossip key and replication token for the federation."""

from __future__ import annotations

from typing import Optional

import pulumi

from . import outputs
from .settings import DatacenterConfig
from .datacenter import cluster, common_outputs, install
from .federation_secret import read_federation_secret
from .gossip_key import GossipEncryptionKey
from .helm_values import primary_values
from .kube_cluster import KubeCluster


class PrimaryDatacenter(pulumi.ComponentResource):
    """dc1: Consul with createFederationSecret, exporting that secret for the secondaries."""

    def __init__(self, name: str, cfg: DatacenterConfig, kube: KubeCluster,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("consul-federation:index:PrimaryDatacenter", name, None, opts)
        provider, namespace = cluster(name, cfg, kube, self)
        needs = []
        gossip_outputs = {}
        if cfg.gossip_encryption:
            key = GossipEncryptionKey(
                f"{name}-gossip-key", namespace.metadata.name, cfg.gossip_secret_name,
                cfg.gossip_key_generation, provider, pulumi.ResourceOptions(parent=self))
            needs.append(key)
            gossip_outputs[outputs.GOSSIP_KEYS] = key.keys
        release = install(name, cfg, kube, provider, namespace, primary_values(cfg), needs, self)
        federation_secret = read_federation_secret(
            f"{name}-federation-secret", cfg.namespace, cfg.federation_secret_name, release,
            pulumi.ResourceOptions(parent=self, provider=provider))
        self.stack_outputs = {**common_outputs(cfg), outputs.FEDERATION_SECRET: federation_secret,
                              outputs.TLS_CA_STAGE: cfg.tls_ca_stage, **gossip_outputs}
        self.register_outputs(self.stack_outputs)
