"""What the rotation commands (``rotate-gossip-key``, ``rotate-tls-ca``) share: their options and
how a refusal or a stopped step is reported. Both run to the end or stop at a step that a re-run
goes on from, so every failure says "run it again"."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from . import cli, cluster_access as access, rollout, verify
from .runner import Runner, cli_error
from .stack_plan import Plan


class Rotation:
    """One run of a rotation: the plan, the engine, and every datacenter's cluster, resolved
    before the first step (`refused` names a stack that gives none)."""

    def __init__(self, p: Plan, runner: Runner, project_dir: str, gate_timeout: float,
                 refused: type[Exception]):
        self.p = p
        self.runner = runner
        self.project_dir = project_dir
        self.gate_timeout = gate_timeout
        self.dcs = {name: access.datacenter_of(runner, name, refused) for name in [p.primary, *p.secondaries]}
        self.primary = self.dcs[p.primary]

    def say(self, line: str) -> None:
        raise NotImplementedError

    def report_verified(self, counted: Callable[[list[verify.Row]], list[verify.Row]], rotated: str,
                        unverified: str) -> int:
        """verify's table after the last step; exit 0 only when the `counted` rows exist and pass."""
        rows = verify.collect(self.p, self.runner, False)
        print(verify.table(rows), file=self.runner.out)
        checked = counted(rows)
        if checked and all(r.status == verify.PASSED for r in checked):
            self.say(rotated)
            return cli.EXIT_OK
        self.say(unverified)
        return cli.EXIT_FAILED


def add_arguments(parser: argparse.ArgumentParser, stages: str) -> None:
    """No --stacks: a key or a CA is every datacenter's. `stages`: which ups the gate waits in."""
    cli.add_arguments(parser, parallel=False, stacks=False)
    parser.add_argument("--gate-timeout", type=int, default=rollout.DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"how long the federation may take to be healthy after each stage of {stages} "
                             f"(default: {rollout.DEFAULT_TIMEOUT})")


def run(command: str, args: argparse.Namespace, rotation: Callable[[Plan, Runner], int],
        refused: tuple[type[Exception], ...], stopped: tuple[type[Exception], ...]) -> int:
    """`rotation` over every stack: exit 2 for `refused` (nothing changed), 1 for `stopped` and for
    a cluster, Consul or the engine failing on the way."""
    p = cli.plan_or_report(command, args.project_dir, nothing="nothing was changed")
    if p is None:
        return cli.EXIT_REFUSED
    try:
        return rotation(p, Runner(args.project_dir))
    except refused as exc:
        print(f"federation {command}: refused: {exc}", file=sys.stderr)
        return cli.EXIT_REFUSED
    except stopped as exc:
        why = str(exc)
    except ApiException as exc:
        answer = access.consul_error(exc) if access.consul_answered(exc) else access.api_error_text(exc)
        why = f"Consul or a cluster's API server answered {answer}"
    except access.NETWORK_ERRORS as exc:
        why = f"no answer from a cluster ({access.network_cause(exc)})"
    except auto.errors.CommandError as exc:
        why = cli_error(exc)[:600]
    print(f"federation {command}: stopped: {why}\nrun it again once verify passes", file=sys.stderr)
    return cli.EXIT_FAILED
