"""Where tools/chart.sh (federation/chart_source.py's rule) takes each pinned chart from, and that a
wrong chart is never used.

Runs the real script against the real charts in ../shared/charts (helm comes from the warm cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest

from pulumi_mocks import ROOT
from localcluster.tools import consul_charts

pytestmark = pytest.mark.chart

SHARED = os.path.join(ROOT, "..", "shared", "charts")


def chart_sh(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", os.path.join(ROOT, "tools", "chart.sh")], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=600)


def lines(done: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_pinned_charts_come_from_shared_charts():
    charts = consul_charts()
    assert sorted(charts) == ["1.2.1", "1.8.16", "1.9.11", "2.0.3"]
    for version, path in charts.items():
        with open(os.path.join(path, "Chart.yaml"), encoding="utf-8") as handle:
            assert f"\nversion: {version}\n" in "\n" + handle.read()
        with tarfile.open(os.path.join(SHARED, f"consul-{version}.tgz")) as tgz:
            packaged = tgz.extractfile("consul/values.yaml").read()
        with open(os.path.join(path, "values.yaml"), "rb") as handle:
            assert handle.read() == packaged


def test_a_tampered_archive_is_refused_not_replaced(tmp_path):
    """The override names a .tgz whose hash differs from the pin: an error, even though the
    cache and ../shared/charts hold the good chart."""
    bad = tmp_path / "consul-2.0.3.tgz"
    shutil.copy(os.path.join(SHARED, "consul-2.0.3.tgz"), bad)
    with bad.open("ab") as handle:
        handle.write(b"\0")
    done = chart_sh(CONSUL_FEDERATION_CHART_2_0_3=str(bad))
    assert done.returncode != 0 and done.stdout == ""
    assert f"{bad} has sha256 " in done.stderr
    assert "chart 2.0.3 is pinned to 2edcf261931437d4fb4f97f28290e1c76e0468e467234afafbd68bb8636640ac" in done.stderr


def test_an_override_directory_must_hold_the_pinned_version():
    done = chart_sh(CONSUL_FEDERATION_CHART_1_8_16=consul_charts()["1.9.11"])
    assert done.returncode != 0 and done.stdout == ""
    assert "holds chart 1.9.11, expected 1.8.16" in done.stderr


def test_an_override_directory_of_the_pinned_version_is_used_in_place(tmp_path):
    copy = tmp_path / "consul"
    shutil.copytree(consul_charts()["1.8.16"], copy)
    done = chart_sh(CONSUL_FEDERATION_CHART_1_8_16=str(copy))
    assert done.returncode == 0, done.stderr
    assert lines(done)["CONSUL_FEDERATION_CHART_1_8_16"] == str(copy)
    assert lines(done)["CONSUL_FEDERATION_CHART_2_0_3"] == consul_charts()["2.0.3"]


def test_an_override_archive_with_the_pinned_hash_is_accepted(tmp_path):
    good = tmp_path / "chart.tgz"
    shutil.copy(os.path.join(SHARED, "consul-1.9.11.tgz"), good)
    done = chart_sh(CONSUL_FEDERATION_CHART_1_9_11=str(good))
    assert done.returncode == 0, done.stderr
    assert lines(done)["CONSUL_FEDERATION_CHART_1_9_11"] == consul_charts()["1.9.11"]  # same hash, same cache entry
