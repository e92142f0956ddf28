"""The config-entry controller inside the connect injector, for ProxyDefaults.

Upstream (consul-k8s ``control-plane/config-entries/controllers``) writes each admitted config
entry to Consul and then sets its ``status.conditions`` Synced=True and ``lastSyncedTime``,
which is what ``kubectl get proxydefaults`` and ``python -m federation verify`` read.

PLAYED: no Consul runs here, so "written to Consul" is assumed once the injector of the
ProxyDefaults' namespace is READY (its pods could start): the status is then set to Synced=True
with reason ``PlayedNoConsul``, AS the injector's ServiceAccount (the chart's RBAC must allow
``proxydefaults/status``). A ProxyDefaults with no ready injector in its namespace stays without
status, as upstream's would stay unsynced. Other config-entry kinds are not played.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from kubernetes import client

from .chart_table import WEBHOOK_SERVER

if TYPE_CHECKING:
    from .core import ClusterHarness

REQUEST_TIMEOUT = (5, 30)
GROUP, VERSION, PLURAL = "consul.hashicorp.com", "v1alpha1", "proxydefaults"


class ConfigEntries:
    def __init__(self, h: "ClusterHarness"):
        self.h = h

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
            if injector is None or md.get("deletionTimestamp") or self._synced(entry):
                continue
            api = self.h.sa_client(injector.namespace,
                                   injector.pod_spec.get("serviceAccountName") or "default")
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
                GROUP, VERSION, md["namespace"], PLURAL, md["name"],
                {"status": {"conditions": [{"type": "Synced", "status": "True",
                                            "reason": "PlayedNoConsul",
                                            "lastTransitionTime": now}],
                            "lastSyncedTime": now}},
                _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("ProxyDefaults %s/%s: Synced (played)", md["namespace"], md["name"])

    @staticmethod
    def _synced(entry: dict) -> bool:
        return any(c.get("type") == "Synced" and c.get("status") == "True"
                   for c in (entry.get("status") or {}).get("conditions") or [])
