"""The policy pack (policy/) run by the real engine: the pulumi CLI starts it through the real
Python language host (tools/pulumi.sh), on dc1's stack against a real kube-apiserver (as in
test_stacks.py: no Consul runs, the chart's workloads never become ready, so nothing here waits
on them). The rules' messages are pinned here as a user reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from federation_env import NAMESPACE, Federation, federation

pytestmark = pytest.mark.integration

ACLS = ("stack dc1: consul-federation:acls is false; ACLs must be on, with tokens replicated from the "
        "primary: pulumi config set acls true -s dc1")
GOSSIP = ("stack dc1: consul-federation:gossipEncryption is false; gossip between members and across the "
          "WAN must be encrypted: pulumi config set gossipEncryption true -s dc1")
SERVERS = "stack dc1: consul-federation:helmValues.server.replicas is 1; run 3 or 5 servers"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with federation(tmp_path_factory.mktemp("policy"), datacenters=("dc1",)) as fed:
        fed.project.overrides["dc1"] = {"acls": False, "gossipEncryption": False}
        fed.project.init_stack("dc1")
        yield fed


def output(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


def one_line(text: str) -> str:
    """The CLI wraps long messages; the checks read them as one line."""
    return " ".join(text.split())


def preview(env: Federation, pack: Path) -> subprocess.CompletedProcess:
    return env.project.run("preview", "--policy-pack", str(pack), stack="dc1", check=False)


def test_pulumi_preview_with_the_pack_refuses_a_stack_without_acls_or_gossip(env):
    done = preview(env, env.project.dir / "policy")
    print(f"\n[refused preview, as printed]\n{output(done)}")
    text = one_line(output(done))
    assert done.returncode != 0, text[-4000:]
    for message in (ACLS, GOSSIP):
        assert message in text, text[-6000:]
    assert "mandatory" in text
    assert SERVERS in text  # high-availability: advisory here, reported all the same


def test_federation_preview_applies_the_pack_unless_told_not_to(env):
    refused = env.cli("preview", "--stacks", "dc1")
    assert refused.returncode == 1, refused.stdout[-4000:] + refused.stderr[-2000:]
    summary = refused.stdout[refused.stdout.index("preview summary:"):]
    # each violation: the Release's name, the policy, its description, then the rule's message
    assert one_line(summary).startswith(
        "preview summary: dc1 FAILED dc1-consul: policy consul-federation/acls-with-replication: ACLs on, with "
        "the primary's tokens replicated " + ACLS + " dc1-consul: policy consul-federation/gossip-encryption: "
        "gossip encrypted in every datacenter " + GOSSIP), summary
    assert "high-availability" not in summary  # advisory: not a failure
    done = env.cli("preview", "--stacks", "dc1", "--no-policy")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_up_refused_by_the_pack_touches_no_cluster(env):
    done = env.cli("up", "--gate-timeout", "0")
    assert done.returncode == 2, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stderr.splitlines()[:3] == [
        f"federation up: refused by the policy pack ({env.project.dir / 'policy'}), nothing was run:",
        "  - dc1: policy acls-with-replication: " + ACLS,
        "  - dc1: policy gossip-encryption: " + GOSSIP], done.stderr
    assert NAMESPACE not in env.namespaces("dc1")  # the first thing an up of dc1 creates


def test_a_production_stack_must_be_highly_available(env, tmp_path):
    env.project.overrides["dc1"] = {}
    env.project.write_stack("dc1")
    ok = preview(env, env.project.dir / "policy")
    assert ok.returncode == 0, output(ok)[-4000:]
    assert SERVERS in one_line(output(ok))
    # The same pack with dc1 marked as production: the files are the repository's, team.yaml its own.
    pack = tmp_path / "pack" / "policy"
    pack.mkdir(parents=True)
    for name in ("__main__.py", "__init__.py", "rules.py", "PulumiPolicy.yaml"):
        (pack / name).symlink_to(env.project.dir / "policy" / name)
    (pack / "team.yaml").write_text("productionStacks: [dc1]\n")
    (pack.parent / ".venv").symlink_to(env.project.dir / ".venv")
    refused = preview(env, pack)
    text = one_line(output(refused))
    assert refused.returncode != 0, text[-4000:]
    assert SERVERS in text and "high-availability" in text, text[-4000:]
    # three servers and two gateways pass (the engine hands the pack every number as a float)
    env.project.overrides["dc1"] = {"meshGateway": {**(env.project.gateways["dc1"] or {}), "replicas": 2},
                                    "helmValues": {"server": {"replicas": 3}}}
    env.project.write_stack("dc1")
    ok = preview(env, pack)
    assert ok.returncode == 0, output(ok)[-4000:]
    assert "high-availability" not in output(ok)
