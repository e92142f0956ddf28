"""``up`` as a rolling change: each stage waits for the federation to be healthy before the next.

HashiCorp's federated upgrade procedure changes the primary's servers first, then each
secondary's, checking ``consul members -wan`` and ACL replication between the steps. ``up`` does
that with ``verify``'s rows that concern the federation (servers ready, WAN members alive, every
datacenter in the catalog, ACL replication, an RPC to every other datacenter), over the stacks
that run by then: a change that breaks the primary stops before any secondary is touched.

The rows must pass on ``PASSES_IN_A_ROW`` consecutive checks ``INTERVAL`` seconds apart (WAN
membership flaps for a while after a server restarts, and one lucky pass would let the run move
on), within ``--gate-timeout`` seconds; "not checked" never passes.

Some failing rows are excused: still waited for, but when only they fail once the time is up, a
stage before the last goes on. Excused are a row that already failed before the run (checked
once, before the first stage); any row of a datacenter with a row failing before the run, while
its stage is still to come; and a row of another datacenter whose failure concerns only such
datacenters (``verify.Row.concerns``: e.g. dc1's WAN members with no alive server of dc2). A
secondary that an earlier run broke is fixed by its own stage, which must not wait behind it for
ever; its rows flap, so the one check before the run cannot name each of them. After the last
stage every row must pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Collection, Optional, TextIO

from . import cli, operate, verify
from .runner import Runner
from .stack_plan import Plan

GATED_CHECKS = ("server StatefulSet ready", "WAN members alive", "catalog has every datacenter",
                "ACL replication running", verify.RPC_TO_EVERY_DATACENTER)
DEFAULT_TIMEOUT = 600
INTERVAL = 10
PASSES_IN_A_ROW = 2


def gated_rows(rows: list[verify.Row]) -> list[verify.Row]:
    return [r for r in rows if r.check in GATED_CHECKS]


# Why a gated row that fails may be left to a later stage, or None when it may not.
Excuse = Callable[[verify.Row], Optional[str]]


def no_excuse(row: verify.Row) -> Optional[str]:
    return None


def excuse(before: list[verify.Row], later: Collection[str]) -> Excuse:
    """The rule, given the gated rows failing `before` this up and the stacks of the stages
    `later` than this one (not changed by this up yet; none after the last stage, which excuses
    nothing): a row failing before this up; any row of a datacenter with a row failing before
    whose stage is still to come (that stage is what can fix it); a row of another datacenter
    whose failure concerns only such datacenters (``Row.concerns``)."""
    if not later:
        return no_excuse
    failed = {(r.datacenter, r.check) for r in before}
    broken = {r.stack: r.datacenter for r in before if r.stack in later}
    names = set(broken.values())

    def why(r: verify.Row) -> Optional[str]:
        if (r.datacenter, r.check) in failed:
            return "failing before this up"
        if r.stack in broken:
            return f"{r.datacenter} was failing before this up and its stage has not run yet"
        if r.concerns and set(r.concerns) <= names:
            return (f"only about {', '.join(r.concerns)}, which was failing before this up and whose stage has not "
                    "run yet")
        return None

    return why


def wait_healthy(check: Callable[[], list[verify.Row]], timeout: float, say: Callable[[str], None],
                 clock: Optional[Callable[[], float]] = None, sleep: Optional[Callable[[float], None]] = None,
                 interval: float = INTERVAL, passes: int = PASSES_IN_A_ROW,
                 excused: Excuse = no_excuse) -> tuple[bool, list[verify.Row]]:
    """(True, rows) once the gated rows pass `passes` times in a row. When `timeout` runs out
    first: (True, rows) if only `excused` rows failed in the last `passes` checks, else (False,
    the rows of the last check that did not pass, or of the last check when each passed once).
    No gated row at all never counts as healthy."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    started = clock()
    in_a_row = excused_in_a_row = 0
    unhealthy: list[verify.Row] = []
    while True:
        rows = gated_rows(check())
        waiting = [r for r in rows if r.status != verify.PASSED]
        healthy = bool(rows) and not waiting
        only_excused = bool(rows) and all(excused(r) for r in waiting)
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


def _named(row: verify.Row, excused: Excuse) -> str:
    why = excused(row)
    return f"{row.datacenter} {row.check}" + (f" ({why})" if why else "")


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
    failed_before = [r for r in gated_rows(collect(running)) if r.status != verify.PASSED] if running else []
    before = frozenset((r.datacenter, r.check) for r in failed_before)
    if before:
        broken = sorted({r.datacenter for r in failed_before})
        one = len(broken) == 1
        say(f"failing before this up (after the wait, they stop only the last stage; the other rows of "
            f"{', '.join(broken)}, and the rows about only {'it' if one else 'them'}, stop no stage before "
            f"{'its' if one else 'their'} own): " + ", ".join(f"{dc} {check}" for dc, check in sorted(before)))

    def gate(members: list[str], later: list[str]) -> Optional[str]:
        say(f"checking the federation of {', '.join(members)} (at most {timeout:.0f} s)")
        excused = excuse(failed_before, later)
        healthy, rows = wait_healthy(lambda: collect(members), timeout, say, excused=excused)
        if healthy:
            left = sorted(_named(r, excused) for r in rows if r.status != verify.PASSED)
            say(f"healthy: {len(rows)} rows passed {PASSES_IN_A_ROW} times in a row" if not left else
                f"going on: only excused rows still fail after {timeout:.0f} s, left to a later stage: "
                f"{', '.join(left)}")
            return None
        return (f"the federation was not healthy within {timeout:.0f} s; these rows did not pass:\n"
                f"{failing_rows_text(rows, before)}")

    return gate


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
