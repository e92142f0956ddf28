"""Three datacenters from nothing to every ``verify`` row passing, on the consul tier's local
clusters (chart 1.2.1, every pod real: tests/consul/realenv.py), two ways, each on fresh clusters:

  ours      python -m federation up            (primary, then dc2 and dc3 in parallel)
  scripted  the seed's procedure with helm and API calls: namespace and gossip key, helm install
            dc1 --wait, ProxyDefaults global in dc1, dc1's federation secret created in dc2 and
            dc3, helm install dc2 --wait, then dc3 --wait

ProxyDefaults is applied again until the injector's webhook accepts it (right after helm install
--wait it may not answer yet), as a person re-runs kubectl apply. Both clocks stop when
``python -m federation verify`` (polled every 5 s) passes every row; the stacks exist in both
(verify reads their settings), only ``ours`` runs ``up``. Not a test: it
prints seconds. Run it as the tier runs: tools/netns.sh .venv/bin/python bench/real_federation.py
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "consul"), str(ROOT / "tests" / "integration"),
                str(ROOT / "tests"), str(ROOT)]

from kubernetes import client  # noqa: E402

from components.config import parse_config  # noqa: E402
from components.helm_values import primary_values, secondary_values  # noqa: E402
from realenv import NAMESPACE, real_federation  # noqa: E402

DATACENTERS = ("dc1", "dc2", "dc3")
STATIC_GATEWAY = "dc3-gateway.consul.test"


def until_verified(fed, project, started: float, timeout: float = 900) -> float:
    while True:
        done = fed.cli(project, "verify", "--json")
        if done.returncode == 0 and json.loads(done.stdout)["ok"]:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise SystemExit(f"verify did not pass within {timeout:.0f} s:\n{done.stdout[-3000:]}")
        time.sleep(5)


def prepared(fed):
    fed.clusters["dc3"].expose(STATIC_GATEWAY, NAMESPACE, "consul-mesh-gateway", 443)
    project = fed.project()
    project.overrides["dc3"] = {"meshGateway": {"serviceType": "ClusterIP", "wanAddress": STATIC_GATEWAY}}
    for dc in DATACENTERS:
        project.init_stack(dc)
    return project


def ours(fed, results: dict[str, float]) -> None:
    project = prepared(fed)
    started = time.monotonic()
    done = fed.cli(project, "up")
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    results["ours: python -m federation up"] = time.monotonic() - started
    results["ours: up to every verify row passing"] = until_verified(fed, project, started)


def helm_install(fed, dc: str, values: dict) -> float:
    done = fed.helm(dc, "install", "consul", fed.chart, "-n", NAMESPACE, "--wait", "--timeout", "15m",
                    values=values)
    if done.returncode != 0:
        raise SystemExit(f"helm install {dc}: {done.stderr[-3000:]}")
    return done.seconds


def apply_until_accepted(create, timeout: float = 120) -> None:
    """What a person does when `kubectl apply` meets the injector's webhook not answering yet
    right after `helm install --wait`: apply again, every 2 s (the time counts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            create()
            return
        except client.ApiException as exc:
            if exc.status != 500 or "failed calling webhook" not in (exc.body or "") or time.monotonic() > deadline:
                raise
        time.sleep(2)


def scripted(fed, results: dict[str, float]) -> None:
    project = prepared(fed)
    cfg = {dc: parse_config(project.config(dc)) for dc in DATACENTERS}
    started = time.monotonic()
    core = {dc: fed.core(dc) for dc in DATACENTERS}
    core["dc1"].create_namespace({"metadata": {"name": NAMESPACE}})
    gossip = base64.b64encode(secrets.token_bytes(32)).decode()  # `consul keygen`
    core["dc1"].create_namespaced_secret(NAMESPACE, {"metadata": {"name": cfg["dc1"].gossip_secret_name},
                                                     "stringData": {"key": gossip}})
    results["scripted: helm install dc1 --wait"] = helm_install(fed, "dc1", primary_values(cfg["dc1"]))
    apply_until_accepted(lambda: client.CustomObjectsApi(fed.api("dc1")).create_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults",
        {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ProxyDefaults",
         "metadata": {"name": "global"}, "spec": {"meshGateway": {"mode": "local"}}}))
    data = core["dc1"].read_namespaced_secret(cfg["dc1"].federation_secret_name, NAMESPACE).data
    for dc in DATACENTERS[1:]:
        core[dc].create_namespace({"metadata": {"name": NAMESPACE}})
        core[dc].create_namespaced_secret(NAMESPACE, {"metadata": {"name": cfg[dc].federation_secret_name},
                                                     "data": data})
        plane = fed.planes[dc]
        host = f"https://{fed.clusters[dc].addresses.node_ip}:{plane.port}"
        results[f"scripted: helm install {dc} --wait"] = helm_install(
            fed, dc, secondary_values(cfg[dc], "dc1", host))
    results["scripted: installs"] = time.monotonic() - started
    results["scripted: start to every verify row passing"] = until_verified(fed, project, started)


SCENARIOS = {"ours": ours, "scripted": scripted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    names = args.only.split(",")
    if len(names) > 1:  # one process each: fresh listeners and clusters, nothing left over
        for name in names:
            subprocess.run([sys.executable, __file__, "--only", name], check=True)
        return
    results: dict[str, float] = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="bench-real-", dir="/tmp") as tmp:
            with real_federation(Path(tmp), DATACENTERS) as fed:
                SCENARIOS[name](fed, results)
                if fed.errors():
                    print(f"local cluster errors: {fed.errors()}", file=sys.stderr)
    for what, seconds in results.items():
        print(f"  {what:<50} {seconds:>7.1f} s", flush=True)


if __name__ == "__main__":
    main()
