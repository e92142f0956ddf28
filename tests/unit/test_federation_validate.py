"""`python -m federation validate`: every stack file checked offline by the program's own rules,
what it cannot check said, and the exit codes. No engine, backend or cluster."""

from __future__ import annotations

import pytest
import yaml

from federation import __main__ as cli
from test_federation_operate import primary, project, secondary

pytestmark = pytest.mark.unit


def validate(capsys, tmp_path, stacks) -> tuple[int, list[str]]:
    code = cli.main(["validate", "--project-dir", str(project(tmp_path, stacks))])
    return code, capsys.readouterr().out.splitlines()


def test_a_valid_federation_passes_with_what_preview_still_checks(no_engine, capsys, tmp_path):
    code, lines = validate(capsys, tmp_path, {"dc1": primary(), "dc2": secondary("dc2")})
    assert code == 0
    assert lines == [
        "dc1      primary   valid (chart 2.0.3, datacenter dc1)",
        "dc2      secondary valid (chart 2.0.3, datacenter dc2)",
        "",
        "validate: every stack is valid; pulumi preview also checks the kubeconfig contexts, the "
        "clusters, the chart repository and the primary's outputs"]


def test_every_stack_is_checked_by_the_programs_rules_and_against_its_primary(no_engine, capsys, tmp_path):
    code, lines = validate(capsys, tmp_path, {
        "dc1": primary(),
        "dc2": {**secondary("dc2"), "acls": False},
        "dc3": {**secondary("dc3"), "namespace": "Consul", "meshGateway": {"serviceType": "NodePort"}}})
    assert code == 1
    assert lines == [
        "dc1      primary   valid (chart 2.0.3, datacenter dc1)",
        "dc2      secondary FAILED (chart 2.0.3, datacenter dc2)",
        "  - consul-federation:acls: False differs from the primary 'dc1' (True); if it is enabled in one "
        "datacenter it must be enabled in all: set the same value in both stacks",
        "dc3      secondary FAILED",
        "  - consul-federation:namespace: 'Consul' is not valid; a Kubernetes namespace must be lowercase "
        "letters, digits and hyphens, start and end with a letter or digit, at most 63 characters",
        "  - consul-federation:meshGateway.nodePort is required with meshGateway.serviceType NodePort: the "
        "port (in the cluster's NodePort range, 30000-32767) the other datacenters dial on every node",
        "",
        "validate: NOT every stack is valid; pulumi preview also checks the kubeconfig contexts, the "
        "clusters, the chart repository and the primary's outputs"]


def test_encrypted_settings_are_named_as_not_checked_and_must_be_secret_capable(no_engine, capsys, tmp_path):
    stacks = {"dc1": primary(), "dc2": secondary("dc2")}
    project(tmp_path, stacks)
    for name, key in (("dc1", "helmValues"), ("dc2", "namespace"), ("dc2", "kubeContext")):
        path = tmp_path / f"Pulumi.{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"][f"consul-federation:{key}"] = {"secure": "v1:AAAA"}
        path.write_text(yaml.safe_dump(doc))
    code = cli.main(["validate", "--project-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[:6] == [
        "dc1      primary   valid (chart 2.0.3, datacenter dc1)",
        "  not checked here (encrypted; pulumi preview decrypts them): consul-federation:helmValues",
        "dc2      secondary FAILED",
        "  - consul-federation:kubeContext is set as a secret, but it names objects and ends up in resource "
        "names and URNs, which Pulumi never encrypts; set it without --secret (settings that can be secret: "
        "helmValues, meshGateway, k8sAuthMethodHost, chartRepo)",
        "  - consul-federation:namespace is set as a secret, but it names objects and ends up in resource "
        "names and URNs, which Pulumi never encrypts; set it without --secret (settings that can be secret: "
        "helmValues, meshGateway, k8sAuthMethodHost, chartRepo)",
        ""]
    assert not any("required but not set" in line for line in lines), lines


def test_a_refused_layout_exits_2(no_engine, capsys, tmp_path):
    code = cli.main(["validate", "--project-dir", str(project(tmp_path, {"dc2": secondary("dc2")}))])
    assert code == 2
    assert "federation validate: refused, no stack was checked:" in capsys.readouterr().err
