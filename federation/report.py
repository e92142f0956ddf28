"""The diff as text for a terminal, or as Markdown for a pull request comment.

The Markdown starts with MARKER, so a workflow can find its own comment and edit it in place, and
keeps within GitHub's comment size by cutting each stack's section to a share of BUDGET.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Optional

from .diff_result import AUTH_HOST_PLACEHOLDER, Result, StackDiff
from .objdiff import MISSING, FieldChange, Hidden, ObjectChange, scalars

MARKER = "<!-- consul-federation-diff -->"
BUDGET = 60000  # characters of stack sections; GitHub refuses comments over 65536
VALUE_LIMIT = 300  # characters of one value (a whole added CRD version is 20000)
TEXT_LINES_LIMIT = 40  # lines of one multi-line value's diff in Markdown
_SYMBOL = {"added": "+", "removed": "-", "changed": "~"}


def _value(value: Any, limit: Optional[int]) -> str:
    if isinstance(value, Hidden):
        return str(value)
    shown = json.dumps(value, sort_keys=True, default=str)
    if limit is not None and len(shown) > limit:
        return f"{shown[:limit]}... ({len(shown) - limit} more characters)"
    return shown


def _lines(value: Any) -> Optional[list[str]]:
    """A multi-line string's lines, or a list of scalars' items; None for anything else."""
    if isinstance(value, str) and "\n" in value:
        return value.splitlines()
    if isinstance(value, list) and value and scalars(value):
        return [json.dumps(v, default=str) for v in value]
    return None


def _as_lines(value: Any) -> list[str]:
    """Lines to diff against a multi-line string or a list, whatever the other side holds."""
    lines = _lines(value)
    if lines is not None:
        return lines
    if value is MISSING or value == []:
        return []
    return [value if isinstance(value, str) else json.dumps(value, default=str)]


def _line_diff(old: Any, new: Any, limit: Optional[int]) -> list[str]:
    """A multi-line string's or a list's change as -/+ lines with one line of context."""
    before, after = _as_lines(old), _as_lines(new)
    lines = [line for line in difflib.unified_diff(before, after, n=1, lineterm="")
             if not line.startswith(("---", "+++"))]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f" ... {len(lines) - limit} more lines"]
    return lines


def _field_lines(change: FieldChange, markdown: bool) -> list[str]:
    """One field: `path: old -> new` in text; -/+ lines in Markdown, which GitHub colours."""
    limit = VALUE_LIMIT
    indent = "    " if markdown else "      "
    old, new, path = change.old, change.new, change.path
    if isinstance(old, Hidden) and isinstance(new, Hidden):
        return [f"{'!' if markdown else ' '}{indent[1:]}{path}: changed {new}"]
    if _lines(old) is not None or _lines(new) is not None:
        body = _line_diff(old, new, TEXT_LINES_LIMIT if markdown else None)
        what = "list" if isinstance(old, list) or isinstance(new, list) else "text"
        if markdown:  # the -/+ of each line in the first column, where GitHub colours it
            signed = [(line[:1], line[1:]) if line[:1] in "+- " else (" ", line) for line in body]
            return [f" {indent[1:]}{path}: ({what})"] + [f"{sign}{indent}  {rest}" for sign, rest in signed]
        return [f"{indent}{path}: ({what})"] + [f"{indent}  {line}" for line in body]
    if old is MISSING:
        return [f"+{indent[1:]}{path}: {_value(new, limit)}" if markdown else f"{indent}{path}: added {_value(new, limit)}"]
    if new is MISSING:
        return [f"-{indent[1:]}{path}: {_value(old, limit)}" if markdown else f"{indent}{path}: removed (was {_value(old, limit)})"]
    if markdown:
        return [f"-{indent[1:]}{path}: {_value(old, limit)}", f"+{indent[1:]}{path}: {_value(new, limit)}"]
    return [f"{indent}{path}: {_value(old, limit)} -> {_value(new, limit)}"]


def _object_lines(change: ObjectChange, markdown: bool) -> list[str]:
    hook = f"  (helm hook: {change.hook})" if change.hook else ""
    head = f"{_SYMBOL[change.op]} {change.key}{hook}" if markdown else f"  {_SYMBOL[change.op]} {change.key}{hook}"
    return [head] + [line for f in change.fields for line in _field_lines(f, markdown)]


def counts(stack: StackDiff) -> str:
    by_op = {op: sum(1 for c in stack.changes if c.op == op) for op in ("changed", "added", "removed")}
    return ", ".join(f"{n} {op}" for op, n in by_op.items() if n)


def _summary(stack: StackDiff) -> str:
    if stack.errors:
        return "error"
    if not stack.base_exists:
        return f"new stack, {counts(stack)}"
    if not stack.head_exists:
        return f"stack removed, {counts(stack)}"
    changed = [k for k, v in stack.secrets.items() if v]
    secrets = f"encrypted {', '.join(changed)} changed" if changed else ""
    return ", ".join(part for part in (counts(stack), secrets) if part) or "no change"


def _notes(stack: StackDiff) -> list[str]:
    notes = []
    sides = [s for s in (stack.base, stack.head) if s is not None]
    roles = list(dict.fromkeys(s.role for s in sides))  # base first
    versions = [s.chart_version for s in sides]
    if len(set(versions)) > 1:
        notes.append(f"chart {versions[0]} -> {versions[1]}")
    elif versions:
        notes.append(f"chart {versions[0]}")
    if stack.secrets:
        notes.append("set with --secret, so not decrypted and not rendered (both sides use the "
                     "defaults; review with pulumi config get KEY): "
                     + ", ".join(f"{k} ({'changed' if v else 'unchanged'})" for k, v in stack.secrets.items()))
    if any(s.auth_host_derived for s in sides):
        notes.append(f"k8sAuthMethodHost is derived from the cluster at deploy time; rendered as "
                     f"{AUTH_HOST_PLACEHOLDER}")
    return [" -> ".join(roles)] + notes if roles else notes


def text(result: Result) -> str:
    lines = [f"Consul chart objects: {result.base_label} -> {result.head_label}", ""]
    lines += [f"{'error: ' if n == 0 else '  '}{line}" for e in result.errors for n, line in enumerate(e.splitlines())]
    for stack in result.stacks:
        notes = _notes(stack)
        lines.append(f"{stack.name}: {_summary(stack)}" + (f"  [{'; '.join(notes)}]" if notes else ""))
        lines += [f"  {line}" for error in stack.errors for line in error.splitlines()]
        lines += [line for change in stack.changes for line in _object_lines(change, False)]
    if not result.stacks and not result.errors:
        lines.append("no stacks")
    return "\n".join(lines) + "\n"


def _fenced(lines: list[str], language: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}"] + lines + [fence]


def _cut(lines: list[str], budget: int, stack: str) -> list[str]:
    """The lines that fit in `budget` characters, and a note of what was left out."""
    kept, used = [], 0
    for line in lines:
        used += len(line) + 1
        if used > budget:
            return kept + [f"... {len(lines) - len(kept)} more lines: run "
                           f"`python -m federation diff --stacks {stack}` for all of them"]
        kept.append(line)
    return kept


def markdown(result: Result) -> str:
    out = [MARKER, "### Consul chart objects per cluster", "",
           f"`{result.base_label}` → `{result.head_label}`: what each stack's Helm Release would "
           "create, delete and change, rendered by `helm template` from each side's chart and the "
           "program's values code (no cluster, no Pulumi backend). Secret data is never shown.", ""]
    out += [f"> {'**Error:** ' if n == 0 else ''}{line}" for e in result.errors
            for n, line in enumerate(e.splitlines())]
    unchanged = [s.name for s in result.stacks if not s.errors and not s.changes]
    shown = [s for s in result.stacks if s.errors or s.changes]
    for stack in shown:
        notes = _notes(stack)
        summary = f"<b>{stack.name}</b>: {_summary(stack)}" + (f" ({'; '.join(notes)})" if notes else "")
        if stack.errors:
            body = _fenced([line for e in stack.errors for line in e.splitlines()], "text")
            out += [f"<details open><summary>:x: {summary}</summary>", ""] + body + ["", "</details>", ""]
            continue
        lines = [line for change in stack.changes for line in _object_lines(change, True)]
        body = _fenced(_cut(lines, BUDGET // len(shown), stack.name), "diff")
        out += [f"<details><summary>{summary}</summary>", ""] + body + ["", "</details>", ""]
    if unchanged:
        out.append("No change: " + ", ".join(f"`{name}`" for name in unchanged) + ".")
    if not result.stacks and not result.errors:
        out.append("No stacks.")
    return "\n".join(out).rstrip("\n") + "\n"
