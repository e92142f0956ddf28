"""Watch a real federation form on this machine: two local clusters (dc1, dc2) whose pods run for
real, ``python -m federation up`` with the real Pulumi engine, providers and Consul chart 1.2.1,
then ``python -m federation verify`` (every row, Consul's included), ending with the primary's
own ``consul members -wan``. The clusters stay up until Ctrl-C (or the demo exits right after,
with --down).

Run it as ``tools/demo.sh``: that creates .venv, builds the tools, and runs this module as root in
a network namespace of its own (``tools/netns.sh``), where every address the clusters use lives.

Real: Consul 1.16.1 servers, the chart's Jobs, hooks and connect injector
(consul-k8s-control-plane 1.2.1), the mesh gateways (consul-dataplane 1.2.1 with Envoy), two
kube-apiservers with etcd, the Pulumi engine and providers, helm's chart. Played, each module of
``localcluster`` saying how: the kubelet (containers as processes in namespaces of their own),
Kubernetes' controllers (Jobs, ReplicaSets, StatefulSets, Endpoints, tokens), kube-proxy, cluster
DNS and the load balancer.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from .federation import LocalFederation, local_federation
from .project import PRIMARY_REF, ScratchProject
from .tools import REPO_ROOT, consul_charts, ensure

DATACENTERS = ("dc1", "dc2")
CHART = "1.2.1"
NAMESPACE = "consul"
# dc1's gateway is a LoadBalancer (the program's default), dc2's a NodePort.
GATEWAYS = {"dc1": {}, "dc2": {"meshGateway": {"serviceType": "NodePort", "nodePort": 30002}}}
# WAN membership settles for a while after the secondaries' gateways start.
VERIFY_PATIENCE_SECONDS = 300


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _federation(project: ScratchProject, *args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    """A ``python -m federation`` command as a user types it, its output on this terminal."""
    command = [sys.executable, "-m", "federation", *args, "--project-dir", str(project.dir)]
    if not quiet:
        print("$ python -m federation " + " ".join(args), flush=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=project.env, text=True,
                          capture_output=quiet)


def stack_settings(fed: LocalFederation, dc: str) -> dict:
    common = {"datacenter": dc, "kubeContext": dc, "kubeconfig": str(fed.kubeconfig),
              "chartPath": consul_charts()[CHART], **GATEWAYS[dc]}
    if dc == DATACENTERS[0]:
        return {"role": "primary", **common}
    return {"role": "secondary", "primaryStack": PRIMARY_REF, **common}


def verify_until_passing(project: ScratchProject) -> int:
    """verify, printed once it passes or the patience runs out; the failing rows in between are
    summed up on one line each try."""
    deadline = time.monotonic() + VERIFY_PATIENCE_SECONDS
    while True:
        done = _federation(project, "verify", "--json", quiet=True)
        rows = json.loads(done.stdout)["rows"] if done.stdout.strip().startswith("{") else []
        failing = [f"{r['datacenter']}: {r['check']}" for r in rows if r["status"] == "failed"]
        if done.returncode == 0 or time.monotonic() > deadline:
            return _federation(project, "verify").returncode
        print(f"  not yet ({len(failing)} failing: {'; '.join(failing[:3])}); again in 10 s", flush=True)
        time.sleep(10)


def consul_members_wan(fed: LocalFederation, dc: str) -> int:
    """``consul members -wan`` as the primary's server answers it: the consul binary of the
    cluster's pods, against the server's HTTPS port at its pod address, with the chart's CA and
    the bootstrap token (passed in the environment, never printed)."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(fed.kubeconfig), context=dc))
    pod_ip = core.read_namespaced_pod("consul-server-0", NAMESPACE).status.pod_ip
    ca = core.read_namespaced_secret("consul-ca-cert", NAMESPACE).data["tls.crt"]
    token = core.read_namespaced_secret("consul-bootstrap-acl-token", NAMESPACE).data["token"]
    ca_file = fed.workdir / "consul-ca.pem"
    ca_file.write_bytes(base64.b64decode(ca))
    env = {**os.environ, "CONSUL_HTTP_ADDR": f"https://{pod_ip}:8501", "CONSUL_CACERT": str(ca_file),
           "CONSUL_TLS_SERVER_NAME": f"server.{dc}.consul",
           "CONSUL_HTTP_TOKEN": base64.b64decode(token).decode()}
    print(f"$ consul members -wan   (in {dc}, against consul-server-0 at {pod_ip}:8501)", flush=True)
    return subprocess.run([os.path.join(fed.tools["CONSUL_BIN_DIR"], "consul"), "members", "-wan"],
                          env=env).returncode


def run(args: argparse.Namespace) -> int:
    print(__doc__.split("\n\n")[-1], flush=True)
    _step("tools (tools/ensure.sh: cached builds)")
    tools = ensure("engine")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fed-demo-", dir="/tmp")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not args.workdir:  # registered first, so it runs after the clusters have stopped
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        _step(f"clusters {', '.join(DATACENTERS)} in {workdir} (pods run for real)")
        fed = stack.enter_context(local_federation(workdir, DATACENTERS))
        project = ScratchProject(workdir, tools)
        for dc in DATACENTERS:
            project.write_stack_settings(dc, stack_settings(fed, dc))

        _step("up: the primary first, then the secondaries")
        started = time.monotonic()
        up = _federation(project, "up").returncode
        print(f"(up took {time.monotonic() - started:.0f} s)", flush=True)
        if up != 0:
            print("\nup FAILED (see above)", flush=True)
            return up
        _step("verify: Kubernetes and Consul, every datacenter")
        verified = verify_until_passing(project)
        print(f"(every row passed {time.monotonic() - started:.0f} s after up started)" if verified == 0
              else "\nverify FAILED (see above)", flush=True)
        _step("the primary's WAN pool, as Consul reports it")
        consul_members_wan(fed, DATACENTERS[0])
        errors = {dc: c.errors() for dc, c in fed.clusters.items() if c.errors()}
        if errors:
            print(f"the played controllers reported errors: {errors}", flush=True)
        _step("look around")
        print(f"kubeconfig: {fed.kubeconfig} (contexts {', '.join(DATACENTERS)}); the API servers and pods "
              f"are in this run's network namespace: prefix a command with nsenter -t {os.getpid()} -n\n"
              f"pulumi state: {project.state}", flush=True)
        if not args.down:
            print("\nThe clusters stay up until Ctrl-C.", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("\nstopping the clusters", flush=True)
        return verified or (1 if errors else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--down", action="store_true",
                        help="stop the clusters right after verify instead of waiting for Ctrl-C")
    parser.add_argument("--workdir", help="directory for the clusters, state and kubeconfig "
                                          "(default: a new /tmp/fed-demo-* directory; the path must stay short)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
