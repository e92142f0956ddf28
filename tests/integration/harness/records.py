"""What the harness did, for tests to assert on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["AdmissionRecord", "JobRecord"]


@dataclass
class AdmissionRecord:
    """One AdmissionReview the played webhook server answered."""
    path: str
    service: str  # "<namespace>/<service>" the request was addressed to (from SNI)
    kind: str
    group: str
    version: str
    name: str
    namespace: str
    operation: str
    uid: str
    allowed: bool
    message: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class JobRecord:
    """One Job the harness ran to its end."""
    namespace: str
    name: str
    commands: list[str]  # table keys of what it ran, e.g. "consul-k8s-control-plane tls-init"
    outcome: str  # "complete" | "failed"
    message: str = ""
    at: float = field(default_factory=time.time)
