"""What one engine run did, from its structured events rather than its human text: the change
counts of its summary event, and its error diagnostics and mandatory policy violations, each
named by its resource.

``pulumi up|preview|destroy`` write the events to ``--event-log FILE`` (a JSON object a line; the
CLI registers the flag when ``PULUMI_DEBUG_COMMANDS=true``, as the Automation API sets it) or hand
them to an Automation API ``on_event`` callback; both give ``pulumi.automation.EngineEvent``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

from pulumi import automation as auto

# Enables --event-log on the CLI's update commands.
EVENT_LOG_ENV = {"PULUMI_DEBUG_COMMANDS": "true"}
# At most this many lines of one error diagnostic (a Helm failure is long; the cause is first),
# besides its "- " lines: a ConfigError lists every problem so, and none may be lost.
ERROR_LINES = 12
# Steps that only read (a StackReference, a get): no change to anything, and left out of the
# counts as the engine's own "Resources:" summary leaves them out (pkg/backend/display/diff.go).
READ_OPS = ("read", "discard", "read-replacement")
# A policy violation that fails the run (an advisory one is a warning in the engine's output).
MANDATORY = "mandatory"


class EngineFailed(Exception):
    """The engine reported errors: the text names each resource and its message."""


@dataclass
class EngineRun:
    """The summary event's counts (None: no summary came, the engine never finished) and the
    error diagnostics, one text per diagnostic."""

    changes: dict[str, int] | None = None
    errors: list[str] = field(default_factory=list)

    def error_text(self) -> str:
        return "\n".join(self.errors)


def read_event_log(path: str) -> list[auto.EngineEvent]:
    """The events of an --event-log file (a half-written last line, from a killed CLI, is left out)."""
    events = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                events.append(auto.EngineEvent.from_json(json.loads(line)))
            except ValueError:
                continue
    return events


def summarize(events: Iterable[auto.EngineEvent]) -> EngineRun:
    run = EngineRun()
    for event in events:
        if event.summary_event is not None:
            run.changes = {op: n for op, n in (event.summary_event.resource_changes or {}).items()
                           if n and op not in READ_OPS}
        diagnostic = event.diagnostic_event
        if diagnostic is not None and diagnostic.severity == "error":
            run.errors.append(_error(diagnostic))
        policy = event.policy_event
        if policy is not None and policy.enforcement_level == MANDATORY:
            run.errors.append(_violation(policy))
    return run


def cut(lines: list[str]) -> list[str]:
    """An error's lines: every "- " line (a problem of a list), the others up to ERROR_LINES, and
    how many were cut, if any, so that a traceback cannot bury the summary."""
    kept = [line for number, line in enumerate(lines) if number < ERROR_LINES or line.lstrip().startswith("- ")]
    dropped = len(lines) - len(kept)
    return kept + ([f"({dropped} more lines in the engine's output above)"] if dropped else [])


def _error(diagnostic: auto.DiagnosticEvent) -> str:
    """'<resource name>: <message>'; a program's traceback is cut to its last line, the exception."""
    name = diagnostic.urn.rsplit("::", 1)[-1] if diagnostic.urn else "the program"
    lines = [line.rstrip() for line in diagnostic.message.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Program failed with an unhandled exception"):
        lines = lines[-1:]
    return f"{name}: " + "\n  ".join(cut(lines))


def _violation(policy: auto.PolicyEvent) -> str:
    """'<resource name>: policy <pack>/<policy>: <message>' (the message names stack and setting)."""
    name = policy.resource_urn.rsplit("::", 1)[-1] if policy.resource_urn else "the stack"
    lines = [line.strip() for line in policy.message.strip().splitlines() if line.strip()]
    return f"{name}: policy {policy.policy_pack_name}/{policy.policy_name}: " + "\n  ".join(cut(lines))
