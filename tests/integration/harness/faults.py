"""Faults a test switches on: what the harness plays going wrong on purpose.

``ClusterHarness.fail_jobs({"consul-create-federation-secret"})``: from now on, every Job of
one of these names that the harness picks up fails as Kubernetes would fail a Job whose pod
exits non-zero on every try: the container exits before it has any side effect, the job
controller retries ``backoffLimit`` times (default 6), then sets ``failed`` =
``backoffLimit + 1`` with the conditions ``FailureTarget`` and ``Failed``, reason
``BackoffLimitExceeded``, message "Job has reached the specified backoff limit" (what the job
controller writes). Helm's hook wait reads exactly that (``job <name> failed:
BackoffLimitExceeded``). ``clear_faults()`` switches every fault off; Jobs created after that run
normally (a Job that already failed stays failed, as in a real cluster).

``ClusterHarness.hold_workloads({"consul-server"})``: those Deployments and StatefulSets stay
unready (as pods failing their readiness probe) until ``clear_faults()``, so Helm's wait is
surely under way when a test interrupts it.

These failures are the test's intent, so they are recorded as ``JobRecord(outcome="failed")``
but never in ``errors()``.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

__all__ = ["Faults", "BACKOFF_LIMIT_MESSAGE"]

BACKOFF_LIMIT_MESSAGE = "Job has reached the specified backoff limit"


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing_jobs: set[str] = set()
        self._held_workloads: set[str] = set()

    def fail_jobs(self, names: Iterable[str]) -> None:
        with self._lock:
            self._failing_jobs |= set(names)

    def hold_workloads(self, names: Iterable[str]) -> None:
        with self._lock:
            self._held_workloads |= set(names)

    def clear(self) -> None:
        with self._lock:
            self._failing_jobs.clear()
            self._held_workloads.clear()

    def job_failure(self, name: str) -> Optional[str]:
        """The reason Job ``name`` must fail now, or None."""
        with self._lock:
            if name in self._failing_jobs:
                return "fault injected by the test: the container exited with 1 on every try"
        return None

    def workload_hold(self, name: str) -> Optional[str]:
        """Why the Deployment or StatefulSet ``name`` must stay unready now, or None."""
        with self._lock:
            if name in self._held_workloads:
                return "held unready by the test: its pods never pass their readiness probe"
        return None
