"""Service routing, PLAYED as kube-proxy would do it, and the API server's egress.

- ``KubeProxy``: every TCP port of a Service answers on its ClusterIP, and on the node address at
  its NodePort, and on its load balancer address; a connection goes to a ready endpoint of the
  Service (round robin), or is closed at once when there is none (as a REJECT rule would).
  ``default/kubernetes`` forwards to the API server. ``LocalCluster.expose`` adds a load balancer
  outside the cluster (a DNS name and an address in front of a Service port). UDP ports are not forwarded (cluster DNS
  answers names itself, ``dns.py``), and the forwarding is a TCP relay, not NAT: the backend
  sees the node bridge's address as the source.
- ``EgressProxy``: the API server reaches Services (admission webhooks) through an HTTP CONNECT
  proxy on its egress Unix socket (see the control plane's docstring); it connects to the
  address asked for (a ClusterIP for webhooks, a pod for the API server's service proxy, the node
  for the kubelet's logs) and refuses any address outside the cluster's service and pod ranges
  and its node.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import threading
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from .cluster import LocalCluster

__all__ = ["KubeProxy", "EgressProxy", "relay"]

REQUEST_TIMEOUT = (5, 30)
Backend = tuple[str, int]


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes; closes both."""
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass
    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join()
    a.close()
    b.close()


def serve(sock: socket.socket, handle: Callable[[socket.socket], None], running: Callable[[], bool],
          name: str) -> None:
    """Accept connections on ``sock`` (with a short timeout set) in a thread, each handled in a
    thread of its own, while ``running()``; then close it."""
    def loop() -> None:
        while running():
            try:
                conn, _ = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
        sock.close()
    threading.Thread(target=loop, name=name, daemon=True).start()


class Listener:
    """One address:port that forwards each connection to ``pick()``'s backend."""

    def __init__(self, address: str, port: int, pick: Callable[[], Optional[Backend]],
                 stopping: threading.Event):
        self.address, self.port, self.pick = address, port, pick
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.sock.settimeout(0.5)
        self.closed = False
        serve(self.sock, self._forward, lambda: not stopping.is_set() and not self.closed,
              f"proxy-{address}:{port}")

    def _forward(self, conn: socket.socket) -> None:
        backend = self.pick()
        if backend is None:
            conn.close()
            return
        try:
            upstream = socket.create_connection(backend, timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        conn.settimeout(None)
        relay(conn, upstream)

    def close(self) -> None:
        """Stop listening now (the address can be bound again at once)."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


class KubeProxy:
    def __init__(self, cluster: "LocalCluster"):
        self.c = cluster
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.backends: dict[tuple[str, str, str], list[Backend]] = {}  # (ns, svc, port name)
        self._rr = itertools.count()
        self.lock = threading.Lock()
        # (address, port) -> (namespace, service, service port): external load balancers
        self.external: dict[tuple[str, int], tuple[str, str, int]] = {}

    def _picker(self, key: tuple[str, str, str]) -> Callable[[], Optional[Backend]]:
        def pick() -> Optional[Backend]:
            with self.lock:
                choices = self.backends.get(key) or []
            return choices[next(self._rr) % len(choices)] if choices else None
        return pick

    def reconcile(self) -> None:
        core = self.c.core()
        services = core.list_service_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items
        endpoints = {(e.metadata.namespace, e.metadata.name): e for e in
                     core.list_endpoints_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items}
        wanted: dict[tuple[str, int], tuple[str, str, str]] = {}
        backends: dict[tuple[str, str, str], list[Backend]] = {}
        for svc in services:
            ns, name, spec = svc.metadata.namespace, svc.metadata.name, svc.spec
            for port in spec.ports or []:
                if (port.protocol or "TCP") != "TCP":
                    continue
                key = (ns, name, port.name or "")
                if (ns, name) == ("default", "kubernetes"):
                    backends[key] = [("127.0.0.1", self.c.apiserver_port)]
                    # the address its Endpoints name (the node's, as on a control-plane node)
                    wanted[(self.c.addresses.node_ip, self.c.apiserver_port)] = key
                else:
                    backends[key] = [(a.ip, p.port) for s in (endpoints.get((ns, name)) or
                                                              _NoSubsets).subsets or []
                                     for a in s.addresses or [] for p in s.ports or []
                                     if (p.name or "") == (port.name or "")]
                if spec.cluster_ip and spec.cluster_ip != "None":
                    wanted[(spec.cluster_ip, port.port)] = key
                if spec.type in ("NodePort", "LoadBalancer") and port.node_port:
                    wanted[(self.c.addresses.node_ip, port.node_port)] = key
                for ingress in ((svc.status.load_balancer.ingress if svc.status and
                                 svc.status.load_balancer else None) or []):
                    if ingress.ip:
                        wanted[(ingress.ip, port.port)] = key
                for addr, target in self.external.items():
                    if target == (ns, name, port.port):
                        wanted[addr] = key
        with self.lock:
            self.backends = backends
        for addr, key in wanted.items():
            if addr not in self.listeners:
                self.c.network.add_address(addr[0])
                self.listeners[addr] = Listener(addr[0], addr[1], self._picker(key), self.c.stopping)
            else:
                self.listeners[addr].pick = self._picker(key)
        for addr in [a for a in self.listeners if a not in wanted]:
            self.listeners.pop(addr).close()

    def stop(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()


class _NoSubsets:
    subsets: list = []


class EgressProxy:
    """HTTP CONNECT on the API server's egress socket, to Service addresses of this cluster."""

    def __init__(self, cluster: "LocalCluster"):
        self.c = cluster
        self.sock: Optional[socket.socket] = None

    def start(self) -> None:
        path = self.c.egress_socket
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        self.sock.settimeout(0.5)
        serve(self.sock, self._connect, lambda: not self.c.stopping.is_set(), f"egress-{self.c.name}")

    def _connect(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 8192:
                data = conn.recv(4096)
                if not data:
                    conn.close()
                    return
                head += data
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            host, port = target.rsplit(":", 1)
            if method != "CONNECT" or not any(
                    ipaddress.ip_address(host) in ipaddress.ip_network(n)
                    for n in (self.c.addresses.service_cidr, self.c.addresses.pod_cidr,
                              f"{self.c.addresses.node_ip}/32")):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                self.c.error(f"egress: refused {method} {target} (not a Service of cluster "
                             f"{self.c.name})")
                conn.close()
                return
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except (OSError, ValueError) as e:
            try:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            except OSError:
                pass
            conn.close()
            self.c.log.info("egress: %r", e)
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)
        conn.settimeout(None)
        upstream.settimeout(None)
        relay(conn, upstream)
