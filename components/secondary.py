"""A secondary datacenter: joins the primary with the federation secret from its stack outputs."""

from __future__ import annotations

from typing import Optional

import pulumi

from . import outputs
from .config import DatacenterConfig
from .datacenter import ConsulDatacenter
from .federation_secret import copy_federation_secret
from .helm_values import secondary_values
from .kube_cluster import k8s_auth_method_host
from .primary_stack import read_primary


class SecondaryDatacenter(ConsulDatacenter):
    """dc2, dc3, ...: Consul whose CA, token, gossip key and server config come from the primary."""

    def __init__(self, name: str, cfg: DatacenterConfig,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("SecondaryDatacenter", name, cfg, opts)
        self.primary = read_primary(name, cfg, self)
        self._cluster(name)
        self.federation_secret = copy_federation_secret(
            name, cfg, self.namespace.metadata.name, self.primary.federation_secret,
            self.provider, self)
        primary_dc = self.primary.datacenter
        auth_host = k8s_auth_method_host(name, cfg, self.provider, self)
        values = auth_host.apply(lambda host: secondary_values(cfg, primary_dc, host))
        self._install(name, values, [self.federation_secret])
        self.stack_outputs[outputs.PRIMARY_DATACENTER] = primary_dc
        self._finish()
