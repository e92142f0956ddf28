"""A reference to a Pulumi stack (``stack``, ``org/stack`` or ``org/project/stack``), parsed once.

Pulumi names a stack by up to three parts; a missing organization is ``organization`` in a
file backend, a missing project is the current one. The program (``primaryStack``), the
operator commands (which stack is whose primary) and recovery (where a file backend keeps a
stack's locks) all need the parts, so they split a reference here and nowhere else.

Stdlib only: the pull request workflow's first job reads stack files with PyYAML alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# The organization a file backend (and `pulumi login --local`) gives every stack.
DEFAULT_ORG = "organization"

_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
EXPECTED = "expected a stack reference such as organization/consul-federation/dc1"


@dataclass(frozen=True)
class StackRef:
    """A stack reference's parts; None for those the reference leaves out."""

    stack: str
    project: Optional[str] = None
    org: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> "StackRef":
        """The parts of ``text``; ValueError (saying what is expected) if it is no reference."""
        parts = text.split("/") if isinstance(text, str) else []
        if not 1 <= len(parts) <= 3 or not all(_PART.match(p) for p in parts):
            raise ValueError(f"{text!r}: {EXPECTED}")
        if len(parts) == 3:
            return cls(parts[2], parts[1], parts[0])
        if len(parts) == 2:
            return cls(parts[1], None, parts[0])
        return cls(parts[0])

    def qualified(self, project: str) -> str:
        """``org/project/stack``, the current `project` and the file backend's org filling in."""
        return f"{self.org or DEFAULT_ORG}/{self.project or project}/{self.stack}"

    def names(self, project: str, stack: str) -> bool:
        """Whether this reference names `stack` of `project` (a left-out project is this one)."""
        return self.stack == stack and (self.project is None or self.project == project)


def problem(text: str) -> Optional[str]:
    """What is wrong with ``text`` as a stack reference, or None."""
    try:
        StackRef.parse(text)
    except ValueError:
        return EXPECTED
    return None
