"""The Kubernetes cluster behind one datacenter: its explicit provider and its API address.

Every Kubernetes resource of a datacenter goes through the provider made here (never the default
provider, which would follow whatever context the user's shell happens to have selected).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Optional
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s
import yaml

from .config import DatacenterConfig


def make_provider(name: str, cfg: DatacenterConfig, parent: pulumi.Resource) -> k8s.Provider:
    """A provider pinned to the configured kubeconfig file and context (strict mode needs both)."""
    return k8s.Provider(
        f"{name}-k8s",
        kubeconfig=resolve_kubeconfig(cfg),
        context=cfg.kube_context,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def kubeconfig_paths(cfg: DatacenterConfig) -> list[str]:
    """kubeconfig, else the files of $KUBECONFIG, else ~/.kube/config (kubectl's order)."""
    if cfg.kubeconfig:
        return [os.path.expanduser(cfg.kubeconfig)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
    return [os.path.expanduser("~/.kube/config")]


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _named(doc: dict[str, Any], section: str, field: str) -> dict[str, Any]:
    return {item.get("name"): item.get(field) or {} for item in doc.get(section) or [] if isinstance(item, dict)}


def resolve_kubeconfig(cfg: DatacenterConfig) -> str:
    """The one kubeconfig file for the provider: with a $KUBECONFIG list, the first file that
    defines the context (the provider takes a single file)."""
    paths = kubeconfig_paths(cfg)
    for path in paths:
        if cfg.kube_context in _named(_load(path), "contexts", "context"):
            return path
    return paths[0]


def context_server(cfg: DatacenterConfig) -> Optional[str]:
    """The API server URL the kubeconfig gives for cfg.kube_context, or None if it cannot tell."""
    doc = _load(resolve_kubeconfig(cfg))
    context = _named(doc, "contexts", "context").get(cfg.kube_context, {})
    cluster = _named(doc, "clusters", "cluster").get(context.get("cluster"), {})
    return cluster.get("server") or None


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _field(obj: Any, name: str) -> Any:
    """Read a field of a Pulumi output type or of a plain dict (mocks return dicts)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def endpoints_url(subsets: Any) -> Optional[str]:
    """https://ip:port of the first API server address in default/kubernetes Endpoints."""
    for subset in subsets or []:
        addresses = _field(subset, "addresses") or []
        ports = _field(subset, "ports") or []
        if not addresses or not ports:
            continue
        port = next((_field(p, "port") for p in ports if _field(p, "name") == "https"), _field(ports[0], "port"))
        ip = _field(addresses[0], "ip")
        if ip and port:
            host = f"[{ip}]" if ":" in ip else ip
            return f"https://{host}:{port}"
    return None


def k8s_auth_method_host(name: str, cfg: DatacenterConfig, provider: k8s.Provider,
                         parent: pulumi.Resource) -> pulumi.Output[Optional[str]]:
    """The address the primary's Consul servers use to reach this cluster's API (ACL auth method).

    Configured value first; else the kubeconfig's server URL; if that is a loopback address
    (kind, minikube: pods cannot reach it) or unknown, the address of this cluster's
    default/kubernetes Endpoints, read through this cluster's provider so previews show it.
    """
    if cfg.k8s_auth_method_host:
        return pulumi.Output.from_input(cfg.k8s_auth_method_host)
    server = context_server(cfg)
    if server and not is_loopback_url(server):
        return pulumi.Output.from_input(server)
    endpoints = k8s.core.v1.Endpoints.get(
        f"{name}-kubernetes-endpoints", "default/kubernetes",
        opts=pulumi.ResourceOptions(parent=parent, provider=provider))

    def pick(subsets: Any) -> Optional[str]:
        url = endpoints_url(subsets)
        if url is None:
            pulumi.log.warn(
                "could not find an address in default/kubernetes Endpoints for k8sAuthMethodHost; "
                "set consul-federation:k8sAuthMethodHost to this cluster's API URL as the "
                "primary's pods reach it", resource=parent)
        return url

    return endpoints.subsets.apply(pick)
