"""The unit tier touches no network: the program's reachability check of each cluster's API
server (``components.kube_cluster.probe_api_server``) is replaced by ``Probes``, which answers
"reachable" unless a test sets an answer for a server URL, and records every call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest

from components import kube_cluster


@dataclass
class Probes:
    calls: list[tuple[str, float]] = field(default_factory=list)  # (server, timeout)
    answers: dict[str, str] = field(default_factory=dict)  # server -> why it is unreachable

    def __call__(self, server: str, timeout: float) -> Optional[str]:
        self.calls.append((server, timeout))
        return self.answers.get(server)


@pytest.fixture(autouse=True)
def probes(monkeypatch) -> Probes:
    fake = Probes()
    monkeypatch.setattr(kube_cluster, "probe_api_server", fake)
    return fake
