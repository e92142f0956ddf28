"""What `python -m federation diff` found: the data that diff.py computes and report.py prints.

Its own module so that the two depend on it and not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import objdiff, render

EXIT_NO_CHANGE, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

# What a secondary's k8sAuthMethodHost is rendered as when the stack does not set it: the program
# derives it at deploy time from the cluster, which the diff does not talk to.
AUTH_HOST_PLACEHOLDER = "https://<derived-at-deploy>"


@dataclass
class Evaluated:
    """One stack on one side: what its program's code computed, and the chart it is rendered with."""

    role: str
    chart_version: str
    auth_host_derived: bool
    job: render.Job


@dataclass
class StackDiff:
    name: str
    base: Optional[Evaluated] = None  # None: no stack file at the base (or an error there)
    head: Optional[Evaluated] = None
    base_exists: bool = True
    head_exists: bool = True
    errors: list[str] = field(default_factory=list)
    changes: list[objdiff.ObjectChange] = field(default_factory=list)
    # Settings set with --secret on either side -> whether their encrypted text differs. The diff
    # cannot decrypt them: both sides are rendered with them left out (at their defaults).
    secrets: dict[str, bool] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes) or any(self.secrets.values())


@dataclass
class Result:
    base_label: str
    head_label: str
    stacks: list[StackDiff]
    errors: list[str] = field(default_factory=list)  # not tied to one stack

    @property
    def exit_code(self) -> int:
        if self.errors or any(s.errors for s in self.stacks):
            return EXIT_ERROR
        return EXIT_CHANGES if any(s.changed for s in self.stacks) else EXIT_NO_CHANGE
