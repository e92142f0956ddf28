"""Two small controllers a real cluster runs outside the apiserver.

PLAYED, the cloud LoadBalancer controller: every Service of type LoadBalancer without ingress
gets ``status.loadBalancer.ingress = [{ip: lb_ip}]``, a loopback address per harness (admin
client, status subresource). Helm's wait requires that ingress; the mesh gateway's WAN address
(``create-federation-secret``) is read from it. Nothing listens there.

PLAYED, the apiserver's endpoint reconciler: the control planes run with
``--endpoint-reconciler-type=none`` because the real reconciler would publish the loopback
advertise address, which Endpoints validation rejects. The harness writes ``default/kubernetes``
Endpoints with ONE address, ``apiserver_endpoint_ip`` from the RFC 5737 documentation range
(default 192.0.2.10), and port ``https`` = the apiserver's secure port. It is a PLACEHOLDER:
nothing ever dials it. The Pulumi program copies it into a secondary's ``k8sAuthMethodHost``;
the harness's TokenReview for server-acl-init (``ClusterHarness.token_review``) reaches that
URL at the apiserver's real loopback address, verifying the certificate for the placeholder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubernetes.client.rest import ApiException

if TYPE_CHECKING:
    from .core import ClusterHarness

__all__ = ["LoadBalancers", "ApiserverEndpoints"]

REQUEST_TIMEOUT = (5, 30)


class LoadBalancers:
    def __init__(self, h: "ClusterHarness"):
        self.h = h

    def reconcile(self) -> None:
        core = self.h.core()
        for svc in core.list_service_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items:
            if svc.spec.type != "LoadBalancer" or svc.metadata.deletion_timestamp:
                continue
            lb = svc.status.load_balancer if svc.status else None
            if lb is not None and lb.ingress:
                continue
            core.patch_namespaced_service_status(
                svc.metadata.name, svc.metadata.namespace,
                {"status": {"loadBalancer": {"ingress": [{"ip": self.h.lb_ip}]}}},
                _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("LoadBalancer %s/%s: ingress %s", svc.metadata.namespace,
                            svc.metadata.name, self.h.lb_ip)


class ApiserverEndpoints:
    def __init__(self, h: "ClusterHarness"):
        self.h = h

    def body(self) -> dict:
        return {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": self.h.apiserver_endpoint_ip}],
                             "ports": [{"name": "https", "port": self.h.apiserver_port,
                                        "protocol": "TCP"}]}]}

    def reconcile(self) -> None:
        core = self.h.core()
        want = self.body()
        try:
            cur = core.read_namespaced_endpoints("kubernetes", "default",
                                                 _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise
            core.create_namespaced_endpoints("default", want, _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("wrote default/kubernetes endpoints %s:%s",
                            self.h.apiserver_endpoint_ip, self.h.apiserver_port)
            return
        if self.h.api().sanitize_for_serialization(cur).get("subsets") != want["subsets"]:
            want["metadata"]["resourceVersion"] = cur.metadata.resource_version
            core.replace_namespaced_endpoints("kubernetes", "default", want,
                                              _request_timeout=REQUEST_TIMEOUT)
