"""`python -m federation affected`: the stacks a change touches, as a JSON list (a CI matrix).

A stack file's change touches that stack; the program's code and dependencies, and the policy pack
(its rules decide whether a preview passes), touch every stack;
a primary's change also touches the secondaries that join it, whose values embed its datacenter.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from typing import Iterable, Optional

from . import revision, stacks

# Paths (fnmatch patterns, from the repository root) whose change touches every stack.
PROGRAM_PATHS = ("components/*", "__main__.py", "requirements*.txt", "Pulumi.yaml", "policy/*")
_STACK_PATH = re.compile(r"^Pulumi\.(?P<stack>.+)\.yaml$")


def affected_stacks(changed: Iterable[str], primaries: dict[str, Optional[str]]) -> list[str]:
    """Stacks (keys of `primaries`: stack -> the stack its primaryStack names, or None) that the
    changed paths touch; a deleted primary's secondaries included."""
    changed = list(changed)
    if any(fnmatch.fnmatchcase(path, pattern) for path in changed for pattern in PROGRAM_PATHS):
        return sorted(primaries)
    touched = {m.group("stack") for m in map(_STACK_PATH.match, changed) if m}
    joined = {name for name, primary in primaries.items() if primary in touched}
    return sorted((touched & set(primaries)) | joined)


def _primaries(project: str) -> dict[str, Optional[str]]:
    """stack -> its primary's stack name; a file that cannot be read has none."""
    found: dict[str, Optional[str]] = {}
    for name in stacks.stack_names(project):
        try:
            found[name] = stacks.read_stack(project, name).primary_name
        except stacks.StackFileError:
            found[name] = None
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", help="git revision to compare with (default: origin/main if it exists, else HEAD)")
    parser.add_argument("--repo", default=".", help="a directory in the git repository (default: .)")


def run(args: argparse.Namespace) -> int:
    try:
        root = revision.toplevel(args.repo)
        base = revision.commit_of(root, args.base or revision.default_base(root))
        changed = revision.changed_paths(root, base)
    except revision.GitError as exc:
        print(f"federation affected: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(affected_stacks(changed, _primaries(root))))
    return 0
