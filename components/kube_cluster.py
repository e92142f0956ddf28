"""The Kubernetes cluster behind one datacenter: its explicit provider and its API address.

Every Kubernetes resource of a datacenter goes through the provider made here (never the default
provider, which would follow whatever context the user's shell happens to have selected).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Optional, Sequence
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s
import yaml


def make_provider(name: str, kubeconfig: str, context: pulumi.Input[str],
                  opts: pulumi.ResourceOptions) -> k8s.Provider:
    """A provider pinned to one kubeconfig file and context (strict mode needs both)."""
    return k8s.Provider(name, kubeconfig=kubeconfig, context=context, opts=opts)


def kubeconfig_paths(kubeconfig: Optional[str]) -> list[str]:
    """kubeconfig, else the files of $KUBECONFIG, else ~/.kube/config (kubectl's order)."""
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)]
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


def resolve_kubeconfig(kubeconfig: Optional[str], context: str) -> str:
    """The one kubeconfig file for the provider: with a $KUBECONFIG list, the first file that
    defines the context (the provider takes a single file)."""
    paths = kubeconfig_paths(kubeconfig)
    for path in paths:
        if context in _named(_load(path), "contexts", "context"):
            return path
    return paths[0]


def context_server(kubeconfig: str, context: str) -> Optional[str]:
    """The API server URL a kubeconfig file gives for a context, or None if it cannot tell."""
    doc = _load(kubeconfig)
    cluster_name = _named(doc, "contexts", "context").get(context, {}).get("cluster")
    return _named(doc, "clusters", "cluster").get(cluster_name, {}).get("server") or None


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoints_url(subsets: Optional[Sequence[k8s.core.v1.outputs.EndpointSubset]]) -> Optional[str]:
    """https://ip:port of the first API server address in default/kubernetes Endpoints."""
    for subset in subsets or []:
        if not subset.addresses or not subset.ports:
            continue
        port = next((p.port for p in subset.ports if p.name == "https"), subset.ports[0].port)
        ip = subset.addresses[0].ip
        host = f"[{ip}]" if ":" in ip else ip
        return f"https://{host}:{port}"
    return None


def k8s_auth_method_host(name: str, configured: Optional[str], kubeconfig: str, context: str,
                         opts: pulumi.ResourceOptions) -> pulumi.Output[Optional[str]]:
    """The address the primary's Consul servers use to reach this cluster's API (ACL auth method).

    Configured value first; else the kubeconfig's server URL; if that is a loopback address
    (kind, minikube: pods cannot reach it) or unknown, the address of this cluster's
    default/kubernetes Endpoints, read through `opts`' provider so previews show it.
    """
    if configured:
        return pulumi.Output.from_input(configured)
    server = context_server(kubeconfig, context)
    if server and not is_loopback_url(server):
        return pulumi.Output.from_input(server)
    endpoints = k8s.core.v1.Endpoints.get(name, "default/kubernetes", opts=opts)

    def pick(subsets: Optional[Sequence[k8s.core.v1.outputs.EndpointSubset]]) -> Optional[str]:
        url = endpoints_url(subsets)
        if url is None:
            pulumi.log.warn(
                "could not find an address in default/kubernetes Endpoints for k8sAuthMethodHost; "
                "set consul-federation:k8sAuthMethodHost to this cluster's API URL as the "
                "primary's pods reach it", resource=opts.parent)
        return url

    return endpoints.subsets.apply(pick)
