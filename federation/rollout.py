"""``up`` as a rolling change: each stage waits for the federation to be healthy before the next.

HashiCorp's federated upgrade procedure changes the primary's servers first, then each
secondary's, checking ``consul members -wan`` and ACL replication between the steps. ``up`` does
that with ``verify``'s rows that concern the federation (servers ready, WAN members alive, every
datacenter in the catalog, ACL replication, an RPC to every other datacenter, every server's TLS
CA trusted), over the stacks
that run by then: a change that breaks the primary stops before any secondary is touched.

The rows must pass on ``PASSES_IN_A_ROW`` consecutive checks ``INTERVAL`` seconds apart (WAN
membership flaps for a while after a server restarts, and one lucky pass would let the run move
on), within ``--gate-timeout`` seconds; "not checked" never passes.

Rows that already failed before the run (in any of three checks before the first stage: they may
flap) are still waited for, but when only they fail once the time is up, a stage before the last goes on: a secondary
that an earlier run broke is fixed by its own stage, which must not wait behind it for ever. After
the last stage every row must pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Optional, TextIO

from pulumi import automation as auto

from components.constants import CONFIG_NAMESPACE

from . import cli, operate, verify
from .runner import Runner
from .stack_plan import Plan

GATED_CHECKS = ("server StatefulSet ready", "WAN members alive", "catalog has every datacenter",
                "ACL replication running", verify.RPC_TO_EVERY_DATACENTER, verify.TLS_TRUST)
DEFAULT_TIMEOUT = 600
INTERVAL = 10
PASSES_IN_A_ROW = 2
# Rows "failing before this up": failing in any of these checks, INTERVAL apart, before the first
# stage. A secondary broken by an earlier run flaps (its WAN membership passes one check, fails the
# next), and a single look missed such rows: the primary's gate then waited for them and stopped.
BEFORE_CHECKS = PASSES_IN_A_ROW + 1


def gated_rows(rows: list[verify.Row]) -> list[verify.Row]:
    return [r for r in rows if r.check in GATED_CHECKS]


def failing(rows: list[verify.Row]) -> frozenset[tuple[str, str]]:
    """(datacenter, check) of the gated rows that did not pass."""
    return frozenset((r.datacenter, r.check) for r in gated_rows(rows) if r.status != verify.PASSED)


def failing_before(check: Callable[[], list[verify.Row]], sleep: Callable[[float], None]) -> frozenset[tuple[str, str]]:
    """(datacenter, check) of the gated rows that failed in any of BEFORE_CHECKS checks."""
    seen: frozenset[tuple[str, str]] = frozenset()
    for n in range(BEFORE_CHECKS):
        if n:
            sleep(INTERVAL)
        seen |= failing(check())
    return seen


def wait_healthy(check: Callable[[], list[verify.Row]], timeout: float, say: Callable[[str], None],
                 clock: Optional[Callable[[], float]] = None, sleep: Optional[Callable[[float], None]] = None,
                 interval: float = INTERVAL, passes: int = PASSES_IN_A_ROW,
                 excused: frozenset[tuple[str, str]] = frozenset()) -> tuple[bool, list[verify.Row]]:
    """(True, rows) once the gated rows pass `passes` times in a row. When `timeout` runs out
    first: (True, rows) if only `excused` (datacenter, check) pairs failed in the last `passes`
    checks, else (False, the rows of the last check that did not pass, or of the last check when
    each passed once). No gated row at all never counts as healthy."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    started = clock()
    in_a_row = excused_in_a_row = 0
    unhealthy: list[verify.Row] = []
    while True:
        rows = gated_rows(check())
        waiting = [r for r in rows if r.status != verify.PASSED]
        healthy = bool(rows) and not waiting
        only_excused = bool(rows) and all((r.datacenter, r.check) in excused for r in waiting)
        in_a_row = in_a_row + 1 if healthy else 0
        excused_in_a_row = excused_in_a_row + 1 if only_excused else 0
        if in_a_row >= passes:
            return True, rows
        if not healthy:
            unhealthy = rows
        elapsed = clock() - started
        if elapsed >= timeout:
            return excused_in_a_row >= passes, unhealthy or rows
        say(f"{len(rows) - len(waiting)}/{len(rows)} rows pass"
            + (f"; waiting for {', '.join(_named(r, excused) for r in waiting)}" if waiting else "; checking again")
            + f" ({elapsed:.0f} s of {timeout:.0f} s)")
        sleep(interval)


def _named(row: verify.Row, excused: frozenset[tuple[str, str]]) -> str:
    return f"{row.datacenter} {row.check}" + (" (failing before this up)" if (row.datacenter, row.check) in excused
                                               else "")


def failing_rows_text(rows: list[verify.Row], before: frozenset[tuple[str, str]] = frozenset()) -> str:
    if not rows:
        return "  (no row could be checked)"
    if all(r.status == verify.PASSED for r in rows):
        return f"  (each row passed, but not {PASSES_IN_A_ROW} times in a row)"
    return "\n".join(f"  {r.datacenter:<8} {r.check}: {r.status.upper()}: {r.detail}"
                     + (" (failed before this up too)" if (r.datacenter, r.check) in before else "")
                     for r in rows if r.status != verify.PASSED)


def federation_gate(p: Plan, runner: Runner, timeout: float) -> operate.Gate:
    """The gate ``up`` runs after each stage, over the stacks running by then; the rows failing
    before the run are checked here, before any stage."""
    say = _sayer(runner.out, "gate")

    def collect(members: list[str]) -> list[verify.Row]:
        selected = Plan(p.project, p.primary, p.secondaries, frozenset(members))
        return verify.collect(selected, runner, False, members)

    counts = runner.resource_counts()
    running = [s for s in (p.primary, *p.secondaries) if counts.get(s, 0)]
    before = failing_before(lambda: collect(running), time.sleep) if running else frozenset()
    if before:
        say("failing before this up (after the wait, they stop only the last stage): "
            + ", ".join(f"{dc} {check}" for dc, check in sorted(before)))

    def gate(members: list[str], last: bool) -> Optional[str]:
        say(f"checking the federation of {', '.join(members)} (at most {timeout:.0f} s)")
        excused = frozenset() if last else before
        healthy, rows = wait_healthy(lambda: collect(members), timeout, say, excused=excused)
        if healthy:
            left = sorted(f"{r.datacenter} {r.check}" for r in rows if r.status != verify.PASSED)
            say(f"healthy: {len(rows)} rows passed {PASSES_IN_A_ROW} times in a row" if not left else
                f"going on: only rows failing before this up still fail after {timeout:.0f} s, left to a later "
                f"stage: {', '.join(left)}")
            return None
        return (f"the federation was not healthy within {timeout:.0f} s; these rows did not pass:\n"
                f"{failing_rows_text(rows, before)}")

    return gate


def raise_and_roll(p: Plan, runner: Runner, key: str, current: int, value: int,
                   timeout: float, say: Callable[[str], None]) -> bool:
    """A setting of the primary's stack file raised to `value` (unless it is there already), then
    a gated up of every stack: how the rotations roll a stage through the federation. True when
    every stage of the up passed its gate."""
    if current != value:
        runner.stack(p.primary, create=False).set_config(f"{CONFIG_NAMESPACE}:{key}", auto.ConfigValue(value=str(value)))
        say(f"Pulumi.{p.primary}.yaml: {key} = {value} (commit it)")
    gate = federation_gate(p, runner, timeout)  # p selects every stack
    return operate.run_up(p, runner, parallel=4, gate=gate) == cli.EXIT_OK


def _sayer(out: TextIO, prefix: str) -> Callable[[str], None]:
    return lambda line: print(f"[{prefix}] {line}", file=out, flush=True)


class GatedUp(operate.Command):
    """``up``, with the federation's health checked after every stage."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--gate-timeout", type=int, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                            help=f"how long the federation may take to be healthy after each stage (default: "
                                 f"{DEFAULT_TIMEOUT}); 0 turns the checks off, for clusters where no Consul runs")

    def run(self, args: argparse.Namespace) -> int:
        if args.gate_timeout < 0:
            print("federation up: refused: --gate-timeout must be 0 (no checks) or more", file=sys.stderr)
            return cli.EXIT_REFUSED
        if args.gate_timeout == 0:
            return operate.run_command("up", args)
        return operate.run_command("up", args, lambda p, runner: federation_gate(p, runner, args.gate_timeout))


UP = GatedUp("up", "Deploy the primary, then the secondaries; after each stage, wait until the "
             "federation is healthy (WAN members, catalog, replication, RPC) or stop.\n\n" + __doc__)
