"""Stack configuration, parsed: typed and validated once, before any resource is registered.

The settings, their kinds, defaults and checks are the fields of ``settings.py``; this module
reads raw values by those fields and adds the rules that involve more than one setting. All
problems are collected and raised together, each naming the key, the bad value and what is
allowed, so a user fixes the stack file in one pass instead of one ``pulumi up`` per typo.
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Callable, Mapping, Optional

import pulumi
import yaml

from . import values_guard
from .chart_version import SUPPORTED_MINIMUM, fmt, parse_version
from .constants import CONFIG_NAMESPACE
from .kube_cluster import KubeCluster, KubeconfigError, error_summary, resolve_cluster
from .settings import (DEFAULT_NODE_PORT_RANGE, KEYS, MESH_GATEWAY_KEYS, SECRET_CAPABLE, DatacenterConfig,
                       MeshGatewayConfig, Spec, default_of, port_range, secret_refused, specs)

_SECRET_NOT_SHOWN = "(secret value not shown)"


class ConfigError(pulumi.RunError):
    """Every configuration problem of a stack at once; a RunError so Pulumi prints no traceback."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(
            f"{len(self.errors)} configuration error(s); fix them in the stack's "
            f"Pulumi.<stack>.yaml and run again (nothing was changed):\n{lines}"
        )


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
            # a setting set as a secret that a stack-file reader could not decrypt is set: whether
            # it may be secret at all is _secret_settings' error
            if required and name.split(".")[0] not in self.secret_keys:
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

    def read(self, spec: Spec, default: Any, source: Mapping[str, Any], prefix: str = "") -> Any:
        """One setting by its kind; ``prefix`` names a setting inside an object setting."""
        name = prefix + spec.key
        if spec.kind == "text":
            value = self.string(spec.key, default, required=spec.required, check=spec.check, source=source, name=name)
            if spec.choices and value is not None and value not in spec.choices:
                self.error(name, value, "allowed: " + ", ".join(repr(c) for c in spec.choices))
                return None
            return value
        if spec.kind == "flag":
            return self.boolean(spec.key, default)
        if spec.kind == "number":
            number = self.integer(source, spec.key, name, *spec.bounds)
            return default if number is None else number
        if spec.kind == "choice":
            return self.choice(source, spec.key, name, spec.choices, default)
        if spec.kind == "object":
            return self.mapping(spec.key)
        raise ValueError(f"setting {name}: unknown kind {spec.kind!r}")


def _check_chart_version(reader: _Reader, version: str) -> None:
    parsed = parse_version(version)
    if parsed is None:
        reader.error("chartVersion", version, "expected a chart release version such as 2.0.3")
    elif parsed < SUPPORTED_MINIMUM:
        reader.error("chartVersion", version,
                     f"this program supports Consul chart {fmt(SUPPORTED_MINIMUM)} or later, and CI "
                     f"renders the {values_guard.rendered_lines_text()} lines (see docs/configuration.md, 'Chart versions')")


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


def _chart(r: _Reader, values: dict[str, Any]) -> None:
    """A chartPath's Chart.yaml sets the chart version; the version must be one this program supports."""
    explicit = r.raw.get("chartVersion")
    explicit_version = explicit if isinstance(explicit, str) and explicit else None
    chart_path = values["chart_path"]
    if chart_path is not None:
        chart_path = values["chart_path"] = os.path.abspath(os.path.expanduser(chart_path))
        local_version = _chart_path_version(r, chart_path)
        if local_version and explicit_version and local_version != explicit_version:
            r.error("chartVersion", explicit_version,
                    f"chartPath {chart_path} holds chart {local_version}; set chartVersion to it or remove chartVersion")
        values["chart_version"] = local_version or values["chart_version"]
    _check_chart_version(r, values["chart_version"])


def _mesh_gateway(r: _Reader, role: Optional[str]) -> MeshGatewayConfig:
    gw_raw = r.mapping("meshGateway")
    if role == "secondary" and "mode" in gw_raw:
        r.error("meshGateway.mode", gw_raw["mode"],
                "the mode is set in the primary's stack only: ProxyDefaults global is a config "
                "entry Consul replicates from the primary to every datacenter, and a secondary's "
                "own copy is refused as managed in a different datacenter (consul#6327); "
                "remove it here")
    r.errors.extend(_unknown_keys(gw_raw, MESH_GATEWAY_KEYS, "meshGateway."))
    gateway = {f.name: r.read(spec, default_of(f), gw_raw, "meshGateway.") for f, spec in specs(MeshGatewayConfig)}
    first, last = port_range(gateway["node_port_range"])  # valid: a bad one was read as the default
    if gateway["service_type"] == "NodePort" and gw_raw.get("nodePort") is None:
        r.errors.append(f"{CONFIG_NAMESPACE}:meshGateway.nodePort is required with meshGateway.serviceType "
                        f"NodePort: the port (in the cluster's NodePort range, {first}-{last}) the other "
                        "datacenters dial on every node")
    if gateway["service_type"] != "NodePort" and gateway["node_port"] is not None:
        r.error("meshGateway.nodePort", gateway["node_port"],
                f"nodePort is only used with serviceType NodePort (serviceType is {gateway['service_type']!r}); remove it")
    if gateway["service_type"] != "NodePort" and gw_raw.get("nodePortRange") is not None:
        r.error("meshGateway.nodePortRange", gw_raw["nodePortRange"], "nodePortRange is only used with serviceType "
                f"NodePort (serviceType is {gateway['service_type']!r}); remove it")
    if gateway["service_type"] == "NodePort" and gateway["node_port"] is not None \
            and not first <= gateway["node_port"] <= last:
        r.error("meshGateway.nodePort", gateway["node_port"],
                f"expected a port in the cluster's NodePort range {first}-{last} (the API server refuses "
                "any other; Kubernetes' default --service-node-port-range is "
                f"{DEFAULT_NODE_PORT_RANGE}: set meshGateway.nodePortRange if the cluster's differs)")
    return MeshGatewayConfig(**gateway)


def _federation_settings(r: _Reader, role: Optional[str]) -> None:
    """primaryStack and k8sAuthMethodHost: secondaries need the first and may set the second."""
    if role == "secondary" and r.raw.get("primaryStack") in (None, ""):
        r.errors.append(f"{CONFIG_NAMESPACE}:primaryStack is required when role is 'secondary': the primary's "
                        "stack, e.g. organization/consul-federation/dc1")
    if role == "primary":
        for key in ("primaryStack", "k8sAuthMethodHost"):
            if r.raw.get(key) not in (None, ""):
                r.error(key, r.raw[key], "only secondaries take this setting; remove it from the primary's stack")


def _gossip_key_generation(r: _Reader, role: Optional[str], gossip: bool, generation: int) -> None:
    """The primary's gossip key generation: the primary makes the key, so only it counts them."""
    if not generation:
        return
    if role == "secondary":
        r.error("gossipKeyGeneration", r.raw["gossipKeyGeneration"],
                "only the primary takes this setting (secondaries get the key through the federation "
                "secret); remove it from this stack")
    elif not gossip:
        r.error("gossipKeyGeneration", r.raw["gossipKeyGeneration"],
                "there is no gossip key to rotate with gossipEncryption: false; remove it")


def _tls_ca_stage(r: _Reader, role: Optional[str], stage: int) -> None:
    """The primary owns the CA: secondaries follow the stage of their primary's stack output."""
    if stage and role == "secondary":
        r.error("tlsCaStage", r.raw["tlsCaStage"],
                "only the primary takes this setting (secondaries follow the primary's tlsCaStage output); "
                "remove it from this stack")


def _secret_settings(r: _Reader) -> frozenset[str]:
    """The secret settings this program can keep secret; any other one is an error."""
    r.errors.extend(filter(None, (secret_refused(key) for key in sorted(r.secret_keys))))
    return frozenset(r.secret_keys & set(SECRET_CAPABLE))


def _parse(r: _Reader) -> dict[str, Any]:
    """Every setting read by the schema, with the rules across settings; errors left in `r`."""
    raw = r.raw
    r.errors.extend(_unknown_keys(raw, KEYS))
    values = {f.name: r.read(spec, default_of(f), raw) for f, spec in specs(DatacenterConfig)
              if spec.kind != "object"}
    role = values["role"]
    _chart(r, values)
    _gossip_key_generation(r, role, values["gossip_encryption"], values["gossip_key_generation"])
    _tls_ca_stage(r, role, values["tls_ca_stage"])
    values["mesh_gateway"] = _mesh_gateway(r, role)
    _federation_settings(r, role)
    values["helm_values"] = r.mapping("helmValues")
    r.errors.extend(values_guard.check_user_values(values["helm_values"], values["chart_version"]))
    values["secret_settings"] = _secret_settings(r)
    return values


def parse_config(raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> DatacenterConfig:
    """Validate raw configuration values (objects already decoded) into a DatacenterConfig;
    `secret_keys` are the settings the stack set as secrets (their values are never shown).

    Raises ConfigError listing every problem found.
    """
    r = _Reader(raw, frozenset(secret_keys))
    values = _parse(r)
    if r.errors:
        raise ConfigError(r.errors)
    return DatacenterConfig(**values)


def parse_with_cluster(raw: Mapping[str, Any],
                       secret_keys: frozenset[str] = frozenset()) -> tuple[DatacenterConfig, KubeCluster]:
    """parse_config, and the datacenter's cluster resolved from its kubeconfig: the program's own
    reading, so that a context the kubeconfig lacks (or a kubeconfig that is not there) is one
    more error in the same ConfigError, raised before any resource is registered. The operator
    commands, diff and the test matrix read settings without a cluster: they call parse_config."""
    r = _Reader(raw, frozenset(secret_keys))
    values = _parse(r)
    kube = None
    kubeconfig_usable = raw.get("kubeconfig") in (None, "") or values["kubeconfig"] is not None  # else an error above
    named_secret = r.secret_keys & {"kubeContext", "kubeconfig"}  # refused above; never printed
    if values["kube_context"] is not None and kubeconfig_usable and not named_secret:
        try:
            kube = resolve_cluster(values["kubeconfig"], values["kube_context"])
        except KubeconfigError as exc:
            r.errors.append(str(exc))
    if r.errors:
        raise ConfigError(r.errors)
    return DatacenterConfig(**values), kube
