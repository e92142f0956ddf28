"""Chart sources and `helm template`: values go to helm on stdin, never to disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader parses a render 10x faster


class RenderError(Exception):
    """helm could not fetch or render a chart (helm's own message included)."""


def find_helm(option: Optional[str]) -> str:
    """--helm, else $HELM, else helm on PATH."""
    helm = option or os.environ.get("HELM") or shutil.which("helm")
    if not helm or not os.access(helm, os.X_OK):
        raise RenderError("no helm: pass --helm PATH, set $HELM, or put helm on PATH "
                          "(bash tools/ensure.sh chart prints HELM=...)")
    return helm


def cache_root() -> str:
    return os.path.join(os.environ.get("CONSUL_FEDERATION_CACHE")
                        or os.path.expanduser("~/.cache/consul-federation"), "diff-charts")


@dataclass
class Charts:
    """Where each chart comes from: a stack's chartPath, else --chart VERSION=DIR, else
    $CONSUL_FEDERATION_CHART_<version> (a directory), else `helm pull` into the cache."""

    helm: str
    overrides: Mapping[str, str]

    def directory(self, version: str, repo: str, chart_path: Optional[str]) -> str:
        if chart_path:
            return chart_path
        if version in self.overrides:
            return self._checked(self.overrides[version], f"--chart {version}=")
        variable = f"CONSUL_FEDERATION_CHART_{version.replace('.', '_')}"
        if os.environ.get(variable):
            return self._checked(os.environ[variable], f"${variable}=")
        return self._pull(version, repo)

    @staticmethod
    def _checked(path: str, source: str) -> str:
        if not os.path.isfile(os.path.join(path, "Chart.yaml")):
            raise RenderError(f"{source}{path} is not a chart directory (no Chart.yaml)")
        return os.path.abspath(path)

    def _pull(self, version: str, repo: str) -> str:
        """`helm pull --untar` once per repository and version; published by rename, so a
        concurrent or interrupted pull never leaves a half chart behind."""
        dest = os.path.join(cache_root(), f"{hashlib.sha256(repo.encode()).hexdigest()[:12]}-{version}")
        chart = os.path.join(dest, "consul")
        if os.path.isfile(os.path.join(chart, "Chart.yaml")):
            return chart
        os.makedirs(cache_root(), exist_ok=True)
        staging = tempfile.mkdtemp(dir=cache_root(), prefix=".pull-")
        try:
            done = subprocess.run([self.helm, "pull", "consul", "--repo", repo, "--version", version,
                                   "--untar", "--untardir", staging],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RenderError(f"helm pull consul {version} from {repo}: {done.stderr.strip()}")
            try:
                os.rename(staging, dest)
            except OSError as exc:
                if not os.path.isdir(chart):  # not a concurrent pull that got there first
                    raise RenderError(f"could not publish the pulled chart in {dest}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return chart


@dataclass(frozen=True)
class Job:
    """One `helm template`: equal jobs render equal objects (a render is deterministic)."""

    chart: str
    release: str
    namespace: str
    values_json: str

    @classmethod
    def of(cls, chart: str, release: str, namespace: str, values: Mapping[str, Any]) -> "Job":
        return cls(chart, release, namespace, json.dumps(values, sort_keys=True))


def template(helm: str, job: Job) -> list[dict[str, Any]]:
    """Every object the chart renders, hooks and test pods included (as a Release creates them)."""
    done = subprocess.run([helm, "template", job.release, job.chart, "--namespace", job.namespace,
                           "-f", "-"], input=job.values_json, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RenderError(f"helm template ({job.chart}) failed: {done.stderr.strip()}")
    return [doc for doc in yaml.load_all(done.stdout, Loader=_Loader) if doc]
