"""The Kubernetes cluster behind one datacenter: its explicit provider and its API address.

Every Kubernetes resource of a datacenter goes through the provider made here (never the default
provider, which would follow whatever context the user's shell happens to have selected).

Before the provider is made, the program checks that the context's API server answers at all
(``require_reachable``): an unreachable cluster then stops the run within
``REACHABILITY_TIMEOUT`` seconds, before any resource is registered, with a message that names
the context, the server URL and what to check, instead of the provider's per-resource
"cluster is unreachable" errors, which name neither the context nor the cause and suggest
PULUMI_K8S_DELETE_UNREACHABLE (right for a deleted cluster, wrong for one that is down).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import time
import urllib.request
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s
import yaml

from .constants import CONFIG_NAMESPACE

# How long the API server has to answer the reachability check (TCP connect, TLS handshake and
# the first bytes of an HTTP answer together).
REACHABILITY_TIMEOUT = 10.0


def make_provider(name: str, kube: KubeCluster, context: pulumi.Input[str],
                  opts: pulumi.ResourceOptions) -> k8s.Provider:
    """A provider pinned to one kubeconfig file and context (strict mode needs both).

    Secrets are updated in place (enableSecretMutable): by default the provider replaces a
    Secret whose data changes, and a Secret with a fixed name is replaced by deleting it first,
    so a secondary's copy of the federation secret would vanish for a moment (pods that start
    then cannot) and come back as another object whenever the primary's changes, e.g. after a
    gateway change."""
    return k8s.Provider(name, kubeconfig=kube.kubeconfig, context=context, enable_secret_mutable=True, opts=opts)


def kubeconfig_paths(kubeconfig: Optional[str]) -> list[str]:
    """kubeconfig, else the files of $KUBECONFIG, else ~/.kube/config (kubectl's order)."""
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)]
    listed = [os.path.expanduser(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed
    return [os.path.expanduser("~/.kube/config")]


def _load(path: str) -> tuple[dict[str, Any], Optional[str]]:
    """The kubeconfig at `path`, or ({}, why it cannot be used) for the error that lists the files."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except FileNotFoundError:
        return {}, "does not exist"
    except (OSError, yaml.YAMLError) as exc:
        return {}, f"cannot be read as a kubeconfig: {error_summary(exc)}"
    if doc is None:
        return {}, None  # an empty file is an empty kubeconfig, as kubectl reads it
    if not isinstance(doc, dict):
        return {}, "is not a kubeconfig (not a YAML mapping)"
    return doc, None


def _named(doc: dict[str, Any], section: str, field: str) -> dict[str, Any]:
    return {item.get("name"): item.get(field) or {} for item in doc.get(section) or [] if isinstance(item, dict)}


def error_summary(exc: BaseException) -> str:
    """One line saying what went wrong in a call to an API server: status, reason and the
    server's message for an API error (an RBAC 403 must not read like a network blip), else the
    exception's class and first line."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "reason") and hasattr(exc, "body"):
        import json

        try:
            message = json.loads(exc.body).get("message") or ""
        except (TypeError, ValueError, AttributeError):
            message = ""
        return f"{status} {exc.reason}" + (f": {message}" if message else "")
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}" + (f": {first}" if first else "")


@dataclass(frozen=True)
class KubeCluster:
    """One datacenter's cluster as its kubeconfig gives it, read once per run: the provider,
    the reachability check, k8sAuthMethodHost and the Release's hooks all take this value, so
    they agree on one file and the program parses it once."""

    kubeconfig: str  # the one file the provider takes
    context: str
    cluster: Mapping[str, Any]  # the context's `cluster` entry ({} if the file does not say)

    @property
    def server(self) -> Optional[str]:
        """The API server URL the kubeconfig gives for the context, or None if it cannot tell."""
        return self.cluster.get("server") or None

    def api_client(self) -> Any:
        """A kubernetes (Python client) ApiClient for this file and context, for the program's
        hooks and the operator commands. The client (which reads the file itself, resolving
        certificate paths relative to it) is imported only here, when needed."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)


class KubeconfigError(ValueError):
    """A stack's kubeconfig does not give its context: no such context in the file(s), or a file
    that cannot be read. The message names the setting, the files read and the contexts they do
    define; a ValueError, so the operator commands report it as a bad configuration."""


def resolve_cluster(kubeconfig: Optional[str], context: str) -> KubeCluster:
    """The cluster of `context`, each file read once: with a $KUBECONFIG list, the first file
    that defines the context (the provider takes a single file; missing files of the list are
    skipped, as kubectl does). Raises KubeconfigError when no file defines it."""
    paths = kubeconfig_paths(kubeconfig)
    read: list[tuple[str, list[str], Optional[str]]] = []  # (file, its contexts, why unusable)
    for path in paths:
        doc, why = _load(path)
        contexts = _named(doc, "contexts", "context")
        if context in contexts:
            return KubeCluster(path, context, _context_cluster(doc, context))
        read.append((path, sorted(str(c) for c in contexts if c is not None), why))
    raise KubeconfigError(_not_defined(kubeconfig, context, read))


def _not_defined(kubeconfig: Optional[str], context: str,
                 read: list[tuple[str, list[str], Optional[str]]]) -> str:
    """Why no file gives `context`: the setting to fix, the files read and the contexts they define."""
    if kubeconfig and read[0][2]:
        return (f"{CONFIG_NAMESPACE}:kubeconfig: {kubeconfig!r} {read[0][2]}; expected a kubeconfig "
                f"file that defines context {context!r}")
    start = f"{CONFIG_NAMESPACE}:kubeContext: {context!r} is not a context of "
    if len(read) == 1:
        path, contexts, why = read[0]
        source = " ($KUBECONFIG)" if not kubeconfig and os.environ.get("KUBECONFIG") else ""
        hint = "" if kubeconfig or source else \
            f" (the default kubeconfig; set {CONFIG_NAMESPACE}:kubeconfig or $KUBECONFIG to the file that defines it)"
        found = f": the file {why}" if why else f"; its contexts: {', '.join(contexts) or 'none'}"
        return f"{start}{path}{source}{found}{hint}"
    files = ", ".join(f"{path} ({why})" if why else f"{path} (contexts: {', '.join(contexts) or 'none'})"
                      for path, contexts, why in read)
    return f"{start}any file of $KUBECONFIG: {files}"


def _context_cluster(doc: dict[str, Any], context: str) -> Mapping[str, Any]:
    """The `cluster` entry a kubeconfig gives for a context ({} if it cannot tell), read-only."""
    cluster_name = _named(doc, "contexts", "context").get(context, {}).get("cluster")
    return MappingProxyType(_named(doc, "clusters", "cluster").get(cluster_name, {}))


class ClusterUnreachable(pulumi.RunError):
    """The API server of a datacenter's context did not answer; a RunError, so no traceback."""

    def __init__(self, context: str, server: str, kubeconfig: str, why: str):
        self.context, self.server, self.why = context, server, why
        super().__init__(
            f"the Kubernetes API server of kubeconfig context {context!r} is unreachable: "
            f"{server} ({why}; kubeconfig {kubeconfig}). Nothing was changed. Check that this "
            "cluster is running and that this machine can reach that address (VPN, firewall, "
            "proxy), and that the context's server in the kubeconfig is current (a re-created "
            "cluster often has a new address or port); then run again.")


def goes_through_proxy(cluster: Mapping[str, Any], server: str) -> bool:
    """Whether the provider reaches `server` through a proxy (the cluster's proxy-url, or
    HTTPS_PROXY/HTTP_PROXY not bypassed by NO_PROXY): then a direct connection proves nothing."""
    if cluster.get("proxy-url"):
        return True
    url = urlparse(server)
    return bool(urllib.request.getproxies().get(url.scheme)) and \
        not urllib.request.proxy_bypass(url.hostname or "")


def probe_api_server(server: str, timeout: float) -> Optional[str]:
    """None if something answers at `server` within `timeout` seconds, else why not.

    Answering is enough: any HTTP status, or a TLS alert (a server that wants a client
    certificate), is an API server that is up; credentials are the provider's business. Only
    a connection that cannot be opened (refused, no route, unknown host) or that stays silent
    (no TLS handshake, no HTTP answer: a server that is hung or a firewall that drops packets)
    is unreachable. Nothing is sent but `GET /version` without credentials.
    """
    url = urlparse(server)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.settimeout(max(0.1, deadline - time.monotonic()))  # one budget for every step
            conn: socket.socket = raw
            if url.scheme == "https":
                tls = ssl.create_default_context()
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE  # only "does it answer": nothing secret is sent
                try:
                    ipaddress.ip_address(host)
                    sni = None
                except ValueError:
                    sni = host
                conn = tls.wrap_socket(raw, server_hostname=sni)
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            conn.sendall(f"GET /version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            conn.recv(1)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ssl.SSLError:
        return None  # a TLS alert is an answer
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    return None


def require_reachable(kube: KubeCluster, timeout: float = REACHABILITY_TIMEOUT) -> None:
    """Raise ClusterUnreachable unless the context's API server answers within `timeout`.

    Skipped (the provider reports it) when the kubeconfig does not give the context a server,
    and when the provider would go through a proxy."""
    server = kube.server
    if not server or goes_through_proxy(kube.cluster, server):
        return
    why = probe_api_server(server, timeout)
    if why is not None:
        raise ClusterUnreachable(kube.context, server, kube.kubeconfig, why)


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


def k8s_auth_method_host(name: str, configured: Optional[str], kube: KubeCluster,
                         opts: pulumi.ResourceOptions) -> pulumi.Output[Optional[str]]:
    """The address the primary's Consul servers use to reach this cluster's API (ACL auth method).

    Configured value first; else the kubeconfig's server URL; if that is a loopback address
    (kind, minikube: pods cannot reach it) or unknown, the address of this cluster's
    default/kubernetes Endpoints, read through `opts`' provider so previews show it.
    """
    if configured:
        return pulumi.Output.from_input(configured)
    server = kube.server
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
