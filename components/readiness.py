"""Why a Consul release did not become ready: the workloads Helm's wait gave up on, and why.

Helm's wait ends with "context deadline exceeded" and names nothing: the Helm inside
pulumi-kubernetes logs the unready objects at debug level only. So an error hook on the Release
reads the release's workloads after a failed create or update and reports each unready one,
with the Secrets, keys and ConfigMaps its pods lack, as a kubelet would refuse to start them.
It also reports each hook Job that failed (a post-upgrade create-federation-secret, say), with
the command that shows its logs and what the next `pulumi up` does about it (hook_jobs.py), and
quotes the last log lines of every failing container of the release's unready workloads and
unfinished Jobs (pod_failures.py): the cause is there, not in Helm's message.
Messages carry names, keys and redacted log lines only, never a value.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, NamedTuple, Optional

import pulumi

from .hook_jobs import failed_hook_lines, finished, read_release_jobs
from .kube_cluster import KubeCluster, error_summary
from .pod_failures import LogReader, api_log_reader, pod_failure_lines


class Readiness(NamedTuple):
    """A workload's pods counted ready, how many its spec wants, and whether its controller has
    observed the current spec (status.observedGeneration >= metadata.generation)."""

    ready: int
    want: int
    observed: bool

    @property
    def complete(self) -> bool:
        """Every wanted pod ready, counted for the current spec."""
        return self.observed and self.ready >= self.want


def workload_readiness(kind: str, obj: Mapping[str, Any]) -> Readiness:
    """How ready a Deployment, StatefulSet or DaemonSet is, from the object as the API returns it
    (camelCase: ``ApiClient.sanitize_for_serialization``); one rule for the Release's error hook
    and for verify. Pods count when ready (readyReplicas; numberReady of desiredNumberScheduled
    for a DaemonSet): what Helm's wait counts and what a Service sends traffic to. Not
    availableReplicas (ready for minReadySeconds): none of the pinned Consul charts sets
    minReadySeconds, so for their workloads the two are equal."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        want, ready = status.get("desiredNumberScheduled") or 0, status.get("numberReady") or 0
    else:
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas") or 0
    observed = (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
    return Readiness(ready, want, observed)


def replicas_short(kind: str, obj: Mapping[str, Any]) -> Optional[str]:
    """'0 of 1 replicas ready' for a workload Helm's wait would not accept, else None."""
    r = workload_readiness(kind, obj)
    return None if r.complete else f"{r.ready} of {r.want} replicas ready"


def missing_references(pod_spec: Mapping[str, Any], secrets: Mapping[str, set[str]],
                       config_maps: Mapping[str, set[str]]) -> list[str]:
    """What a kubelet could not find for these pods: Secrets, keys and ConfigMaps they need
    (volumes, env and envFrom; references marked optional do not count)."""
    problems: list[str] = []

    def need(kind: str, name: str, keys: list[str], optional: Optional[bool]) -> None:
        if optional:
            return
        known = secrets if kind == "Secret" else config_maps
        if name not in known:
            problems.append(f"{kind} {name} does not exist")
            return
        problems.extend(f"{kind} {name} has no key {key!r}" for key in keys if key not in known[name])

    for volume in pod_spec.get("volumes") or []:
        if "secret" in volume:
            ref = volume["secret"]
            need("Secret", ref["secretName"], [i["key"] for i in ref.get("items") or []], ref.get("optional"))
        if "configMap" in volume:
            ref = volume["configMap"]
            need("ConfigMap", ref["name"], [i["key"] for i in ref.get("items") or []], ref.get("optional"))
    for container in (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or []):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                need("Secret", ref["name"], [ref["key"]], ref.get("optional"))
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                need("ConfigMap", ref["name"], [ref["key"]], ref.get("optional"))
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                need("Secret", source["secretRef"]["name"], [], source["secretRef"].get("optional"))
            if "configMapRef" in source:
                need("ConfigMap", source["configMapRef"]["name"], [], source["configMapRef"].get("optional"))
    return list(dict.fromkeys(problems))


def explain_unready(workloads: list[tuple[str, Mapping[str, Any]]], secrets: Mapping[str, set[str]],
                    config_maps: Mapping[str, set[str]]) -> list[str]:
    """One line per unready (kind, object) workload, with what its pods are missing."""
    lines = []
    for kind, obj in workloads:
        short = replicas_short(kind, obj)
        if short is None:
            continue
        meta = obj["metadata"]
        line = f"{kind} {meta['namespace']}/{meta['name']}: {short}"
        missing = missing_references(obj["spec"]["template"]["spec"], secrets, config_maps)
        if missing:
            line += "; its pods cannot start: " + "; ".join(missing)
        lines.append(line)
    return lines


def _selected(pod: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    wanted = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def failing_container_lines(owners: list[tuple[str, Mapping[str, Any]]], pods: list[Mapping[str, Any]],
                            read_log: LogReader) -> list[str]:
    """For each unready workload and each Job that has not completed, among (kind, object)
    `owners`: its failing containers (pods matched by the owner's selector) with their last log
    lines."""
    lines = []
    for kind, obj in owners:
        if kind == "Job" and finished(obj) == "Complete":
            continue
        if kind != "Job" and replicas_short(kind, obj) is None:
            continue
        meta = obj["metadata"]
        mine = [p for p in pods if _selected(p, obj)]
        lines += [f"{kind} {meta['namespace']}/{meta['name']}: {line}"
                  for line in pod_failure_lines(mine, read_log)]
    return lines


def read_unready(api: Any, namespace: str, release: str,
                 jobs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(explain_unready, failing_container_lines) for the release with its `jobs`, read from the
    cluster now through `api` (an ApiClient)."""
    from kubernetes import client  # imported only when a Release has failed

    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    selector = f"release={release}"
    listed = (("Deployment", apps.list_namespaced_deployment), ("StatefulSet", apps.list_namespaced_stateful_set),
              ("DaemonSet", apps.list_namespaced_daemon_set))
    workloads = [(kind, api.sanitize_for_serialization(obj))
                 for kind, list_fn in listed for obj in list_fn(namespace, label_selector=selector).items]
    secrets = {s.metadata.name: set(s.data or {}) for s in core.list_namespaced_secret(namespace).items}
    config_maps = {c.metadata.name: set(c.data or {}) for c in core.list_namespaced_config_map(namespace).items}
    pods = [api.sanitize_for_serialization(p) for p in core.list_namespaced_pod(namespace).items]
    failing = failing_container_lines(workloads + [("Job", job) for job in jobs], pods, api_log_reader(core, namespace))
    return explain_unready(workloads, secrets, config_maps), failing


def failed_hooks_message(namespace: str, release: str, operation: str, hooks: list[str]) -> str:
    return (f"Helm release {namespace}/{release} ({operation}): a hook failed, so Helm marked this "
            "revision failed:\n" + "\n".join(f"  - {line}" for line in hooks) + "\n"
            "Read the logs before running pulumi up again: that run deletes the hook Jobs Helm left "
            "behind (Helm could not create them again) and then retries the upgrade with its hooks.")


def read_failure(kube: KubeCluster, namespace: str, release: str) -> tuple[list[str], list[str], list[str]]:
    """(unready workloads, failing containers, failed hook Jobs) of the release, read now
    through one client."""
    api = kube.api_client()
    jobs = read_release_jobs(api, namespace, release)
    lines, failing = read_unready(api, namespace, release, jobs)
    return lines, failing, failed_hook_lines(jobs, kube.context, namespace)


def explain_failed_release(name: str, kube: KubeCluster, namespace: str, release: str) -> pulumi.ErrorHook:
    """An error hook for the Release: after a failed create or update, log every unready
    workload and every failed hook Job of the release; never retries (Helm already waited the
    release timeout). Async, the reads in a thread: the SDK runs hooks on its own loop, which
    also answers the engine, and awaits what they return."""

    async def hook(args: pulumi.ErrorHookArgs) -> bool:
        try:
            lines, failing, hooks = await asyncio.to_thread(read_failure, kube, namespace, release)
        except Exception as exc:  # the cluster may be the thing that failed: say so, stay quiet
            pulumi.log.warn(f"could not read the workloads of Helm release {namespace}/{release} "
                            f"(context {kube.context}) to explain the failure: {error_summary(exc)}")
            return False
        if lines:
            pulumi.log.error(
                f"Helm release {namespace}/{release} ({args.failed_operation}) is not ready; "
                "Helm's wait gave up on:\n" + "\n".join(f"  - {line}" for line in lines))
        if hooks:
            pulumi.log.error(failed_hooks_message(namespace, release, args.failed_operation, hooks))
        if failing:
            pulumi.log.error(
                f"Helm release {namespace}/{release} ({args.failed_operation}): failing containers "
                f"(kubectl --context {kube.context} -n {namespace} logs <pod> -c <container> for more):\n"
                + "\n".join(f"  - {line}" for line in failing))
        return False

    return pulumi.ErrorHook(f"{name}-explain-unready", hook)
