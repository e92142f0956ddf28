"""Finishing deletions: the garbage collector and the namespace controller.

PLAYED (admin client), every ``poll_interval`` over all listable resource types:

- foreground deletion (pulumi-kubernetes' default): an object with the ``foregroundDeletion``
  finalizer has its dependents deleted and loses the finalizer once no
  ``blockOwnerDeletion`` dependent is left; ``orphan`` strips its dependents' owner
  references first;
- background collection: an object all of whose owners are gone (no object with that uid
  exists) is deleted, e.g. a Deployment's ReplicaSets after ``helm uninstall``, the webhook
  certificate Secret owned by the cert manager's Deployment;
- a Terminating Namespace has its objects deleted and, once empty, its ``kubernetes``
  finalizer removed via ``finalize``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.dynamic.resource import ResourceList

from .errors import TRANSPORT_ERRORS

if TYPE_CHECKING:
    from .core import ClusterHarness

__all__ = ["Deletions"]

REQUEST_TIMEOUT = (5, 30)
_REDISCOVER = 10.0  # seconds: CRDs come and go


class Deletions:
    def __init__(self, h: "ClusterHarness"):
        self.h = h
        self.dyn: Optional[DynamicClient] = None

    def loop(self) -> None:
        dyn = self.dyn = DynamicClient(self.h.api())
        types: list = []
        discovered_at = 0.0
        while not self.h.stopping.is_set():
            try:
                if time.monotonic() - discovered_at > _REDISCOVER or not types:
                    dyn.resources.invalidate_cache()
                    seen: set[tuple[str, str]] = set()
                    types = []
                    for r in dyn.resources.search():
                        if isinstance(r, ResourceList) or "/" in (r.name or "") or \
                                not {"list", "delete", "patch"} <= set(r.verbs or []):
                            continue
                        if (r.group, r.kind) in seen and not r.preferred:
                            continue
                        seen.add((r.group, r.kind))
                        types.append(r)
                    discovered_at = time.monotonic()
                self.finish(types)
            except (ApiException, ResourceNotFoundError, *TRANSPORT_ERRORS) as e:  # rediscover
                if not self.h.stopping.is_set():
                    self.h.log.warning("deletion loop: %r", e)
                    discovered_at = 0.0
            except Exception as e:  # a harness bug: the test sees it
                if not self.h.stopping.is_set():
                    self.h.error_once("deletion loop: %r", e)
                    discovered_at = 0.0
            self.h.sleep(self.h.poll_interval)

    def finish(self, types: list) -> None:
        """One pass (see the module docstring)."""
        everything: list[tuple[object, dict]] = []
        for r in types:
            try:
                items = r.get().to_dict().get("items") or []
            except ApiException as e:
                if e.status in (404, 405, 403):
                    continue
                raise
            everything.extend((r, o) for o in items)
        uids = {o["metadata"]["uid"] for _, o in everything}
        dependents: dict[str, list[tuple[object, dict, dict]]] = {}
        for r, o in everything:
            refs = o["metadata"].get("ownerReferences") or []
            for ref in refs:
                dependents.setdefault(ref["uid"], []).append((r, o, ref))
            if refs and not o["metadata"].get("deletionTimestamp") and \
                    not any(ref["uid"] in uids for ref in refs) and \
                    all(self._owner_gone(ref, o["metadata"].get("namespace")) for ref in refs):
                self._delete(r, o, "Background")
        for r, o in everything:
            md = o["metadata"]
            if not md.get("deletionTimestamp"):
                continue
            fins = md.get("finalizers") or []
            if "orphan" in fins:
                for dr, dep, _ in dependents.get(md["uid"], []):
                    refs = [x for x in dep["metadata"]["ownerReferences"] if x["uid"] != md["uid"]]
                    self._patch_meta(dr, dep, {"ownerReferences": refs or None})
                self._drop_finalizer(r, o, "orphan")
            if "foregroundDeletion" in fins:
                blocking = 0
                for dr, dep, ref in dependents.get(md["uid"], []):
                    if not dep["metadata"].get("deletionTimestamp"):
                        self._delete(dr, dep, "Foreground")
                    if ref.get("blockOwnerDeletion"):
                        blocking += 1
                if not blocking:
                    self._drop_finalizer(r, o, "foregroundDeletion")
        for r, ns in everything:
            if r.kind != "Namespace" or r.group or not ns["metadata"].get("deletionTimestamp"):
                continue
            if "kubernetes" not in ((ns.get("spec") or {}).get("finalizers") or []):
                continue
            name = ns["metadata"]["name"]
            left = [(cr, o) for cr, o in everything
                    if cr.namespaced and o["metadata"].get("namespace") == name]
            for cr, o in left:
                if not o["metadata"].get("deletionTimestamp"):
                    self._delete(cr, o, "Background")
            if left:
                self.h.log.info("namespace %s terminating: %d object(s) left", name, len(left))
                continue
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                    "spec": {"finalizers": [f for f in ns["spec"]["finalizers"]
                                            if f != "kubernetes"]}}
            try:
                self.h.core().replace_namespace_finalize(name, body,
                                                       _request_timeout=REQUEST_TIMEOUT)
                self.h.log.info("namespace %s emptied and finalized", name)
            except ApiException as e:
                if e.status not in (404, 409):
                    raise

    def _owner_gone(self, ref: dict, namespace: Optional[str]) -> bool:
        """A live read of the owner, as the real garbage collector does before deleting a
        dependent (the listing may predate an owner created meanwhile)."""
        try:
            owner_type = self.dyn.resources.get(api_version=ref["apiVersion"], kind=ref["kind"])
            owner = owner_type.get(name=ref["name"],
                                   namespace=namespace if owner_type.namespaced else None)
        except ApiException as e:
            return e.status == 404
        except ResourceNotFoundError:  # kind no longer served (CRD gone): so is the owner
            return True
        return owner.metadata.uid != ref["uid"]

    def _delete(self, r, obj: dict, policy: str) -> None:
        md = obj["metadata"]
        try:
            r.delete(name=md["name"], namespace=md.get("namespace"),
                     body={"apiVersion": "v1", "kind": "DeleteOptions",
                           "propagationPolicy": policy})
            self.h.log.info("deleted %s %s/%s (%s)", r.kind, md.get("namespace", ""), md["name"],
                          policy)
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    def _patch_meta(self, r, obj: dict, meta: dict) -> None:
        md = obj["metadata"]
        try:
            r.patch(name=md["name"], namespace=md.get("namespace"),
                    body={"metadata": {**meta, "resourceVersion": md["resourceVersion"]}},
                    content_type="application/merge-patch+json")
        except ApiException as e:
            if e.status not in (404, 409):  # gone, or changed: the next pass sees it again
                raise

    def _drop_finalizer(self, r, obj: dict, finalizer: str) -> None:
        rest = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        self._patch_meta(r, obj, {"finalizers": rest or None})
        self.h.log.info("%s %s/%s: removed finalizer %s", r.kind,
                      obj["metadata"].get("namespace", ""), obj["metadata"]["name"], finalizer)

