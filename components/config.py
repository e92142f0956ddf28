"""Stack configuration: typed, validated once, before any resource is registered.

Everything a stack may set under ``consul-federation:`` is parsed here into frozen dataclasses,
whose fields name their configuration keys (so the list of keys exists once). All problems are
collected and raised together, each naming the key, the bad value and what is allowed, so a user
fixes the stack file in one pass instead of one ``pulumi up`` per typo.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import pulumi
import yaml

from . import values_guard
from .chart_version import OLD_LINES_END, REAL_CONSUL_CHART, SUPPORTED_MINIMUM, fmt, line, parse_version
from .constants import CONFIG_NAMESPACE
from .kube_cluster import error_summary

DEFAULT_CHART_VERSION = "2.0.3"
DEFAULT_CHART_REPO = "https://helm.releases.hashicorp.com"
# How long Helm may take to install or upgrade the Release, Helm's wait for readiness and its
# hooks included. A first install waits for the mesh gateway's WAN address (a cloud load balancer
# can take minutes) before the federation-secret hook finishes; Helm's 5-minute default is tight.
DEFAULT_RELEASE_TIMEOUT = 900
RELEASE_TIMEOUT_RANGE = (30, 7200)
# Which gossip key the primary's Secret holds; ``python -m federation rotate-gossip-key`` raises it.
GOSSIP_KEY_GENERATION_RANGE = (0, 1_000_000)

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

_SECRET_NOT_SHOWN = "(secret value not shown)"

# Settings that may be set with `pulumi config set --secret`, and where their secrecy goes: the
# chart values (the Release's `values` become a Pulumi secret), the chart repository URL (it may
# carry credentials), the k8sAuthMethodHost stack output. Every other setting names objects, and
# ends up in resource names, URNs or Kubernetes object names, which Pulumi never encrypts.
SECRET_CAPABLE = ("helmValues", "meshGateway", "k8sAuthMethodHost", "chartRepo")
# The settings the chart values are computed from (a secret among them makes the values secret).
VALUE_KEYS = ("helmValues", "meshGateway", "k8sAuthMethodHost")


class ConfigError(pulumi.RunError):
    """Every configuration problem of a stack at once; a RunError so Pulumi prints no traceback."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(
            f"{len(self.errors)} configuration error(s); fix them in the stack's "
            f"Pulumi.<stack>.yaml and run again (nothing was changed):\n{lines}"
        )


def setting(key: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            repr: bool = True) -> Any:
    """A dataclass field read from configuration key `key`; a field with a factory is an object
    (a YAML mapping, read with ``Config.get_object``)."""
    return field(default=default, default_factory=factory, repr=repr,
                 metadata={"key": key, "object": factory is not dataclasses.MISSING})


def config_keys(cls: type) -> tuple[str, ...]:
    return tuple(f.metadata["key"] for f in dataclasses.fields(cls) if "key" in f.metadata)


@dataclass(frozen=True)
class MeshGatewayConfig:
    """How this datacenter's mesh gateway is exposed to the other datacenters."""

    mode: str = setting("mode", "local")
    service_type: str = setting("serviceType", "LoadBalancer")
    node_port: Optional[int] = setting("nodePort", None)
    replicas: int = setting("replicas", 1)
    wan_address: Optional[str] = setting("wanAddress", None)


@dataclass(frozen=True)
class DatacenterConfig:
    """One stack's datacenter, as validated configuration."""

    role: str = setting("role")
    datacenter: str = setting("datacenter")
    kube_context: str = setting("kubeContext")
    kubeconfig: Optional[str] = setting("kubeconfig", None)
    namespace: str = setting("namespace", "consul")
    release_name: str = setting("releaseName", "consul")
    global_name: str = setting("globalName", "consul")
    chart_version: str = setting("chartVersion", DEFAULT_CHART_VERSION)
    chart_repo: str = setting("chartRepo", DEFAULT_CHART_REPO)
    chart_path: Optional[str] = setting("chartPath", None)
    acls: bool = setting("acls", True)
    gossip_encryption: bool = setting("gossipEncryption", True)
    mesh_gateway: MeshGatewayConfig = setting("meshGateway", factory=MeshGatewayConfig)
    primary_stack: Optional[str] = setting("primaryStack", None)
    k8s_auth_method_host: Optional[str] = setting("k8sAuthMethodHost", None)
    helm_values: Mapping[str, Any] = setting("helmValues", factory=dict, repr=False)
    release_timeout: int = setting("releaseTimeoutSeconds", DEFAULT_RELEASE_TIMEOUT)
    gossip_key_generation: int = setting("gossipKeyGeneration", 0)
    # The settings the stack set with `pulumi config set --secret` (a subset of SECRET_CAPABLE).
    secret_settings: frozenset[str] = field(default=frozenset())

    def is_secret(self, *keys: str) -> bool:
        """Whether any of these settings was set as a secret, so what it feeds must be one too."""
        return bool(self.secret_settings.intersection(keys))

    def secret_if(self, value: Any, *keys: str) -> Any:
        """`value` as a Pulumi secret when any of the settings it comes from is one."""
        return pulumi.Output.secret(value) if self.is_secret(*keys) else value

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


KEYS = config_keys(DatacenterConfig)
MESH_GATEWAY_KEYS = config_keys(MeshGatewayConfig)
OBJECT_KEYS = tuple(f.metadata["key"] for f in dataclasses.fields(DatacenterConfig) if f.metadata.get("object"))


class _Reader:
    """Collects errors while reading raw values, so all of them can be reported together."""

    def __init__(self, raw: Mapping[str, Any], secret_keys: frozenset[str]):
        self.raw = raw
        self.secret_keys = secret_keys
        self.errors: list[str] = []

    def error(self, key: str, value: Any, allowed: str) -> None:
        shown = _SECRET_NOT_SHOWN if key.split(".")[0] in self.secret_keys else repr(value)
        self.errors.append(f"{CONFIG_NAMESPACE}:{key}: {shown} is not valid; {allowed}")

    def string(self, key: str, default: Optional[str] = None, *, required: bool = False,
               check: Optional[Callable[[str], Optional[str]]] = None,
               source: Optional[Mapping[str, Any]] = None, name: Optional[str] = None) -> Optional[str]:
        source = self.raw if source is None else source
        name = name or key
        value = source.get(key)
        if value is None or value == "":
            if required:
                self.errors.append(f"{CONFIG_NAMESPACE}:{name} is required but not set")
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
        reader.error("chartVersion", version,
                     f"this program supports Consul chart {fmt(SUPPORTED_MINIMUM)} or later, and CI "
                     f"renders the {values_guard.rendered_lines_text()} lines (see README, 'Chart versions')")


def _chart_path_version(reader: _Reader, path: str) -> Optional[str]:
    """The version a local chart directory declares, or None after recording why it is unusable."""
    chart_yaml = os.path.join(path, "Chart.yaml")
    try:
        with open(chart_yaml, encoding="utf-8") as handle:
            meta = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        reader.error("chartPath", path, f"expected a chart directory containing Chart.yaml ({error_summary(exc)})")
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
            errors.append(f"{CONFIG_NAMESPACE}:{prefix}{key} is not a setting of this program; {allowed}")
    return errors


def _role(r: _Reader) -> Optional[str]:
    role = r.string("role", required=True)
    if role is not None and role not in ROLES:
        r.error("role", role, "allowed: 'primary', 'secondary'")
        return None
    return role


def _chart(r: _Reader) -> tuple[str, str, Optional[str]]:
    """(chart version, repository, local chart directory); a chartPath's Chart.yaml sets the version."""
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
    return chart_version, chart_repo, chart_path


def _mesh_gateway(r: _Reader, role: Optional[str]) -> MeshGatewayConfig:
    gw_raw = r.mapping("meshGateway")
    if role == "secondary" and "mode" in gw_raw:
        r.error("meshGateway.mode", gw_raw["mode"],
                "the mode is set in the primary's stack only: ProxyDefaults global is a config "
                "entry Consul replicates from the primary to every datacenter, and a secondary's "
                "own copy is refused as managed in a different datacenter (consul#6327); "
                "remove it here")
    r.errors.extend(_unknown_keys(gw_raw, MESH_GATEWAY_KEYS, "meshGateway."))
    service_type = r.choice(gw_raw, "serviceType", "meshGateway.serviceType", SERVICE_TYPES, "LoadBalancer")
    node_port = r.integer(gw_raw, "nodePort", "meshGateway.nodePort", 1, 65535)
    if service_type == "NodePort" and gw_raw.get("nodePort") is None:
        r.errors.append(f"{CONFIG_NAMESPACE}:meshGateway.nodePort is required with meshGateway.serviceType "
                        "NodePort: the port (usually 30000-32767) the other datacenters dial on every node")
    if service_type != "NodePort" and node_port is not None:
        r.error("meshGateway.nodePort", node_port,
                f"nodePort is only used with serviceType NodePort (serviceType is {service_type!r}); remove it")
    return MeshGatewayConfig(
        mode=r.choice(gw_raw, "mode", "meshGateway.mode", MESH_GATEWAY_MODES, "local"),
        service_type=service_type,
        node_port=node_port,
        replicas=r.integer(gw_raw, "replicas", "meshGateway.replicas", 1, 100) or 1,
        wan_address=r.string("wanAddress", source=gw_raw, name="meshGateway.wanAddress", check=_host),
    )


def _federation_settings(r: _Reader, role: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(primaryStack, k8sAuthMethodHost): secondaries need the first and may set the second."""
    primary_stack = r.string("primaryStack", check=_stack_ref)
    auth_host = r.string("k8sAuthMethodHost", check=_https_url)
    if role == "secondary" and r.raw.get("primaryStack") in (None, ""):
        r.errors.append(f"{CONFIG_NAMESPACE}:primaryStack is required when role is 'secondary': the primary's "
                        "stack, e.g. organization/consul-federation/dc1")
    if role == "primary":
        for key in ("primaryStack", "k8sAuthMethodHost"):
            if r.raw.get(key) not in (None, ""):
                r.error(key, r.raw[key], "only secondaries take this setting; remove it from the primary's stack")
    return primary_stack, auth_host


def _gossip_key_generation(r: _Reader, role: Optional[str], gossip: bool) -> int:
    """The primary's gossip key generation: the primary makes the key, so only it counts them."""
    generation = r.integer(r.raw, "gossipKeyGeneration", "gossipKeyGeneration", *GOSSIP_KEY_GENERATION_RANGE)
    if not generation:
        return 0
    if role == "secondary":
        r.error("gossipKeyGeneration", r.raw["gossipKeyGeneration"],
                "only the primary takes this setting (secondaries get the key through the federation "
                "secret); remove it from this stack")
    elif not gossip:
        r.error("gossipKeyGeneration", r.raw["gossipKeyGeneration"],
                "there is no gossip key to rotate with gossipEncryption: false; remove it")
    return generation


def _secret_settings(r: _Reader) -> frozenset[str]:
    """The secret settings this program can keep secret; any other one is an error."""
    for key in sorted(r.secret_keys):
        if key in KEYS and key not in SECRET_CAPABLE:
            r.errors.append(
                f"{CONFIG_NAMESPACE}:{key} is set as a secret, but it names objects and ends up in "
                "resource names and URNs, which Pulumi never encrypts; set it without --secret "
                f"(settings that can be secret: {', '.join(SECRET_CAPABLE)})")
    return frozenset(r.secret_keys & set(SECRET_CAPABLE))


def parse_config(raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> DatacenterConfig:
    """Validate raw configuration values (objects already decoded) into a DatacenterConfig;
    `secret_keys` are the settings the stack set as secrets (their values are never shown).

    Raises ConfigError listing every problem found.
    """
    r = _Reader(raw, frozenset(secret_keys))
    r.errors.extend(_unknown_keys(raw, KEYS))
    role = _role(r)
    datacenter = r.string("datacenter", required=True, check=_dns_label("a Consul datacenter name"))
    kube_context = r.string("kubeContext", required=True)
    kubeconfig = r.string("kubeconfig")
    namespace = r.string("namespace", "consul", check=_dns_label("a Kubernetes namespace"))
    release_name = r.string("releaseName", "consul", check=_release_name)
    global_name = r.string("globalName", "consul",
                           check=_dns_label("globalName (prefix of every object the chart makes)", MAX_GLOBAL_NAME))
    chart_version, chart_repo, chart_path = _chart(r)
    acls = r.boolean("acls", True)
    gossip = r.boolean("gossipEncryption", True)
    release_timeout = r.integer(raw, "releaseTimeoutSeconds", "releaseTimeoutSeconds",
                                *RELEASE_TIMEOUT_RANGE) or DEFAULT_RELEASE_TIMEOUT
    gossip_generation = _gossip_key_generation(r, role, gossip)
    mesh_gateway = _mesh_gateway(r, role)
    primary_stack, auth_host = _federation_settings(r, role)
    helm_values = r.mapping("helmValues")
    r.errors.extend(values_guard.check_user_values(helm_values, chart_version))
    secret_settings = _secret_settings(r)
    if r.errors:
        raise ConfigError(r.errors)
    return DatacenterConfig(
        role=role, datacenter=datacenter, kube_context=kube_context, kubeconfig=kubeconfig,
        namespace=namespace, release_name=release_name, global_name=global_name,
        chart_version=chart_version, chart_repo=chart_repo, chart_path=chart_path,
        acls=acls, gossip_encryption=gossip, mesh_gateway=mesh_gateway,
        primary_stack=primary_stack, k8s_auth_method_host=auth_host,
        helm_values=helm_values, release_timeout=release_timeout, gossip_key_generation=gossip_generation,
        secret_settings=secret_settings,
    )


def read_stack_config() -> tuple[dict[str, Any], frozenset[str]]:
    """This stack's ``consul-federation:*`` values, and which of them were set as secrets.

    Values come through the public ``pulumi.Config`` (objects through ``get_object``, the rest as
    text: parse_config checks types itself, so a bad value is one error among all the others).
    Which keys exist, and which are secret, come from ``pulumi.runtime.get_config_env`` and
    ``pulumi.runtime.is_config_secret`` (public: ``pulumi.runtime.__all__``); ``Config`` itself
    can list neither, and its ``get_secret*`` wrap every value, secret in the stack or not.
    """
    config = pulumi.Config(CONFIG_NAMESPACE)
    prefix = f"{CONFIG_NAMESPACE}:"
    present = {key[len(prefix):] for key in pulumi.runtime.get_config_env() if key.startswith(prefix)}
    raw: dict[str, Any] = {}
    for key in sorted(present | set(KEYS)):
        try:
            value = config.get_object(key) if key in OBJECT_KEYS else config.get(key)
        except pulumi.ConfigTypeError:
            value = config.get(key)  # not JSON: parse_config reports it is not an object
        if value is not None:
            raw[key] = value
    secret = frozenset(key for key in raw if pulumi.runtime.is_config_secret(prefix + key))
    return raw, secret


def load_config() -> DatacenterConfig:
    """Read and validate this stack's configuration (raises ConfigError)."""
    return parse_config(*read_stack_config())


def config_warnings(cfg: DatacenterConfig) -> list[str]:
    """Things that are allowed but worth telling the user at every preview."""
    warnings = []
    version = parse_version(cfg.chart_version)
    checked_against = values_guard.key_list_version(cfg.chart_version)
    if version is not None and line(version) not in values_guard.rendered_lines():
        warnings.append(
            f"chart {cfg.chart_version}: CI renders no chart of the "
            f"{version[0]}.{version[1]} line (it renders the {values_guard.rendered_lines_text()} lines), so neither this program's "
            "values nor helmValues keys are checked against it")
    elif checked_against is not None and checked_against != cfg.chart_version and cfg.helm_values:
        warnings.append(
            f"chart {cfg.chart_version}: helmValues keys were checked against chart "
            f"{checked_against}, the newest of its line this program ships a key list for")
    if version is not None and line(version) < OLD_LINES_END and cfg.chart_version != REAL_CONSUL_CHART:
        warnings.append(
            f"chart {cfg.chart_version}: of the 1.0-1.7 lines only chart {REAL_CONSUL_CHART} is tested "
            f"(CI runs its Consul 1.16.1, control plane and gateways for real); use {REAL_CONSUL_CHART} "
            "or a 1.8 or later chart")
    partition = (cfg.helm_values.get("server") or {}).get("updatePartition")
    if cfg.is_primary and isinstance(partition, int) and partition > 0:
        warnings.append(f"helmValues.server.updatePartition is {partition}: the primary's "
                        "create-federation-secret hook can hang on upgrade until it is 0 "
                        "(consul-k8s#1466)")
    if cfg.mesh_gateway.service_type == "ClusterIP" and cfg.mesh_gateway.wan_address is None:
        warnings.append("meshGateway.serviceType ClusterIP without meshGateway.wanAddress: other "
                        "datacenters can reach the gateway only if the cluster IP is routable to them")
    return warnings
