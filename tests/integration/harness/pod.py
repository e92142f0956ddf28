"""What a kubelet checks before a pod's containers start, and what they would then see.

PLAYED (kubelet): ``blockers(pod_spec)`` lists why a pod of this template could not start: its
ServiceAccount missing (the ServiceAccount admission plugin refuses the pod); a missing
Secret/ConfigMap behind a non-optional volume, ``envFrom`` or ``*KeyRef``; a key named
in a volume's ``items`` or a ``*KeyRef`` that the object lacks (the kubelet's "couldn't find
key" mount error / CreateContainerConfigError); a volume type the harness does not play.
``PodView`` gives a container's environment (``fieldRef`` metadata and status fields, the
``KUBERNETES_SERVICE_*`` variables, ``*KeyRef`` values; a ``fieldRef`` it does not play is an
error, never an empty string) and reads files through its volumeMounts -> volumes ->
Secret/ConfigMap items, as the mounted volume would show them (a path on no played volume is
an error, never "absent").
Secrets and ConfigMaps are read with the admin client, as the kubelet reads them with its
node credentials.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Optional

from kubernetes.client.rest import ApiException

from .commands import expand_k8s
from .errors import HarnessError, NotYet

if TYPE_CHECKING:
    from .core import ClusterHarness

__all__ = ["read_data", "blockers", "PodView"]

REQUEST_TIMEOUT = (5, 30)
# volume types that need nothing from the API (no kubelet here, nothing is mounted)
_INERT_VOLUMES = ("emptyDir", "downwardAPI", "hostPath")


def read_data(h: "ClusterHarness", kind: str, ns: str, name: str) -> Optional[dict[str, bytes]]:
    """The data of Secret/ConfigMap ``ns/name`` (``kind`` "secret"/"configmap"), or None."""
    core = h.core()
    try:
        if kind == "secret":
            s = core.read_namespaced_secret(name, ns, _request_timeout=REQUEST_TIMEOUT)
            return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}
        cm = core.read_namespaced_config_map(name, ns, _request_timeout=REQUEST_TIMEOUT)
        out = {k: v.encode() for k, v in (cm.data or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return out
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _source(vol_or_proj: dict) -> Optional[tuple[str, dict]]:
    if "secret" in vol_or_proj:
        return "secret", vol_or_proj["secret"]
    if "configMap" in vol_or_proj:
        return "configmap", vol_or_proj["configMap"]
    return None


def _check_source(h, ns: str, kind: str, src: dict, cache: dict) -> Optional[str]:
    name = src.get("secretName") or src.get("name")
    if (kind, name) not in cache:
        cache[(kind, name)] = read_data(h, kind, ns, name)
    data = cache[(kind, name)]
    if data is None:
        return None if src.get("optional") else f"{kind} {name} does not exist"
    for item in src.get("items") or []:
        if item["key"] not in data and not src.get("optional"):
            return f"{kind} {name} has no key {item['key']}"
    return None


def _service_account_missing(h: "ClusterHarness", ns: str, pod_spec: dict) -> Optional[str]:
    """The ServiceAccount admission plugin refuses a pod whose ServiceAccount does not exist
    (no namespace here has a ``default`` one: no controller makes it)."""
    name = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"
    try:
        h.core().read_namespaced_service_account(name, ns, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return f"serviceaccount {name} does not exist"
        raise
    return None


def blockers(h: "ClusterHarness", ns: str, pod_spec: dict) -> list[str]:
    """Why a pod with this spec would not start (empty: it would)."""
    out: list[str] = []
    cache: dict = {}
    missing = _service_account_missing(h, ns, pod_spec)
    if missing:
        out.append(missing)
    for vol in pod_spec.get("volumes") or []:
        src = _source(vol)
        if src is not None:
            why = _check_source(h, ns, *src, cache)
        elif "projected" in vol:
            why = None
            for p in vol["projected"].get("sources") or []:
                psrc = _source(p)
                if psrc is not None:
                    why = why or _check_source(h, ns, *psrc, cache)
        elif any(k in vol for k in _INERT_VOLUMES):
            why = None
        else:
            why = f"volume {vol['name']}: type {sorted(set(vol) - {'name'})} not played"
        if why:
            out.append(why)
    for c in (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or []):
        for ef in c.get("envFrom") or []:
            ref = ef.get("secretRef") or ef.get("configMapRef")
            kind = "secret" if "secretRef" in ef else "configmap"
            if (kind, ref["name"]) not in cache:
                cache[(kind, ref["name"])] = read_data(h, kind, ns, ref["name"])
            if cache[(kind, ref["name"])] is None and not ref.get("optional"):
                out.append(f"{kind} {ref['name']} does not exist")
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
            if ref is None:
                continue
            kind = "secret" if "secretKeyRef" in vf else "configmap"
            why = _check_source(h, ns, kind, {"name": ref["name"], "optional": ref.get("optional"),
                                              "items": [{"key": ref["key"]}]}, cache)
            if why:
                out.append(why)
    return list(dict.fromkeys(out))


class PodView:
    """One container of a pod the harness plays: its env, and files on its volumes."""

    def __init__(self, h: "ClusterHarness", ns: str, pod_name: str, pod_spec: dict,
                 container: dict):
        self.h, self.ns, self.pod_name = h, ns, pod_name
        self.pod_spec, self.container = pod_spec, container

    def env(self) -> dict[str, str]:
        env = {"KUBERNETES_SERVICE_HOST": self.h.kubernetes_service_ip(),
               "KUBERNETES_SERVICE_PORT": "443"}
        for e in self.container.get("env") or []:
            if "value" in e:
                env[e["name"]] = expand_k8s(e.get("value") or "", env)
                continue
            vf = e.get("valueFrom") or {}
            if "fieldRef" in vf:
                fields = {
                    "metadata.namespace": self.ns, "metadata.name": self.pod_name,
                    "status.hostIP": self.h.node_ip, "status.podIP": self.h.node_ip,
                    "spec.nodeName": self.h.node_name,
                    "spec.serviceAccountName": self.pod_spec.get("serviceAccountName", ""),
                }
                path = vf["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise HarnessError(f"env {e['name']}: fieldRef {path} is not played "
                                       f"(played: {', '.join(sorted(fields))})")
                env[e["name"]] = fields[path]
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                kind = "secret" if "secretKeyRef" in vf else "configmap"
                data = read_data(self.h, kind, self.ns, ref["name"]) or {}
                if ref["key"] in data:
                    env[e["name"]] = data[ref["key"]].decode()
                elif not ref.get("optional"):
                    raise NotYet(f"{kind} {ref['name']} has no key {ref['key']}")
        return env

    def read_file(self, path: str) -> bytes:
        data = self._mounted(path)
        if data is None:
            raise NotYet(f"{path}: its volume holds no such key or item (yet)")
        return data

    def has_file(self, path: str) -> bool:
        """Whether ``path`` exists in the container (a file the command treats as optional).
        Only a file its mounted volume does not hold is absent; a path on no volume, or a
        volume that is not played, is an error: the image's own files are not known here."""
        return self._mounted(path) is not None

    def _mounted(self, path: str) -> Optional[bytes]:
        """The bytes of ``path`` through the container's volumeMounts; None when the Secret or
        ConfigMap behind its volume holds no such key or item; HarnessError when no mounted
        volume the harness plays covers it."""
        mounts = sorted(self.container.get("volumeMounts") or [],
                        key=lambda m: len(m["mountPath"]), reverse=True)
        for m in mounts:
            mount = m["mountPath"].rstrip("/")
            if path != mount and not path.startswith(mount + "/"):
                continue
            rel = path[len(mount):].lstrip("/")
            if m.get("subPath"):
                rel = m["subPath"] if not rel else f"{m['subPath']}/{rel}"
            vol = next((v for v in self.pod_spec.get("volumes") or []
                        if v["name"] == m["name"]), None)
            if vol is None:
                raise HarnessError(f"volumeMount {m['name']} has no volume")
            src = _source(vol)
            if src is None:
                raise HarnessError(f"{path}: volume {vol['name']} is not a secret or configMap")
            kind, ref = src
            obj_name = ref.get("secretName") or ref.get("name")
            data = read_data(self.h, kind, self.ns, obj_name)
            if data is None:
                raise NotYet(f"{kind} {obj_name} does not exist")
            items = ref.get("items")
            if items:
                item = next((i for i in items if i["path"] == rel), None)
                return None if item is None else data.get(item["key"])
            return data.get(rel)
        raise HarnessError(f"{path} is on no mounted volume of container "
                           f"{self.container['name']}")
