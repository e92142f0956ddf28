"""What every datacenter has, primary or secondary: provider, namespace, Release, ProxyDefaults.

Plain functions that PrimaryDatacenter and SecondaryDatacenter call from their __init__, each
returning what the next needs, so there is no order to remember.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from . import outputs
from .chart_repo import chart_version_warning
from .settings import DatacenterConfig
from .consul_release import consul_release
from .kube_cluster import KubeCluster, make_provider, require_reachable
from .proxy_defaults import proxy_defaults


def common_outputs(cfg: DatacenterConfig) -> dict[str, Any]:
    """The stack outputs of every datacenter (a secondary checks its primary's)."""
    return {
        outputs.DATACENTER: cfg.datacenter,
        outputs.ROLE: cfg.role,
        outputs.NAMESPACE: cfg.namespace,
        outputs.CHART_VERSION: cfg.chart_version,
        outputs.ACLS_ENABLED: cfg.acls,
        outputs.GOSSIP_ENABLED: cfg.gossip_encryption,
    }


def cluster(name: str, cfg: DatacenterConfig, kube: KubeCluster, parent: pulumi.Resource,
            after: Optional[pulumi.Output[Any]] = None) -> tuple[k8s.Provider, k8s.core.v1.Namespace]:
    """This datacenter's provider and namespace, once the cluster's API server answered
    (ClusterUnreachable otherwise) and the chart repository was found to serve chartVersion
    (ConfigError otherwise). With `after`, the provider takes its context through that Output, so
    no Kubernetes resource is registered before it resolves, or at all if it fails."""
    require_reachable(kube)  # else nothing of this cluster is registered
    unchecked = chart_version_warning(cfg)
    if unchecked:
        pulumi.log.warn(unchecked)
    context: pulumi.Input[str] = cfg.kube_context
    if after is not None:
        context = after.apply(lambda _: cfg.kube_context)
    provider = make_provider(f"{name}-k8s", kube, context, pulumi.ResourceOptions(parent=parent))
    namespace = k8s.core.v1.Namespace(
        f"{name}-namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=cfg.namespace),
        opts=pulumi.ResourceOptions(parent=parent, provider=provider))
    return provider, namespace


def install(name: str, cfg: DatacenterConfig, kube: KubeCluster, provider: k8s.Provider,
            namespace: k8s.core.v1.Namespace,
            values: pulumi.Input[dict[str, Any]], needs: Sequence[pulumi.Resource],
            parent: pulumi.Resource) -> k8s.helm.v3.Release:
    """The Release (after the namespace and `needs`), then, in the primary, ProxyDefaults (after
    the Release, whose connect injector admits it). Consul replicates config entries from the
    primary to every secondary, whose controller refuses a copy of its own as "managed in
    different datacenter" (seen on real Consul 1.16 in tests/consul; consul#6327)."""
    namespace_name = namespace.metadata.name
    release = consul_release(
        f"{name}-consul", cfg, kube, namespace_name, values,
        pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[namespace, *needs]))
    if cfg.is_primary:
        proxy_defaults(f"{name}-proxy-defaults", cfg.mesh_gateway.mode, namespace_name,
                       pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[release]))
    return release
