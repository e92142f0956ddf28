"""What every datacenter has, primary or secondary: provider, namespace, Release, ProxyDefaults."""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from . import outputs
from .config import DatacenterConfig
from .consul_release import consul_release
from .kube_cluster import make_provider
from .proxy_defaults import proxy_defaults


class ConsulDatacenter(pulumi.ComponentResource):
    """Base of PrimaryDatacenter and SecondaryDatacenter; subclasses call the steps in order."""

    def __init__(self, type_name: str, name: str, cfg: DatacenterConfig,
                 opts: pulumi.ResourceOptions | None):
        super().__init__(f"consul-federation:index:{type_name}", name, None, opts)
        self.cfg = cfg
        self.stack_outputs: dict[str, Any] = {
            outputs.DATACENTER: cfg.datacenter,
            outputs.ROLE: cfg.role,
            outputs.NAMESPACE: cfg.namespace,
            outputs.CHART_VERSION: cfg.chart_version,
            outputs.ACLS_ENABLED: cfg.acls,
            outputs.GOSSIP_ENABLED: cfg.gossip_encryption,
        }

    def _cluster(self, name: str) -> None:
        self.provider = make_provider(name, self.cfg, self)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.cfg.namespace),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider))

    def _install(self, name: str, values: pulumi.Input[dict[str, Any]],
                 depends_on: Sequence[pulumi.Resource]) -> None:
        self.release = consul_release(name, self.cfg, self.namespace.metadata.name, values,
                                      self.provider, self, [self.namespace, *depends_on])
        self.proxy_defaults = proxy_defaults(name, self.cfg, self.namespace.metadata.name,
                                             self.provider, self, [self.release])

    def _finish(self) -> None:
        self.register_outputs(self.stack_outputs)
