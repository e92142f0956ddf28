"""Readiness of Deployments, StatefulSets and DaemonSets, as kubelets + controllers would make
it, and exactly what Helm's wait reads (helm v3 ``pkg/kube/ready.go``):

- Deployment: helm finds the NEW ReplicaSet with ``deploymentutil.GetNewReplicaSet`` (the
  ReplicaSets matching the Deployment's selector, controlled by it, whose template equals the
  Deployment's ignoring the ``pod-template-hash`` label), then requires the ReplicaSet's
  ``status.observedGeneration`` == its generation, the Deployment's ``observedGeneration`` ==
  its generation, and ``rs.status.readyReplicas >= replicas - maxUnavailable``.
- StatefulSet: ``observedGeneration`` == generation, ``updatedReplicas >= replicas -
  partition``, ``readyReplicas == replicas``, ``currentRevision == updateRevision``.
- DaemonSet: the chart lines in the table render none; one that appears is unknown (below).
- Pods: helm reads them only for Pod, ReplicaSet and ReplicationController objects of the
  release itself, which the charts do not render, so NO Pod objects are made.

PLAYED (admin client): the deployment controller (creates the ReplicaSet ``<name>-<hash>``
with the ``pod-template-hash`` label/selector and a controller owner reference, revision
annotation; an upgrade with a new template creates a new ReplicaSet and scales the old ones to
0), the replicaset and statefulset controllers and the kubelet, all as status subresource
writes. A workload is READY when a kubelet could start its pods: its ServiceAccount exists,
every Secret/ConfigMap its volumes and env reference exists with every key named
(``pod.blockers``), and every statement every container runs is a command the harness table
knows for its kind, with flags it accepts, or one of the line's ``workload_shell`` statements
(``chart_table``); otherwise it has 0 ready replicas and ``unready()`` says why, e.g.
``{"StatefulSet/consul/consul-server": "secret consul-federation has no key
serverConfigJSON"}``. This is re-evaluated every ``poll_interval``, so a workload becomes ready
once the missing Secret appears.

NOT played: probes (a started container counts as ready: Consul, Envoy and the injector do not
run here), ControllerRevisions, PVC binding for volumeClaimTemplates, scheduling.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

from kubernetes.client.rest import ApiException

from localcluster.controllers import template_hash as _hash

from .chart_table import ChartLine
from .commands import plan_pod
from .pod import blockers

if TYPE_CHECKING:
    from .core import ClusterHarness

__all__ = ["Workloads", "Running", "classify"]

REQUEST_TIMEOUT = (5, 30)
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def _without_hash(template: dict) -> dict:
    t = json.loads(json.dumps(template))
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


def classify(kind: str, pod_spec: dict) -> tuple[ChartLine, list[tuple[dict, str]]]:
    """(chart line, [(container, role)]) of a workload's pod template; ValueError when its
    images, any statement any container runs, or any flag of one, are unknown to the table
    (every statement is read, as for Jobs: a known last one does not vouch for the others)."""
    line, plan = plan_pod(
        pod_spec, lambda line: {k: w.command for k, w in line.workloads.get(kind, {}).items()},
        lambda line: line.workload_shell)
    roles = [(c, line.workloads[kind][cmd].role) for c, cmd, _ in plan
             if line.workloads[kind][cmd].role]
    return line, roles


class Running:
    """A ready workload's container that has a role (see ``chart_table``)."""

    def __init__(self, kind: str, obj: dict, container: dict, line: ChartLine):
        self.kind, self.obj, self.container, self.line = kind, obj, container, line
        self.namespace = obj["metadata"]["namespace"]
        self.name = obj["metadata"]["name"]
        self.pod_spec = obj["spec"]["template"]["spec"]
        self.pod_labels = obj["spec"]["template"]["metadata"].get("labels") or {}


class Workloads:
    def __init__(self, h: "ClusterHarness"):
        self.h = h
        self._unready: dict[str, str] = {}
        self._running: dict[str, list[Running]] = {}

    def unready(self) -> dict[str, str]:
        with self.h.lock:
            return dict(self._unready)

    def running(self, role: str) -> list[Running]:
        with self.h.lock:
            return list(self._running.get(role, []))

    # ---- one pass ----------------------------------------------------------------------------

    def reconcile(self) -> None:
        apps, api = self.h.apps(), self.h.api()
        unready: dict[str, str] = {}
        running: dict[str, list[Running]] = {}
        for kind, lister in (("Deployment", apps.list_deployment_for_all_namespaces),
                             ("StatefulSet", apps.list_stateful_set_for_all_namespaces),
                             ("DaemonSet", apps.list_daemon_set_for_all_namespaces)):
            for item in lister(_request_timeout=REQUEST_TIMEOUT).items:
                if item.metadata.deletion_timestamp is not None:
                    continue
                obj = api.sanitize_for_serialization(item)
                key = f"{kind}/{item.metadata.namespace}/{item.metadata.name}"
                why, roles = self._evaluate(kind, obj)
                if why:
                    unready[key] = why
                else:
                    for role, rec in roles:
                        running.setdefault(role, []).append(rec)
                if kind == "Deployment":
                    self._deployment(obj, ready=not why)
                elif kind == "StatefulSet":
                    self._statefulset(obj, ready=not why)
        with self.h.lock:
            self._unready, self._running = unready, running
            self.h.changed.notify_all()

    def _evaluate(self, kind: str, obj: dict) -> tuple[Optional[str], list[tuple[str, Running]]]:
        """(why its pods would not run, or None; [(role, Running)])."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        spec = obj["spec"]["template"]["spec"]
        try:
            line, roles = classify(kind, spec)
        except ValueError as e:
            self.h.error_once("%s %s/%s: %s", kind, ns, name, e)
            return str(e), []
        held = self.h.faults.workload_hold(name)
        reasons = [held] if held else blockers(self.h, ns, spec)
        return ("; ".join(reasons) if reasons else None), \
            [(role, Running(kind, obj, c, line)) for c, role in roles]

    # ---- deployment + replicaset controllers ---------------------------------------------------

    def _deployment(self, dep: dict, ready: bool) -> None:
        apps = self.h.apps()
        md, spec = dep["metadata"], dep["spec"]
        ns, replicas = md["namespace"], spec.get("replicas", 1)
        match = spec["selector"].get("matchLabels") or {}
        if spec["selector"].get("matchExpressions"):
            self.h.error_once("Deployment %s/%s: selector matchExpressions not played", ns,
                              md["name"])
            return
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        owned = []
        for rs in apps.list_namespaced_replica_set(ns, label_selector=selector,
                                                   _request_timeout=REQUEST_TIMEOUT).items:
            refs = rs.metadata.owner_references or []
            if any(r.controller and r.uid == md["uid"] for r in refs):
                owned.append(self.h.api().sanitize_for_serialization(rs))
        owned.sort(key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"]))
        want = _without_hash(spec["template"])
        new = next((r for r in owned if _without_hash(r["spec"]["template"]) == want), None)
        if new is None:
            new = self._create_replica_set(dep, owned)
        for rs in owned:
            if rs["metadata"]["uid"] != new["metadata"]["uid"] and \
                    rs["spec"].get("replicas", 1) != 0:
                apps.patch_namespaced_replica_set(rs["metadata"]["name"], ns,
                                                  {"spec": {"replicas": 0}},
                                                  _request_timeout=REQUEST_TIMEOUT)
                self.h.log.info("scaled old ReplicaSet %s/%s to 0", ns, rs["metadata"]["name"])
        if new["spec"].get("replicas", 1) != replicas:
            new = self.h.api().sanitize_for_serialization(apps.patch_namespaced_replica_set(
                new["metadata"]["name"], ns, {"spec": {"replicas": replicas}},
                _request_timeout=REQUEST_TIMEOUT))
        by_uid = {r["metadata"]["uid"]: r for r in owned}
        by_uid[new["metadata"]["uid"]] = new
        for uid, rs in by_uid.items():
            n = rs["spec"].get("replicas", 1) if uid == new["metadata"]["uid"] else 0
            up = n if ready else 0
            self._patch_status(apps.patch_namespaced_replica_set_status, rs, {
                "observedGeneration": rs["metadata"]["generation"], "replicas": n,
                "fullyLabeledReplicas": n, "readyReplicas": up, "availableReplicas": up})
        up = replicas if ready else 0
        cond = lambda t, ok, reason: {"type": t, "status": "True" if ok else "False",  # noqa
                                      "reason": reason}
        self._patch_status(apps.patch_namespaced_deployment_status, dep, {
            "observedGeneration": md["generation"], "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": up, "availableReplicas": up,
            "unavailableReplicas": replicas - up,
            "conditions": [
                cond("Available", up >= replicas, "MinimumReplicasAvailable" if up >= replicas
                     else "MinimumReplicasUnavailable"),
                cond("Progressing", True, "NewReplicaSetAvailable" if ready
                     else "ReplicaSetUpdated")]})

    def _create_replica_set(self, dep: dict, owned: list[dict]) -> dict:
        md, spec = dep["metadata"], dep["spec"]
        h = _hash(spec["template"])
        template = json.loads(json.dumps(spec["template"]))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        revision = 1 + max([int((r["metadata"].get("annotations") or {}).get(REVISION, "0"))
                            for r in owned] or [0])
        selector = json.loads(json.dumps(spec["selector"]))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{md['name']}-{h}", "namespace": md["namespace"],
                             "labels": template["metadata"]["labels"],
                             "annotations": {REVISION: str(revision)},
                             "ownerReferences": [{
                                 "apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": md["name"], "uid": md["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
                "spec": {"replicas": spec.get("replicas", 1), "selector": selector,
                         "template": template}}
        rs = self.h.apps().create_namespaced_replica_set(md["namespace"], body,
                                                         _request_timeout=REQUEST_TIMEOUT)
        self.h.log.info("created ReplicaSet %s/%s (revision %d)", md["namespace"],
                        rs.metadata.name, revision)
        return self.h.api().sanitize_for_serialization(rs)

    # ---- statefulset controller ----------------------------------------------------------------

    def _statefulset(self, sts: dict, ready: bool) -> None:
        md, spec = sts["metadata"], sts["spec"]
        replicas = spec.get("replicas", 1)
        update = f"{md['name']}-{_hash(spec['template'])}"
        current = (sts.get("status") or {}).get("currentRevision") or update
        if ready:
            current = update
        up = replicas if ready else 0
        self._patch_status(self.h.apps().patch_namespaced_stateful_set_status, sts, {
            "observedGeneration": md["generation"], "replicas": replicas,
            "readyReplicas": up, "availableReplicas": up,
            "currentReplicas": replicas if current == update else 0,
            "updatedReplicas": replicas, "currentRevision": current,
            "updateRevision": update, "collisionCount": 0})

    def _patch_status(self, patch, obj: dict, status: dict) -> None:
        have = obj.get("status") or {}
        same = all(have.get(k) == v for k, v in status.items() if k != "conditions") and \
            [(c["type"], c["status"]) for c in status.get("conditions", [])] == \
            [(c.get("type"), c.get("status")) for c in have.get("conditions", [])
             if "conditions" in status]
        if same:
            return
        try:
            patch(obj["metadata"]["name"], obj["metadata"]["namespace"], {"status": status},
                  _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile
                raise
