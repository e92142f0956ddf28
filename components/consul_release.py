"""The Consul Helm release of one datacenter.

helm.v3.Release (not helm.v4.Chart) because only a Release runs the chart's hooks, and the
federation secret is written by a post-install hook.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .config import VALUE_KEYS, DatacenterConfig
from .kube_cluster import resolve_kubeconfig
from .readiness import explain_failed_release

# Each Helm revision is a Secret in the namespace; keep a bounded history for rollbacks.
MAX_HISTORY = 10


def consul_release(name: str, cfg: DatacenterConfig, namespace: pulumi.Input[str],
                   values: pulumi.Input[dict[str, Any]], opts: pulumi.ResourceOptions
                   ) -> k8s.helm.v3.Release:
    """The Release with `values`, which stay plain (so `pulumi preview --diff` shows each chart
    value) unless a setting they come from was set with --secret: then they are a Pulumi secret
    as a whole (a secret chart repository URL likewise)."""
    if cfg.chart_path:
        chart: dict[str, Any] = {"chart": cfg.chart_path}
    else:
        chart = {"chart": "consul", "version": cfg.chart_version,
                 "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=cfg.secret_if(cfg.chart_repo, "chartRepo"))}
    return k8s.helm.v3.Release(
        name,
        name=cfg.release_name,
        namespace=namespace,
        values=cfg.secret_if(values, *VALUE_KEYS),
        timeout=cfg.release_timeout,
        max_history=MAX_HISTORY,
        cleanup_on_fail=True,
        **chart,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(hooks=pulumi.ResourceHookBinding(
            on_error=[explain_failed_release(name, resolve_kubeconfig(cfg.kubeconfig, cfg.kube_context),
                                             cfg.kube_context, cfg.namespace, cfg.release_name)]))),
    )
