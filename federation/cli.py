"""What every ``python -m federation`` command of the stacks shares: exit codes, the
--project-dir and --stacks options, and how a refused plan or a missing pulumi CLI is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, Optional

from pulumi import automation as auto

from .stack_plan import Plan, Refused, plan

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a command gets when the pulumi CLI is not on PATH or too old.
CLI_MISSING = (FileNotFoundError, auto.errors.InvalidVersionError)


def add_arguments(parser: argparse.ArgumentParser, parallel: bool = True, stacks: bool = True) -> None:
    parser.add_argument("--project-dir", default=REPO_ROOT,
                        help="directory of Pulumi.yaml and the Pulumi.<stack>.yaml files (default: the repository root)")
    if stacks:
        parser.add_argument("--stacks", nargs="+", metavar="STACK", help="only these stacks (default: every stack file)")
    if parallel:
        parser.add_argument("--parallel", type=int, default=4, metavar="N",
                            help="stacks run at once within a stage (default: 4)")


def plan_or_report(command: str, project_dir: str, only: Optional[Iterable[str]] = None,
                   nothing: str = "nothing was run") -> Optional[Plan]:
    """The plan, or None after printing every reason it was refused (exit with EXIT_REFUSED)."""
    try:
        return plan(project_dir, only)
    except Refused as exc:
        print(f"federation {command}: refused, {nothing}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def report_cli_missing(command: str, exc: BaseException) -> int:
    print(f"federation {command}: cannot run the pulumi CLI (put pulumi 3.x on PATH): {exc}", file=sys.stderr)
    return EXIT_FAILED
