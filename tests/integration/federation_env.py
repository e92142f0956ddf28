"""Three datacenters on three local control planes, and the Pulumi CLI to drive this project.

Shared by the integration tests that run the real engine (test_stacks.py, and the fault and
operator tests that build on it). See test_stacks.py for what is real and what is played.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kubernetes import client, config

from federation.helm_records import ClusterHelmRecords
from localcluster.controlplane import ControlPlane, write_kubeconfig
from localcluster.project import PRIMARY_REF, ScratchProject
from harness import ClusterHarness
from pulumi_mocks import ROOT
from localcluster.tools import consul_charts, ensure

CHART = "2.0.3"
NAMESPACE = "consul"
DATACENTERS = ("dc1", "dc2", "dc3")
# The federation secret's keys whose values must never reach the state in plaintext.
SECRET_KEYS = ("gossipEncryptionKey", "caKey", "replicationToken")
# What the harness plays for each cluster: the load balancer's ingress address (loopback; nothing
# dials it) and the default/kubernetes Endpoints address (RFC 5737 documentation range, a
# placeholder the program copies into k8sAuthMethodHost; the API server's certificate names it,
# and the harness reaches it there only at the server's loopback address, never dialling it).
LB_ADDRESS = {"dc1": "127.0.1.1", "dc2": "127.0.1.2", "dc3": "127.0.1.3"}
ENDPOINT_ADDRESS = {"dc1": "192.0.2.11", "dc2": "192.0.2.12", "dc3": "192.0.2.13"}
# dc1: the default LoadBalancer gateway; dc2: NodePort; dc3: a static address in front of it.
GATEWAYS: dict[str, dict[str, Any]] = {
    "dc1": {},
    "dc2": {"serviceType": "NodePort", "nodePort": 30002},
    "dc3": {"serviceType": "ClusterIP", "wanAddress": "dc3-gateway.consul.test"},
}
# The integration planes run no pods, so no node address is known there: dc2's NodePort gets a
# static name too, or verify could not see its address. (The consul tier's dc2 has real pods,
# and a name its clusters' DNS does not know would cut it off.)
PLANE_GATEWAYS: dict[str, dict[str, Any]] = {
    **GATEWAYS, "dc2": {**GATEWAYS["dc2"], "wanAddress": "dc2-gateway.consul.test"}}


def record_timing(command: str, stack: str | None, seconds: float) -> None:
    """bench/run.sh sets CONSUL_FEDERATION_TIMINGS to collect how long each CLI command took."""
    path = os.environ.get("CONSUL_FEDERATION_TIMINGS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"command": command, "stack": stack, "seconds": round(seconds, 1)}) + "\n")


def digest(data: Any) -> str:
    """A SHA-256 of JSON data: what the tests compare of a secret, never the secret."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class Timings(dict):
    """Seconds per measured step; each is printed as it comes (`pytest -s`) for the figures."""

    def __call__(self, name: str, seconds: float) -> float:
        self[name] = round(seconds, 1)
        print(f"\n[timing] {name}: {seconds:.1f} s")
        return seconds


class Project(ScratchProject):
    """A working copy of the project (same code) with test stack files, and the CLI to drive it."""

    def __init__(self, workdir: Path, tools: dict[str, str], kubeconfig: Path, name: str = "project",
                 state: Path | None = None, passphrase: str | None = None, chart: str = CHART,
                 gateways: dict[str, dict[str, Any]] = GATEWAYS, backend_url: str | None = None):
        super().__init__(workdir, tools, name, state, passphrase, backend_url)
        self.kubeconfig = kubeconfig
        self.chart = consul_charts()[chart]
        self.gateways = gateways
        self.overrides: dict[str, dict[str, Any]] = {}

    def sibling(self, workdir: Path, name: str) -> "Project":
        """Another working copy on the same state backend and passphrase (its own code may differ)."""
        other = Project(workdir, self.tools, self.kubeconfig, name, self.state, self.passphrase,
                        gateways=self.gateways, backend_url=None if self.state else self.backend_url)
        other.chart = self.chart
        other.overrides = self.overrides
        return other

    def config(self, stack: str) -> dict[str, Any]:
        """The stack's consul-federation settings, as a user of a real cluster would write them."""
        common = {"kubeContext": stack, "kubeconfig": str(self.kubeconfig), "chartPath": self.chart}
        gateway = {"meshGateway": self.gateways[stack]} if self.gateways[stack] else {}
        if stack == "dc1":
            settings = {"role": "primary", "datacenter": "dc1", **common, **gateway}
        else:
            settings = {"role": "secondary", "datacenter": stack, **common, **gateway,
                        "primaryStack": PRIMARY_REF}
        return {**settings, **self.overrides.get(stack, {})}

    def write_stack(self, stack: str) -> None:
        self.write_stack_settings(stack, self.config(stack))

    def init_stack(self, stack: str) -> None:
        self.write_stack(stack)
        self.run("stack", "init", stack)
        self.write_stack(stack)  # stack init added the encryption salt; keep our config

    def run(self, *args: str, stack: str | None = None, check: bool = True,
            timeout: int = 900) -> subprocess.CompletedProcess:
        cmd = [shutil.which("pulumi", path=self.env["PATH"]) or "pulumi", *args, "--non-interactive"]
        if stack:
            cmd += ["--stack", stack]
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        record_timing(" ".join(args), stack, done.seconds)  # type: ignore[attr-defined]
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[1:])} failed ({done.returncode}):\n"
                                 f"{done.stdout[-6000:]}\n{done.stderr[-4000:]}")
        return done

    def outputs(self, stack: str, show_secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "output", "--json"] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.run(*args, stack=stack).stdout)


@dataclass
class Federation:
    """The clusters, their harnesses and the project, for one test module."""

    project: Project
    kubeconfig: Path
    planes: dict[str, ControlPlane]
    harness: dict[str, ClusterHarness]
    workdir: Path

    def api(self, context: str) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=context)

    def core(self, context: str) -> client.CoreV1Api:
        return client.CoreV1Api(self.api(context))

    def secret_data(self, context: str, name: str) -> dict[str, str]:
        """A secret's data map as the API server returns it: base64 text, untouched."""
        raw = self.core(context).read_namespaced_secret(name, NAMESPACE, _preload_content=False)
        return json.loads(raw.data)["data"]

    def helm_values(self, context: str, release: str = "consul") -> dict[str, Any]:
        """The user-supplied values of the newest revision, from Helm's own release record."""
        return ClusterHelmRecords(self.core(context)).newest(NAMESPACE, release)["config"]

    def auth_method_host(self, context: str) -> str:
        """What the program derives for k8sAuthMethodHost from the played Endpoints."""
        return f"https://{ENDPOINT_ADDRESS[context]}:{self.planes[context].port}"

    def namespaces(self, context: str) -> list[str]:
        return [n.metadata.name for n in self.core(context).list_namespace().items]

    def helm_history(self, context: str, release: str = "consul") -> list[tuple[int, str]]:
        """(revision, status) of every revision Helm keeps for the release, oldest first."""
        return ClusterHelmRecords(self.core(context)).revisions(NAMESPACE, release)

    def cli(self, *args: str, timeout: int = 2400) -> subprocess.CompletedProcess:
        """`python -m federation <args>` on this project, as an operator runs it; `.seconds` is
        how long it took."""
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "federation", *args, "--project-dir", str(self.project.dir)],
                              cwd=ROOT, env=self.project.env, capture_output=True, text=True, timeout=timeout)
        done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        return done

    def errors(self) -> dict[str, list[str]]:
        return {dc: h.errors() for dc, h in self.harness.items() if h.errors()}

    def assert_no_plaintext(self, secrets_seen: list[dict[str, str]], stacks: tuple[str, ...],
                            extra: frozenset[str] = frozenset()) -> None:
        """No federation secret in `secrets_seen` (data maps as the API server returns them) and
        no string of `extra` appears in the state files or in `pulumi stack export` of `stacks`:
        neither the values, their base64 text, nor a line of the CA key's PEM body."""
        assert secrets_seen
        needles = set(extra)
        for data in secrets_seen:
            for name in SECRET_KEYS:
                plain = base64.b64decode(data[name]).decode()
                needles |= {plain, data[name]} | {line for line in plain.splitlines() if len(line) > 40}
        files = list(self.project.state.rglob("*.json")) + list(self.project.state.rglob("*.json.gz"))
        assert files
        texts = [self.project.run("stack", "export", stack=s).stdout for s in stacks]
        texts += [gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text() for p in files]
        for text in texts:
            for needle in needles:
                assert needle not in text


@contextlib.contextmanager
def federation(workdir: Path, datacenters: tuple[str, ...] = DATACENTERS,
               backend_url: str | None = None) -> Iterator[Federation]:
    """Control planes (one kubeconfig context per datacenter, dc1, dc2, dc3 by default), a harness
    on each, and a project whose stacks point at them (its state in a file backend of its own, or
    at `backend_url`)."""
    tools = {**ensure("chart"), **ensure("engine"), **ensure("cluster")}
    with contextlib.ExitStack() as stack:
        planes = {dc: stack.enter_context(ControlPlane(dc, workdir, tools["ETCD"], tools["KUBE_APISERVER"],
                                                       extra_sans=[ENDPOINT_ADDRESS[dc]]))
                  for dc in datacenters}
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", list(planes.values()))
        harness = {dc: stack.enter_context(ClusterHarness(
            kubeconfig, dc, planes[dc].egress_socket,
            lb_ip=LB_ADDRESS[dc], apiserver_endpoint_ip=ENDPOINT_ADDRESS[dc]))
            for dc in datacenters}
        yield Federation(Project(workdir, tools, kubeconfig, gateways=PLANE_GATEWAYS, backend_url=backend_url),
                         kubeconfig, planes, harness, workdir)
