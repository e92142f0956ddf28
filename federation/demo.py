"""Watch the federation come up on this machine: two local Kubernetes control planes (dc1, dc2),
``python -m federation up`` with the real Pulumi engine, providers and Consul chart, then
``python -m federation verify --kubernetes-only``. The clusters stay up until Ctrl-C (or the demo
exits right after verify with --down). On a fresh machine run ``tools/demo.sh``, which creates
.venv and builds the tools first.

What is simulated (the integration tier's stand-ins, tests/integration): no kubelet, controller or
Consul process runs. A harness plays the kubelets and controllers (workloads become ready when
everything their pods reference exists), Consul's Jobs (by their effects on the Kubernetes API),
the connect injector's webhooks and a load balancer; no Consul server runs, so there is no WAN
gossip and verify's Consul checks are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import operate

DATACENTERS = ("dc1", "dc2")
SIMULATED = """\
SIMULATED HERE: no Consul process runs, and no kubelet or controller either. Real: the Pulumi engine
and providers, the Consul Helm chart, two kube-apiservers with etcd (RBAC, admission webhooks).
Played by a harness: pods becoming ready, Consul's Jobs (tls-init, create-federation-secret,
server-acl-init, ...) by their effects on the API, the connect injector's webhooks, the load
balancer. So `verify` runs with --kubernetes-only: WAN gossip is not exercised.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--down", action="store_true",
                        help="stop the control planes right after verify instead of waiting for Ctrl-C")
    parser.add_argument("--workdir", help="directory for the control planes, state and kubeconfig "
                                          "(default: a new /tmp/fed-demo-* directory; the path must stay short)")


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _federation(project_dir: Path, env: dict[str, str], *args: str) -> int:
    """A ``python -m federation`` command as a user types it, its output on this terminal."""
    command = [sys.executable, "-m", "federation", *args, "--project-dir", str(project_dir)]
    print("$ python -m federation " + " ".join(args) + f" --project-dir {project_dir}", flush=True)
    return subprocess.run(command, cwd=operate.REPO_ROOT, env=env).returncode


def run(args: argparse.Namespace) -> int:
    integration = os.path.join(operate.REPO_ROOT, "tests", "integration")
    sys.path[:0] = [integration, os.path.join(operate.REPO_ROOT, "tests")]
    from localcluster.controlplane import ControlPlane, write_kubeconfig
    from federation_env import ENDPOINT_ADDRESS, LB_ADDRESS, Project
    from harness import ClusterHarness
    from real_tools import ensure

    print(SIMULATED, flush=True)
    _step("tools (tools/ensure.sh: cached builds of pulumi, providers, helm, chart, etcd, kube-apiserver)")
    tools = {**ensure("chart"), **ensure("engine"), **ensure("cluster")}
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fed-demo-", dir="/tmp")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not args.workdir:  # registered first, so it runs after the planes have stopped
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        _step(f"control planes {', '.join(DATACENTERS)} in {workdir}")
        planes = {dc: stack.enter_context(ControlPlane(dc, workdir, tools["ETCD"], tools["KUBE_APISERVER"]))
                  for dc in DATACENTERS}
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", list(planes.values()))
        harness = {dc: stack.enter_context(ClusterHarness(kubeconfig, dc, planes[dc].egress_socket,
                                                          lb_ip=LB_ADDRESS[dc],
                                                          apiserver_endpoint_ip=ENDPOINT_ADDRESS[dc]))
                   for dc in DATACENTERS}
        project = Project(workdir, tools, kubeconfig)
        for dc in DATACENTERS:
            project.write_stack(dc)
        env_file = workdir / "demo.env"
        env_file.write_text("".join(f"export {k}={project.env[k]}\n" for k in sorted(project.env)
                                    if k.startswith("PULUMI_") or k == "PATH"))
        env_file.chmod(0o600)
        print(f"project: {project.dir} (stack files Pulumi.dc1.yaml, Pulumi.dc2.yaml; "
              f"state in {project.state})", flush=True)

        _step("up: the primary first, then the secondaries")
        started = time.monotonic()
        up = _federation(project.dir, project.env, "up")
        print(f"(up took {time.monotonic() - started:.0f} s)", flush=True)
        _step("verify (Kubernetes checks; no Consul runs here)")
        verified = _federation(project.dir, project.env, "verify", "--kubernetes-only")
        played_errors = {dc: h.errors() for dc, h in harness.items() if h.errors()}
        if played_errors:
            print(f"the harness reported errors: {played_errors}", flush=True)

        _step("look around")
        print(f"kubeconfig: {workdir / 'kubeconfig'} (contexts {', '.join(DATACENTERS)})\n"
              f"  kubectl --kubeconfig {workdir / 'kubeconfig'} --context dc2 -n consul get "
              "statefulsets,deployments,services,secrets,proxydefaults\n"
              f"pulumi: source {env_file} && cd {project.dir} && pulumi stack output -s dc1\n"
              f"again:  python -m federation verify --kubernetes-only --project-dir {project.dir} "
              f"(after sourcing {env_file.name})", flush=True)
        if up != 0:
            print("\nup FAILED (see above)", flush=True)
            return operate.EXIT_FAILED
        if not args.down:
            print("\nThe control planes stay up until Ctrl-C.", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("\nstopping the control planes", flush=True)
        return verified
