"""Where a Consul chart comes from: one rule for ``tools/chart.sh`` (CI's charts), ``python -m
federation diff`` and the test tiers. Standard library only: ``tools/chart.sh`` runs it with the
machine's python3, before any virtual environment exists.

First match wins:

1. ``$CONSUL_FEDERATION_CHART_<version>`` (dots as underscores): a chart directory, used in place
   (its Chart.yaml must declare the version), or a ``.tgz``.
2. ``../shared/charts/consul-<version>.tgz`` beside the repository (what CI has), for pinned
   versions.
3. ``helm pull consul --repo <repo> --version <version>``.

A pinned version's archive from 1 or 2 must have the sha256 in ``tools/consul-charts.pins``; a
mismatch is an error, never a reason to try the next source. So must a pull for the tool script
(CI renders exactly the pinned charts); ``diff`` takes a pull as the Release would install it
(Helm checks no hash either), so that it shows what the stack's ``chartRepo`` serves. Archives
are unpacked once into the tool cache, keyed by version and hash, and published by rename.

``python3 -m federation.chart_source --helm HELM`` prints ``CONSUL_FEDERATION_CHART_<version>=<dir>``
for every pin (the lines, exported, make every later lookup use the same directories).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINS_FILE = os.path.join(REPO_ROOT, "tools", "consul-charts.pins")
SHARED_CHARTS = os.path.join(REPO_ROOT, "..", "shared", "charts")
DEFAULT_REPO = "https://helm.releases.hashicorp.com"


class ChartSourceError(Exception):
    """No usable chart: a wrong archive, a wrong directory, or a pull that failed."""


def variable(version: str) -> str:
    return f"CONSUL_FEDERATION_CHART_{version.replace('.', '_')}"


def pins(path: Optional[str] = None) -> dict[str, str]:
    """version -> sha256 of consul-<version>.tgz ("version sha256" lines, # comments)."""
    path = path or PINS_FILE
    found: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) != 2 or len(fields[1]) != 64:
                raise ChartSourceError(f"{path}:{number}: expected 'version sha256', got {raw.strip()!r}")
            found[fields[0]] = fields[1]
    return found


def cache_root() -> str:
    return os.environ.get("CONSUL_FEDERATION_CACHE") or os.path.expanduser("~/.cache/consul-federation")


def declared_version(chart_dir: str) -> Optional[str]:
    try:
        with open(os.path.join(chart_dir, "Chart.yaml"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("version:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        return None
    return None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def chart_dir(version: str, helm: str, repo: str = DEFAULT_REPO, pinned: Optional[dict[str, str]] = None,
              shared: Optional[str] = None, check_pulls: bool = True) -> str:
    """The directory holding the chart's Chart.yaml, by the rule above."""
    pinned = pins() if pinned is None else pinned
    shared = shared or SHARED_CHARTS
    sha = pinned.get(version)
    name = variable(version)
    override = os.environ.get(name)
    if override and os.path.isdir(override):
        found = declared_version(override)
        if found != version:
            raise ChartSourceError(f"{name}={override} holds chart {found or '(none: no Chart.yaml with a version)'}, expected {version}")
        return os.path.abspath(override)
    if override and not os.path.isfile(override):
        raise ChartSourceError(f"{name}={override} is neither a chart directory nor a .tgz")
    if override:
        return _unpacked(version, _checked(override, version, sha))
    archive = os.path.join(shared, f"consul-{version}.tgz")
    if sha and os.path.isfile(archive):
        return _unpacked(version, _checked(archive, version, sha))
    if sha and os.path.isfile(os.path.join(_entry(version, sha), ".done")):
        return os.path.join(_entry(version, sha), "consul")
    return _pulled(version, helm, repo, sha if check_pulls else None)


def _checked(archive: str, version: str, sha: Optional[str]) -> tuple[str, str]:
    got = sha256_of(archive)
    if sha and got != sha:
        raise ChartSourceError(f"{archive} has sha256 {got}, but chart {version} is pinned to {sha}: refusing it")
    return archive, got


def _entry(version: str, sha: str) -> str:
    return os.path.join(cache_root(), "consul-chart", f"{version}-{sha}")


def _unpacked(version: str, checked: tuple[str, str]) -> str:
    """The archive unpacked once into the cache entry of its hash (a .done marker, as the tool
    scripts' entries have)."""
    archive, sha = checked
    dest = _entry(version, sha)
    chart = os.path.join(dest, "consul")
    if os.path.isfile(os.path.join(dest, ".done")):
        return chart
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=f".{version}-")
    try:
        with tarfile.open(archive) as tgz:
            tgz.extractall(staging, filter="data")
        found = declared_version(os.path.join(staging, "consul"))
        if found != version:
            raise ChartSourceError(f"{archive} holds chart {found or '(none: no consul/Chart.yaml with a version)'}, expected {version}")
        open(os.path.join(staging, ".done"), "w").close()
        try:
            os.rename(staging, dest)
        except OSError as exc:
            if not os.path.isfile(os.path.join(dest, ".done")):  # not a concurrent unpack that got there first
                raise ChartSourceError(f"could not publish {archive} in {dest}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return chart


def _pulled(version: str, helm: str, repo: str, sha: Optional[str]) -> str:
    downloads = tempfile.mkdtemp(prefix="consul-chart-pull-")
    try:
        try:
            done = subprocess.run([helm, "pull", "consul", "--repo", repo, "--version", version,
                                   "--destination", downloads], capture_output=True, text=True, timeout=300)
        except OSError as exc:
            raise ChartSourceError(f"helm pull consul {version} from {repo}: cannot run {helm}: {exc}") from exc
        if done.returncode != 0:
            raise ChartSourceError(f"helm pull consul {version} from {repo}: {done.stderr.strip()}")
        return _unpacked(version, _checked(os.path.join(downloads, f"consul-{version}.tgz"), version, sha))
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m federation.chart_source", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--helm", required=True, help="the helm binary (for pulls)")
    parser.add_argument("--repo", default=os.environ.get("CONSUL_FEDERATION_CHART_REPO") or DEFAULT_REPO)
    args = parser.parse_args(argv)
    lines = []
    try:
        for version in pins():
            lines.append(f"{variable(version)}={chart_dir(version, args.helm, args.repo)}")
    except (ChartSourceError, OSError) as exc:
        print(f"[tools] {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
