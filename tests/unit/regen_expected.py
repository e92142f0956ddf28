"""Rewrite tests/unit/expected/<case>.yaml from the program as it is now, for every stack case.

Run on purpose only (`.venv/bin/python tests/unit/regen_expected.py`), after a change that is
meant to change the Release; then review `git diff tests/unit/expected` by eye against the
Consul docs facts (shared reference NOTES.md) before committing. The test run never writes them.
"""

from __future__ import annotations

import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), os.path.dirname(HERE)]

from pulumi_mocks import Run, run_case  # noqa: E402
from stack_matrix import CASES  # noqa: E402

EXPECTED_DIR = os.path.join(HERE, "expected")
RELEASE = "kubernetes:helm.sh/v3:Release"
HEADER = ("# The Helm Release of stack case {id!r} (tests/stack_matrix.py), as the program registers it.\n"
          "# Written by tests/unit/regen_expected.py and reviewed by eye; test_program.py compares exactly.\n")


def release_document(run: Run) -> dict:
    """The Release's inputs, its chart values apart."""
    inputs = dict(run.one(RELEASE).inputs)
    values = inputs.pop("values")
    return {"release": inputs, "values": values}


def expected_path(case_id: str) -> str:
    return os.path.join(EXPECTED_DIR, f"{case_id}.yaml")


def main() -> None:
    os.makedirs(EXPECTED_DIR, exist_ok=True)
    for c in CASES:
        with open(expected_path(c.id), "w", encoding="utf-8") as handle:
            handle.write(HEADER.format(id=c.id))
            yaml.safe_dump(release_document(run_case(c)), handle, sort_keys=True, default_flow_style=False)
        print(expected_path(c.id))


if __name__ == "__main__":
    main()
