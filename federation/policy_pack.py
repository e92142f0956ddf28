"""The team's policy pack (``policy/`` of the project) on ``python -m federation up`` and
``preview``: applied by default, ``--no-policy`` turns it off for one run.

A missing pack refuses the run rather than skipping it: a guardrail that quietly goes away with a
moved directory guards nothing. Before ``up`` changes anything, the pack's rules also run offline
on the values each stack's file makes (``offline_violations``): the engine checks a resource only
as it registers it, after the namespace and Secrets before the Release, so a stack refused there
would be half applied; offline, every violation of every stack is reported at once, and nothing
runs. The engine's run of the pack stays the authority (it also sees encrypted settings).
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

from components.helm_values import primary_values, secondary_values
from policy import rules

from .chart_source import pins
from .stack_plan import Plan
from .validate import read_config

PACK_DIR = "policy"
PACK_FILE = "PulumiPolicy.yaml"


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-policy", action="store_true",
                        help=f"do not run the project's policy pack ({PACK_DIR}/, applied by default)")


def packs(args: argparse.Namespace) -> tuple[list[str], Optional[str]]:
    """(the policy pack directories to run, None), or ([], why the run is refused)."""
    if args.no_policy:
        return [], None
    pack = os.path.join(os.path.abspath(args.project_dir), PACK_DIR)
    if not os.path.isfile(os.path.join(pack, PACK_FILE)):
        return [], (f"no policy pack at {pack} (no {PACK_FILE}): restore the project's {PACK_DIR}/ "
                    "directory, or run with --no-policy to go without its rules")
    return [pack], None


def offline_violations(project_dir: str, plan: Plan, pack: str) -> list[str]:
    """The mandatory violations of the selected stacks, '<stack>: policy <name>: <message>', as
    the pack would report them (team.yaml of `pack` decides which stacks are production). A stack
    whose file has errors, or encrypted settings (their values are not known here), is left to the
    engine's run of the pack."""
    configs = {name: read_config(project_dir, name) for name in (plan.primary, *plan.secondaries)}
    primary = configs[plan.primary][0]
    production = rules.production_stacks(os.path.join(pack, rules.TEAM_FILE))
    rendered = pins()
    found = []
    for name in sorted(plan.selected):
        cfg, problems, encrypted = configs[name]
        if cfg is None or problems or encrypted or (not cfg.is_primary and primary is None):
            continue
        values = (primary_values(cfg) if cfg.is_primary
                  else secondary_values(cfg, primary.datacenter, cfg.k8s_auth_method_host))
        release = rules.Release(name, cfg.chart_version, values)
        found += [f"{name}: policy {policy.name}: {v.message(name)}"
                  for policy in rules.policies(rendered, name in production) if policy.mandatory
                  for v in policy.rule(release)]
    return found
