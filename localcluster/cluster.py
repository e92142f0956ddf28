"""``LocalCluster``: one node's worth of Kubernetes around a real kube-apiserver, with the pods
run for real (``kubelet.py``) and the rest played (``controllers.py``, ``proxy.py``,
``dns.py``). Use as a context manager; ``errors()`` is what went wrong that a test must see.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .controllers import Controllers
from .dns import ClusterDNS, add_name
from .kubelet import Kubelet
from .logserver import LogServer
from .network import ClusterAddresses, NodeNetwork
from .proxy import EgressProxy, KubeProxy

__all__ = ["LocalCluster"]

log = logging.getLogger("localcluster")


class LocalCluster:
    """Arguments: ``name``; ``index`` (1, 2, ...: picks the cluster's addresses, see
    ``network.py``, and must match the API server's service range ``addresses.service_cidr``);
    the admin ``kubeconfig``/``context``; the API server's ``egress_socket`` and CA
    (``apiserver_ca``, PEM); the shared ``network``; ``bin_dir`` (``tools/ensure.sh consul``);
    ``workdir`` for pod files and logs."""

    def __init__(self, name: str, index: int, kubeconfig: os.PathLike | str, context: str, *,
                 egress_socket: str, apiserver_ca: bytes, network: NodeNetwork,
                 bin_dir: os.PathLike | str, workdir: os.PathLike | str,
                 poll_interval: float = 1.0):
        self.name = name
        self.addresses = ClusterAddresses(index)
        self.network = network
        self.egress_socket = egress_socket
        self.apiserver_ca = apiserver_ca
        self.bin_dir = Path(bin_dir)
        self.workdir = Path(workdir) / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.node_name = f"{name}-node"
        self.poll_interval = poll_interval
        self.log = log.getChild(name)
        self._cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), context=context,
                                client_configuration=self._cfg, persist_config=False)
        self.apiserver_port = urlparse(self._cfg.host).port or 443
        self._local = threading.local()
        self.stopping = threading.Event()
        self.changed = threading.Condition()
        self._errors: list[str] = []
        self._transient: set[str] = set()
        self._threads: list[threading.Thread] = []
        self.controllers = Controllers(self)
        self.kubelet = Kubelet(self)
        self.proxy = KubeProxy(self)
        self.egress = EgressProxy(self)
        self.dns = ClusterDNS(self)
        self.logs = LogServer(self)

    # ---- clients -------------------------------------------------------------------------------

    def api(self) -> client.ApiClient:
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = client.ApiClient(configuration=self._cfg)
        return api

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api())

    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api())

    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api())

    # ---- errors and changes ---------------------------------------------------------------------

    def error(self, text: str) -> None:
        self.log.error(text)
        with self.changed:
            self._errors.append(text)
            self.changed.notify_all()

    def error_once(self, text: str, transient: bool = False) -> None:
        """An error a loop meets on every pass: recorded once. A ``transient`` one (a webhook
        not up yet) is only logged, unless it is still there when ``errors()`` is asked."""
        with self.changed:
            if text in self._errors or text in self._transient:
                return
            if transient:
                self._transient.add(text)
                self.log.info("%s (retrying)", text)
                return
        self.error(text)

    def errors(self) -> list[str]:
        with self.changed:
            return list(self._errors)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # ---- lifecycle -----------------------------------------------------------------------------

    def _loop(self, name: str, step: Callable[[], None]) -> None:
        while not self.stopping.is_set():
            try:
                step()
            except ApiException as e:
                if e.status == 409:
                    self.log.info("%s: conflict, next pass", name)
                elif not self.stopping.is_set():
                    self.error_once(f"{name}: {e.status} {e.reason}")
            except Exception as e:  # noqa: BLE001 - a played controller's bug reaches the test
                if not self.stopping.is_set():
                    self.error_once(f"{name}: {e!r}")
                    self.log.exception("%s", name)
            self.stopping.wait(self.poll_interval)

    def start(self) -> "LocalCluster":
        self.stopping.clear()
        self.network.add_address(self.addresses.node_ip)
        self._reserve_dns_service()
        self.dns.start()
        self.egress.start()
        self.logs.start()
        for name, step in (("controllers", self.controllers.reconcile),
                           ("kubelet", self.kubelet.reconcile),
                           ("kube-proxy", self.proxy.reconcile),
                           ("dns", self.dns.reconcile)):
            t = threading.Thread(target=self._loop, args=(name, step), daemon=True,
                                 name=f"{self.name}-{name}")
            t.start()
            self._threads.append(t)
        return self

    def _reserve_dns_service(self) -> None:
        """kube-dns's ClusterIP, so the API server never hands the DNS address to a Service."""
        try:
            self.core().create_namespaced_service("kube-system", {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns"},
                "spec": {"clusterIP": self.addresses.dns_ip, "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"}]}}, _request_timeout=(5, 30))
        except ApiException as e:
            if e.status != 409:
                raise

    def expose(self, dns_name: str, namespace: str, service: str, port: int) -> str:
        """An external load balancer (what a user puts in front of a ClusterIP gateway): the
        name resolves to a new address, whose ``port`` forwards to the Service's port ``port``."""
        address = self.addresses.lb_ip()
        add_name(dns_name, address)
        self.proxy.external[(address, port)] = (namespace, service, port)
        return address

    def stop(self) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(10)
        self._threads = []
        self.kubelet.stop()
        self.proxy.stop()
        self.dns.stop()
        self.logs.stop()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
