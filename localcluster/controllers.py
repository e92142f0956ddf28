"""The controllers Kubernetes itself would run, PLAYED against the real API server (admin
credentials), each as close to the real one as the chart's objects need:

- node: registers the one Node (``InternalIP`` = the cluster's node address, Ready);
- deployment + replicaset: a ReplicaSet ``<name>-<hash>`` per pod template (old ones scaled to
  0), Pods ``<rs>-<random>``, statuses from the Pods' readiness (what Helm's wait reads);
- statefulset: Pods ``<name>-<i>`` (hostname and subdomain set, ``Parallel`` all at once,
  ``OrderedReady`` one after the other), a Pod of an old revision deleted highest ordinal
  first (``RollingUpdate`` above ``partition``), statuses from readiness;
- job: one Pod at a time; a failed Pod is replaced until ``backoffLimit`` failures, then the Job
  fails with ``BackoffLimitExceeded`` naming the last Pod; success sets ``Complete``;
- garbage collector: Pods whose controlling owner is gone are deleted;
- endpoints: Endpoints of every Service with a selector (ready Pods as addresses, others as
  not-ready unless ``publishNotReadyAddresses``), and ``default/kubernetes`` as the node
  address in front of the API server;
- service-account tokens: ``kubernetes.io/service-account-token`` Secrets get a token (from the
  TokenRequest API, bound to the Secret), ``ca.crt`` and ``namespace``;
- load balancers: each LoadBalancer Service gets an address of the cluster's load balancer range;
  a Service that is no longer a LoadBalancer loses it (its relay stops), as a cloud's controller
  deprovisions the load balancer.

What these controllers meet that they do not know (a DaemonSet, a selector with expressions)
is recorded as an error the test sees, never skipped quietly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import TYPE_CHECKING, Any, Optional

from kubernetes.client.rest import ApiException

from .logserver import KUBELET_PORT

if TYPE_CHECKING:
    from .cluster import LocalCluster

__all__ = ["Controllers"]

REQUEST_TIMEOUT = (5, 30)
HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s rand.SafeEncodeString alphabet


def template_hash(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def _suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_SAFE) for _ in range(n))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _selector(obj: dict) -> dict[str, str]:
    sel = obj["spec"]["selector"]
    if sel.get("matchExpressions"):
        raise ValueError(f"{obj['kind']} {obj['metadata']['name']}: selector matchExpressions "
                         "are not played")
    return sel.get("matchLabels") or {}


def _owner(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _controlled_by(obj: dict, uid: str) -> bool:
    return any(r.get("controller") and r.get("uid") == uid
               for r in obj["metadata"].get("ownerReferences") or [])


class Controllers:
    def __init__(self, cluster: "LocalCluster"):
        self.c = cluster

    # ---- helpers -----------------------------------------------------------------------------

    def _list(self, lister, kind: str, api_version: str, **kw) -> list[dict]:
        """The objects, with the kind and apiVersion a list's items lack."""
        items = lister(_request_timeout=REQUEST_TIMEOUT, **kw).items
        return [{**self.c.api().sanitize_for_serialization(i), "kind": kind, "apiVersion": api_version}
                for i in items]

    def _pods(self) -> list[dict]:
        return self._list(self.c.core().list_pod_for_all_namespaces, "Pod", "v1")

    @staticmethod
    def _ready(pod: dict) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    def _create_pod(self, owner: dict, template: dict, name: str, extra_labels: dict,
                    hostname: Optional[str] = None, subdomain: Optional[str] = None) -> None:
        md = json.loads(json.dumps(template.get("metadata") or {}))
        md["name"] = name
        md["namespace"] = owner["metadata"]["namespace"]
        md.setdefault("labels", {}).update(extra_labels)
        md["ownerReferences"] = [_owner(owner)]
        spec = json.loads(json.dumps(template["spec"]))
        spec["nodeName"] = self.c.node_name
        # what the ServiceAccount admission plugin (off on these API servers) would default
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        if hostname:
            spec["hostname"], spec["subdomain"] = hostname, subdomain
        try:
            self.c.core().create_namespaced_pod(md["namespace"], {
                "apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec},
                _request_timeout=REQUEST_TIMEOUT)
            self.c.log.info("created pod %s/%s", md["namespace"], name)
        except ApiException as e:
            if e.status == 409:
                return
            # An admission webhook that is not up yet is retried; anything else is an error.
            message = _message(e)
            self.c.error_once(f"creating pod {md['namespace']}/{name}: {e.status} {message}",
                              transient="failed calling webhook" in message)

    def _delete_pod(self, pod: dict) -> None:
        try:
            self.c.core().delete_namespaced_pod(pod["metadata"]["name"], pod["metadata"]["namespace"],
                                                _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise

    def _patch_status(self, patch, obj: dict, status: dict) -> None:
        have = obj.get("status") or {}
        if all(have.get(k) == v for k, v in status.items() if k != "conditions") and (
                "conditions" not in status or [(c["type"], c["status"]) for c in status["conditions"]]
                == [(c.get("type"), c.get("status")) for c in have.get("conditions") or []]):
            return
        try:
            patch(obj["metadata"]["name"], obj["metadata"]["namespace"], {"status": status},
                  _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise

    def claim_templates(self, pod: dict) -> list[dict]:
        """The volumeClaimTemplates of the StatefulSet that controls ``pod`` (none otherwise)."""
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "StatefulSet" and ref.get("controller"):
                try:
                    sts = self.c.apps().read_namespaced_stateful_set(
                        ref["name"], pod["metadata"]["namespace"], _request_timeout=REQUEST_TIMEOUT)
                except ApiException as e:
                    if e.status == 404:
                        return []
                    raise
                obj = self.c.api().sanitize_for_serialization(sts)
                return obj["spec"].get("volumeClaimTemplates") or []
        return []

    # ---- one pass of every controller ----------------------------------------------------------

    def reconcile(self) -> None:
        self.node()
        pods = self._pods()
        owners: set[str] = set()
        apps, batch, core = self.c.apps(), self.c.batch(), self.c.core()
        for kind, lister, version, handler in (
                ("Deployment", apps.list_deployment_for_all_namespaces, "apps/v1", self.deployment),
                ("ReplicaSet", apps.list_replica_set_for_all_namespaces, "apps/v1", self.replica_set),
                ("StatefulSet", apps.list_stateful_set_for_all_namespaces, "apps/v1", self.stateful_set),
                ("Job", batch.list_job_for_all_namespaces, "batch/v1", self.job)):
            for obj in self._list(lister, kind, version):
                owners.add(obj["metadata"]["uid"])
                self._each(obj, handler, pods)
        for ds in self._list(apps.list_daemon_set_for_all_namespaces, "DaemonSet", "apps/v1"):
            self.c.error_once(f"DaemonSet {ds['metadata']['namespace']}/{ds['metadata']['name']}: "
                              "not played by the local cluster")
        self.garbage(pods, owners)
        services = self._list(core.list_service_for_all_namespaces, "Service", "v1")
        self.endpoints(services, self._pods())
        self.load_balancers(services)
        self.token_secrets()

    def _each(self, obj: dict, handler, pods: list[dict]) -> None:
        """One object's reconcile; its failure is recorded and the others still run."""
        try:
            handler(obj, pods)
        except ApiException as e:
            if e.status == 409:
                return
            self.c.error_once(f"{obj['kind']} {obj['metadata']['namespace']}/"
                              f"{obj['metadata']['name']}: {e.status} {_message(e)}")

    # ---- node ----------------------------------------------------------------------------------

    def node(self) -> None:
        core = self.c.core()
        try:
            node = core.read_node(self.c.node_name, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise
            node = core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": self.c.node_name, "labels": {"kubernetes.io/hostname": self.c.node_name,
                                                     "kubernetes.io/os": "linux"}}},
                _request_timeout=REQUEST_TIMEOUT)
        conditions = node.status.conditions or [] if node.status else []
        if not any(c.type == "Ready" and c.status == "True" for c in conditions):
            # InternalIP only: the API server reaches the kubelet (logs) at the first address
            # type it prefers, and Hostname, its first choice, resolves nowhere here.
            core.patch_node_status(self.c.node_name, {"status": {
                "addresses": [{"type": "InternalIP", "address": self.c.addresses.node_ip}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "played by localcluster", "lastHeartbeatTime": _now(),
                                "lastTransitionTime": _now()}],
                "nodeInfo": {"kubeletVersion": "v1.35.4", "architecture": "amd64",
                             "operatingSystem": "linux", "containerRuntimeVersion": "localcluster://",
                             "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                             "machineID": "", "systemUUID": "", "bootID": ""}}},
                _request_timeout=REQUEST_TIMEOUT)

    # ---- deployments and replica sets -----------------------------------------------------------

    def deployment(self, dep: dict, pods: list[dict]) -> None:
        apps = self.c.apps()
        md, spec = dep["metadata"], dep["spec"]
        if md.get("deletionTimestamp"):
            return
        ns, replicas = md["namespace"], spec.get("replicas", 1)
        try:
            match = _selector(dep)
        except ValueError as e:
            self.c.error_once(str(e))
            return
        want_hash = template_hash(spec["template"])
        owned = [rs for rs in self._list(apps.list_namespaced_replica_set, "ReplicaSet", "apps/v1", namespace=ns)
                 if _controlled_by(rs, md["uid"])]
        new = next((rs for rs in owned
                    if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == want_hash), None)
        if new is None:
            template = json.loads(json.dumps(spec["template"]))
            template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = want_hash
            revision = 1 + max([int((r["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", "0")) for r in owned] or [0])
            body = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": f"{md['name']}-{want_hash}", "namespace": ns,
                "labels": template["metadata"]["labels"],
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": [_owner(dep)]},
                "spec": {"replicas": replicas, "template": template,
                         "selector": {"matchLabels": {**match, HASH_LABEL: want_hash}}}}
            try:
                new = {**self.c.api().sanitize_for_serialization(apps.create_namespaced_replica_set(
                    ns, body, _request_timeout=REQUEST_TIMEOUT)), "kind": "ReplicaSet",
                       "apiVersion": "apps/v1"}
            except ApiException as e:
                if e.status != 409:
                    raise
                return
        everything = owned + ([new] if new not in owned else [])
        for rs in everything:
            n = replicas if rs["metadata"]["uid"] == new["metadata"]["uid"] else 0
            if rs["spec"].get("replicas", 1) != n:
                apps.patch_namespaced_replica_set(rs["metadata"]["name"], ns, {"spec": {"replicas": n}},
                                                  _request_timeout=REQUEST_TIMEOUT)
        # As the deployment controller counts: pods of every ReplicaSet, as their statuses say.
        count = lambda rs, key: (rs.get("status") or {}).get(key, 0) or 0  # noqa: E731
        total = sum(count(rs, "replicas") for rs in everything)
        ready = min(total, sum(count(rs, "readyReplicas") for rs in everything))
        updated = min(total, count(new, "replicas"))
        new_ready = count(new, "readyReplicas")
        cond = lambda t, ok, reason: {"type": t, "status": "True" if ok else "False",  # noqa
                                      "reason": reason}
        done = new_ready >= replicas and total == replicas
        self._patch_status(apps.patch_namespaced_deployment_status, dep, {
            "observedGeneration": md["generation"], "replicas": total,
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": [cond("Available", ready >= replicas, "MinimumReplicasAvailable"
                                if ready >= replicas else "MinimumReplicasUnavailable"),
                           cond("Progressing", True, "NewReplicaSetAvailable" if done
                                else "ReplicaSetUpdated")]})

    def replica_set(self, rs: dict, pods: list[dict]) -> None:
        md = rs["metadata"]
        if md.get("deletionTimestamp"):
            return
        mine = [p for p in pods if _controlled_by(p, md["uid"])
                and not p["metadata"].get("deletionTimestamp")]
        want = rs["spec"].get("replicas", 1)
        for _ in range(want - len(mine)):
            self._create_pod(rs, rs["spec"]["template"], f"{md['name']}-{_suffix()}", {})
        for pod in sorted(mine, key=self._ready)[:max(0, len(mine) - want)]:
            self._delete_pod(pod)
        ready = sum(1 for p in mine if self._ready(p))
        self._patch_status(self.c.apps().patch_namespaced_replica_set_status, rs, {
            "observedGeneration": md["generation"], "replicas": len(mine),
            "fullyLabeledReplicas": len(mine), "readyReplicas": ready, "availableReplicas": ready})

    # ---- stateful sets ---------------------------------------------------------------------------

    def stateful_set(self, sts: dict, pods: list[dict]) -> None:
        md, spec = sts["metadata"], sts["spec"]
        if md.get("deletionTimestamp"):
            return
        name, replicas = md["name"], spec.get("replicas", 1)
        revision = f"{name}-{template_hash(spec['template'])}"
        mine = {p["metadata"]["name"]: p for p in pods if _controlled_by(p, md["uid"])}
        parallel = spec.get("podManagementPolicy") == "Parallel"
        for i in range(replicas):
            pod_name = f"{name}-{i}"
            if pod_name in mine:
                continue
            if not parallel and any(not self._ready(mine.get(f"{name}-{j}", {})) for j in range(i)):
                break
            template = json.loads(json.dumps(spec["template"]))
            template["spec"].setdefault("volumes", []).extend(
                {"name": claim["metadata"]["name"], "persistentVolumeClaim": {
                    "claimName": f"{claim['metadata']['name']}-{pod_name}"}}
                for claim in spec.get("volumeClaimTemplates") or [])
            self._create_pod(sts, template, pod_name,
                             {REVISION_LABEL: revision, "statefulset.kubernetes.io/pod-name": pod_name},
                             hostname=pod_name, subdomain=spec.get("serviceName"))
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0)
        stale = [p for n, p in mine.items() if int(n.rsplit("-", 1)[1]) >= partition
                 and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision
                 and not p["metadata"].get("deletionTimestamp")]
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        live = [p for p in mine.values() if not p["metadata"].get("deletionTimestamp")]
        if rolling and stale and all(self._ready(p) for p in live):
            self._delete_pod(max(stale, key=lambda p: int(p["metadata"]["name"].rsplit("-", 1)[1])))
        ready = sum(1 for p in live if self._ready(p))
        updated = sum(1 for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision)
        current = revision if updated == replicas else (
            (sts.get("status") or {}).get("currentRevision") or revision)
        self._patch_status(self.c.apps().patch_namespaced_stateful_set_status, sts, {
            "observedGeneration": md["generation"], "replicas": len(live),
            "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": updated
            if current == revision else len(live) - updated, "updatedReplicas": updated,
            "currentRevision": current, "updateRevision": revision, "collisionCount": 0})

    # ---- jobs ------------------------------------------------------------------------------------

    def job(self, job: dict, pods: list[dict]) -> None:
        md, spec, status = job["metadata"], job["spec"], job.get("status") or {}
        if md.get("deletionTimestamp") or any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in status.get("conditions") or []):
            return
        mine = [p for p in pods if _controlled_by(p, md["uid"])]
        phases = [(p.get("status") or {}).get("phase") for p in mine]
        failed = phases.count("Failed")
        now = _now()
        if "Succeeded" in phases:
            cond = lambda t: {"type": t, "status": "True", "reason": "CompletionsReached",  # noqa
                              "message": "Reached expected number of succeeded pods",
                              "lastProbeTime": now, "lastTransitionTime": now}
            self._patch_status(self.c.batch().patch_namespaced_job_status, job, {
                "active": 0, "ready": 0, "succeeded": 1, "failed": failed,
                "startTime": status.get("startTime") or now, "completionTime": now,
                "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]})
            self.c.log.info("job %s/%s complete", md["namespace"], md["name"])
            return
        backoff = spec.get("backoffLimit", 6)
        if failed > backoff:
            last = max((p for p in mine if (p.get("status") or {}).get("phase") == "Failed"),
                       key=lambda p: p["metadata"]["creationTimestamp"])
            why = (last.get("status") or {}).get("message") or "failed"
            cond = lambda t: {"type": t, "status": "True", "reason": "BackoffLimitExceeded",  # noqa
                              "message": f"Job has reached the specified backoff limit (pod "
                                         f"{last['metadata']['name']}: {why})"[:1000],
                              "lastProbeTime": now, "lastTransitionTime": now}
            self._patch_status(self.c.batch().patch_namespaced_job_status, job, {
                "active": 0, "ready": 0, "failed": failed,
                "startTime": status.get("startTime") or now,
                "conditions": [cond("FailureTarget"), cond("Failed")]})
            self.c.log.info("job %s/%s failed: %s", md["namespace"], md["name"], why)
            return
        active = [p for p in mine if (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")]
        if not active:
            self._create_pod(job, spec["template"], f"{md['name']}-{_suffix()}",
                             {"job-name": md["name"], "batch.kubernetes.io/job-name": md["name"],
                              "controller-uid": md["uid"],
                              "batch.kubernetes.io/controller-uid": md["uid"]})
        self._patch_status(self.c.batch().patch_namespaced_job_status, job, {
            "active": max(1, len(active)), "failed": failed, "startTime": status.get("startTime") or now})

    # ---- garbage collector -----------------------------------------------------------------------

    def garbage(self, pods: list[dict], owners: set[str]) -> None:
        for pod in pods:
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
            if refs and refs[0]["uid"] not in owners and not pod["metadata"].get("deletionTimestamp"):
                self._delete_pod(pod)

    # ---- endpoints, load balancers, tokens ------------------------------------------------------

    def endpoints(self, services: list[dict], pods: list[dict]) -> None:
        core = self.c.core()
        for svc in services:
            md, spec = svc["metadata"], svc["spec"]
            ns, name = md["namespace"], md["name"]
            if (ns, name) == ("default", "kubernetes"):
                subsets = [{"addresses": [{"ip": self.c.addresses.node_ip}],
                            "ports": [{"name": "https", "port": self.c.apiserver_port,
                                       "protocol": "TCP"}]}]
            elif spec.get("selector"):
                subsets = self._subsets(svc, pods)
            else:
                continue
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": md.get("labels") or {}},
                    "subsets": subsets}
            try:
                have = core.read_namespaced_endpoints(name, ns, _request_timeout=REQUEST_TIMEOUT)
                have_subsets = self.c.api().sanitize_for_serialization(have).get("subsets") or []
                if _norm(have_subsets) != _norm(subsets):
                    core.replace_namespaced_endpoints(name, ns, {**body, "metadata": {
                        **body["metadata"], "resourceVersion": have.metadata.resource_version}},
                        _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e:
                if e.status != 404:
                    raise
                core.create_namespaced_endpoints(ns, body, _request_timeout=REQUEST_TIMEOUT)

    def _subsets(self, svc: dict, pods: list[dict]) -> list[dict]:
        spec = svc["spec"]
        ready, unready, ports = [], [], None
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            ip = (pod.get("status") or {}).get("podIP")
            if pod["metadata"]["namespace"] != svc["metadata"]["namespace"] or not ip or \
                    pod["metadata"].get("deletionTimestamp") or \
                    not spec["selector"].items() <= labels.items():
                continue
            address = {"ip": ip, "nodeName": self.c.node_name, "targetRef": {
                "kind": "Pod", "name": pod["metadata"]["name"],
                "namespace": pod["metadata"]["namespace"], "uid": pod["metadata"]["uid"]}}
            if pod["spec"].get("subdomain") == svc["metadata"]["name"] and pod["spec"].get("hostname"):
                address["hostname"] = pod["spec"]["hostname"]
            (ready if self._ready(pod) or spec.get("publishNotReadyAddresses") else unready).append(address)
            if ports is None:
                ports = [{"name": p.get("name", ""), "port": _target_port(p, pod),
                          "protocol": p.get("protocol", "TCP")} for p in spec.get("ports") or []]
        if not ready and not unready:
            return []
        subset: dict[str, Any] = {"ports": ports or []}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
        if unready:
            subset["notReadyAddresses"] = sorted(unready, key=lambda a: a["ip"])
        return [subset]

    def load_balancers(self, services: list[dict]) -> None:
        for svc in services:
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if svc["spec"].get("type") != "LoadBalancer":
                if ingress:
                    self.c.core().patch_namespaced_service_status(
                        svc["metadata"]["name"], svc["metadata"]["namespace"],
                        {"status": {"loadBalancer": {"ingress": None}}}, _request_timeout=REQUEST_TIMEOUT)
                    self.c.log.info("load balancer of service %s/%s released (type %s)", svc["metadata"]["namespace"],
                                    svc["metadata"]["name"], svc["spec"].get("type"))
                continue
            if ingress:
                continue
            address = self.c.addresses.lb_ip()
            self.c.core().patch_namespaced_service_status(
                svc["metadata"]["name"], svc["metadata"]["namespace"],
                {"status": {"loadBalancer": {"ingress": [{"ip": address}]}}},
                _request_timeout=REQUEST_TIMEOUT)
            self.c.log.info("load balancer %s for service %s/%s", address,
                            svc["metadata"]["namespace"], svc["metadata"]["name"])

    def token_secrets(self) -> None:
        core = self.c.core()
        for secret in core.list_secret_for_all_namespaces(
                field_selector="type=kubernetes.io/service-account-token",
                _request_timeout=REQUEST_TIMEOUT).items:
            if secret.data and secret.data.get("token"):
                continue
            ns = secret.metadata.namespace
            sa = (secret.metadata.annotations or {}).get("kubernetes.io/service-account.name")
            try:
                token = core.create_namespaced_service_account_token(sa, ns, {"spec": {
                    "expirationSeconds": 86400, "boundObjectRef": {
                        "apiVersion": "v1", "kind": "Secret", "name": secret.metadata.name,
                        "uid": secret.metadata.uid}}}, _request_timeout=REQUEST_TIMEOUT).status.token
            except ApiException as e:
                if e.status == 404:  # its ServiceAccount does not exist (yet): as the real one
                    continue
                raise
            b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
            core.patch_namespaced_secret(secret.metadata.name, ns, {"data": {
                "token": b64(token.encode()), "ca.crt": b64(self.c.apiserver_ca),
                "namespace": b64(ns.encode())}}, _request_timeout=REQUEST_TIMEOUT)


def _target_port(port: dict, pod: dict) -> int:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    for c in pod["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p["containerPort"]
    return port["port"]


def _norm(subsets: list[dict]) -> str:
    return json.dumps(subsets, sort_keys=True)


def _message(e: ApiException) -> str:
    try:
        return json.loads(e.body).get("message", e.reason)
    except (TypeError, ValueError):
        return str(e.reason)
