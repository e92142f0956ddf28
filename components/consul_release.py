"""The Consul Helm release of one datacenter.

helm.v3.Release (not helm.v4.Chart) because only a Release runs the chart's hooks, and the
federation secret is written by a post-install hook.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .config import DatacenterConfig

# Each Helm revision is a Secret in the namespace; keep a bounded history for rollbacks.
MAX_HISTORY = 10


def consul_release(name: str, cfg: DatacenterConfig, namespace: pulumi.Input[str],
                   values: pulumi.Input[dict[str, Any]], provider: k8s.Provider,
                   parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource]
                   ) -> k8s.helm.v3.Release:
    if cfg.chart_path:
        chart: dict[str, Any] = {"chart": cfg.chart_path}
    else:
        chart = {"chart": "consul", "version": cfg.chart_version,
                 "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=cfg.chart_repo)}
    return k8s.helm.v3.Release(
        f"{name}-consul",
        name=cfg.release_name,
        namespace=namespace,
        values=values,
        timeout=cfg.release_timeout,
        max_history=MAX_HISTORY,
        cleanup_on_fail=True,
        **chart,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on)),
    )
