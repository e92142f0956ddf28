"""Helm hook Jobs that a failed Helm operation leaves behind, and what to do about them.

Helm deletes a hook with the `hook-succeeded` policy only once every hook of the event has
succeeded. When one fails (the primary's create-federation-secret, say), the hooks that already
ran and the one that failed stay in the cluster, and a hook without the `before-hook-creation`
policy cannot be created again: every later upgrade fails with `jobs.batch "..." already
exists`. The Consul chart has such hooks (`create-federation-secret`: `hook-succeeded`;
`server-acl-init-cleanup`: `hook-succeeded,hook-failed`).

So: after a failed operation the Release's error hook names each failed hook Job, its reason and
where its logs are (``failed_hook_lines``); before the next upgrade of the Release, the
``delete_leftover_hook_jobs`` hook deletes the finished hook Jobs of the release that Helm would
not delete itself, saying which, so that upgrade can run its hooks again. Jobs that are still
running, Jobs that are not hooks, and hooks with `before-hook-creation` (Helm deletes those) are
never touched.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping, Optional

import pulumi

from .kube_cluster import KubeCluster, error_summary

HOOK = "helm.sh/hook"
DELETE_POLICY = "helm.sh/hook-delete-policy"
# How long to wait for a deleted Job to be gone before Helm creates it again, looking this often.
DELETE_WAIT_SECONDS = 60.0
DELETE_POLL_SECONDS = 1.0


def finished(job: Mapping[str, Any]) -> Optional[str]:
    """"Complete", "Failed: <reason>: <message>", or None for a Job that has not finished."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "Complete"
        if condition.get("type") == "Failed":
            return ": ".join(p for p in ("Failed", condition.get("reason"), condition.get("message")) if p)
    return None


def _annotations(job: Mapping[str, Any]) -> Mapping[str, str]:
    return (job.get("metadata") or {}).get("annotations") or {}


def leftover_hook_jobs(jobs: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, how it finished) of each finished hook Job that Helm would fail to create again:
    a hook whose delete policy does not include before-hook-creation (Helm's default, when
    there is no policy, is before-hook-creation)."""
    found = []
    for job in jobs:
        annotations = _annotations(job)
        if HOOK not in annotations:
            continue
        policies = {p.strip() for p in annotations.get(DELETE_POLICY, "before-hook-creation").split(",")}
        state = finished(job)
        if state is not None and "before-hook-creation" not in policies:
            found.append((job["metadata"]["name"], state))
    return found


def failed_hook_lines(jobs: list[Mapping[str, Any]], context: str, namespace: str) -> list[str]:
    """One line per failed hook Job: its reason, and the command that shows its pods' logs."""
    lines = []
    for job in jobs:
        state = finished(job)
        if HOOK in _annotations(job) and state is not None and state.startswith("Failed"):
            name = job["metadata"]["name"]
            lines.append(f"hook Job {namespace}/{name} ({_annotations(job)[HOOK]}) {state}; its logs: "
                         f"kubectl --context {context} -n {namespace} logs job/{name}")
    return lines


def read_release_jobs(api: Any, namespace: str, release: str) -> list[dict[str, Any]]:
    """The release's Jobs (label release=<release>, as the chart labels them), as plain dicts,
    read through `api` (an ApiClient)."""
    from kubernetes import client  # imported only when a hook runs

    jobs = client.BatchV1Api(api).list_namespaced_job(namespace, label_selector=f"release={release}")
    return [api.sanitize_for_serialization(job) for job in jobs.items]


async def delete_jobs(api: Any, namespace: str, names: list[str],
                      wait: float = DELETE_WAIT_SECONDS) -> list[str]:
    """Delete the Jobs (their pods with them, as Helm does) and wait until they are gone;
    returns those still there after `wait` seconds. The calls run in a thread and the wait is
    asyncio's: the SDK's loop, which also answers the engine, stays free meanwhile."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    batch = client.BatchV1Api(api)

    def delete() -> None:
        for name in names:
            try:
                batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def present() -> set[str]:
        return {j.metadata.name for j in batch.list_namespaced_job(namespace).items}

    await asyncio.to_thread(delete)
    deadline = time.monotonic() + wait
    left = list(names)
    while left:
        still = await asyncio.to_thread(present)
        left = [n for n in left if n in still]
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(DELETE_POLL_SECONDS)
    return left


def delete_leftover_hook_jobs(name: str, kube: KubeCluster, namespace: str, release: str) -> pulumi.ResourceHook:
    """A before-update hook for the Release: delete the hook Jobs a failed Helm operation left
    (``leftover_hook_jobs``), saying which. It runs on `pulumi up` only, never in a preview. If
    the cluster cannot be read it says so and lets Helm report the problem. Async, its calls in
    a thread: the SDK runs hooks on its own loop and awaits what they return."""

    async def hook(args: pulumi.ResourceHookArgs) -> None:
        try:
            api = await asyncio.to_thread(kube.api_client)
            leftover = leftover_hook_jobs(await asyncio.to_thread(read_release_jobs, api, namespace, release))
            if not leftover:
                return
            left = await delete_jobs(api, namespace, [n for n, _ in leftover])
        except Exception as exc:  # Helm's own error will say more; never block the upgrade here
            pulumi.log.warn(f"could not look for hook Jobs left by a failed Helm operation of release "
                            f"{namespace}/{release} (context {kube.context}): {error_summary(exc)}")
            return
        for job, state in leftover:
            pulumi.log.warn(f"deleted hook Job {namespace}/{job} ({state}), which a failed Helm "
                            "operation of this release left behind: Helm could not create it again otherwise")
        if left:
            pulumi.log.warn(f"hook Jobs still being deleted after {DELETE_WAIT_SECONDS:g} s: {', '.join(left)}")

    return pulumi.ResourceHook(f"{name}-delete-leftover-hook-jobs", hook)
