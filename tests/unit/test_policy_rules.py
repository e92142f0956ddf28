"""The policy pack's rules (policy/rules.py) on the values the program really computes for each
stack case, and on values changed by hand where the program cannot produce a violation. Each
message is pinned in full: it is what a team reads in a refused preview."""

from __future__ import annotations

import os

import pytest

from federation.chart_source import pins
from policy import rules
from pulumi_mocks import ROOT
from stack_matrix import CASES, case

pytestmark = pytest.mark.unit


def release(case_id: str, version: str = "2.0.3", **overrides) -> rules.Release:
    c = case(case_id)
    values = c.chart_values()
    for path, value in overrides.items():
        node = values
        *parents, leaf = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return rules.Release(c.stack, version, values)


def messages(rule: rules.Rule, r: rules.Release) -> list[str]:
    return [v.message(r.stack) for v in rule(r)]


RENDERED = rules.chart_version(pins())


def test_the_rendered_versions_are_the_pins():
    assert sorted(pins()) == ["1.2.1", "1.8.16", "1.9.11", "2.0.3"]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_every_mandatory_rule_passes_the_program_defaults_except_what_a_case_turns_off(c):
    r = release(c.id)
    failed = {name for name, _, rule in rules.MANDATORY if rule(r)}
    expected = {"acls-off": {"acls-with-replication"}, "gossip-off": {"gossip-encryption"}}
    assert rules.MANDATORY, "no mandatory rules"
    assert failed == expected.get(c.id.rsplit("-", 1)[0], set())
    assert RENDERED(r) == []


def test_acls_off_names_the_setting_and_the_command():
    assert messages(rules.acls_with_replication, release("acls-off-dc2")) == [
        "stack dc2: consul-federation:acls is false; ACLs must be on, with tokens replicated from "
        "the primary: pulumi config set acls true -s dc2"]


def test_replication_off_on_either_role_is_named_by_its_chart_value():
    primary = release("dc1", global__acls__createReplicationToken=False)
    assert messages(rules.acls_with_replication, primary) == [
        "stack dc1: chart value global.acls.createReplicationToken is false; ACL replication must be on "
        "so that the secondaries resolve the primary's tokens: set it as components/helm_values.py "
        "does with acls true"]
    secondary = release("dc2", global__acls__replicationToken={})
    assert [v.setting for v in rules.acls_with_replication(secondary)] == [
        "chart value global.acls.replicationToken.secretName"]


def test_gossip_off_names_the_setting_and_the_command():
    assert messages(rules.gossip_encryption, release("gossip-off-dc1")) == [
        "stack dc1: consul-federation:gossipEncryption is false; gossip between members and across "
        "the WAN must be encrypted: pulumi config set gossipEncryption true -s dc1"]
    assert rules.gossip_encryption(release("dc1", global__gossipEncryption={"autoGenerate": True})) == []


def test_tls_and_mesh_gateways_off_by_a_changed_program():
    assert messages(rules.tls, release("dc2", global__tls__enabled=False)) == [
        "stack dc2: chart value global.tls.enabled is false; the servers of the datacenters verify "
        "each other with the federation CA, so TLS must be on: set global.tls.enabled to true "
        "(components/helm_values.py sets it)"]
    off = release("dc1")
    del off.values["meshGateway"]
    assert [v.value for v in rules.mesh_gateways(off)] == [None]
    assert messages(rules.mesh_gateways, off)[0].startswith("stack dc1: chart value meshGateway.enabled is not set;")


def test_a_chart_version_ci_does_not_render():
    assert messages(RENDERED, release("dc1", version="1.9.2")) == [
        "stack dc1: consul-federation:chartVersion is '1.9.2'; use a chart version CI renders "
        "(2.0.3, 1.9.11, 1.8.16, 1.2.1): pulumi config set chartVersion 2.0.3 -s dc1"]
    assert messages(RENDERED, release("dc1", version=None))[0].startswith(
        "stack dc1: consul-federation:chartVersion is not set;")
    with pytest.raises(ValueError, match="no rendered chart versions"):
        rules.chart_version([])


def test_high_availability_on_the_seed_values_asks_for_servers_and_gateways():
    assert messages(rules.high_availability, release("dc1")) == [
        "stack dc1: consul-federation:helmValues.server.replicas is 1; run 3 or 5 servers, a quorum "
        "that survives one or two lost servers: set helmValues server.replicas in the stack file "
        "(Pulumi.<stack>.yaml), e.g. consul-federation:helmValues: {server: {replicas: 3}}",
        "stack dc1: consul-federation:meshGateway.replicas is 1; run at least 2 mesh gateways, so that "
        "the datacenter stays federated while one restarts: set meshGateway.replicas to 2 or more in "
        "the stack file (Pulumi.<stack>.yaml)"]


@pytest.mark.parametrize("servers,ok", [(1, False), (2, False), (3, True), (4, False), (5, True), (7, False)])
def test_server_replicas(servers, ok):
    r = release("remote-dc2", server__replicas=servers)
    assert (rules.server_replicas(r) == []) is ok


def test_counts_arrive_as_floats_through_the_engine():
    """Protobuf carries every number as a float: 2 gateways arrive as 2.0 and must pass; a
    violation shows 1, not 1.0."""
    assert rules.gateway_replicas(release("dc1", meshGateway__replicas=2.0)) == []
    assert rules.server_replicas(release("dc1", server__replicas=3.0)) == []
    assert messages(rules.gateway_replicas, release("dc1", meshGateway__replicas=1.0))[0].startswith(
        "stack dc1: consul-federation:meshGateway.replicas is 1; run at least 2")
    assert [v.value for v in rules.server_replicas(release("dc1", server__replicas=2.5))] == [2.5]


def test_gateway_replicas_from_the_stack_setting():
    assert rules.gateway_replicas(release("remote-dc1")) == []  # meshGateway.replicas: 2
    assert [v.value for v in rules.gateway_replicas(release("dc1"))] == [1]


def test_the_policies_of_a_stack_and_their_levels():
    def levels(production):
        return [(p.name, p.mandatory) for p in rules.policies(["2.0.3"], production)]
    assert levels(False) == [("tls", True), ("acls-with-replication", True), ("gossip-encryption", True),
                             ("mesh-gateways", True), ("rendered-chart-version", True), ("high-availability", False)]
    assert levels(True)[-1] == ("high-availability", True)


def test_production_stacks(tmp_path):
    team = tmp_path / "team.yaml"
    team.write_text("productionStacks: [dc1, dc2]\n")
    assert rules.production_stacks(str(team)) == {"dc1", "dc2"}
    team.write_text("# nobody in production yet\n")
    assert rules.production_stacks(str(team)) == frozenset()
    team.write_text("productionStacks: dc1\n")
    with pytest.raises(ValueError, match=r"productionStacks is 'dc1'; expected a list of stack names"):
        rules.production_stacks(str(team))
    repository = os.path.join(ROOT, "policy", rules.TEAM_FILE)
    assert rules.production_stacks(repository) == frozenset()  # the repository's team.yaml marks none


def test_which_releases_are_consul_charts(tmp_path):
    chart = tmp_path / "consul-1.2.1"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: consul\nversion: 1.2.1\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "Chart.yaml").write_text("apiVersion: v2\nname: vault\nversion: 0.1.0\n")
    assert [rules.is_consul_chart(c) for c in ("consul", "hashicorp/consul", "oci://r.example/charts/consul",
                                              str(chart), str(other), "vault", "", None)] == [
        True, True, True, True, False, False, False, False]
    assert rules.chart_version_of(str(chart), None) == "1.2.1"
    assert rules.chart_version_of("consul", "1.8.16") == "1.8.16"
    assert rules.chart_version_of(str(tmp_path / "missing"), None) is None
