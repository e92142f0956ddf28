"""``up``, ``preview`` and ``destroy`` of every stack of the federation, in the order WAN
federation needs, on the Pulumi Automation API.

``up``: the primary first, then the secondaries in parallel (they read the primary's outputs);
with the gate of ``rollout.py`` (the default of ``python -m federation up``), each running
secondary alone and the federation checked after every stage.
``destroy``: the secondaries first, the primary last (a secondary's servers keep calling the
primary). ``preview``: every stack at once. Each stack's engine output is printed on lines
prefixed with ``[<stack>]``; a summary per stack ends the run.

Stacks are the ``Pulumi.<stack>.yaml`` files of --project-dir and their ``role``. The backend and
passphrase come from the environment, as for the pulumi CLI (PULUMI_BACKEND_URL,
PULUMI_CONFIG_PASSPHRASE); the CLI is the ``pulumi`` on PATH.

Exit codes: 0 everything ran and succeeded; 1 a stack failed (the run stops after the stage it
failed in, naming the stack and the error), the federation was not healthy after a stage (naming
the rows and the stacks not changed yet), or the pulumi CLI could not run; 2 refused before
anything ran (unknown stack in --stacks, no primary or two, a secondary whose primaryStack is not
the primary's stack, destroying the primary while a secondary still has resources). A usage
error (unknown option) exits 1, as for every ``python -m federation`` command.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, TextIO

from pulumi import automation as auto

from components.stack_ref import StackRef

from . import engine_events, stacks as stack_files
from .recovery import InterruptedCreates, refresh_if_pending, stack_cli

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ERROR_LINES = 12


class Refused(Exception):
    """Input that cannot run as given; each problem says what to change."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Plan:
    """The project's federation: its primary, its secondaries, and the stacks this run touches."""

    project: str
    primary: str
    secondaries: tuple[str, ...]
    selected: frozenset[str]

    @property
    def run_primary(self) -> bool:
        return self.primary in self.selected

    @property
    def run_secondaries(self) -> list[str]:
        return [s for s in self.secondaries if s in self.selected]


def _primary_ref_problem(name: str, ref: object, project: str, primary: str) -> Optional[str]:
    """Why a secondary's primaryStack does not name the primary's stack, if it does not."""
    expected = StackRef(primary).qualified(project)
    if not isinstance(ref, str) or not ref:
        return (f"Pulumi.{name}.yaml: consul-federation:primaryStack is missing; set it to {expected}")
    try:
        names_primary = StackRef.parse(ref).names(project, primary)
    except ValueError:
        names_primary = False
    if not names_primary:
        return (f"Pulumi.{name}.yaml: consul-federation:primaryStack is {ref!r}, but the primary of "
                f"this project is stack {primary!r}; set it to {expected}")
    return None


def plan(project_dir: str, only: Optional[Iterable[str]] = None) -> Plan:
    """Check the stack files before anything runs; raises Refused listing every problem."""
    try:
        names = stack_files.stack_names(project_dir)
        project = stack_files.project_name(project_dir)
    except OSError as exc:
        raise Refused([f"cannot read the project in {project_dir}: {exc}"]) from exc
    if not names:
        raise Refused([f"no Pulumi.<stack>.yaml in {project_dir}; --project-dir is the directory of Pulumi.yaml"])
    problems: list[str] = []
    only = list(only or [])
    unknown = [s for s in only if s not in names]
    if unknown:
        problems.append(f"--stacks names {', '.join(unknown)}, which has no stack file; "
                        f"the stacks of this project are {', '.join(names)}")
    roles: dict[str, str] = {}
    refs: dict[str, object] = {}
    for name in names:
        try:
            raw = stack_files.read_stack(project_dir, name).raw
        except stack_files.StackFileError as exc:
            problems.append(str(exc))
            continue
        role = raw.get("role")
        if role not in ("primary", "secondary"):
            problems.append(f"Pulumi.{name}.yaml: consul-federation:role is {role!r}; set it to primary "
                            "(one stack) or secondary")
            continue
        roles[name] = role
        refs[name] = raw.get("primaryStack")
    primaries = [n for n, r in roles.items() if r == "primary"]
    secondaries = tuple(n for n, r in roles.items() if r == "secondary")
    if not primaries and len(roles) == len(names):
        problems.append("no primary: set consul-federation:role: primary in the stack file of the "
                        f"datacenter that creates the federation secret (one of {', '.join(names)})")
    if len(primaries) > 1:
        problems.append(f"{len(primaries)} primaries ({', '.join(primaries)}): a federation has one; keep "
                        "role: primary in one of them and make the others role: secondary with "
                        f"primaryStack: organization/{project}/<the primary>")
    if len(primaries) == 1:
        problems.extend(p for p in (_primary_ref_problem(s, refs[s], project, primaries[0])
                                    for s in secondaries) if p)
    if problems:
        raise Refused(problems)
    return Plan(project, primaries[0], secondaries, frozenset(only or names))


@dataclass
class Outcome:
    """What one stack's operation did: the engine's change counts, or the error."""

    stack: str
    ok: bool
    changes: dict[str, int] = field(default_factory=dict)
    error: str = ""
    note: str = ""
    seconds: float = 0.0


def error_summary(lines: list[str], fallback: str) -> str:
    """The engine's own error lines (from the first ``error:`` to the next blank line), which
    name the resource and the cause; else the end of the command's output."""
    for index, line in enumerate(lines):
        if line.strip().startswith("error:"):
            block = []
            for follow in lines[index:index + _ERROR_LINES]:
                if not follow.strip():
                    break
                block.append(follow.strip())
            return "\n".join(block)
    tail = [line.strip() for line in fallback.splitlines() if line.strip()]
    return "\n".join(tail[-5:]) or "no output"


def format_changes(changes: dict[str, int]) -> str:
    shown = {op: n for op, n in sorted(changes.items()) if n}
    return ", ".join(f"{op} {n}" for op, n in shown.items()) or "no changes"


class Runner:
    """Runs one operation per stack through the Automation API, printing prefixed lines."""

    def __init__(self, project_dir: str, out: TextIO = sys.stdout):
        self.project_dir = os.path.abspath(project_dir)
        self.out = out
        self._lock = threading.Lock()
        self._select_lock = threading.Lock()
        self._command: Optional[auto.PulumiCommand] = None
        self._prepared: dict[str, Future] = {}
        self._background: Optional[ThreadPoolExecutor] = None

    def say(self, stack: str, line: str) -> None:
        with self._lock:
            for part in line.rstrip("\n").splitlines() or [""]:
                print(f"[{stack}] {part}", file=self.out, flush=True)

    def command(self) -> auto.PulumiCommand:
        """The pulumi on PATH, its version checked once for every stack of the run."""
        if self._command is None:
            self._command = auto.PulumiCommand()
        return self._command

    def stack(self, name: str, create: bool) -> auto.Stack:
        """Select (or create) serially: `pulumi stack select` writes the workspace file."""
        with self._select_lock:
            opts = auto.LocalWorkspaceOptions(pulumi_command=self.command())
            if create:
                return auto.create_or_select_stack(name, work_dir=self.project_dir, opts=opts)
            return auto.select_stack(name, work_dir=self.project_dir, opts=opts)

    def prepare(self, names: list[str]) -> None:
        """Select these stacks in the background, so that a later stage finds them ready: the
        secondaries' selection runs while the primary's up does. A stack the backend lacks is
        left to its stage to create, so a failed primary leaves no new secondary stack behind."""
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        for name in names:
            self._prepared[name] = self._background.submit(self._select_if_exists, name)

    def _select_if_exists(self, name: str) -> Optional[auto.Stack]:
        try:
            return self.stack(name, create=False)
        except auto.errors.StackNotFoundError:
            return None

    def resource_counts(self) -> dict[str, int]:
        """Resources per stack in the backend (`pulumi stack ls`)."""
        workspace = auto.LocalWorkspace(work_dir=self.project_dir, pulumi_command=self.command())
        return {s.name: s.resource_count or 0 for s in workspace.list_stacks()}

    def run(self, name: str, operation: Callable[[auto.Stack, Callable[[str], None]], tuple[dict[str, int], str]],
            create: bool = False) -> Outcome:
        """Run `operation(stack, on_output)` -> (change counts, note); never raises. A stack the
        backend does not have fails, except for destroy (nothing to destroy)."""
        lines: list[str] = []

        def on_output(line: str) -> None:
            lines.append(line.rstrip("\n"))
            self.say(name, line)

        started = time.monotonic()
        try:
            prepared = self._prepared.pop(name, None)
            stack = (prepared.result() if prepared else None) or self.stack(name, create)
            changes, note = operation(stack, on_output)
        except auto.errors.StackNotFoundError:
            if operation is _destroy:
                return Outcome(name, True, note="not in the backend: nothing to destroy")
            return Outcome(name, False, error=f"stack {name} does not exist in the backend "
                           f"({os.environ.get('PULUMI_BACKEND_URL', 'the logged-in backend')}): run up first",
                           seconds=time.monotonic() - started)
        except engine_events.EngineFailed as exc:
            return Outcome(name, False, error=str(exc), seconds=time.monotonic() - started)
        except auto.errors.CommandError as exc:  # the CLI failed before the engine reported anything
            return Outcome(name, False, error=error_summary(lines, str(exc)), seconds=time.monotonic() - started)
        except InterruptedCreates as exc:
            return Outcome(name, False, error=str(exc), seconds=time.monotonic() - started)
        return Outcome(name, True, changes=changes, note=note, seconds=time.monotonic() - started)

    def stage(self, names: list[str], operation, parallel: int, create: bool = False) -> list[Outcome]:
        """The stacks of one stage, at most `parallel` at once; outcomes in the order given."""
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names)))) as pool:
            return list(pool.map(lambda n: self.run(n, operation, create), names))


def _up(stack: auto.Stack, on_output: Callable[[str], None]) -> tuple[dict[str, int], str]:
    """`pulumi up` through PulumiCommand rather than Stack.up: Stack.up reads the outputs and the
    history afterwards (three more decrypting CLI runs, 2-3 s per stack) for a summary that the
    engine's own events already end with."""
    note = refresh_if_pending(stack, on_output)
    with tempfile.TemporaryDirectory(prefix="federation-up-") as scratch:
        log = os.path.join(scratch, "events.json")
        try:
            stack_cli(stack, ["up", "--yes", "--skip-preview", "--color", "never", "--event-log", log],
                      on_output=on_output, env=engine_events.EVENT_LOG_ENV)
        except auto.errors.CommandError:
            _raise_engine_errors(engine_events.read_event_log(log) if os.path.exists(log) else [])
            raise
        run = engine_events.summarize(engine_events.read_event_log(log))
    if run.changes is None:
        raise engine_events.EngineFailed("the engine ended without a summary event: the update did not finish")
    return run.changes, note


def _raise_engine_errors(events: list[auto.EngineEvent]) -> None:
    """The engine's own error diagnostics, when it reported any, as the failure's text."""
    run = engine_events.summarize(events)
    if run.errors:
        raise engine_events.EngineFailed(run.error_text())


def _automation(call: Callable[..., Any], on_output: Callable[[str], None], **kwargs: Any) -> Any:
    """An Automation API update command with its events collected; its errors as EngineFailed."""
    events: list[auto.EngineEvent] = []
    try:
        return call(on_output=on_output, on_error=on_output, on_event=events.append, color="never", **kwargs)
    except auto.errors.CommandError:
        _raise_engine_errors(events)
        raise


def _preview(stack: auto.Stack, on_output: Callable[[str], None]) -> tuple[dict[str, int], str]:
    result = _automation(stack.preview, on_output, diff=True)
    return {op: n for op, n in (result.change_summary or {}).items() if n}, ""


def _destroy(stack: auto.Stack, on_output: Callable[[str], None]) -> tuple[dict[str, int], str]:
    result = _automation(stack.destroy, on_output)
    return {op: n for op, n in (result.summary.resource_changes or {}).items() if n}, ""


def print_summary(command: str, outcomes: list[Outcome], not_run: list[str], out: TextIO) -> None:
    print(f"\n{command} summary:", file=out)
    for o in outcomes:
        if o.ok:
            note = f" ({o.note})" if o.note else ""
            print(f"  {o.stack:<8} ok      {format_changes(o.changes)}{note}  [{o.seconds:.0f} s]", file=out)
        else:
            first, *rest = o.error.splitlines() or [""]
            print(f"  {o.stack:<8} FAILED  {first}", file=out)
            for line in rest:
                print(f"  {'':<8}         {line}", file=out)
    for name in not_run:
        print(f"  {name:<8} not run (stopped after an earlier stage)", file=out)


def _stop_message(stage: str, failed: list[Outcome], out: TextIO) -> None:
    for o in failed:
        print(f"\nstopped: {stage} failed in stack {o.stack}:\n  " + o.error.replace("\n", "\n  "), file=out)


# After a stage of up (the last one, or not): None when the federation of these stacks is
# healthy, else why not.
Gate = Callable[[list[str], bool], Optional[str]]


def up_stages(p: Plan, deployed: Iterable[str] = (), gated: bool = False) -> list[tuple[str, list[str]]]:
    """The primary, then the secondaries: with a gate, each secondary that already runs alone
    (HashiCorp's federated upgrade order: a change checked in one datacenter before the next),
    then the new ones together (they have nothing running to break)."""
    stages = [("the primary", [p.primary])] if p.run_primary else []
    if not gated:
        return stages + ([("the secondaries", p.run_secondaries)] if p.run_secondaries else [])
    existing = [s for s in p.run_secondaries if s in set(deployed)]
    new = [s for s in p.run_secondaries if s not in set(deployed)]
    stages += [(f"the secondary {s}", [s]) for s in existing]
    return stages + ([("the new secondaries", new)] if new else [])


def run_up(p: Plan, runner: Runner, parallel: int, gate: Optional[Gate] = None) -> int:
    """Up in stages; with `gate`, each stage is followed by it over the stacks that run by then
    (deployed before, or by this run), and a gate that fails stops the run."""
    if p.run_primary:
        runner.prepare(p.run_secondaries)
    deployed = {name for name, count in runner.resource_counts().items() if count} if gate else set()
    stages = up_stages(p, deployed, gated=gate is not None)
    return _run_stages("up", stages, _up, runner, parallel, create=True, gate=gate, deployed=deployed,
                       federation=[p.primary, *p.secondaries])


def run_destroy(p: Plan, runner: Runner, parallel: int) -> int:
    stages = ([("the secondaries", p.run_secondaries)] if p.run_secondaries else []) + \
             ([("the primary", [p.primary])] if p.run_primary else [])
    return _run_stages("destroy", stages, _destroy, runner, parallel, create=False)


def _run_stages(command: str, stages: list[tuple[str, list[str]]], operation, runner: Runner,
                parallel: int, create: bool, gate: Optional[Gate] = None, deployed: Iterable[str] = (),
                federation: Iterable[str] = ()) -> int:
    outcomes: list[Outcome] = []
    running = set(deployed)
    for index, (label, names) in enumerate(stages):
        done = runner.stage(names, operation, parallel, create)
        outcomes.extend(done)
        failed = [o for o in done if not o.ok]
        not_run = [n for _, later in stages[index + 1:] for n in later]
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


def destroy_refusal(p: Plan, counts: dict[str, int]) -> Optional[str]:
    """Destroying the primary would strand secondaries that still run on its federation secret."""
    if not p.run_primary:
        return None
    left = [f"{s} ({counts[s]} resources)" for s in p.secondaries
            if s not in p.selected and counts.get(s, 0) > 0]
    if not left:
        return None
    return (f"refusing to destroy the primary {p.primary}: secondary stack(s) {', '.join(left)} still "
            f"have resources and were left out by --stacks; destroy them first (or include them)")


def add_arguments(parser: argparse.ArgumentParser, parallel: bool = True) -> None:
    parser.add_argument("--project-dir", default=REPO_ROOT,
                        help="directory of Pulumi.yaml and the Pulumi.<stack>.yaml files (default: the repository root)")
    parser.add_argument("--stacks", nargs="+", metavar="STACK", help="only these stacks (default: every stack file)")
    if parallel:
        parser.add_argument("--parallel", type=int, default=4, metavar="N",
                            help="stacks run at once within a stage (default: 4)")


def run_command(command: str, args: argparse.Namespace,
                gate_for: Optional[Callable[[Plan, Runner], Gate]] = None) -> int:
    """Plan, then run `command` over the stacks; `gate_for` makes up's gate from both."""
    try:
        p = plan(args.project_dir, args.stacks)
    except Refused as exc:
        print(f"federation {command}: refused, nothing was run:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_REFUSED
    if args.parallel < 1:
        print(f"federation {command}: refused: --parallel must be 1 or more", file=sys.stderr)
        return EXIT_REFUSED
    runner = Runner(args.project_dir)
    try:
        if command == "up":
            return run_up(p, runner, args.parallel, gate_for(p, runner) if gate_for else None)
        if command == "preview":
            outcomes = runner.stage(sorted(p.selected), _preview, args.parallel)
            print_summary("preview", outcomes, [], runner.out)
            return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED
        refusal = destroy_refusal(p, runner.resource_counts())
        if refusal:
            print(f"federation destroy: {refusal}", file=sys.stderr)
            return EXIT_REFUSED
        return run_destroy(p, runner, args.parallel)
    except (FileNotFoundError, auto.errors.InvalidVersionError) as exc:
        print(f"federation {command}: cannot run the pulumi CLI (put pulumi 3.x on PATH): {exc}", file=sys.stderr)
        return EXIT_FAILED


class Command:
    """One ``python -m federation`` subcommand of this module, as the dispatch table wants it."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc + "\n\n" + __doc__

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return run_command(self.name, args)


PREVIEW = Command("preview", "Preview every stack in parallel, with the diff.")
DESTROY = Command("destroy", "Destroy the secondaries, then the primary.")
