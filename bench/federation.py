"""Three datacenters from nothing, three ways, each on fresh local control planes (the integration
tier's, tests/integration/federation_env.py): not a test, it prints seconds.

  ours      python -m federation up           (primary, then dc2 and dc3 in parallel)
  separate  pulumi up -s dc1; dc2; dc3        (three CLI runs, one after the other)
  scripted  the seed's manual procedure with helm and API calls: namespace and gossip key,
            helm install dc1 --wait, read dc1's federation secret, create it in dc2 and dc3,
            helm install dc2 and dc3 --wait, ProxyDefaults global in each

and the fixed cost of a run that changes nothing (engine, providers, program, StackReference, the
policy pack).
Usage: .venv/bin/python bench/federation.py [--only ours,separate,scripted,fixed]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT / "tests"), str(ROOT)]

import yaml  # noqa: E402
from kubernetes import client  # noqa: E402

from components.config import parse_config  # noqa: E402
from components.helm_values import primary_values, secondary_values  # noqa: E402
from federation_env import DATACENTERS, NAMESPACE, Federation, federation  # noqa: E402

SECONDARIES = ("dc2", "dc3")


def timed(what: str, results: dict[str, float], fn, *args, **kwargs):
    started = time.monotonic()
    value = fn(*args, **kwargs)
    results[what] = round(time.monotonic() - started, 1)
    print(f"  {what:<58} {results[what]:>7.1f} s", flush=True)
    return value


def checked(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, done.args))} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def federation_cli(env: Federation, *args: str) -> subprocess.CompletedProcess:
    return checked(env.cli(*args))


def ours(env: Federation, results: dict[str, float]) -> None:
    for dc in DATACENTERS:
        env.project.write_stack(dc)
    # no Consul runs on these control planes: nothing for the gate between stages to check
    timed("ours: python -m federation up (3 DCs)", results, federation_cli, env, "up", "--gate-timeout", "0")


def spans(trace: Path) -> list[tuple[float, float, str, str]]:
    """(start, end, name, first message) of every span in an --otel-traces file, in seconds."""
    found = []
    for line in trace.read_text().splitlines():
        for group in json.loads(line).get("resourceSpans", []):
            for scope in group.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    message = next((a["value"].get("stringValue", "") for a in span.get("attributes", [])
                                    if a["key"] == "Msg"), "")
                    found.append((int(span["startTimeUnixNano"]) / 1e9, int(span["endTimeUnixNano"]) / 1e9,
                                  span["name"], message))
    return found


def breakdown(trace: Path) -> dict[str, float]:
    """Where one `pulumi up` went: the engine and program until the Release's Create call, the
    Release (Helm's install, hooks and wait, in the provider), and everything after it."""
    found = spans(trace)
    root = next(s for s in found if s[2] == "pulumi")
    release = next(s for s in found if s[2] == "/pulumirpc.ResourceProvider/Create" and "helm.sh/v3:Release" in s[3])
    return {"before the Release": round(release[0] - root[0], 1), "Release create": round(release[1] - release[0], 1),
            "after the Release": round(root[1] - release[1], 1)}


def separate(env: Federation, results: dict[str, float]) -> None:
    for dc in DATACENTERS:
        env.project.init_stack(dc)
    started = time.monotonic()
    for dc in DATACENTERS:
        trace = env.workdir / f"trace-{dc}.json"
        timed(f"separate: pulumi up -s {dc}", results, env.project.run, "up", "--yes", "--skip-preview",
              "--otel-traces", f"file://{trace}", stack=dc, timeout=1800)
        for part, seconds in breakdown(trace).items():
            results[f"separate: {dc} {part}"] = seconds
            print(f"    {part:<56} {seconds:>7.1f} s", flush=True)
    results["separate: total (3 DCs)"] = round(time.monotonic() - started, 1)
    print(f"  {'separate: total (3 DCs)':<58} {results['separate: total (3 DCs)']:>7.1f} s", flush=True)


def helm_install(env: Federation, dc: str, values: dict) -> None:
    values_file = env.workdir / f"values-{dc}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm = env.project.tools["HELM"]
    checked(subprocess.run(
        [helm, "install", "consul", env.project.chart, "--namespace", NAMESPACE, "--values", str(values_file),
         "--wait", "--timeout", "15m", "--kubeconfig", str(env.kubeconfig), "--kube-context", dc],
        capture_output=True, text=True))


def proxy_defaults(env: Federation, dc: str) -> None:
    client.CustomObjectsApi(env.api(dc)).create_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults",
        {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ProxyDefaults", "metadata": {"name": "global"},
         "spec": {"meshGateway": {"mode": "local"}}})


def namespace(env: Federation, dc: str) -> None:
    env.core(dc).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))


def scripted(env: Federation, results: dict[str, float]) -> None:
    project = env.project
    cfg = {dc: parse_config(project.config(dc)) for dc in DATACENTERS}
    started = time.monotonic()
    namespace(env, "dc1")
    gossip = base64.b64encode(secrets.token_bytes(32)).decode()  # `consul keygen`
    env.core("dc1").create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name=cfg["dc1"].gossip_secret_name), string_data={"key": gossip}))
    timed("scripted: helm install dc1 --wait", results, helm_install, env, "dc1", primary_values(cfg["dc1"]))
    proxy_defaults(env, "dc1")
    data = env.secret_data("dc1", cfg["dc1"].federation_secret_name)
    for dc in SECONDARIES:
        namespace(env, dc)
        env.core(dc).create_namespaced_secret(NAMESPACE, client.V1Secret(
            metadata=client.V1ObjectMeta(name=cfg[dc].federation_secret_name), data=data))
        timed(f"scripted: helm install {dc} --wait", results, helm_install, env, dc,
              secondary_values(cfg[dc], "dc1", env.auth_method_host(dc)))
        proxy_defaults(env, dc)
    results["scripted: total (3 DCs)"] = round(time.monotonic() - started, 1)
    print(f"  {'scripted: total (3 DCs)':<58} {results['scripted: total (3 DCs)']:>7.1f} s", flush=True)


def fixed(env: Federation, results: dict[str, float]) -> None:
    """What a run costs when nothing changes, and its parts."""
    for dc in DATACENTERS:
        env.project.write_stack(dc)
    federation_cli(env, "up", "--gate-timeout", "0")
    python = [sys.executable, "-c"]
    for module in ("components", "federation.verify"):
        timed(f"python -c 'import {module}'", results, lambda m=module: checked(
            subprocess.run(python + [f"import {m}"], cwd=ROOT, capture_output=True, text=True)))
    timed("pulumi version", results, env.project.run, "version")
    timed("pulumi stack select dc1", results, env.project.run, "stack", "select", "dc1")
    timed("pulumi config --json -s dc1", results, env.project.run, "config", "--json", stack="dc1")
    timed("pulumi preview -s dc1 (no changes)", results, env.project.run, "preview", stack="dc1")
    timed("pulumi preview -s dc2 (no changes, StackReference)", results, env.project.run, "preview", stack="dc2")
    timed("pulumi preview -s dc1 --policy-pack policy (no changes)", results, env.project.run, "preview",
          "--policy-pack", str(env.project.dir / "policy"), stack="dc1")
    timed("pulumi up -s dc1 (no changes)", results, env.project.run, "up", "--yes", "--skip-preview", stack="dc1")
    # no Consul runs on these control planes: nothing for the gate between stages to check
    timed("python -m federation up (3 DCs, no changes)", results, federation_cli, env, "up", "--gate-timeout", "0")
    timed("python -m federation up (3 DCs, no changes, --no-policy)", results, federation_cli, env, "up",
          "--gate-timeout", "0", "--no-policy")
    timed("python -m federation verify --kubernetes-only (3 DCs)", results, env.cli, "verify", "--kubernetes-only")


SCENARIOS = {"ours": ours, "separate": separate, "scripted": scripted, "fixed": fixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    results: dict[str, float] = {}
    for name in args.only.split(","):
        print(f"{name}: fresh control planes dc1, dc2, dc3", flush=True)
        with tempfile.TemporaryDirectory(prefix="fed-bench-", dir="/tmp") as workdir, \
                federation(Path(workdir)) as env:
            SCENARIOS[name](env, results)
            problems = env.errors()
            if problems:
                print(f"  harness errors: {problems}", flush=True)
    print(json.dumps(results, indent=2))
    if {"ours: python -m federation up (3 DCs)", "scripted: total (3 DCs)"} <= set(results):
        ratio = results["ours: python -m federation up (3 DCs)"] / results["scripted: total (3 DCs)"]
        print(f"ours / scripted (3 DCs): {ratio:.2f}")
    if {"separate: pulumi up -s dc1", "scripted: helm install dc1 --wait"} <= set(results):
        ratio = results["separate: pulumi up -s dc1"] / results["scripted: helm install dc1 --wait"]
        print(f"pulumi up dc1 / helm install dc1: {ratio:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
