"""What each Consul chart line runs, as DATA: the only place the harness learns about a chart.

The harness plays nothing that is not listed here. A Job whose command (or flag) is not in the
table of its chart line FAILS; a workload whose containers run something not listed stays
unready; an admission request on a webhook path not listed is DENIED; each is also recorded in
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

__all__ = ["ChartLine", "JobCommand", "CHART_LINES", "chart_line_of", "CONTROL_PLANE",
           "WEBHOOK_SERVER", "CERT_MANAGER", "MESH_GATEWAY", "CONSUL_SERVER"]

CONTROL_PLANE = "consul-k8s-control-plane"

# Roles of workload containers the harness plays beyond readiness (see workloads.py/webhooks.py)
WEBHOOK_SERVER = "webhook-server"      # serves the admission webhooks
CERT_MANAGER = "webhook-cert-manager"  # makes the webhook certificates, patches caBundle
MESH_GATEWAY = "mesh-gateway"          # registers the WAN address create-federation-secret reads
CONSUL_SERVER = "consul-server"        # the datacenter create-federation-secret reads


@dataclass(frozen=True)
class JobCommand:
    """A command a Job container may run: the flags it accepts and how many positional
    arguments it takes."""
    flags: frozenset[str]
    positionals: int = 0
    interleaved: bool = False  # options may follow positionals (curl), not Go flag parsing


@dataclass(frozen=True)
class ChartLine:
    version: str                          # "2.0"
    images: tuple[str, ...]               # image prefixes of this line's pods
    jobs: Mapping[str, JobCommand]        # "consul-k8s-control-plane tls-init" -> command
    shell_noops: frozenset[str]           # script statements with no side effect (set, grep)
    workloads: Mapping[str, Mapping[str, Optional[str]]]  # kind -> {container command: role}
    # (Mutating|Validating, path) -> webhook name pattern ("*" is the chart's prefix)
    webhooks: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # flag of the webhook server naming its certificate directory
    webhook_cert_dir_flag: str = "tls-cert-dir"

    def webhook_known(self, kind: str, name: str, path: str) -> bool:
        pattern = self.webhooks.get((kind, path))
        return pattern is not None and fnmatch.fnmatchcase(name, pattern)


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


_LOG = ("log-level", "log-json")
_TLS_INIT = JobCommand(_f(*_LOG, "days", "domain", "ca", "key", "dc", "name-prefix",
                          "k8s-namespace", "additional-dnsname", "additional-ipaddress"))
_CREATE_FEDERATION_SECRET = JobCommand(_f(
    *_LOG, "consul-api-timeout", "export-replication-token", "gossip-key-file",
    "k8s-namespace", "mesh-gateway-service-name", "resource-prefix", "server-ca-cert-file",
    "server-ca-key-file"))
_SERVER_ACL_INIT = JobCommand(_f(
    *_LOG, "acl-binding-rule-selector", "acl-replication-token-file", "allow-dns",
    "auth-method-host", "client", "connect-inject", "create-acl-replication-token",
    "federation", "k8s-namespace", "mesh-gateway", "resource-prefix", "secrets-backend",
    "set-server-tokens"))
_DELETE_COMPLETED_JOB = JobCommand(_f(*_LOG, "k8s-namespace"), positionals=1)
_GATEWAY_RESOURCES = JobCommand(_f(
    "gateway-class-name", "gateway-class-config-name", "heritage", "chart", "app",
    "release-name", "component", "controller-name", "service-type",
    "deployment-default-instances", "deployment-max-instances", "deployment-min-instances",
    "node-selector", "tolerations", "service-annotations", "openshift-scc-name",
    "map-privileged-container-ports", "gateway-config-file-location",
    "resource-config-file-location"))
_GATEWAY_CLEANUP = JobCommand(_f("gateway-class-name", "gateway-class-config-name",
                                 "gateway-config-file-location",
                                 "resource-config-file-location"))
_GATEWAY_CLEANUP_NS = JobCommand(_GATEWAY_CLEANUP.flags | {"gateway-class-config-namespace"})
_GATEWAY_CLEANUP_CUSTOM = JobCommand(_f("gateway-class-name", "gateway-class-config-name"))
# tls-init-cleanup: `curl -s -X DELETE --cacert <sa ca> <secret URL> -H "Authorization: ..."`
_CURL = JobCommand(_f("s", "X", "cacert", "H"), positionals=1, interleaved=True)

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

_WORKLOADS = {
    "Deployment": {
        f"{CONTROL_PLANE} inject-connect": WEBHOOK_SERVER,
        f"{CONTROL_PLANE} webhook-cert-manager": CERT_MANAGER,
        f"{CONTROL_PLANE} connect-init": None,   # mesh gateway init container
        "consul-dataplane": MESH_GATEWAY,
    },
    "StatefulSet": {
        f"{CONTROL_PLANE} fetch-server-region": None,  # server init container
        "consul agent": CONSUL_SERVER,
    },
}

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
        shell_noops=_SHELL_NOOPS, workloads=_WORKLOADS,
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
