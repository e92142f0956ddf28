"""The stack configurations every tier exercises: unit (mocks) and chart (real helm).

Each case is one stack's ``consul-federation:*`` configuration, plus for secondaries the primary
it joins. ``chart_values`` computes the Helm values with the program's own functions, so the
chart tier renders exactly what the Release would receive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from components.config import parse_config
from components.settings import DatacenterConfig
from components.helm_values import primary_values, secondary_values

PRIMARY_REF = "organization/consul-federation/dc1"
# What the secondaries of the matrix get as k8sAuthMethodHost (configured explicitly, so the
# chart tier needs no cluster; derivation is unit-tested separately).
AUTH_HOST = "https://203.0.113.20:6443"


@dataclass(frozen=True)
class Case:
    id: str
    config: dict[str, Any]
    primary: dict[str, Any] = field(default_factory=dict)  # the primary's config, for secondaries

    @property
    def role(self) -> str:
        return self.config["role"]

    @property
    def stack(self) -> str:
        return self.config["datacenter"]

    def on_chart(self, version: str) -> "Case":
        """The same stack configured for another chart version (primary included)."""
        primary = {**self.primary, "chartVersion": version} if self.primary else {}
        return Case(self.id, {**self.config, "chartVersion": version}, primary)

    def parsed(self) -> DatacenterConfig:
        return parse_config(self.config)

    def chart_values(self) -> dict[str, Any]:
        cfg = self.parsed()
        if cfg.is_primary:
            return primary_values(cfg)
        return secondary_values(cfg, self.primary["datacenter"], cfg.k8s_auth_method_host)


def primary(**extra: Any) -> dict[str, Any]:
    return {"role": "primary", "datacenter": "dc1", "kubeContext": "dc1", **extra}


def secondary(dc: str = "dc2", **extra: Any) -> dict[str, Any]:
    return {"role": "secondary", "datacenter": dc, "kubeContext": dc, "primaryStack": PRIMARY_REF,
            "k8sAuthMethodHost": AUTH_HOST, **extra}


def write_kubeconfig(path: Any, server: str, **cluster: str) -> str:
    """A kubeconfig file at `path` whose context dc2 points at `server` (plus `cluster` fields,
    e.g. proxy-url); returns its path as a string."""
    extra = "".join(f", {k}: \"{v}\"" for k, v in cluster.items())
    path.write_text(f"""
apiVersion: v1
kind: Config
clusters:
- name: c2
  cluster: {{server: "{server}"{extra}}}
contexts:
- name: dc2
  context: {{cluster: c2, user: u}}
users:
- name: u
  user: {{token: t}}
""")
    return str(path)


def write_contexts(path: Any, contexts: Any) -> str:
    """A kubeconfig at `path` defining `contexts`, whose clusters it does not describe (no server:
    nothing to probe, k8sAuthMethodHost derived from the Endpoints); returns its path."""
    items = "".join(f"- name: {c}\n  context: {{cluster: {c}, user: u}}\n" for c in contexts)
    path.write_text(f"apiVersion: v1\nkind: Config\ncontexts:\n{items}")
    return str(path)


def _pair(name: str, **extra: Any) -> list[Case]:
    p = primary(**extra)
    return [Case(f"{name}-dc1", p), Case(f"{name}-dc2", secondary(**extra), p)]


NODE_PORT = {"serviceType": "NodePort", "nodePort": 30001}

CASES: list[Case] = [
    Case("dc1", primary()),
    Case("dc2", secondary(), primary()),
    Case("dc3", secondary("dc3", namespace="consul-dc3", kubeContext="east"), primary()),
    *_pair("acls-off", acls=False),
    *_pair("gossip-off", gossipEncryption=False),
    *_pair("nodeport", meshGateway=NODE_PORT),
    Case("remote-dc1", primary(meshGateway={"mode": "remote", "replicas": 2})),
    Case("remote-dc2", secondary(meshGateway={"replicas": 2}), primary(meshGateway={"mode": "remote", "replicas": 2})),
    *_pair("global-name", globalName="hashi"),
    *_pair("static-wan", meshGateway={**NODE_PORT, "wanAddress": "gw.example.com"}),
]


def case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


def primary_case(c: Case) -> Optional[Case]:
    return None if c.role == "primary" else Case("primary-of-" + c.id, c.primary)
