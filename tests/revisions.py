"""Older revisions of this repository, which the diff's tests evaluate as pull request bases.

CI runs on a clone with the whole history. A missing commit fails the test that needs it (never a
skip: the test would prove nothing).
"""

from __future__ import annotations

import subprocess

from federation import revision
from pulumi_mocks import ROOT

FIRST = "fc96c937c72dc11cc92d4cc5e1e2569828ea1f9b"  # the first commit: no OBJECT_KEYS yet
LAST_BEFORE_SEAM = "8d5a18b61b5ee97a706dcda93c2b337d2c8952f0"  # the last without components/evaluation.py
BEFORE_SEAM = (FIRST, LAST_BEFORE_SEAM)


def export(commit: str, dest: str) -> None:
    """The tree of `commit` of this repository, as plain files in `dest`."""
    present = subprocess.run(["git", "-C", ROOT, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    assert present.returncode == 0, (f"commit {commit} is not in the clone at {ROOT}: these tests need the "
                                     "repository's history (a full clone, not a shallow one)")
    revision.export(ROOT, commit, dest)
