"""What each Consul chart line runs, as DATA: the only place the harness learns about a chart.

The harness plays nothing that is not listed here. A Job whose command (or flag) is not in the
table of its chart line FAILS; a workload any of whose containers' statements (or flags) is not
listed stays unready; an admission request on a webhook path not listed is DENIED; each is also recorded in
``ClusterHarness.errors()``. ``test_harness.py::test_chart_table_covers_rendered_charts``
renders every pinned chart with the program's own values and fails on anything this table
does not know, so a chart bump cannot silently outrun the harness.

A chart line is recognised by the images its pods run (the chart pins them per release:
``hashicorp/consul-k8s-control-plane:<chart version>``, the Consul image of that release,
``hashicorp/consul-dataplane:<chart version>``): an object is of line L when every image of its
pod template starts with one of L's ``images``.

Flag sets: the flags the upstream command registers (hashicorp/consul-k8s
``control-plane/subcommand/<name>/command.go``: read for tls-init, gateway-resources and
gateway-cleanup) or, where that source was not read, every flag the three pinned charts render.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Mapping, Optional

__all__ = ["ChartLine", "Command", "WorkloadCommand", "CHART_LINES", "chart_line_of", "CONTROL_PLANE",
           "WEBHOOK_SERVER", "CERT_MANAGER", "MESH_GATEWAY", "CONSUL_SERVER"]

CONTROL_PLANE = "consul-k8s-control-plane"

# Roles of workload containers the harness plays beyond readiness (see workloads.py/webhooks.py)
WEBHOOK_SERVER = "webhook-server"      # serves the admission webhooks
CERT_MANAGER = "webhook-cert-manager"  # makes the webhook certificates, patches caBundle
MESH_GATEWAY = "mesh-gateway"          # registers the WAN address create-federation-secret reads
CONSUL_SERVER = "consul-server"        # the datacenter create-federation-secret reads


@dataclass(frozen=True)
class Command:
    """A command a container may run: the flags it accepts and how many positional
    arguments it takes."""
    flags: frozenset[str]
    positionals: int = 0
    interleaved: bool = False  # options may follow positionals (curl), not Go flag parsing


@dataclass(frozen=True)
class ChartLine:
    version: str                          # "2.0"
    images: tuple[str, ...]               # image prefixes of this line's pods
    jobs: Mapping[str, Command]        # "consul-k8s-control-plane tls-init" -> command
    shell_noops: frozenset[str]           # Job script statements with no side effect (set, grep)
    workloads: Mapping[str, Mapping[str, "WorkloadCommand"]]  # kind -> {command: what it is}
    workload_shell: frozenset[str]        # workload statements touching only the pod's files
    # (Mutating|Validating, path) -> webhook name pattern ("*" is the chart's prefix)
    webhooks: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # flag of the webhook server naming its certificate directory
    webhook_cert_dir_flag: str = "tls-cert-dir"

    # name of the chart's Mutating/ValidatingWebhookConfiguration ("*" is the chart's prefix)
    webhook_configuration: str = "*-connect-injector"

    def webhook_known(self, kind: str, name: str, path: str,
                      configuration: Optional[str] = None) -> bool:
        """Whether webhook ``name`` of a ``kind`` configuration (of that name, when given) is
        the chart's, served at ``path``."""
        pattern = self.webhooks.get((kind, path))
        return pattern is not None and fnmatch.fnmatchcase(name, pattern) and (
            configuration is None
            or fnmatch.fnmatchcase(configuration, self.webhook_configuration))


@dataclass(frozen=True)
class WorkloadCommand:
    """A command a workload container may run, and the role the harness plays for it (None:
    none beyond readiness)."""
    command: Command
    role: Optional[str] = None


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


_LOG = ("log-level", "log-json")
_TLS_INIT = Command(_f(*_LOG, "days", "domain", "ca", "key", "dc", "name-prefix",
                          "k8s-namespace", "additional-dnsname", "additional-ipaddress"))
_CREATE_FEDERATION_SECRET = Command(_f(
    *_LOG, "consul-api-timeout", "export-replication-token", "gossip-key-file",
    "k8s-namespace", "mesh-gateway-service-name", "resource-prefix", "server-ca-cert-file",
    "server-ca-key-file"))
_SERVER_ACL_INIT = Command(_f(
    *_LOG, "acl-binding-rule-selector", "acl-replication-token-file", "allow-dns",
    "auth-method-host", "client", "connect-inject", "create-acl-replication-token",
    "federation", "k8s-namespace", "mesh-gateway", "resource-prefix", "secrets-backend",
    "set-server-tokens"))
_DELETE_COMPLETED_JOB = Command(_f(*_LOG, "k8s-namespace"), positionals=1)
_GATEWAY_RESOURCES = Command(_f(
    "gateway-class-name", "gateway-class-config-name", "heritage", "chart", "app",
    "release-name", "component", "controller-name", "service-type",
    "deployment-default-instances", "deployment-max-instances", "deployment-min-instances",
    "node-selector", "tolerations", "service-annotations", "openshift-scc-name",
    "map-privileged-container-ports", "gateway-config-file-location",
    "resource-config-file-location"))
_GATEWAY_CLEANUP = Command(_f("gateway-class-name", "gateway-class-config-name",
                                 "gateway-config-file-location",
                                 "resource-config-file-location"))
_GATEWAY_CLEANUP_NS = Command(_GATEWAY_CLEANUP.flags | {"gateway-class-config-namespace"})
_GATEWAY_CLEANUP_CUSTOM = Command(_f("gateway-class-name", "gateway-class-config-name"))
# tls-init-cleanup: `curl -s -X DELETE --cacert <sa ca> <secret URL> -H "Authorization: ..."`
_CURL = Command(_f("s", "X", "cacert", "H"), positionals=1, interleaved=True)

_JOBS_COMMON = {
    f"{CONTROL_PLANE} tls-init": _TLS_INIT,
    f"{CONTROL_PLANE} create-federation-secret": _CREATE_FEDERATION_SECRET,
    f"{CONTROL_PLANE} server-acl-init": _SERVER_ACL_INIT,
    f"{CONTROL_PLANE} delete-completed-job": _DELETE_COMPLETED_JOB,
    f"{CONTROL_PLANE} gateway-resources": _GATEWAY_RESOURCES,
    "curl": _CURL,
}
# `set -o noglob`; `if echo "$HOST" | grep -q ':'; then ... fi` (IPv6 check in tls-init-cleanup)
_SHELL_NOOPS = frozenset({"set", "echo", "grep"})

# Workload commands, flags as the charts render them (consul agent: every flag of Consul
# 1.16.1's `consul agent -h`, which the charts' newer Consul keeps).
_INJECT_CONNECT = Command(_f(
    *_LOG, "acl-auth-method", "allow-k8s-namespace", "config-file", "consul-dataplane-image",
    "consul-image", "consul-k8s-image", "default-enable-consul-dataplane-as-sidecar",
    "default-enable-metrics", "default-enable-metrics-merging",
    "default-enable-sidecar-proxy-lifecycle",
    "default-enable-sidecar-proxy-lifecycle-shutdown-drain-listeners",
    "default-enable-transparent-proxy", "default-envoy-proxy-concurrency", "default-inject",
    "default-merged-metrics-port", "default-prometheus-scrape-path",
    "default-prometheus-scrape-port", "default-sidecar-proxy-lifecycle-graceful-port",
    "default-sidecar-proxy-lifecycle-graceful-shutdown-path",
    "default-sidecar-proxy-lifecycle-graceful-startup-path",
    "default-sidecar-proxy-lifecycle-shutdown-grace-period-seconds",
    "default-sidecar-proxy-lifecycle-startup-grace-period-seconds",
    "default-sidecar-proxy-liveness-failure-seconds",
    "default-sidecar-proxy-startup-failure-seconds",
    "enabe-tcp-route",  # sic: the charts render this misspelling
    "enable-cni", "enable-consul-dns", "enable-federation", "enable-gateway-metrics",
    "enable-gateway-scaling", "enable-telemetry-collector", "init-container-cpu-request",
    "init-container-memory-limit", "init-container-memory-request", "listen",
    "release-name", "release-namespace", "resource-prefix", "tls-cert-dir",
    "transparent-proxy-default-overwrite-probes"))
_CERT_MANAGER = Command(_f(*_LOG, "config-file", "deployment-name", "deployment-namespace"))
_CONNECT_INIT = Command(_f(*_LOG, "gateway-kind", "pod-name", "pod-namespace", "proxy-id-file",
                           "service-name"))
_DATAPLANE = Command(_f(
    "addresses", "ca-certs", "consul-dns-bind-addr", "credential-type",
    "envoy-admin-bind-address", "graceful-addr", "grpc-port", "log-json", "log-level",
    "login-auth-method", "login-bearer-token-path", "login-datacenter", "proxy-service-id-path",
    "xds-bind-addr"))
_FETCH_SERVER_REGION = Command(_f("node-name", "output-file"))
_CONSUL_AGENT = Command(_f(
    "datacenter", "advertise", "advertise-wan", "allow-write-http-from", "alt-domain",
    "auto-reload-config", "bind", "bootstrap", "bootstrap-expect", "check", "client",
    "config-dir", "config-file", "config-format", "data-dir", "default-query-time", "dev",
    "disable-host-node-id", "disable-keyring-file", "dns-port", "domain",
    "enable-local-script-checks", "enable-script-checks", "encrypt", "grpc-port",
    "grpc-tls-port", "hcl", "http-port", "https-port", "join", "join-wan", "log-file",
    "log-json", "log-level", "log-rotate-bytes", "log-rotate-duration", "log-rotate-max-files",
    "max-query-time", "node", "node-id", "node-meta", "non-voting-server", "pid-file",
    "primary-gateway", "protocol", "raft-protocol", "read-replica", "recursor", "rejoin",
    "retry-interval", "retry-interval-wan", "retry-join", "retry-join-wan", "retry-max",
    "retry-max-wan", "segment", "serf-lan-allowed-cidrs", "serf-lan-bind", "serf-lan-port",
    "serf-wan-allowed-cidrs", "serf-wan-bind", "serf-wan-port", "server", "server-port",
    "syslog", "ui", "ui-content-path", "ui-dir"))

_WORKLOADS = {
    "Deployment": {
        f"{CONTROL_PLANE} inject-connect": WorkloadCommand(_INJECT_CONNECT, WEBHOOK_SERVER),
        f"{CONTROL_PLANE} webhook-cert-manager": WorkloadCommand(_CERT_MANAGER, CERT_MANAGER),
        f"{CONTROL_PLANE} connect-init": WorkloadCommand(_CONNECT_INIT),  # mesh gateway init
        "consul-dataplane": WorkloadCommand(_DATAPLANE, MESH_GATEWAY),
    },
    "StatefulSet": {
        f"{CONTROL_PLANE} fetch-server-region": WorkloadCommand(_FETCH_SERVER_REGION),
        "consul agent": WorkloadCommand(_CONSUL_AGENT, CONSUL_SERVER),
    },
}
# The server script's `cp` of its extra config and `[ -n "$HOST_IP" ] && sed -Ei ...` on it
_WORKLOAD_SHELL = frozenset({"cp", "sed", "["})

_CONFIG_ENTRIES = ("controlplanerequestlimits", "exportedservices", "ingressgateway",
                   "jwtprovider", "mesh", "proxydefaults", "servicedefaults",
                   "serviceintentions", "serviceresolver", "servicerouter", "servicesplitter",
                   "terminatinggateway")
_MUTATING_NAMES = {"controlplanerequestlimits": "controlplanerequestlimit"}


def _webhooks(*, ratelimits: bool, custom_gateway_policy: bool) -> dict[tuple[str, str], str]:
    entries = list(_CONFIG_ENTRIES) + (["ratelimits"] if ratelimits else [])
    out = {("Mutating", "/mutate"): "*-connect-injector.consul.hashicorp.com"}
    for e in entries:
        out[("Mutating", f"/mutate-v1alpha1-{e}")] = \
            f"mutate-{_MUTATING_NAMES.get(e, e)}.consul.hashicorp.com"
    out[("Validating", "/validate-v1alpha1-gatewaypolicy")] = \
        "validate-gatewaypolicy.consul.hashicorp.com"
    out[("Validating", "/validate-v1alpha1-registration")] = \
        "validate-registration.consul.hashicorp.com"
    if custom_gateway_policy:
        out[("Validating", "/validate-v1alpha1-gatewaypolicy-custom")] = \
            "validate-customgatewaypolicy.consul.hashicorp.com"
    return out


def _line(version: str, consul: str, ratelimits: bool, custom_gateways: bool) -> ChartLine:
    """A chart line: its images, and what differs between lines (the namespaced and custom
    gateway-cleanup Jobs and the custom gateway policy webhook, the rate limit webhook)."""
    cleanup = ({f"{CONTROL_PLANE} gateway-cleanup": _GATEWAY_CLEANUP_NS,
                f"{CONTROL_PLANE} gateway-cleanup-custom": _GATEWAY_CLEANUP_CUSTOM} if custom_gateways
               else {f"{CONTROL_PLANE} gateway-cleanup": _GATEWAY_CLEANUP})
    return ChartLine(
        version=version,
        images=(f"hashicorp/consul-k8s-control-plane:{version}.", f"hashicorp/consul:{consul}.",
                f"hashicorp/consul-dataplane:{version}."),
        jobs={**_JOBS_COMMON, **cleanup},
        shell_noops=_SHELL_NOOPS, workloads=_WORKLOADS, workload_shell=_WORKLOAD_SHELL,
        webhooks=_webhooks(ratelimits=ratelimits, custom_gateway_policy=custom_gateways))


CHART_LINES: dict[str, ChartLine] = {
    "1.8": _line("1.8", consul="1.21", ratelimits=False, custom_gateways=True),
    "1.9": _line("1.9", consul="1.22", ratelimits=False, custom_gateways=False),
    "2.0": _line("2.0", consul="2.0", ratelimits=True, custom_gateways=True),
}


def chart_line_of(pod_spec: dict) -> tuple[Optional[ChartLine], list[str]]:
    """(the chart line whose images every container of the pod spec runs, those images);
    None when no single line matches (an image the table does not know)."""
    images = [c.get("image") or "" for c in
              (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or [])]
    for line in CHART_LINES.values():
        if images and all(any(i.startswith(p) for p in line.images) for i in images):
            return line, images
    return None, images
