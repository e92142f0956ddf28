"""`python -m federation validate`: every stack of the project checked as `pulumi preview` would
check it, offline: no backend, no passphrase, no cluster.

Each stack file is parsed by the program's own parser (``components.config.parse_config``),
the federation's layout by ``stack_plan`` (one primary, each secondary's primaryStack naming it),
and each secondary against what its primary's stack will export, by the program's own check
(``components.primary_stack.primary_problems``, fed the outputs the primary's settings make).
What needs the backend or a cluster is said, never passed over quietly: a setting set with
``--secret`` is encrypted, so its value is not checked here (only that it may be secret); the
kubeconfig contexts, the clusters and the primary's deployed outputs are checked by ``pulumi
preview``. Exit 0 when every stack is valid, 1 when one is not, 2 when the layout is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Optional

from components import outputs
from components.config import ConfigError, parse_config
from components.config_warnings import config_warnings
from components.helm_values import required_federation_keys
from components.primary_stack import primary_problems
from components.settings import SECRET_CAPABLE, DatacenterConfig

from . import cli, stacks as stack_files


def read_config(project_dir: str, name: str) -> tuple[Optional[DatacenterConfig], list[str], list[str]]:
    """(the stack's configuration, its problems, its settings left unchecked because encrypted)."""
    try:
        stack = stack_files.read_stack(project_dir, name)
    except stack_files.StackFileError as exc:
        return None, [str(exc)], []
    # An encrypted value cannot be read here: the setting keeps its default for the checks that
    # involve it, and only its being secret is checked.
    raw = {key: value for key, value in stack.raw.items() if key not in stack.secret_keys}
    unchecked = sorted(stack.secret_keys & set(SECRET_CAPABLE))  # any other secret is an error below
    try:
        with contextlib.chdir(project_dir):  # a relative chartPath is the project's, as under pulumi up
            return parse_config(raw, stack.secret_keys), [], unchecked
    except ConfigError as exc:
        return None, exc.errors, unchecked


def primary_outputs(primary: DatacenterConfig) -> dict[str, object]:
    """The outputs a secondary reads from this primary's stack once it is up (the federation
    secret's keys only: its values are made by the chart in the cluster)."""
    return {
        outputs.DATACENTER: primary.datacenter,
        outputs.ACLS_ENABLED: primary.acls,
        outputs.GOSSIP_ENABLED: primary.gossip_encryption,
        outputs.CHART_VERSION: primary.chart_version,
        outputs.FEDERATION_SECRET: dict.fromkeys(required_federation_keys(primary.acls, primary.gossip_encryption), ""),
    }


def validate(project_dir: str) -> tuple[int, list[str]]:
    """(exit code, the lines to print)."""
    p = cli.plan_or_report("validate", project_dir, nothing="no stack was checked")
    if p is None:
        return cli.EXIT_REFUSED, []
    results = {name: read_config(project_dir, name) for name in (p.primary, *p.secondaries)}
    primary = results[p.primary][0]
    lines, failed = [], False
    for name, (cfg, problems, unchecked) in results.items():
        if cfg is not None and not cfg.is_primary:
            if primary is None:
                problems = [f"not checked against the primary {p.primary}, whose stack file has errors"]
            else:
                problems = primary_problems(cfg, primary_outputs(primary))
        failed = failed or bool(problems)
        role = "primary" if name == p.primary else "secondary"
        lines.append(f"{name:<8} {role:<9} {'FAILED' if problems else 'valid'}"
                     + (f" (chart {cfg.chart_version}, datacenter {cfg.datacenter})" if cfg else ""))
        lines += [f"  - {problem}" for problem in problems]
        lines += [f"  warning: {warning}" for warning in (config_warnings(cfg) if cfg else [])]
        if unchecked:
            lines.append(f"  not checked here (encrypted; pulumi preview decrypts them): "
                         f"{', '.join('consul-federation:' + k for k in unchecked)}")
    lines.append("\nvalidate: " + ("NOT every stack is valid" if failed else "every stack is valid")
                 + "; pulumi preview also checks the kubeconfig contexts, the clusters, the chart repository and the primary's outputs")
    return (cli.EXIT_FAILED if failed else cli.EXIT_OK), lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_arguments(parser, parallel=False, stacks=False)


def run(args: argparse.Namespace) -> int:
    code, lines = validate(args.project_dir)
    print("\n".join(lines), file=sys.stdout)
    return code
