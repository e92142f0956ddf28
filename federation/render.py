"""Chart sources and `helm template`: values go to helm on stdin, never to disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import yaml

from . import chart_source

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader parses a render 10x faster


class RenderError(Exception):
    """helm could not fetch or render a chart (helm's own message included)."""


class ChartMissing(RenderError):
    """No chart for `version`: the same for every stack and side that renders it, so the diff
    reports it once (with the fix) and points those stacks at it."""

    def __init__(self, version: str, message: str):
        super().__init__(message)
        self.version = version


def find_helm(option: Optional[str]) -> str:
    """--helm, else $HELM, else helm on PATH."""
    helm = option or os.environ.get("HELM") or shutil.which("helm")
    if not helm or not os.access(helm, os.X_OK):
        raise RenderError("no helm: pass --helm PATH, set $HELM, or put helm on PATH "
                          "(bash tools/ensure.sh chart prints HELM=...)")
    return helm


@dataclass
class Charts:
    """Where each chart comes from: a stack's chartPath, else --chart VERSION=DIR, else the rule
    every tool shares (chart_source: $CONSUL_FEDERATION_CHART_<version>, ../shared/charts, `helm
    pull` from the stack's chartRepo, taken as the Release would install it)."""

    helm: str
    overrides: Mapping[str, str]
    found: dict[tuple[str, str], str] = field(default_factory=dict)  # one lookup (or pull) per run
    missing: dict[tuple[str, str], str] = field(default_factory=dict)  # and one failure: no pull again

    def directory(self, version: str, repo: str, chart_path: Optional[str]) -> str:
        """The chart's directory; ChartMissing if there is none."""
        if chart_path:
            return chart_path
        if version in self.overrides:
            return self._checked(version, self.overrides[version])
        key = (version, repo)
        if key not in self.found and key not in self.missing:
            try:
                self.found[key] = chart_source.chart_dir(version, self.helm, repo, check_pulls=False)
            except chart_source.ChartSourceError as exc:
                self.missing[key] = (f"no Consul chart {version}: {exc}\nto render without the network, pass "
                                     f"--chart {version}=DIR, DIR holding chart {version} (its Chart.yaml; "
                                     f"consul-{version}.tgz unpacked)")
        if key in self.missing:
            raise ChartMissing(version, self.missing[key])
        return self.found[key]

    @staticmethod
    def _checked(version: str, path: str) -> str:
        if not os.path.isfile(os.path.join(path, "Chart.yaml")):
            raise ChartMissing(version, f"--chart {version}={path} is not a chart directory (no Chart.yaml)")
        return os.path.abspath(path)


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
