"""Several local clusters side by side, one per datacenter: a kube-apiserver each (its service
range that of the cluster's index, its serving certificate naming the node address pods reach it
at), a ``LocalCluster`` on each, one kubeconfig with a context per datacenter, all on one node
network. Used by the demo and the consul tier; runs only in a network namespace of its own
(``tools/netns.sh``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .cluster import LocalCluster
from .controlplane import ControlPlane, write_kubeconfig
from .network import ClusterAddresses, NodeNetwork
from .tools import ensure


@dataclass
class LocalFederation:
    workdir: Path
    kubeconfig: Path
    planes: dict[str, ControlPlane]
    clusters: dict[str, LocalCluster]
    tools: dict[str, str]


@contextlib.contextmanager
def local_federation(workdir: Path, datacenters: tuple[str, ...]) -> Iterator[LocalFederation]:
    """Clusters for ``datacenters`` (the first gets index 1, and so on), stopped on exit."""
    tools = {**ensure("chart"), **ensure("cluster"), **ensure("consul")}
    network = NodeNetwork().start()
    with contextlib.ExitStack() as stack:
        planes: dict[str, ControlPlane] = {}
        for index, dc in enumerate(datacenters, start=1):
            addresses = ClusterAddresses(index)
            planes[dc] = stack.enter_context(ControlPlane(
                dc, workdir, tools["ETCD"], tools["KUBE_APISERVER"],
                service_cidr=addresses.service_cidr, extra_sans=[addresses.node_ip]))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", list(planes.values()))
        clusters = {dc: stack.enter_context(LocalCluster(
            dc, index, kubeconfig, dc, egress_socket=planes[dc].egress_socket,
            apiserver_ca=planes[dc].ca_data, network=network,
            bin_dir=tools["CONSUL_BIN_DIR"], workdir=workdir / "pods"))
            for index, dc in enumerate(datacenters, start=1)}
        yield LocalFederation(workdir, kubeconfig, planes, clusters, tools)
