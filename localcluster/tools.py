"""The real tools the local clusters, the demo and the test tiers run (helm, the chart, the
Pulumi CLI and providers, etcd, kube-apiserver, Consul's binaries): paths from
``tools/ensure.sh``, which builds what the cache lacks, pinned and idempotent."""

from __future__ import annotations

import functools
import os
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def ensure(*groups: str) -> dict[str, str]:
    """KEY -> absolute path for the given tool groups, building what is missing (may take long
    on a cold cache; waits for a concurrent build of the same tool)."""
    done = subprocess.run(["bash", os.path.join(REPO_ROOT, "tools", "ensure.sh"), *groups],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tools/ensure.sh {' '.join(groups)} failed:\n{done.stderr[-4000:]}")
    paths = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    for key, path in paths.items():
        if not os.path.exists(path):
            raise RuntimeError(f"tools/ensure.sh reported {key}={path}, which does not exist")
    return paths


def consul_charts() -> dict[str, str]:
    """chart version -> chart directory, for every pinned Consul chart."""
    prefix = "CONSUL_FEDERATION_CHART_"
    return {key[len(prefix):].replace("_", "."): path for key, path in ensure("chart").items() if key.startswith(prefix)}
