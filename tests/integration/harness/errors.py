"""The harness's exceptions."""

from __future__ import annotations

__all__ = ["HarnessError", "NotYet", "StopNow"]


class HarnessError(RuntimeError):
    """What a Job's command would exit non-zero with (the Job is failed with this message)."""


class NotYet(Exception):
    """A side effect or a pod start must wait for something (retried until ``job_timeout``)."""


class StopNow(Exception):
    """The harness is stopping: abandon the Job without touching it."""
