"""The team's policy pack (``policy/`` of the project) on ``python -m federation up`` and
``preview``: applied by default, ``--no-policy`` turns it off for one run.

A missing pack refuses the run rather than skipping it: a guardrail that quietly goes away with a
moved directory guards nothing.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

PACK_DIR = "policy"
PACK_FILE = "PulumiPolicy.yaml"


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-policy", action="store_true",
                        help=f"do not run the project's policy pack ({PACK_DIR}/, applied by default)")


def packs(args: argparse.Namespace) -> tuple[list[str], Optional[str]]:
    """(the policy pack directories to run, None), or ([], why the run is refused)."""
    if args.no_policy:
        return [], None
    pack = os.path.join(os.path.abspath(args.project_dir), PACK_DIR)
    if not os.path.isfile(os.path.join(pack, PACK_FILE)):
        return [], (f"no policy pack at {pack} (no {PACK_FILE}): restore the project's {PACK_DIR}/ "
                    "directory, or run with --no-policy to go without its rules")
    return [pack], None
