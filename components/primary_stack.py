"""What a secondary learns from its primary's stack, checked before anything is registered.

The primary's outputs are read through a StackReference (encrypted in the state, decrypted by
the engine), and the federation-wide invariants are checked against this stack's configuration:
a mismatch caught here costs a preview, not a half-federated pair of clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pulumi
from pulumi.runtime.sync_await import _sync_await

from . import outputs
from .config import ConfigError, DatacenterConfig
from .federation_secret import missing_keys
from .helm_values import required_federation_keys


@dataclass(frozen=True)
class PrimaryOutputs:
    stack: str
    datacenter: str
    acls: bool
    gossip_encryption: bool
    chart_version: str
    federation_secret: pulumi.Output[Mapping[str, str]]


def _stack_name(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


def read_primary(name: str, cfg: DatacenterConfig, parent: pulumi.Resource) -> PrimaryOutputs:
    """Read and check the primary's outputs (raises ConfigError with every problem found)."""
    primary_stack = _stack_name(cfg.primary_stack)
    deploy_first = f"deploy the primary first: pulumi up -s {primary_stack}"
    ref = pulumi.StackReference(f"{name}-primary", stack_name=cfg.primary_stack,
                                opts=pulumi.ResourceOptions(parent=parent))
    try:
        # Synchronously, so that no other resource is registered before the checks below.
        details = {key: _sync_await(ref.get_output_details(key)) for key in outputs.REQUIRED_FROM_PRIMARY}
    except Exception as exc:  # the engine could not read the stack at all
        raise ConfigError([f"consul-federation:primaryStack: cannot read stack {cfg.primary_stack!r} "
                           f"({exc}); check the name, and {deploy_first}"]) from exc
    values: dict[str, Any] = {
        key: d.value if d.value is not None else d.secret_value for key, d in details.items()}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        raise ConfigError([f"consul-federation:primaryStack: stack {cfg.primary_stack!r} has no "
                           f"outputs {', '.join(missing)} yet; {deploy_first}"])

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
    absent = missing_keys(values[outputs.FEDERATION_SECRET],
                          required_federation_keys(cfg.acls, cfg.gossip_encryption))
    if absent and not errors:
        errors.append(f"consul-federation:primaryStack: the federation secret of {cfg.primary_stack!r} "
                      f"lacks {', '.join(absent)}; run pulumi up -s {primary_stack} again")
    if errors:
        raise ConfigError(errors)

    primary_chart = str(values[outputs.CHART_VERSION])
    if primary_chart != cfg.chart_version:
        pulumi.log.warn(
            f"chart version skew: this datacenter uses chart {cfg.chart_version}, the primary "
            f"{primary_dc!r} uses {primary_chart}; keep them equal except during an upgrade "
            "(consul-k8s#1798)", resource=parent)
    return PrimaryOutputs(
        stack=cfg.primary_stack,
        datacenter=str(primary_dc),
        acls=bool(values[outputs.ACLS_ENABLED]),
        gossip_encryption=bool(values[outputs.GOSSIP_ENABLED]),
        chart_version=primary_chart,
        federation_secret=pulumi.Output.secret(ref.get_output(outputs.FEDERATION_SECRET)),
    )
