"""Cluster DNS, PLAYED: one UDP server per cluster on its DNS address, answering as CoreDNS's
kubernetes plugin does for what the chart's pods ask:

- ``<svc>.<ns>.svc.cluster.local``: the ClusterIP, or for a headless Service its endpoint
  addresses (ready ones, and not-ready ones where the Service publishes them);
- ``<hostname>.<svc>.<ns>.svc.cluster.local``: that endpoint (StatefulSet pods);
- names registered with ``add_name`` (a test's external load balancer, e.g. a static gateway
  address), in every cluster.

A and AAAA only (no IPv6 address exists: AAAA answers are empty); any other type of a known
name is answered empty, an unknown name NXDOMAIN, and nothing is ever forwarded upstream.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cluster import LocalCluster

__all__ = ["ClusterDNS", "external_names"]

REQUEST_TIMEOUT = (5, 30)
A, AAAA = 1, 28
NXDOMAIN = 3
TTL = 5
SUFFIX = ".svc.cluster.local"

_external: dict[str, str] = {}
_external_lock = threading.Lock()


def external_names() -> dict[str, str]:
    with _external_lock:
        return dict(_external)


def add_name(name: str, address: str) -> None:
    """Make ``name`` resolve to ``address`` in every local cluster (an external DNS record)."""
    with _external_lock:
        _external[name.lower().rstrip(".")] = address


def _qname(packet: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while True:
        length = packet[offset]
        offset += 1
        if length == 0:
            return ".".join(labels), offset
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length


def answer(packet: bytes, records: dict[str, list[str]]) -> bytes:
    """The response to one query packet, from ``records`` (lower-case name -> IPv4s)."""
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        return struct.pack("!HHHHHH", ident, 0x8180 | 4, 0, 0, 0, 0)  # NOTIMP
    name, end = _qname(packet, 12)
    qtype, _qclass = struct.unpack("!HH", packet[end:end + 4])
    question = packet[12:end + 4]
    key = name.lower().rstrip(".")
    rd = flags & 0x0100
    if key not in records:
        return struct.pack("!HHHHHH", ident, 0x8080 | rd | NXDOMAIN, 1, 0, 0, 0) + question
    body = b""
    count = 0
    if qtype == A:
        for address in records[key]:
            body += struct.pack("!HHHIH", 0xC00C, A, 1, TTL, 4) + socket.inet_aton(address)
            count += 1
    return struct.pack("!HHHHHH", ident, 0x8080 | rd, 1, count, 0, 0) + question + body


class ClusterDNS:
    def __init__(self, cluster: "LocalCluster"):
        self.c = cluster
        self.records: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None

    def start(self) -> None:
        address = self.c.network.add_address(self.c.addresses.dns_ip)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.5)
        threading.Thread(target=self._serve, name=f"dns-{self.c.name}", daemon=True).start()

    def _serve(self) -> None:
        while not self.c.stopping.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                with self.lock:
                    records = {**{k: [v] for k, v in external_names().items()}, **self.records}
                self.sock.sendto(answer(packet, records), peer)
            except (ValueError, struct.error, IndexError) as e:
                self.c.log.info("dns: malformed query from %s: %r", peer, e)
        self.sock.close()

    def stop(self) -> None:
        """Close the socket now, so a cluster started next can bind the same address."""
        if self.sock is not None:
            self.sock.close()

    def reconcile(self) -> None:
        core = self.c.core()
        endpoints = {(e.metadata.namespace, e.metadata.name): e for e in
                     core.list_endpoints_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items}
        records: dict[str, list[str]] = {}
        for svc in core.list_service_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items:
            ns, name = svc.metadata.namespace, svc.metadata.name
            fqdn = f"{name}.{ns}{SUFFIX}"
            if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
                records[fqdn] = [svc.spec.cluster_ip]
                continue
            ep = endpoints.get((ns, name))
            addresses = [a for s in (ep.subsets if ep else None) or [] for a in s.addresses or []]
            records[fqdn] = sorted({a.ip for a in addresses})
            for a in addresses:
                if a.hostname:
                    records[f"{a.hostname}.{fqdn}"] = [a.ip]
        with self.lock:
            self.records = records
