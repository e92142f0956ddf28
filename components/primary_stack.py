"""What a secondary learns from its primary's stack, and the checks that gate the secondary.

The primary's outputs are read through a StackReference (encrypted in the state, decrypted by
the engine) and checked against this stack's configuration. The result is an Output that fails
with a ConfigError listing every problem; the secondary's Kubernetes provider takes its context
through that Output, so when a check fails no Kubernetes resource is registered at all: a
mismatch costs a preview, not a half-federated pair of clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pulumi

from . import outputs
from .config import ConfigError
from .helm_values import required_federation_keys
from .settings import DatacenterConfig
from .stack_ref import StackRef


@dataclass(frozen=True)
class CheckedPrimary:
    """The primary's facts a secondary uses (none of them secret)."""

    datacenter: str
    # the primary's TLS CA rotation stage (0 from a primary that predates rotation)
    tls_ca_stage: int = 0


def primary_problems(cfg: DatacenterConfig, values: Mapping[str, Any], this_stack: bool = False) -> list[str]:
    """Every reason `cfg` cannot join the primary whose outputs are `values` (None = missing);
    `this_stack`: primaryStack names the stack being run."""
    if this_stack:
        return [f"consul-federation:primaryStack: {cfg.primary_stack!r} is this stack; set it to the "
                "primary's stack (the one with role: primary)"]
    if values.get(outputs.ROLE) == "secondary":
        return [f"consul-federation:primaryStack: {cfg.primary_stack!r} is the stack of the secondary "
                f"{values.get(outputs.DATACENTER)!r}, not of the primary; set it to the primary's stack "
                "(the one with role: primary)"]
    deploy_first = f"deploy the primary first: pulumi up -s {StackRef.parse(cfg.primary_stack).stack}"
    missing = [key for key in outputs.REQUIRED_FROM_PRIMARY if values.get(key) is None]
    if missing:
        return [f"consul-federation:primaryStack: stack {cfg.primary_stack!r} has no "
                f"outputs {', '.join(missing)} yet; {deploy_first}"]
    errors = []
    primary_dc = values[outputs.DATACENTER]
    if primary_dc == cfg.datacenter:
        errors.append(f"consul-federation:datacenter: {cfg.datacenter!r} is the primary's datacenter "
                      "name; every datacenter of a federation needs its own name")
    for key, mine, setting in ((outputs.ACLS_ENABLED, cfg.acls, "acls"),
                               (outputs.GOSSIP_ENABLED, cfg.gossip_encryption, "gossipEncryption")):
        if bool(values[key]) != mine:
            errors.append(f"consul-federation:{setting}: {mine} differs from the primary "
                          f"{primary_dc!r} ({values[key]}); if it is enabled in one datacenter it "
                          "must be enabled in all: set the same value in both stacks")
    if not errors:  # with acls or gossip disagreeing, the absent keys only repeat that
        data = values[outputs.FEDERATION_SECRET]
        absent = [key for key in required_federation_keys(cfg.acls, cfg.gossip_encryption)
                  if not isinstance(data, Mapping) or key not in data]
        if absent:
            errors.append(f"consul-federation:primaryStack: the federation secret of {cfg.primary_stack!r} "
                          f"lacks {', '.join(absent)}; run pulumi up -s {StackRef.parse(cfg.primary_stack).stack} again")
    return errors


async def _read_outputs(ref: pulumi.StackReference) -> dict[str, Any]:
    """The outputs the checks need, secret or not, as plain values (only the checks see them)."""
    values = {}
    for key in (*outputs.REQUIRED_FROM_PRIMARY, outputs.ROLE, outputs.TLS_CA_STAGE):
        details = await ref.get_output_details(key)
        values[key] = details.value if details.value is not None else details.secret_value
    return values


def _names_this_stack(reference: str) -> bool:
    """Whether a stack reference names the stack being run (which has no primary's outputs)."""
    ref = StackRef.parse(reference)
    return ref.names(pulumi.get_project(), pulumi.get_stack()) and ref.org in (None, pulumi.get_organization())


def checked_primary(ref: pulumi.StackReference, cfg: DatacenterConfig,
                    parent: pulumi.Resource) -> pulumi.Output[CheckedPrimary]:
    """The primary's facts once every check passed; fails with a ConfigError listing all problems.

    Not secret: the federation secret is only looked at, never returned.
    """
    async def check() -> CheckedPrimary:
        values = await _read_outputs(ref)
        errors = primary_problems(cfg, values, _names_this_stack(cfg.primary_stack))
        if errors:
            raise ConfigError(errors)
        primary_chart = str(values[outputs.CHART_VERSION])
        if primary_chart != cfg.chart_version:
            pulumi.log.warn(
                f"chart version skew: this datacenter uses chart {cfg.chart_version}, the primary "
                f"{values[outputs.DATACENTER]!r} uses {primary_chart}; keep them equal except "
                "during an upgrade (consul-k8s#1798)", resource=parent)
        return CheckedPrimary(datacenter=str(values[outputs.DATACENTER]),
                              tls_ca_stage=int(values.get(outputs.TLS_CA_STAGE) or 0))

    return pulumi.Output.from_input(check())
