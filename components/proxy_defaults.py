"""The mesh-wide ProxyDefaults ``global`` config entry, as a Kubernetes custom resource.

Without a mesh gateway mode, Consul rejects cross-datacenter upstreams (consul-k8s#1022). Its
CRD and the webhook that admits it both come with the chart, so it must follow the Release.
"""

from __future__ import annotations

from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s

from .config import DatacenterConfig


def proxy_defaults(name: str, cfg: DatacenterConfig, namespace: pulumi.Input[str],
                   provider: k8s.Provider, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource]
                   ) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        f"{name}-proxy-defaults",
        api_version="consul.hashicorp.com/v1alpha1",
        kind="ProxyDefaults",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="global", namespace=namespace),
        spec={"meshGateway": {"mode": cfg.mesh_gateway.mode}},
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on)),
    )
