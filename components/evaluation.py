"""The program's one entry point for `python -m federation diff`: a stack's Release, computed from
its settings alone (no cluster, no backend). A versioned contract, since the diff calls it in
other revisions of this code than its own (a pull request's base); keep it when refactoring.

CONTRACT 1. ``evaluate_stack(request) -> answer``, pure but for reading a chartPath's Chart.yaml,
run with the project directory as the current directory (a relative chartPath is relative to it,
as under ``pulumi up``).

request, a dict:
  settings            the stack's ``consul-federation:*`` settings, prefix removed, as
                      ``pulumi.Config.get`` gives them (a scalar as text) but an object setting
                      as a mapping or as JSON text
  primary_datacenter  for a secondary: the datacenter of the stack its primaryStack names, or None
  primary_problem     why primary_datacenter is None (the error a secondary answers with)
  auth_host_placeholder
                      what a secondary's k8sAuthMethodHost is rendered as when the stack leaves it
                      to be derived from the cluster at deploy time

answer, a dict: {"error": text} for a configuration the program refuses, else
  role, chart_version, chart_repo, release, namespace   strings
  chart_path          the absolute chart directory, or None
  auth_host_derived   whether the placeholder stands for k8sAuthMethodHost
  values              the Release's Helm values (plain data)

A change to any of this is a new CONTRACT number, which federation/evaluate.py learns (keeping
every older one, for the bases that still speak it) before this module declares it.
"""

from __future__ import annotations

from typing import Any

from .config import ConfigError, parse_config
from .helm_values import primary_values, secondary_values
from .settings import setting_value

CONTRACT = 1


def evaluate_stack(request: dict[str, Any]) -> dict[str, Any]:
    """One stack's chart, release and values, or the configuration error the program would raise."""
    try:
        cfg = parse_config({key: setting_value(key, value) for key, value in request["settings"].items()})
    except ConfigError as exc:
        return {"error": str(exc)}
    auth_host_derived = False
    if cfg.is_primary:
        values = primary_values(cfg)
    elif request["primary_datacenter"] is None:
        return {"error": request["primary_problem"]}
    else:
        auth_host_derived = not cfg.k8s_auth_method_host
        values = secondary_values(cfg, request["primary_datacenter"],
                                  cfg.k8s_auth_method_host or request["auth_host_placeholder"])
    return {
        "role": cfg.role,
        "chart_version": cfg.chart_version,
        "chart_repo": cfg.chart_repo,
        "chart_path": cfg.chart_path,
        "release": cfg.release_name,
        "namespace": cfg.namespace,
        "auth_host_derived": auth_host_derived,
        "values": values,
    }
