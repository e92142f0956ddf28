"""The harness's exceptions."""

from __future__ import annotations

import urllib3

__all__ = ["HarnessError", "NotYet", "StopNow", "TRANSPORT_ERRORS"]

# A connection to the API server dropped, refused or timed out: a loop tries again next pass.
# Anything else a loop meets reaches the test through ``ClusterHarness.errors()``.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class HarnessError(RuntimeError):
    """What a Job's command would exit non-zero with (the Job is failed with this message)."""


class NotYet(Exception):
    """A side effect or a pod start must wait for something (retried until ``job_timeout``)."""


class StopNow(Exception):
    """The harness is stopping: abandon the Job without touching it."""
