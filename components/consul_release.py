"""The Consul Helm release of one datacenter.

helm.v3.Release (not helm.v4.Chart) because only a Release runs the chart's hooks, and the
federation secret is written by a post-install hook.

A failed install or upgrade (Helm marks the revision failed; `cleanup_on_fail` deletes what the
failed revision created) is retried by the next `pulumi up`: the provider records the failure
and the engine updates a resource with such an error again even when its inputs did not change.
Two hooks make that retry work and the failure legible: on error, the unready workloads and
failed hook Jobs are named (readiness.py); before an update, the hook Jobs a failed operation
left behind are deleted, since Helm could not create them again (hook_jobs.py).
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from .settings import VALUE_KEYS, DatacenterConfig
from .hook_jobs import delete_leftover_hook_jobs
from .kube_cluster import KubeCluster
from .readiness import explain_failed_release

# Each Helm revision is a Secret in the namespace; keep a bounded history for rollbacks.
MAX_HISTORY = 10


def release_description(cfg: DatacenterConfig) -> Optional[str]:
    """A new gossip key generation upgrades the primary's Release, whose templates it does not
    change, so that the create-federation-secret hook (post-upgrade) copies the new key into the
    federation secret; `helm history` names the generation."""
    if cfg.is_primary and cfg.gossip_key_generation:
        return f"gossip key generation {cfg.gossip_key_generation}"
    return None


def consul_release(name: str, cfg: DatacenterConfig, kube: KubeCluster, namespace: pulumi.Input[str],
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
        description=release_description(cfg),
        **chart,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(hooks=pulumi.ResourceHookBinding(
            before_update=[delete_leftover_hook_jobs(name, kube, cfg.namespace,
                                                     cfg.release_name)],
            on_error=[explain_failed_release(name, kube, cfg.namespace,
                                             cfg.release_name)]))),
    )
