"""A secondary datacenter: joins the primary with the federation secret from its stack outputs."""

from __future__ import annotations

from typing import Optional

import pulumi

from . import outputs
from .settings import DatacenterConfig
from .datacenter import cluster, common_outputs, install
from .federation_secret import copy_federation_secret
from .helm_values import secondary_values
from .kube_cluster import KubeCluster, k8s_auth_method_host
from .primary_stack import checked_primary


class SecondaryDatacenter(pulumi.ComponentResource):
    """dc2, dc3, ...: Consul whose CA, token, gossip key and server config come from the primary.

    Every Kubernetes resource waits for the checks against the primary's outputs (through the
    provider), so a secondary that cannot join creates nothing in its cluster.
    """

    def __init__(self, name: str, cfg: DatacenterConfig, kube: KubeCluster,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("consul-federation:index:SecondaryDatacenter", name, None, opts)
        ref = pulumi.StackReference(f"{name}-primary", stack_name=cfg.primary_stack,
                                    opts=pulumi.ResourceOptions(parent=self))
        primary = checked_primary(ref, cfg, self)
        provider, namespace = cluster(name, cfg, kube, self, after=primary)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider)
        federation_secret = copy_federation_secret(
            f"{name}-federation-secret", cfg.federation_secret_name, namespace.metadata.name,
            ref.get_output(outputs.FEDERATION_SECRET), k8s_opts)
        auth_host = k8s_auth_method_host(
            f"{name}-kubernetes-endpoints", cfg.k8s_auth_method_host, kube, k8s_opts)
        values = pulumi.Output.all(primary, auth_host).apply(
            lambda args: secondary_values(cfg, args[0].datacenter, args[1], args[0].tls_ca_stage))
        install(name, cfg, kube, provider, namespace, values, [federation_secret], self)
        self.stack_outputs = {
            **common_outputs(cfg),
            outputs.PRIMARY_DATACENTER: primary.apply(lambda p: p.datacenter),
            outputs.TLS_CA_STAGE: primary.apply(lambda p: p.tls_ca_stage),
            outputs.K8S_AUTH_METHOD_HOST: cfg.secret_if(auth_host, "k8sAuthMethodHost"),
        }
        self.register_outputs(self.stack_outputs)
