"""The schema of a stack's configuration: every ``consul-federation:<key>`` setting once.

Each dataclass field names its key, its kind, its default and its check (``setting``); the key
lists, the parser (``config.py``) and every reader of a stack's values (``stack_config.py``, the
operator commands' stack files) come from these fields. A new setting is one field here (plus a
rule in ``config.py`` only if it depends on other settings).

Stdlib only: the pull request workflow's first job reads stack files with PyYAML alone.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from . import stack_ref

DEFAULT_CHART_VERSION = "2.0.3"
DEFAULT_CHART_REPO = "https://helm.releases.hashicorp.com"
# How long Helm may take to install or upgrade the Release, Helm's wait for readiness and its
# hooks included. A first install waits for the mesh gateway's WAN address (a cloud load balancer
# can take minutes) before the federation-secret hook finishes; Helm's 5-minute default is tight.
DEFAULT_RELEASE_TIMEOUT = 900
RELEASE_TIMEOUT_RANGE = (30, 7200)
# Which gossip key the primary's Secret holds; ``python -m federation rotate-gossip-key`` raises it.
GOSSIP_KEY_GENERATION_RANGE = (0, 1_000_000)
# How far the TLS CA rotation has come (three stages a rotation); ``rotate-tls-ca`` raises it.
TLS_CA_STAGE_RANGE = (0, 1_000_000)

ROLES = ("primary", "secondary")
MESH_GATEWAY_MODES = ("local", "remote")
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
# Kubernetes' default --service-node-port-range: the API server refuses a nodePort outside it.
DEFAULT_NODE_PORT_RANGE = "30000-32767"

# Kubernetes object names built from globalName get suffixes of up to 25 characters
# ("-create-federation-secret"), and Kubernetes caps names used as labels at 63.
MAX_GLOBAL_NAME = 38

# Settings that may be set with `pulumi config set --secret`, and where their secrecy goes: the
# chart values (the Release's `values` become a Pulumi secret), the chart repository URL (it may
# carry credentials), the k8sAuthMethodHost stack output. Every other setting names objects, and
# ends up in resource names, URNs or Kubernetes object names, which Pulumi never encrypts.
SECRET_CAPABLE = ("helmValues", "meshGateway", "k8sAuthMethodHost", "chartRepo")
# The settings the chart values are computed from (a secret among them makes the values secret).
VALUE_KEYS = ("helmValues", "meshGateway", "k8sAuthMethodHost")

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9a-fA-F:.]+\]?$")

Check = Callable[[str], Optional[str]]


def dns_label(what: str, limit: int = 63) -> Check:
    def check(value: str) -> Optional[str]:
        if len(value) > limit or not _DNS_LABEL.match(value):
            return (f"{what} must be lowercase letters, digits and hyphens, start and end with a "
                    f"letter or digit, at most {limit} characters")
        return None
    return check


def release_name(value: str) -> Optional[str]:
    if len(value) > 53 or not _RELEASE_NAME.match(value):
        return "a Helm release name is lowercase letters, digits, '-' and '.', at most 53 characters"
    return None


def https_url(value: str) -> Optional[str]:
    if not re.match(r"^https://[^/\s]+(:\d+)?/?$", value):
        return "expected the Kubernetes API server URL as https://host[:port], reachable from the primary's pods"
    return None


def chart_repo(value: str) -> Optional[str]:
    if not re.match(r"^(https?|oci)://\S+$", value):
        return "expected a Helm repository URL (https://..., http://... or oci://...)"
    return None


def port_range(value: str) -> Optional[tuple[int, int]]:
    """(first, last) of a range written as the API server's --service-node-port-range, or None."""
    match = re.match(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$", value)
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if 1 <= first <= last <= 65535 else None


def node_port_range(value: str) -> Optional[str]:
    if port_range(value) is None:
        return ("expected the cluster's NodePort range as its API server's --service-node-port-range "
                f"gives it, first-last within 1-65535 (Kubernetes' default: {DEFAULT_NODE_PORT_RANGE})")
    return None


def host(value: str) -> Optional[str]:
    if not _HOST.match(value):
        return "expected a host name or IP address without scheme or port"
    return None


@dataclass(frozen=True)
class Spec:
    """How one setting is read: ``kind`` is text, flag, number, choice or object."""

    key: str
    kind: str
    required: bool = False
    check: Optional[Check] = None
    bounds: Optional[tuple[int, int]] = None
    choices: tuple[str, ...] = ()


def setting(key: str, kind: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            repr: bool = True, **rule: Any) -> Any:
    """A dataclass field read from configuration key `key` (its default written here only)."""
    return field(default=default, default_factory=factory, repr=repr, metadata={"spec": Spec(key, kind, **rule)})


def specs(cls: type) -> list[tuple[dataclasses.Field, Spec]]:
    """(field, how it is read) for every field of `cls` that is a setting, in field order."""
    return [(f, f.metadata["spec"]) for f in dataclasses.fields(cls) if "spec" in f.metadata]


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


@dataclass(frozen=True)
class MeshGatewayConfig:
    """How this datacenter's mesh gateway is exposed to the other datacenters."""

    mode: str = setting("mode", "choice", "local", choices=MESH_GATEWAY_MODES)
    service_type: str = setting("serviceType", "choice", "LoadBalancer", choices=SERVICE_TYPES)
    node_port: Optional[int] = setting("nodePort", "number", None, bounds=(1, 65535))
    # The cluster's range, so that a nodePort outside it fails the preview rather than the Release.
    node_port_range: str = setting("nodePortRange", "text", DEFAULT_NODE_PORT_RANGE, check=node_port_range)
    replicas: int = setting("replicas", "number", 1, bounds=(1, 100))
    wan_address: Optional[str] = setting("wanAddress", "text", None, check=host)


@dataclass(frozen=True)
class DatacenterConfig:
    """One stack's datacenter, as validated configuration."""

    role: str = setting("role", "text", required=True, choices=ROLES)
    datacenter: str = setting("datacenter", "text", required=True, check=dns_label("a Consul datacenter name"))
    kube_context: str = setting("kubeContext", "text", required=True)
    kubeconfig: Optional[str] = setting("kubeconfig", "text", None)
    namespace: str = setting("namespace", "text", "consul", check=dns_label("a Kubernetes namespace"))
    release_name: str = setting("releaseName", "text", "consul", check=release_name)
    global_name: str = setting("globalName", "text", "consul",
                               check=dns_label("globalName (prefix of every object the chart makes)", MAX_GLOBAL_NAME))
    chart_version: str = setting("chartVersion", "text", DEFAULT_CHART_VERSION)
    chart_repo: str = setting("chartRepo", "text", DEFAULT_CHART_REPO, check=chart_repo)
    chart_path: Optional[str] = setting("chartPath", "text", None)
    acls: bool = setting("acls", "flag", True)
    gossip_encryption: bool = setting("gossipEncryption", "flag", True)
    mesh_gateway: MeshGatewayConfig = setting("meshGateway", "object", factory=MeshGatewayConfig)
    primary_stack: Optional[str] = setting("primaryStack", "text", None, check=stack_ref.problem)
    k8s_auth_method_host: Optional[str] = setting("k8sAuthMethodHost", "text", None, check=https_url)
    helm_values: Mapping[str, Any] = setting("helmValues", "object", factory=dict, repr=False)
    release_timeout: int = setting("releaseTimeoutSeconds", "number", DEFAULT_RELEASE_TIMEOUT,
                                   bounds=RELEASE_TIMEOUT_RANGE)
    gossip_key_generation: int = setting("gossipKeyGeneration", "number", 0, bounds=GOSSIP_KEY_GENERATION_RANGE)
    tls_ca_stage: int = setting("tlsCaStage", "number", 0, bounds=TLS_CA_STAGE_RANGE)
    # The settings the stack set with `pulumi config set --secret` (a subset of SECRET_CAPABLE).
    secret_settings: frozenset[str] = field(default=frozenset())

    def is_secret(self, *keys: str) -> bool:
        """Whether any of these settings was set as a secret, so what it feeds must be one too."""
        return bool(self.secret_settings.intersection(keys))

    def secret_if(self, value: Any, *keys: str) -> Any:
        """`value` as a Pulumi secret when any of the settings it comes from is one."""
        import pulumi  # here, not above: the schema loads without Pulumi (see the module's docstring)

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


KEYS = tuple(spec.key for _, spec in specs(DatacenterConfig))
MESH_GATEWAY_KEYS = tuple(spec.key for _, spec in specs(MeshGatewayConfig))
OBJECT_KEYS = tuple(spec.key for _, spec in specs(DatacenterConfig) if spec.kind == "object")


def secret_refused(key: str) -> Optional[str]:
    """Why `key` may not be set with --secret, or None when it may (or is no setting of ours)."""
    if key not in KEYS or key in SECRET_CAPABLE:
        return None
    return (f"consul-federation:{key} is set as a secret, but it names objects and ends up in resource names "
            f"and URNs, which Pulumi never encrypts; set it without --secret (settings that can be secret: "
            f"{', '.join(SECRET_CAPABLE)})")


def setting_value(key: str, value: Any) -> Any:
    """A setting's value as the program sees it, whatever it was read from (the engine's config,
    the Automation API, a stack file): an object setting as the object (JSON text decoded, as
    ``Config.get_object`` does), a mapping or list as is, anything else as text, as ``Config.get``
    returns it (``"true"``, ``"2"``). parse_config checks types itself, so a bad value is one
    error among all the others rather than a reader's exception."""
    if isinstance(value, (dict, list)):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if key in OBJECT_KEYS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value  # not JSON: parse_config reports that it is not an object
    return str(value)
