"""Runs one Pulumi operation per stack through the Automation API, and what came of it.

Each stack's engine output is printed on lines prefixed with ``[<stack>]``; its outcome (the
engine's change counts from its structured events, or its error) is collected, never raised, so
that a stage of several stacks reports each of them. The backend and passphrase come from the
environment, as for the pulumi CLI (PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE); the CLI is the
``pulumi`` on PATH.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, TextIO

from pulumi import automation as auto

from . import engine_events
from .recovery import InterruptedCreates, lock_advice, refresh_if_pending, stack_cli

# What the pulumi CLI says when it has no backend (no PULUMI_BACKEND_URL, never logged in) and
# cannot ask: the Automation API runs it non-interactively.
_NOT_LOGGED_IN = "PULUMI_ACCESS_TOKEN must be set"
NO_BACKEND = ("no Pulumi backend: PULUMI_BACKEND_URL is not set and the pulumi CLI is not logged in. "
              "Set PULUMI_BACKEND_URL (file://<directory>, s3://<bucket>, ...) or run pulumi login --local "
              "(state in ~/.pulumi), set PULUMI_CONFIG_PASSPHRASE (the same for every stack), then run again")


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
    name the resource and the cause, cut as engine_events cuts a diagnostic (every problem line
    kept); else the end of the command's output."""
    for index, line in enumerate(lines):
        if line.strip().startswith("error:"):
            block = []
            for follow in lines[index:]:
                if not follow.strip():
                    break
                block.append(follow.strip())
            return "\n".join(engine_events.cut(block))
    tail = [line.strip() for line in fallback.splitlines() if line.strip()]
    return "\n".join(tail[-5:]) or "no output"


def cli_error(exc: auto.errors.CommandError, lines: Iterable[str] = ()) -> str:
    """Why a pulumi CLI run failed, for the operator: no backend said as such, with the fix (the
    CLI names only PULUMI_ACCESS_TOKEN, Pulumi Cloud's login); else error_summary."""
    if _NOT_LOGGED_IN in str(exc):
        return NO_BACKEND
    return error_summary(list(lines), str(exc))


def format_changes(changes: dict[str, int]) -> str:
    shown = {op: n for op, n in sorted(changes.items()) if n}
    return ", ".join(f"{op} {n}" for op, n in shown.items()) or "no changes"


class Runner:
    """Runs one operation per stack through the Automation API, printing prefixed lines."""

    def __init__(self, project_dir: str, out: TextIO = sys.stdout, policy_packs: Sequence[str] = ()):
        self.project_dir = os.path.abspath(project_dir)
        self.out = out
        self.policy_packs = tuple(policy_packs)  # run by up and preview (policy_pack.py)
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

    def select_ahead(self, names: Iterable[str]) -> None:
        """Select these stacks in the background, so that a later stage finds them ready. A
        stack the backend lacks is left to its stage to create, so a failed primary leaves no new
        secondary stack behind."""
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="select-ahead")
        for name in names:
            if name not in self._prepared:
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

    def run(self, name: str, operation: "Operation", create: bool = False) -> Outcome:
        """Run `operation` on one stack; never raises. A stack the backend does not have fails,
        unless the operation counts that as done (destroy: nothing to destroy)."""
        lines: list[str] = []

        def on_output(line: str) -> None:
            lines.append(line.rstrip("\n"))
            self.say(name, line)

        started = time.monotonic()
        stack: Optional[auto.Stack] = None
        try:
            prepared = self._prepared.pop(name, None)
            stack = (prepared.result() if prepared else None) or self.stack(name, create)
            changes, note = operation.call(stack, on_output, self.policy_packs)
        except auto.errors.StackNotFoundError:
            if operation.absent_is_done:
                return Outcome(name, True, note=f"not in the backend: nothing to {operation.name}")
            return Outcome(name, False, error=f"stack {name} does not exist in the backend "
                           f"({os.environ.get('PULUMI_BACKEND_URL', 'the logged-in backend')}) yet: "
                           f"python -m federation up creates it (or pulumi stack init {name})",
                           seconds=time.monotonic() - started)
        except engine_events.EngineFailed as exc:
            return Outcome(name, False, error=str(exc), seconds=time.monotonic() - started)
        except auto.errors.CommandError as exc:  # the CLI failed before the engine reported anything
            error = cli_error(exc, lines)
            advice = lock_advice(stack, error) if stack is not None else ""
            return Outcome(name, False, error=error + (f"\n{advice}" if advice else ""),
                           seconds=time.monotonic() - started)
        except InterruptedCreates as exc:
            return Outcome(name, False, error=str(exc), seconds=time.monotonic() - started)
        return Outcome(name, True, changes=changes, note=note, seconds=time.monotonic() - started)

    def stage(self, names: list[str], operation: "Operation", parallel: int, create: bool = False,
              select_ahead: Iterable[str] = ()) -> list[Outcome]:
        """The stacks of one stage, at most `parallel` at once; outcomes in the order given.
        ``select_ahead``: stacks of a later stage, selected while this one runs (the secondaries'
        selection while the primary's up runs)."""
        self.select_ahead(select_ahead)
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names)))) as pool:
            return list(pool.map(lambda n: self.run(n, operation, create), names))


def _up(stack: auto.Stack, on_output: Callable[[str], None], policy_packs: Sequence[str]
        ) -> tuple[dict[str, int], str]:
    """`pulumi up` through PulumiCommand rather than Stack.up: Stack.up reads the outputs and the
    history afterwards (three more decrypting CLI runs, 2-3 s per stack) for a summary that the
    engine's own events already end with."""
    note = refresh_if_pending(stack, on_output)
    with tempfile.TemporaryDirectory(prefix="federation-up-") as scratch:
        log = os.path.join(scratch, "events.json")
        packs = [arg for pack in policy_packs for arg in ("--policy-pack", pack)]
        try:
            stack_cli(stack, ["up", "--yes", "--skip-preview", "--color", "never", "--event-log", log, *packs],
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


def _preview(stack: auto.Stack, on_output: Callable[[str], None], policy_packs: Sequence[str]
             ) -> tuple[dict[str, int], str]:
    result = _automation(stack.preview, on_output, diff=True, policy_packs=list(policy_packs) or None)
    return {op: n for op, n in (result.change_summary or {}).items() if n}, ""


def _destroy(stack: auto.Stack, on_output: Callable[[str], None], _policy_packs: Sequence[str]
             ) -> tuple[dict[str, int], str]:
    result = _automation(stack.destroy, on_output)
    return {op: n for op, n in (result.summary.resource_changes or {}).items() if n}, ""


@dataclass(frozen=True)
class Operation:
    """One engine operation: ``call(stack, on_output, policy packs)`` -> (change counts, note);
    destroy runs no policy (nothing it removes can break a rule)."""

    name: str
    call: Callable[[auto.Stack, Callable[[str], None], Sequence[str]], tuple[dict[str, int], str]]
    absent_is_done: bool = False  # a stack the backend lacks has nothing left to do


UP = Operation("up", _up)
PREVIEW = Operation("preview", _preview)
DESTROY = Operation("destroy", _destroy, absent_is_done=True)


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
