"""The team's rules for a datacenter's Consul Release, as pure functions of what a policy sees.

Each rule takes a ``Release`` (the chart, its version and the values of one
``kubernetes:helm.sh/v3:Release``) and returns its ``Violation``s; ``__main__.py`` only wires them
into pulumi-policy. A violation names the stack setting to change, its value and what to set, so
the message is the fix. The program itself allows what these rules refuse (its seed values are a
starting point); the pack is where a team says what its federations must have.

No pulumi-policy import here: the unit tier tests the rules without an engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

import yaml

from components.chart_version import parse_version

# The chart's defaults for what the rules read when the values leave it out (values.yaml of
# every supported line: server.replicas 1, meshGateway.replicas 1, TLS and gateways off).
CHART_DEFAULT_REPLICAS = 1
SERVER_REPLICAS = (3, 5)
MIN_GATEWAY_REPLICAS = 2

# The team's settings, next to the pack's __main__.py.
TEAM_FILE = "team.yaml"


@dataclass(frozen=True)
class Violation:
    """One thing to change: ``setting`` (a stack setting, or a chart value the program owns) has
    ``value``; ``change`` says what is allowed and how to set it."""

    setting: str
    value: Any
    change: str

    def message(self, stack: str) -> str:
        return f"stack {stack}: {self.setting} is {_show(self.value)}; {self.change}"


@dataclass(frozen=True)
class Release:
    """What a rule reads of one Consul Release."""

    stack: str
    version: Optional[str]  # None: the chart's version could not be read
    values: Mapping[str, Any]

    @property
    def is_primary(self) -> bool:
        return _get(self.values, "global.federation.createFederationSecret") is True


Rule = Callable[[Release], list[Violation]]


def _count(value: Any) -> Any:
    """A whole number as an int: values reach a policy through protobuf, where every number is a
    float (2 arrives as 2.0); anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _show(value: Any) -> str:
    value = _count(value)
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _get(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _config_set(stack: str, key: str, value: str) -> str:
    return f"pulumi config set {key} {value} -s {stack}"


def _chart_value_true(release: Release, path: str, why: str) -> list[Violation]:
    """A chart value this program sets to true: a violation only where a changed program did not."""
    have = _get(release.values, path)
    if have is True:
        return []
    return [Violation(f"chart value {path}", have, f"{why}: set {path} to true (components/helm_values.py sets it)")]


def tls(release: Release) -> list[Violation]:
    return _chart_value_true(release, "global.tls.enabled", "the servers of the datacenters verify each other "
                                                            "with the federation CA, so TLS must be on")


def acls_with_replication(release: Release) -> list[Violation]:
    s = release.stack
    if _get(release.values, "global.acls.manageSystemACLs") is not True:
        return [Violation("consul-federation:acls", _get(release.values, "global.acls.manageSystemACLs"),
                          f"ACLs must be on, with tokens replicated from the primary: {_config_set(s, 'acls', 'true')}")]
    if release.is_primary:
        path, have = "global.acls.createReplicationToken", _get(release.values, "global.acls.createReplicationToken")
        ok = have is True
    else:
        path, have = "global.acls.replicationToken.secretName", _get(release.values, "global.acls.replicationToken.secretName")
        ok = bool(have)
    if ok:
        return []
    return [Violation(f"chart value {path}", have,
                      "ACL replication must be on so that the secondaries resolve the primary's tokens: "
                      "set it as components/helm_values.py does with acls true")]


def gossip_encryption(release: Release) -> list[Violation]:
    gossip = _get(release.values, "global.gossipEncryption")
    if isinstance(gossip, Mapping) and (gossip.get("autoGenerate") is True or gossip.get("secretName")):
        return []
    return [Violation("consul-federation:gossipEncryption", False if gossip is None else gossip,
                      "gossip between members and across the WAN must be encrypted: "
                      f"{_config_set(release.stack, 'gossipEncryption', 'true')}")]


def mesh_gateways(release: Release) -> list[Violation]:
    return _chart_value_true(release, "meshGateway.enabled", "every datacenter federates through its mesh gateway")


def chart_version(rendered: Iterable[str]) -> Rule:
    """The chart versions CI renders (tools/consul-charts.pins): a version outside them was never
    rendered by the chart tier, nor its values checked against its key list."""
    allowed = sorted(rendered, key=parse_version, reverse=True)
    if not allowed:
        raise ValueError("no rendered chart versions: the pins file lists none")

    def rule(release: Release) -> list[Violation]:
        if release.version in allowed:
            return []
        return [Violation("consul-federation:chartVersion", release.version,
                          f"use a chart version CI renders ({', '.join(allowed)}): "
                          f"{_config_set(release.stack, 'chartVersion', allowed[0])}")]
    return rule


def server_replicas(release: Release) -> list[Violation]:
    have = _count(_get(release.values, "server.replicas"))
    replicas = CHART_DEFAULT_REPLICAS if have is None else have
    if replicas in SERVER_REPLICAS:
        return []
    return [Violation("consul-federation:helmValues.server.replicas", replicas,
                      "run 3 or 5 servers, a quorum that survives one or two lost servers: set helmValues "
                      "server.replicas in the stack file (Pulumi.<stack>.yaml), e.g. "
                      "consul-federation:helmValues: {server: {replicas: 3}}")]


def gateway_replicas(release: Release) -> list[Violation]:
    have = _count(_get(release.values, "meshGateway.replicas"))
    replicas = CHART_DEFAULT_REPLICAS if have is None else have
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= MIN_GATEWAY_REPLICAS:
        return []
    return [Violation("consul-federation:meshGateway.replicas", replicas,
                      f"run at least {MIN_GATEWAY_REPLICAS} mesh gateways, so that the datacenter stays federated "
                      "while one restarts: set meshGateway.replicas to 2 or more in the stack file "
                      "(Pulumi.<stack>.yaml)")]


def high_availability(release: Release) -> list[Violation]:
    return server_replicas(release) + gateway_replicas(release)


MANDATORY: tuple[tuple[str, str, Rule], ...] = (
    ("tls", "TLS on in every datacenter", tls),
    ("acls-with-replication", "ACLs on, with the primary's tokens replicated", acls_with_replication),
    ("gossip-encryption", "gossip encrypted in every datacenter", gossip_encryption),
    ("mesh-gateways", "a mesh gateway in every datacenter", mesh_gateways),
)


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    rule: Rule
    mandatory: bool  # else advisory


def policies(rendered: Iterable[str], production: bool) -> list[Policy]:
    """The pack's policies for one stack (`production`: listed in team.yaml), as the pack
    registers them and as ``python -m federation up`` checks them before it runs."""
    return [*(Policy(name, description, rule, True) for name, description, rule in MANDATORY),
            Policy("rendered-chart-version", "a chart version the chart tier renders", chart_version(rendered), True),
            Policy("high-availability", "3 or 5 servers and 2 or more mesh gateways (mandatory for production stacks)",
                   high_availability, production)]


def production_stacks(path: str) -> frozenset[str]:
    """The stacks the team runs in production (``productionStacks`` in team.yaml): the
    high-availability rules are mandatory for them and advisory for the others."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    stacks = data.get("productionStacks") if isinstance(data, Mapping) else None
    if stacks is None:
        stacks = []
    if not isinstance(stacks, list) or not all(isinstance(s, str) and s for s in stacks):
        raise ValueError(f"{path}: productionStacks is {stacks!r}; expected a list of stack names, e.g. [dc1, dc2]")
    return frozenset(stacks)


def is_consul_chart(chart: Any) -> bool:
    """The Release installs the Consul chart: by name ("consul", "<repo>/consul", an OCI
    reference ending in /consul) or as a local chart directory whose Chart.yaml names it."""
    if not isinstance(chart, str) or not chart:
        return False
    if chart == "consul" or (chart.rstrip("/").endswith("/consul") and not os.path.isdir(chart)):
        return True
    return _chart_yaml(chart).get("name") == "consul"


def chart_version_of(chart: str, version: Optional[str]) -> Optional[str]:
    """The Release's chart version: its ``version``, or a local chart's Chart.yaml version."""
    if version:
        return version
    found = _chart_yaml(chart).get("version")
    return str(found) if found is not None else None


def _chart_yaml(chart: str) -> Mapping[str, Any]:
    try:
        with open(os.path.join(chart, "Chart.yaml"), encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, Mapping) else {}
