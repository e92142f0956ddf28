"""Local clusters whose pods run for real (``localcluster.federation``), for the consul tier:
one ``RealFederation`` per test module, with what the tests ask of it (helm, secrets, a project,
``python -m federation``, a diagnosis of every container). Everything runs in the network
namespace ``tools/netns.sh`` made for this run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from kubernetes import client, config

from federation_env import Project
from localcluster.federation import LocalFederation, local_federation
from localcluster.tools import consul_charts, ensure
from pulumi_mocks import ROOT

CHART = "1.2.1"
NAMESPACE = "consul"


class RealFederation(LocalFederation):
    @property
    def chart(self) -> str:
        return consul_charts()[CHART]

    def api(self, dc: str) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=dc)

    def core(self, dc: str) -> client.CoreV1Api:
        return client.CoreV1Api(self.api(dc))

    def helm(self, dc: str, *args: str, values: dict[str, Any] | None = None,
             timeout: int = 900) -> subprocess.CompletedProcess:
        """helm with this datacenter's context; ``values`` go in as a values file on stdin."""
        cmd = [self.tools["HELM"], "--kubeconfig", str(self.kubeconfig), "--kube-context", dc, *args]
        if values is not None:
            cmd += ["-f", "-"]
        started = time.monotonic()
        done = subprocess.run(cmd, input=json.dumps(values) if values is not None else None,
                              capture_output=True, text=True, timeout=timeout)
        done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        return done

    def secret(self, dc: str, name: str, namespace: str = NAMESPACE) -> dict[str, bytes]:
        s = self.core(dc).read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}

    def errors(self) -> dict[str, list[str]]:
        return {dc: c.errors() for dc, c in self.clusters.items() if c.errors()}

    def project(self) -> Project:
        """This project's code with stack files for every datacenter, on chart 1.2.1."""
        tools = {**self.tools, **ensure("engine")}
        return Project(self.workdir, tools, self.kubeconfig, chart=CHART)

    def cli(self, project: Project, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
        """``python -m federation <args>`` on the project, as an operator runs it."""
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "federation", *args, "--project-dir",
                               str(project.dir)], cwd=ROOT, env=project.env, capture_output=True,
                              text=True, timeout=timeout)
        done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        return done

    def diagnose(self) -> str:
        """Errors and the log tails of every container, for a failing assertion."""
        lines = []
        for dc, c in self.clusters.items():
            lines.append(f"=== {dc} errors: {c.errors()}")
            with c.kubelet.lock:
                runs = list(c.kubelet.runs.values())
            for r in runs:
                for container in r.init_containers + r.containers:
                    lines.append(f"--- {dc} {r.name}/{container.name} ({r.phase}, exit "
                                 f"{container.exit_code}, ready {container.ready}):\n"
                                 f"{r.log_tail(container.name, 12)}")
        return "\n".join(lines)


@contextlib.contextmanager
def real_federation(workdir: Path, datacenters: tuple[str, ...]) -> Iterator[RealFederation]:
    with local_federation(workdir, datacenters) as local:
        yield RealFederation(**vars(local))
