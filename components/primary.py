"""The primary datacenter: creates the CA, gossip key and replication token for the federation."""

from __future__ import annotations

from typing import Optional

import pulumi

from . import outputs
from .config import DatacenterConfig
from .datacenter import ConsulDatacenter
from .federation_secret import read_primary_federation_secret
from .gossip_key import GossipEncryptionKey
from .helm_values import primary_values


class PrimaryDatacenter(ConsulDatacenter):
    """dc1: Consul with createFederationSecret, exporting that secret for the secondaries."""

    def __init__(self, name: str, cfg: DatacenterConfig,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("PrimaryDatacenter", name, cfg, opts)
        self._cluster(name)
        before_release = []
        if cfg.gossip_encryption:
            self.gossip_key = GossipEncryptionKey(
                f"{name}-gossip-key", self.namespace.metadata.name, cfg.gossip_secret_name,
                self.provider, pulumi.ResourceOptions(parent=self))
            before_release.append(self.gossip_key)
        self._install(name, primary_values(cfg), before_release)
        self.federation_secret = read_primary_federation_secret(
            name, cfg, self.release, self.provider, self)
        self.stack_outputs[outputs.FEDERATION_SECRET] = self.federation_secret
        self._finish()
