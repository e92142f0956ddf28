"""The mesh-wide ProxyDefaults ``global`` config entry, as a Kubernetes custom resource.

Without a mesh gateway mode, Consul rejects cross-datacenter upstreams (consul-k8s#1022). Its
CRD and the webhook that admits it both come with the chart, so it must follow the Release.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def proxy_defaults(name: str, mode: str, namespace: pulumi.Input[str],
                   opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version="consul.hashicorp.com/v1alpha1",
        kind="ProxyDefaults",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="global", namespace=namespace),
        spec={"meshGateway": {"mode": mode}},
        opts=opts,
    )
