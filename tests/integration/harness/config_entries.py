"""The config-entry controller inside the connect injector, for ProxyDefaults.

Upstream (consul-k8s ``control-plane/config-entries/controllers``) writes each config entry to
Consul and then sets its ``status.conditions`` Synced (True, or False with the reason and
Consul's error) and ``lastSyncedTime``, which is what ``kubectl get proxydefaults`` and
``python -m federation verify`` read; it writes again whenever the entry's spec changes.

PLAYED, as the injector's ServiceAccount (the chart's RBAC must allow ``proxydefaults/status``),
by the injector of the entry's namespace once it is READY (its pods could start): the
controller's own check of the entry decides Synced, for each new generation of the entry
(a False one is checked again every pass, as upstream requeues a failed write).

- No Consul runs here, so "written to Consul" is: a Consul server of the namespace is running
  (else Synced False, ``ConsulAgentError``, as upstream's write would fail) and Consul would
  accept the entry: its name is ``global`` and ``spec.meshGateway.mode`` one of the modes
  Consul knows (else Synced False, ``ConsulAgentError``, naming the field).
- Synced True carries reason ``PlayedNoConsul``, so a reader can tell it from a real one.
- NOT played: what another datacenter's servers hold (the primary's replicated entry that
  makes a secondary's own copy "managed in different datacenter"), other config-entry kinds
  and ProxyDefaults fields other than ``meshGateway.mode``.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Optional

from kubernetes import client

from .chart_table import CONSUL_SERVER, WEBHOOK_SERVER

if TYPE_CHECKING:
    from .core import ClusterHarness

__all__ = ["ConfigEntries", "MESH_GATEWAY_MODES", "mesh_gateway_mode_problem"]

REQUEST_TIMEOUT = (5, 30)
GROUP, VERSION, PLURAL = "consul.hashicorp.com", "v1alpha1", "proxydefaults"
MESH_GATEWAY_MODES = ("remote", "local", "none", "")


def mesh_gateway_mode_problem(name: str, entry: dict) -> Optional[str]:
    """upstream ``MeshGateway.validate`` (``shared_types.go``): the one rule the webhook and the
    controller both apply to ``spec.meshGateway.mode``."""
    mode = ((entry.get("spec") or {}).get("meshGateway") or {}).get("mode", "")
    if mode in MESH_GATEWAY_MODES:
        return None
    return (f'ProxyDefaults.consul.hashicorp.com "{name}" is invalid: '
            f'spec.meshGateway.mode: Invalid value: "{mode}": must be one of '
            + ", ".join(f'"{m}"' for m in MESH_GATEWAY_MODES))


class ConfigEntries:
    def __init__(self, h: "ClusterHarness"):
        self.h = h
        self._checked: dict[str, int] = {}  # uid -> the generation whose status was written

    def reconcile(self) -> None:
        injectors = {srv.namespace: srv for srv in self.h.workloads.running(WEBHOOK_SERVER)}
        if not injectors:
            return
        try:
            listed = self.h.custom().list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=REQUEST_TIMEOUT)["items"]
        except client.ApiException as e:
            if e.status == 404:  # the chart's CRDs are not installed (yet, or any more)
                return
            raise
        for entry in listed:
            md = entry["metadata"]
            injector = injectors.get(md["namespace"])
            if injector is None or md.get("deletionTimestamp") or \
                    self._checked.get(md["uid"]) == md.get("generation"):
                continue
            problem = self._problem(md["namespace"], md["name"], entry)
            if problem and self._condition(entry) == ("False", problem):
                continue  # said already; checked again next pass, as upstream requeues
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            condition = {"type": "Synced", "status": "True", "reason": "PlayedNoConsul",
                         "lastTransitionTime": now}
            if problem:
                condition.update(status="False", reason="ConsulAgentError", message=problem)
            api = self.h.sa_client(injector.namespace,
                                   injector.pod_spec.get("serviceAccountName") or "default")
            client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
                GROUP, VERSION, md["namespace"], PLURAL, md["name"],
                {"status": {"conditions": [condition], "lastSyncedTime": now}},
                _request_timeout=REQUEST_TIMEOUT)
            if not problem:
                self._checked[md["uid"]] = md.get("generation")
            self.h.log.info("ProxyDefaults %s/%s generation %s: Synced %s (played)%s",
                            md["namespace"], md["name"], md.get("generation"),
                            condition["status"], f": {problem}" if problem else "")

    def _problem(self, ns: str, name: str, entry: dict) -> Optional[str]:
        """What would keep Consul from taking the entry (None: it would)."""
        if not any(srv.namespace == ns for srv in self.h.workloads.running(CONSUL_SERVER)):
            return f"no Consul server is running in namespace {ns} to write the entry to"
        if name != "global":
            return f'config entry name must be "global" for kind proxy-defaults, not "{name}"'
        return mesh_gateway_mode_problem(name, entry)

    @staticmethod
    def _condition(entry: dict) -> Optional[tuple[str, str]]:
        for c in (entry.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Synced":
                return c.get("status"), c.get("message", "")
        return None
