"""The unit tier touches no network: the program's reachability check of each cluster's API
server (``components.kube_cluster.probe_api_server``) is replaced by ``Probes``, which answers
"reachable" unless a test sets an answer for a server URL, and records every call; the chart
repository it asks whether chartVersion exists is ``ChartRepository``.

The program resolves its kubeContext in the kubeconfig at preview: ``$KUBECONFIG`` is, for the
whole tier, a file defining the contexts the stack cases name (``CONTEXTS``), none with a server
(so no probe, and k8sAuthMethodHost derived from the Endpoints), unless a test writes its own."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import pytest

from components import chart_repo, kube_cluster
from components.settings import DEFAULT_CHART_REPO

from stack_matrix import write_contexts

# Every context a unit test's stack names without a kubeconfig of its own.
CONTEXTS = ("dc1", "dc2", "dc3", "east", "x")


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


class ChartRepository:
    """Plays the chart repositories the program asks for chartVersion's presence: HashiCorp's
    serves every x.y.z (each test picks its version freely); any other repository is refused, so
    that no unit test reaches a network. Tests of the check itself serve a real index on loopback."""

    EVERY_VERSION = [f"{a}.{b}.{c}" for a in range(4) for b in range(21) for c in range(31)]

    def __init__(self):
        self.asked: list[str] = []
        self.served = {DEFAULT_CHART_REPO: self.EVERY_VERSION}  # repository -> its consul versions

    def __call__(self, repo: str, timeout: float = 0) -> list[str]:
        self.asked.append(repo)
        assert repo in self.served, f"a unit test asked the chart repository {repo}, which the tier does not play"
        return self.served[repo]


@pytest.fixture(autouse=True)
def chart_repository(monkeypatch) -> ChartRepository:
    fake = ChartRepository()
    monkeypatch.setattr(chart_repo, "fetch_versions", fake)
    return fake


@pytest.fixture(scope="session", autouse=True)
def kubeconfig_file(tmp_path_factory) -> str:
    """The tier's kubeconfig, as $KUBECONFIG (session-wide: module-scoped runs need it too)."""
    path = write_contexts(tmp_path_factory.mktemp("kube") / "config", CONTEXTS)
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = path
    yield path
    if saved is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = saved


@pytest.fixture
def no_engine(monkeypatch):
    """Fails the test if anything would start the pulumi CLI."""
    from pulumi import automation as auto

    def refuse(*args, **kwargs):
        raise AssertionError("the pulumi CLI was started")
    monkeypatch.setattr(auto, "PulumiCommand", refuse)
