"""``up``, ``preview`` and ``destroy`` of every stack of the federation, in the order WAN
federation needs, on the Pulumi Automation API.

``up``: the primary first, then the secondaries in parallel (they read the primary's outputs);
with the gate of ``rollout.py`` (the default of ``python -m federation up``), each running
secondary alone and the federation checked after every stage.
``destroy``: the secondaries first, the primary last (a secondary's servers keep calling the
primary). ``preview``: every stack at once. ``up`` and ``preview`` run the project's policy pack
(policy/; --no-policy: not this time): a mandatory rule broken fails that stack. Each stack's engine output is printed on lines
prefixed with ``[<stack>]``; a summary per stack ends the run.

Stacks are the ``Pulumi.<stack>.yaml`` files of --project-dir and their ``role``. The backend and
passphrase come from the environment, as for the pulumi CLI (PULUMI_BACKEND_URL,
PULUMI_CONFIG_PASSPHRASE); the CLI is the ``pulumi`` on PATH.

Exit codes: 0 everything ran and succeeded; 1 a stack failed (the run stops after the stage it
failed in, naming the stack and the error), the federation was not healthy after a stage (naming
the rows and the stacks not changed yet), or the pulumi CLI could not run; 2 refused before
anything ran (unknown stack in --stacks, no primary or two, a secondary whose primaryStack is not
the primary's stack, destroying the primary while a secondary still has resources, no policy
pack in the project). A usage
error (unknown option) exits 1, as for every ``python -m federation`` command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable, Optional, TextIO

from pulumi import automation as auto

from .cli import CLI_MISSING, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, add_arguments, plan_or_report, report_cli_missing
from . import policy_pack, runner as stack_runner
from .runner import Operation, Outcome, Runner, print_summary
from .stack_plan import Plan, destroy_refusal, up_stages


def _stop_message(stage: str, failed: list[Outcome], out: TextIO) -> None:
    for o in failed:
        print(f"\nstopped: {stage} failed in stack {o.stack}:\n  " + o.error.replace("\n", "\n  "), file=out)


# The commands that run the project's policy pack.
POLICY_COMMANDS = ("up", "preview")

# After a stage of up (the last one, or not): None when the federation of these stacks is
# healthy, else why not.
Gate = Callable[[list[str], bool], Optional[str]]


def run_up(p: Plan, runner: Runner, parallel: int, gate: Optional[Gate] = None) -> int:
    """Up in stages; with `gate`, each stage is followed by it over the stacks that run by then
    (deployed before, or by this run), and a gate that fails stops the run."""
    deployed = {name for name, count in runner.resource_counts().items() if count} if gate else set()
    stages = up_stages(p, deployed, gated=gate is not None)
    return _run_stages(stages, stack_runner.UP, runner, parallel, create=True, gate=gate, deployed=deployed,
                       federation=[p.primary, *p.secondaries])


def run_destroy(p: Plan, runner: Runner, parallel: int) -> int:
    stages = ([("the secondaries", p.run_secondaries)] if p.run_secondaries else []) + \
             ([("the primary", [p.primary])] if p.run_primary else [])
    return _run_stages(stages, stack_runner.DESTROY, runner, parallel, create=False)


def _run_stages(stages: list[tuple[str, list[str]]], operation: Operation, runner: Runner,
                parallel: int, create: bool, gate: Optional[Gate] = None, deployed: Iterable[str] = (),
                federation: Iterable[str] = ()) -> int:
    """The stages in order, each stack of the next stages selected while the current one runs."""
    command = operation.name
    outcomes: list[Outcome] = []
    running = set(deployed)
    for index, (label, names) in enumerate(stages):
        later = [n for _, next_names in stages[index + 1:] for n in next_names]
        done = runner.stage(names, operation, parallel, create, select_ahead=later)
        outcomes.extend(done)
        failed = [o for o in done if not o.ok]
        not_run = later
        if failed:
            _stop_message(f"{command} of {label}", failed, runner.out)
            print_summary(command, outcomes, not_run, runner.out)
            return EXIT_FAILED
        running.update(names)
        unhealthy = gate([s for s in federation if s in running], index == len(stages) - 1) if gate else None
        if unhealthy:
            print(f"\nstopped: after {command} of {label}, {unhealthy}", file=runner.out)
            if not_run:
                print(f"  not changed yet: {', '.join(not_run)}; fix the change (or the cluster), then run "
                      f"python -m federation {command} again", file=runner.out)
            print_summary(command, outcomes, not_run, runner.out)
            return EXIT_FAILED
    print_summary(command, outcomes, [], runner.out)
    return EXIT_OK


def run_command(command: str, args: argparse.Namespace,
                gate_for: Optional[Callable[[Plan, Runner], Gate]] = None) -> int:
    """Plan, then run `command` over the stacks; `gate_for` makes up's gate from both."""
    p = plan_or_report(command, args.project_dir, args.stacks)
    if p is None:
        return EXIT_REFUSED
    if args.parallel < 1:
        print(f"federation {command}: refused: --parallel must be 1 or more", file=sys.stderr)
        return EXIT_REFUSED
    packs, refusal = policy_pack.packs(args) if command in POLICY_COMMANDS else ([], None)
    if refusal:
        print(f"federation {command}: refused: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    violations = policy_pack.offline_violations(args.project_dir, p, packs[0]) if command == "up" and packs else []
    if violations:
        print(f"federation {command}: refused by the policy pack ({packs[0]}), nothing was run:", file=sys.stderr)
        for violation in violations:
            print(f"  - {violation}", file=sys.stderr)
        return EXIT_REFUSED
    runner = Runner(args.project_dir, policy_packs=packs)
    try:
        if command == "up":
            return run_up(p, runner, args.parallel, gate_for(p, runner) if gate_for else None)
        if command == "preview":
            outcomes = runner.stage(sorted(p.selected), stack_runner.PREVIEW, args.parallel)
            print_summary("preview", outcomes, [], runner.out)
            return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED
        refusal = destroy_refusal(p, runner.resource_counts())
        if refusal:
            print(f"federation destroy: {refusal}", file=sys.stderr)
            return EXIT_REFUSED
        return run_destroy(p, runner, args.parallel)
    except CLI_MISSING as exc:
        return report_cli_missing(command, exc)
    except auto.errors.CommandError as exc:  # `pulumi stack ls` before any stage: the backend
        print(f"federation {command}: {stack_runner.cli_error(exc)}", file=sys.stderr)
        return EXIT_FAILED


class Command:
    """One ``python -m federation`` subcommand of this module, as the dispatch table wants it."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc + "\n\n" + __doc__

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)
        if self.name in POLICY_COMMANDS:
            policy_pack.add_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        return run_command(self.name, args)


PREVIEW = Command("preview", "Preview every stack in parallel, with the diff.")
DESTROY = Command("destroy", "Destroy the secondaries, then the primary.")
