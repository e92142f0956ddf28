"""Stack configuration: typed, validated once, before any resource is registered.

Everything a stack may set under ``consul-federation:`` is parsed here into frozen dataclasses.
All problems are collected and raised together, each naming the key, the bad value and what is
allowed, so a user fixes the stack file in one pass instead of one ``pulumi up`` per typo.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import pulumi
import yaml

from . import values_guard
from .chart_version import SUPPORTED_MINIMUM, fmt, line, parse_version

NAMESPACE = "consul-federation"

DEFAULT_CHART_VERSION = "2.0.3"
DEFAULT_CHART_REPO = "https://helm.releases.hashicorp.com"
# How long Helm may take to install or upgrade the Release, Helm's wait for readiness and its
# hooks included. A first install waits for the mesh gateway's WAN address (a cloud load balancer
# can take minutes) before the federation-secret hook finishes; Helm's 5-minute default is tight.
DEFAULT_RELEASE_TIMEOUT = 900
RELEASE_TIMEOUT_RANGE = (30, 7200)

ROLES = ("primary", "secondary")
MESH_GATEWAY_MODES = ("local", "remote")
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")

# Kubernetes object names built from globalName get suffixes of up to 25 characters
# ("-create-federation-secret"), and Kubernetes caps names used as labels at 63.
MAX_GLOBAL_NAME = 38

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_STACK_REF = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9a-fA-F:.]+\]?$")

MESH_GATEWAY_KEYS = ("mode", "serviceType", "nodePort", "replicas", "wanAddress")
KEYS = (
    "role",
    "datacenter",
    "kubeContext",
    "kubeconfig",
    "namespace",
    "releaseName",
    "globalName",
    "chartVersion",
    "chartRepo",
    "chartPath",
    "acls",
    "gossipEncryption",
    "meshGateway",
    "primaryStack",
    "k8sAuthMethodHost",
    "helmValues",
    "releaseTimeoutSeconds",
)


class ConfigError(pulumi.RunError):
    """Every configuration problem of a stack at once; a RunError so Pulumi prints no traceback."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(
            f"{len(self.errors)} configuration error(s); fix them in the stack's "
            f"Pulumi.<stack>.yaml and run again (nothing was changed):\n{lines}"
        )


@dataclass(frozen=True)
class MeshGatewayConfig:
    """How this datacenter's mesh gateway is exposed to the other datacenters."""

    mode: str = "local"
    service_type: str = "LoadBalancer"
    node_port: Optional[int] = None
    replicas: int = 1
    wan_address: Optional[str] = None


@dataclass(frozen=True)
class DatacenterConfig:
    """One stack's datacenter, as validated configuration."""

    role: str
    datacenter: str
    kube_context: str
    kubeconfig: Optional[str] = None
    namespace: str = "consul"
    release_name: str = "consul"
    global_name: str = "consul"
    chart_version: str = DEFAULT_CHART_VERSION
    chart_repo: str = DEFAULT_CHART_REPO
    chart_path: Optional[str] = None
    acls: bool = True
    gossip_encryption: bool = True
    mesh_gateway: MeshGatewayConfig = field(default_factory=MeshGatewayConfig)
    primary_stack: Optional[str] = None
    k8s_auth_method_host: Optional[str] = None
    helm_values: Mapping[str, Any] = field(default_factory=dict)
    release_timeout: int = DEFAULT_RELEASE_TIMEOUT

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"

    @property
    def resource_prefix(self) -> str:
        """The chart's object-name prefix: we always set global.name, so it is globalName."""
        return self.global_name

    @property
    def federation_secret_name(self) -> str:
        return f"{self.resource_prefix}-federation"

    @property
    def gossip_secret_name(self) -> str:
        return f"{self.resource_prefix}-gossip-encryption-key"


class _Reader:
    """Collects errors while reading raw values, so all of them can be reported together."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self.errors: list[str] = []

    def error(self, key: str, value: Any, allowed: str) -> None:
        self.errors.append(f"{NAMESPACE}:{key}: {value!r} is not valid; {allowed}")

    def string(self, key: str, default: Optional[str] = None, *, required: bool = False,
               check: Optional[Callable[[str], Optional[str]]] = None,
               source: Optional[Mapping[str, Any]] = None, name: Optional[str] = None) -> Optional[str]:
        source = self.raw if source is None else source
        name = name or key
        value = source.get(key)
        if value is None or value == "":
            if required:
                self.errors.append(f"{NAMESPACE}:{name} is required but not set")
            return default
        if not isinstance(value, str):
            self.error(name, value, "expected a string")
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.error(name, value, problem)
                return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.error(key, value, "expected true or false")
        return default

    def integer(self, source: Mapping[str, Any], key: str, name: str, lo: int, hi: int) -> Optional[int]:
        value = source.get(key)
        if value is None:
            return None
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        if number is None or not lo <= number <= hi:
            self.error(name, value, f"expected a whole number from {lo} to {hi}")
            return None
        return number

    def choice(self, source: Mapping[str, Any], key: str, name: str, choices: tuple[str, ...],
               default: str) -> str:
        value = source.get(key)
        if value is None:
            return default
        if value not in choices:
            self.error(name, value, "allowed: " + ", ".join(repr(c) for c in choices))
            return default
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(key, value, "expected an object (a YAML mapping)")
            return {}
        return value


def _dns_label(what: str, limit: int = 63) -> Callable[[str], Optional[str]]:
    def check(value: str) -> Optional[str]:
        if len(value) > limit or not _DNS_LABEL.match(value):
            return (f"{what} must be lowercase letters, digits and hyphens, start and end with a "
                    f"letter or digit, at most {limit} characters")
        return None
    return check


def _release_name(value: str) -> Optional[str]:
    if len(value) > 53 or not _RELEASE_NAME.match(value):
        return "a Helm release name is lowercase letters, digits, '-' and '.', at most 53 characters"
    return None


def _https_url(value: str) -> Optional[str]:
    if not re.match(r"^https://[^/\s]+(:\d+)?/?$", value):
        return "expected the Kubernetes API server URL as https://host[:port], reachable from the primary's pods"
    return None


def _chart_repo(value: str) -> Optional[str]:
    if not re.match(r"^(https?|oci)://\S+$", value):
        return "expected a Helm repository URL (https://..., http://... or oci://...)"
    return None


def _stack_ref(value: str) -> Optional[str]:
    if not _STACK_REF.match(value):
        return "expected a stack reference such as organization/consul-federation/dc1"
    return None


def _host(value: str) -> Optional[str]:
    if not _HOST.match(value):
        return "expected a host name or IP address without scheme or port"
    return None


def _check_chart_version(reader: _Reader, version: str) -> None:
    parsed = parse_version(version)
    if parsed is None:
        reader.error("chartVersion", version, "expected a chart release version such as 2.0.3")
    elif parsed < SUPPORTED_MINIMUM:
        lines = ", ".join(f"{major}.{minor}" for major, minor in values_guard.rendered_lines())
        reader.error("chartVersion", version,
                     f"this program supports Consul chart {fmt(SUPPORTED_MINIMUM)} or later, and CI "
                     f"renders and installs the {lines} lines (see README, 'Chart versions')")


def _chart_path_version(reader: _Reader, path: str) -> Optional[str]:
    """The version a local chart directory declares, or None after recording why it is unusable."""
    chart_yaml = os.path.join(path, "Chart.yaml")
    try:
        with open(chart_yaml, encoding="utf-8") as handle:
            meta = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        reader.error("chartPath", path, f"expected a chart directory containing Chart.yaml ({exc.__class__.__name__})")
        return None
    if not isinstance(meta, dict) or meta.get("name") != "consul":
        found = meta.get("name") if isinstance(meta, dict) else None
        reader.error("chartPath", path, f"expected the Consul chart, found chart {found!r}")
        return None
    return str(meta.get("version", ""))


def _unknown_keys(raw: Mapping[str, Any], known: tuple[str, ...], prefix: str = "") -> list[str]:
    errors = []
    for key in raw:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            allowed = f"did you mean {hint[0]!r}?" if hint else "allowed: " + ", ".join(known)
            errors.append(f"{NAMESPACE}:{prefix}{key} is not a setting of this program; {allowed}")
    return errors


def parse_config(raw: Mapping[str, Any]) -> DatacenterConfig:
    """Validate raw configuration values (already JSON-decoded) into a DatacenterConfig.

    Raises ConfigError listing every problem found.
    """
    r = _Reader(raw)
    r.errors.extend(_unknown_keys(raw, KEYS))

    role = r.string("role", required=True)
    if role is not None and role not in ROLES:
        r.error("role", role, "allowed: 'primary', 'secondary'")
        role = None
    datacenter = r.string("datacenter", required=True, check=_dns_label("a Consul datacenter name"))
    kube_context = r.string("kubeContext", required=True)
    kubeconfig = r.string("kubeconfig")
    namespace = r.string("namespace", "consul", check=_dns_label("a Kubernetes namespace"))
    release_name = r.string("releaseName", "consul", check=_release_name)
    global_name = r.string("globalName", "consul",
                           check=_dns_label("globalName (prefix of every object the chart makes)", MAX_GLOBAL_NAME))
    chart_repo = r.string("chartRepo", DEFAULT_CHART_REPO, check=_chart_repo)
    chart_path = r.string("chartPath")
    explicit_version = r.string("chartVersion")
    chart_version = explicit_version or DEFAULT_CHART_VERSION
    if chart_path is not None:
        chart_path = os.path.abspath(os.path.expanduser(chart_path))
        local_version = _chart_path_version(r, chart_path)
        if local_version and explicit_version and local_version != explicit_version:
            r.error("chartVersion", explicit_version,
                    f"chartPath {chart_path} holds chart {local_version}; set chartVersion to it or remove chartVersion")
        chart_version = local_version or chart_version
    _check_chart_version(r, chart_version)
    acls = r.boolean("acls", True)
    gossip = r.boolean("gossipEncryption", True)
    release_timeout = r.integer(raw, "releaseTimeoutSeconds", "releaseTimeoutSeconds",
                                *RELEASE_TIMEOUT_RANGE) or DEFAULT_RELEASE_TIMEOUT

    gw_raw = r.mapping("meshGateway")
    r.errors.extend(_unknown_keys(gw_raw, MESH_GATEWAY_KEYS, "meshGateway."))
    service_type = r.choice(gw_raw, "serviceType", "meshGateway.serviceType", SERVICE_TYPES, "LoadBalancer")
    node_port = r.integer(gw_raw, "nodePort", "meshGateway.nodePort", 1, 65535)
    if service_type == "NodePort" and gw_raw.get("nodePort") is None:
        r.errors.append(f"{NAMESPACE}:meshGateway.nodePort is required with meshGateway.serviceType "
                        "NodePort: the port (usually 30000-32767) the other datacenters dial on every node")
    if service_type != "NodePort" and node_port is not None:
        r.error("meshGateway.nodePort", node_port,
                f"nodePort is only used with serviceType NodePort (serviceType is {service_type!r}); remove it")
    mesh_gateway = MeshGatewayConfig(
        mode=r.choice(gw_raw, "mode", "meshGateway.mode", MESH_GATEWAY_MODES, "local"),
        service_type=service_type,
        node_port=node_port,
        replicas=r.integer(gw_raw, "replicas", "meshGateway.replicas", 1, 100) or 1,
        wan_address=r.string("wanAddress", source=gw_raw, name="meshGateway.wanAddress", check=_host),
    )

    primary_stack = r.string("primaryStack", check=_stack_ref)
    auth_host = r.string("k8sAuthMethodHost", check=_https_url)
    if role == "secondary" and raw.get("primaryStack") in (None, ""):
        r.errors.append(f"{NAMESPACE}:primaryStack is required when role is 'secondary': the primary's "
                        "stack, e.g. organization/consul-federation/dc1")
    if role == "primary":
        for key in ("primaryStack", "k8sAuthMethodHost"):
            if raw.get(key) not in (None, ""):
                r.error(key, raw[key], "only secondaries take this setting; remove it from the primary's stack")

    helm_values = r.mapping("helmValues")
    r.errors.extend(values_guard.check_user_values(helm_values, chart_version))

    if r.errors:
        raise ConfigError(r.errors)
    return DatacenterConfig(
        role=role, datacenter=datacenter, kube_context=kube_context, kubeconfig=kubeconfig,
        namespace=namespace, release_name=release_name, global_name=global_name,
        chart_version=chart_version, chart_repo=chart_repo, chart_path=chart_path,
        acls=acls, gossip_encryption=gossip, mesh_gateway=mesh_gateway,
        primary_stack=primary_stack, k8s_auth_method_host=auth_host,
        helm_values=helm_values, release_timeout=release_timeout,
    )


def raw_stack_config() -> dict[str, Any]:
    """This stack's ``consul-federation:*`` values, JSON-decoded where they are objects."""
    import json

    values: dict[str, Any] = {}
    every = dict(pulumi.runtime.config.get_config_env())
    every.update(pulumi.runtime.config.CONFIG.get())
    for full_key, value in every.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE or not key:
            continue
        if isinstance(value, str) and value[:1] in "{[":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        values[key] = value
    return values


def load_config() -> DatacenterConfig:
    """Read and validate this stack's configuration (raises ConfigError)."""
    return parse_config(raw_stack_config())


def config_warnings(cfg: DatacenterConfig) -> list[str]:
    """Things that are allowed but worth telling the user at every preview."""
    warnings = []
    version = parse_version(cfg.chart_version)
    checked_against = values_guard.key_list_version(cfg.chart_version)
    if version is not None and line(version) not in values_guard.rendered_lines():
        lines = ", ".join(f"{major}.{minor}" for major, minor in values_guard.rendered_lines())
        warnings.append(
            f"chart {cfg.chart_version}: CI renders and installs no chart of the "
            f"{version[0]}.{version[1]} line (it does the {lines} lines), so neither this program's "
            "values nor helmValues keys are checked against it")
    elif checked_against is not None and checked_against != cfg.chart_version and cfg.helm_values:
        warnings.append(
            f"chart {cfg.chart_version}: helmValues keys were checked against chart "
            f"{checked_against}, the newest of its line this program ships a key list for")
    partition = (cfg.helm_values.get("server") or {}).get("updatePartition")
    if cfg.is_primary and isinstance(partition, int) and partition > 0:
        warnings.append(f"helmValues.server.updatePartition is {partition}: the primary's "
                        "create-federation-secret hook can hang on upgrade until it is 0 "
                        "(consul-k8s#1466)")
    if cfg.mesh_gateway.service_type == "ClusterIP" and cfg.mesh_gateway.wan_address is None:
        warnings.append("meshGateway.serviceType ClusterIP without meshGateway.wanAddress: other "
                        "datacenters can reach the gateway only if the cluster IP is routable to them")
    return warnings
