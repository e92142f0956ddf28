"""federation/chart_source.py, the one rule for where a chart comes from, on small charts made
here. helm is played by a script that copies an archive into --destination, as `helm pull` does;
the chart tier runs the rule through tools/chart.sh on the real charts."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile

import pytest

from federation import chart_source as cs

pytestmark = pytest.mark.unit


def chart_tgz(path, version):
    """consul-<version>.tgz as helm packages it: consul/Chart.yaml inside."""
    data = f"apiVersion: v2\nname: consul\nversion: {version}\n".encode()
    with tarfile.open(path, "w:gz") as tgz:
        info = tarfile.TarInfo("consul/Chart.yaml")
        info.size = len(data)
        tgz.addfile(info, io.BytesIO(data))
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSUL_FEDERATION_CACHE", str(tmp_path / "cache"))
    for version in ("2.0.3", "1.2.1"):
        monkeypatch.delenv(cs.variable(version), raising=False)
    (tmp_path / "shared").mkdir()
    return tmp_path


def fake_helm(tmp_path, archive):
    """A `helm pull` that copies `archive` into --destination (or fails when it is None)."""
    script = tmp_path / "helm"
    body = f'cp "{archive}" "$dest/"' if archive else 'echo "Error: chart not found" >&2; exit 1'
    script.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = --destination ] && dest=$2; shift; done\n'
                      + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_the_real_pins_name_four_charts_with_their_hashes():
    pins = cs.pins()
    assert sorted(pins) == ["1.2.1", "1.8.16", "1.9.11", "2.0.3"]
    assert pins["2.0.3"] == "2edcf261931437d4fb4f97f28290e1c76e0468e467234afafbd68bb8636640ac"


def test_a_pinned_chart_comes_from_shared_charts_once_unpacked(env):
    _, sha = chart_tgz(env / "shared" / "consul-2.0.3.tgz", "2.0.3")
    found = cs.chart_dir("2.0.3", fake_helm(env, None), pinned={"2.0.3": sha}, shared=str(env / "shared"))
    assert found == str(env / "cache" / "consul-chart" / f"2.0.3-{sha}" / "consul")
    assert cs.declared_version(found) == "2.0.3"
    # the cache entry serves the next lookup, even with ../shared/charts gone
    os.remove(env / "shared" / "consul-2.0.3.tgz")
    assert cs.chart_dir("2.0.3", fake_helm(env, None), pinned={"2.0.3": sha}, shared=str(env / "shared")) == found


def test_a_tampered_archive_is_refused_wherever_it_comes_from(env, monkeypatch):
    _, sha = chart_tgz(env / "good.tgz", "2.0.3")
    bad, bad_sha = chart_tgz(env / "shared" / "consul-2.0.3.tgz", "2.0.3")
    with open(bad, "ab") as handle:
        handle.write(b"\0")
    bad_sha = hashlib.sha256((env / "shared" / "consul-2.0.3.tgz").read_bytes()).hexdigest()
    refused = f"has sha256 {bad_sha}, but chart 2.0.3 is pinned to {sha}: refusing it"
    helm = fake_helm(env, env / "good.tgz")  # a good pull exists: never a reason to go on
    with pytest.raises(cs.ChartSourceError, match=refused):
        cs.chart_dir("2.0.3", helm, pinned={"2.0.3": sha}, shared=str(env / "shared"))
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_2_0_3", bad)
    with pytest.raises(cs.ChartSourceError, match=f"{bad} {refused}"):
        cs.chart_dir("2.0.3", helm, pinned={"2.0.3": sha}, shared=str(env / "nowhere"))
    os.remove(bad)
    monkeypatch.delenv("CONSUL_FEDERATION_CHART_2_0_3")
    pulled = env / "pulled" / "consul-2.0.3.tgz"
    pulled.parent.mkdir()
    pulled.write_bytes((env / "good.tgz").read_bytes() + b"\0")
    with pytest.raises(cs.ChartSourceError, match="but chart 2.0.3 is pinned to"):
        cs.chart_dir("2.0.3", fake_helm(env, pulled), pinned={"2.0.3": sha}, shared=str(env / "shared"))
    # diff takes the stack's chartRepo as the Release would (Helm checks no hash)
    found = cs.chart_dir("2.0.3", fake_helm(env, pulled), pinned={"2.0.3": sha}, shared=str(env / "shared"),
                         check_pulls=False)
    assert cs.declared_version(found) == "2.0.3" and f"2.0.3-{sha}" not in found


def test_an_override_directory_is_used_in_place_if_it_declares_the_version(env, monkeypatch):
    chart = env / "dev" / "consul"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text("name: consul\nversion: 1.2.1\n")
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_1_2_1", str(chart))
    assert cs.chart_dir("1.2.1", "/bin/false", pinned={}) == str(chart)
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_2_0_3", str(chart))
    with pytest.raises(cs.ChartSourceError, match=f"CONSUL_FEDERATION_CHART_2_0_3={chart} holds chart 1.2.1, "
                                                  "expected 2.0.3"):
        cs.chart_dir("2.0.3", "/bin/false", pinned={})
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_2_0_3", str(env / "missing"))
    with pytest.raises(cs.ChartSourceError, match="is neither a chart directory nor a .tgz"):
        cs.chart_dir("2.0.3", "/bin/false", pinned={})


def test_an_archive_holding_another_version_is_refused(env):
    wrong, sha = chart_tgz(env / "shared" / "consul-2.0.3.tgz", "1.9.11")
    with pytest.raises(cs.ChartSourceError, match=f"{wrong} holds chart 1.9.11, expected 2.0.3"):
        cs.chart_dir("2.0.3", "/bin/false", pinned={"2.0.3": sha}, shared=str(env / "shared"))
    assert not os.listdir(env / "cache" / "consul-chart")  # nothing half-published


def test_an_unpinned_version_is_pulled_from_the_repository(env):
    archive, sha = chart_tgz(env / "consul-2.0.4.tgz", "2.0.4")
    found = cs.chart_dir("2.0.4", fake_helm(env, archive), repo="http://127.0.0.1:1", pinned={},
                         shared=str(env / "shared"))
    assert found == str(env / "cache" / "consul-chart" / f"2.0.4-{sha}" / "consul")
    with pytest.raises(cs.ChartSourceError, match="helm pull consul 2.0.5 from http://127.0.0.1:1: Error: chart not found"):
        cs.chart_dir("2.0.5", fake_helm(env, None), repo="http://127.0.0.1:1", pinned={}, shared=str(env / "shared"))


def test_the_command_prints_every_line_or_none(env, monkeypatch, capsys):
    pins = env / "pins"
    _, sha = chart_tgz(env / "shared" / "consul-2.0.3.tgz", "2.0.3")
    pins.write_text(f"# comment\n2.0.3 {sha}\n1.2.1 {'0' * 64}\n")
    monkeypatch.setattr(cs, "PINS_FILE", str(pins))
    monkeypatch.setattr(cs, "SHARED_CHARTS", str(env / "shared"))
    assert cs.main(["--helm", fake_helm(env, None)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "helm pull consul 1.2.1" in err
    pins.write_text(f"2.0.3 {sha}\n")
    assert cs.main(["--helm", fake_helm(env, None)]) == 0
    assert capsys.readouterr().out == (
        f"CONSUL_FEDERATION_CHART_2_0_3={env / 'cache' / 'consul-chart' / f'2.0.3-{sha}' / 'consul'}\n")
