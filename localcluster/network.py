"""The node network: one bridge that every pod of every local cluster hangs off, and the
addresses each cluster's node, services and load balancers answer on.

Everything here lives in a network namespace that the run itself created (``tools/netns.sh``
starts the process in one): nothing created here can route to any address outside it, and
``NodeNetwork`` refuses to start in the machine's own namespace.

Address plan, for the cluster with index ``c`` (1, 2, ...), on a bridge ``cf0`` (10.244.0.1/16):

- pods:            10.244.c.2 - 10.244.c.254, one veth each, default route via the bridge;
- services:        10.96.c.0/24 (the cluster's ``--service-cluster-ip-range``), 10.96.c.10 DNS;
- the node:        10.240.c.1 (pods' ``status.hostIP``; NodePorts and the API server answer there);
- load balancers:  10.250.c.1 - 10.250.c.254.

Node, service and load balancer addresses are /32 addresses on the bridge, so a pod's packets to
them are delivered to this namespace, where ``proxy.py`` forwards them as kube-proxy would.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import threading
from dataclasses import dataclass, field

__all__ = ["NodeNetwork", "ClusterAddresses", "NetworkError", "in_private_netns"]

BRIDGE = "cf0"
BRIDGE_ADDRESS = "10.244.0.1"


class NetworkError(RuntimeError):
    """The node network could not be set up (the message names the command and its output)."""


def in_private_netns() -> bool:
    """True when this network namespace has nothing but loopback and what this module made
    (the bridge and pods' veths) and no route beyond them: one the run created itself."""
    names = {line.split(":")[1].strip().split("@")[0]
             for line in ip("-o", "link", "show").splitlines() if line.strip()}
    ours = {n for n in names if n == "lo" or n == BRIDGE or n.startswith("cfv")}
    routes = ip("-4", "route", "show").splitlines()
    return names == ours and not any(r.startswith("default") for r in routes)


def ip(*args: str, netns_pid: int | None = None) -> str:
    argv = ["ip", *args]
    if netns_pid is not None:
        argv = ["nsenter", "-t", str(netns_pid), "-n", *argv]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class ClusterAddresses:
    """The addresses of one local cluster (see the module docstring)."""

    index: int
    _next_pod: int = 2
    _next_lb: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def service_cidr(self) -> str:
        return f"10.96.{self.index}.0/24"

    @property
    def dns_ip(self) -> str:
        return f"10.96.{self.index}.10"

    @property
    def kubernetes_service_ip(self) -> str:
        """The first address of the service range: what the API server gives ``kubernetes``."""
        return f"10.96.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.240.{self.index}.1"

    def pod_ip(self) -> str:
        with self._lock:
            if self._next_pod > 254:
                raise NetworkError(f"cluster {self.index} has no pod address left")
            n, self._next_pod = self._next_pod, self._next_pod + 1
        return f"10.244.{self.index}.{n}"

    def lb_ip(self) -> str:
        with self._lock:
            if self._next_lb > 254:
                raise NetworkError(f"cluster {self.index} has no load balancer address left")
            n, self._next_lb = self._next_lb, self._next_lb + 1
        return f"10.250.{self.index}.{n}"


class NodeNetwork:
    """The bridge and host-side addresses; pods attach with ``attach(pid, ip)``."""

    def __init__(self):
        self._addresses: set[str] = set()
        self._lock = threading.Lock()
        self._veths = 0
        self.started = False

    def start(self) -> "NodeNetwork":
        if not in_private_netns():
            raise NetworkError(
                "the local clusters need a network namespace of their own, so that no address "
                "they use can reach beyond this machine: run the command through tools/netns.sh "
                "(e.g. tools/netns.sh .venv/bin/python -m pytest tests/consul)")
        links = ip("-o", "link", "show")
        if f": {BRIDGE}:" not in links:
            ip("link", "add", BRIDGE, "type", "bridge")
            ip("addr", "add", f"{BRIDGE_ADDRESS}/16", "dev", BRIDGE)
        ip("link", "set", "lo", "up")
        ip("link", "set", BRIDGE, "up")
        self.started = True
        return self

    def add_address(self, address: str) -> str:
        """Make ``address`` (a node, service or load balancer IP) answer in this namespace."""
        ipaddress.ip_address(address)
        with self._lock:
            if address in self._addresses:
                return address
            self._addresses.add(address)
        if f" {address}/32 " not in ip("-o", "addr", "show", "dev", BRIDGE):  # an earlier run's
            ip("addr", "add", f"{address}/32", "dev", BRIDGE)
        return address

    def attach(self, netns_pid: int, pod_ip: str) -> str:
        """Give the network namespace of ``netns_pid`` an ``eth0`` with ``pod_ip`` on the
        bridge and a default route through it; returns the host-side veth's name."""
        with self._lock:
            self._veths += 1
            host_side = f"cfv{os.getpid() % 1000}x{self._veths}"[:15]
        ip("link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns",
           str(netns_pid))
        ip("link", "set", host_side, "master", BRIDGE, "up")
        ip("addr", "add", f"{pod_ip}/16", "dev", "eth0", netns_pid=netns_pid)
        ip("link", "set", "lo", "up", netns_pid=netns_pid)
        ip("link", "set", "eth0", "up", netns_pid=netns_pid)
        ip("route", "add", "default", "via", BRIDGE_ADDRESS, netns_pid=netns_pid)
        return host_side

    def detach(self, host_side: str) -> None:
        """Remove a pod's veth pair (gone anyway when its namespace's last process exits)."""
        subprocess.run(["ip", "link", "del", host_side], capture_output=True)
