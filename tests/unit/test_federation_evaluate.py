"""The seam between `python -m federation diff` and the program: components/evaluation.py's
contract 1, and federation/evaluate.py reaching each revision's code through its own contract
(0, the frozen adapter, for this repository's real revisions from before the seam).

The expected answers were computed once and reviewed against helm_values.py: a primary creates
the federation secret and the replication token, a secondary takes both and its CA from the
primary's federation secret.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest

from components import evaluation
from federation import diff, evaluate, render, report
from pulumi_mocks import ROOT
from revisions import FIRST, LAST_BEFORE_SEAM, export

pytestmark = pytest.mark.unit

PLACEHOLDER = "https://<derived-at-deploy>"
PRIMARY_STACK = "organization/consul-federation/dc1"


def request(settings, primary=None, problem=None):
    return {"settings": settings, "primary_datacenter": primary, "primary_problem": problem,
            "auth_host_placeholder": PLACEHOLDER}


REQUESTS = {
    "dc1": request({"role": "primary", "datacenter": "dc1", "kubeContext": "kind-dc1",
                    "meshGateway": {"serviceType": "NodePort", "nodePort": 30001}}),
    "dc2": request({"role": "secondary", "datacenter": "dc2", "kubeContext": "kind-dc2",
                    "primaryStack": PRIMARY_STACK, "acls": "false"}, "dc1"),
    "dc3": request({"role": "secondary", "datacenter": "dc3", "kubeContext": "kind-dc3",
                    "primaryStack": PRIMARY_STACK, "k8sAuthMethodHost": "https://203.0.113.30:6443",
                    "namespace": "mesh", "releaseName": "c3", "chartVersion": "1.9.11",
                    "gossipEncryption": "false"}, "dc1"),
    "dc4": request({"role": "secondary", "datacenter": "dc4", "kubeContext": "kind-dc4",
                    "primaryStack": PRIMARY_STACK}, None, "Pulumi.dc1.yaml does not exist"),
    "bad": request({"role": "primary", "datacenter": "dc1", "kubeContext": "kind-dc1",
                    "meshGateway": {"replicas": 0}}),
    "json": request({"role": "primary", "datacenter": "dc5", "kubeContext": "kind-dc5",
                     "meshGateway": '{"replicas": 2}'}),  # an object setting as JSON text
}
CHART = {"chart_path": None, "chart_repo": "https://helm.releases.hashicorp.com", "chart_version": "2.0.3"}
CONSUL = {"namespace": "consul", "release": "consul"}
PRIMARY_GLOBAL = {"acls": {"createReplicationToken": True, "manageSystemACLs": True},
                  "federation": {"createFederationSecret": True, "enabled": True},
                  "gossipEncryption": {"secretKey": "key", "secretName": "consul-gossip-encryption-key"},
                  "name": "consul", "tls": {"enabled": True}}
LB_GATEWAY = {"enabled": True, "replicas": 1, "service": {"port": 443, "type": "LoadBalancer"},
              "wanAddress": {"source": "Service"}}
FROM_SECRET = {"caCert": {"secretKey": "caCert", "secretName": "consul-federation"},
               "caKey": {"secretKey": "caKey", "secretName": "consul-federation"}, "enabled": True}
SERVER_CONFIG = {"extraVolumes": [{"items": [{"key": "serverConfigJSON", "path": "config.json"}], "load": True,
                                   "name": "consul-federation", "type": "secret"}]}
EXPECTED = {
    "dc1": {**CHART, **CONSUL, "role": "primary", "auth_host_derived": False, "values": {
        "connectInject": {"enabled": True},
        "global": {**PRIMARY_GLOBAL, "datacenter": "dc1"},
        "meshGateway": {"enabled": True, "replicas": 1, "service": {"nodePort": 30001, "port": 443, "type": "NodePort"},
                        "wanAddress": {"source": "Service"}}}},
    "dc2": {**CHART, **CONSUL, "role": "secondary", "auth_host_derived": True, "values": {
        "connectInject": {"enabled": True},
        "global": {"acls": {"manageSystemACLs": False}, "datacenter": "dc2",
                   "federation": {"enabled": True, "k8sAuthMethodHost": PLACEHOLDER, "primaryDatacenter": "dc1"},
                   "gossipEncryption": {"secretKey": "gossipEncryptionKey", "secretName": "consul-federation"},
                   "name": "consul", "tls": FROM_SECRET},
        "meshGateway": LB_GATEWAY, "server": SERVER_CONFIG}},
    "dc3": {**CHART, "chart_version": "1.9.11", "namespace": "mesh", "release": "c3", "role": "secondary",
            "auth_host_derived": False, "values": {
                "connectInject": {"enabled": True},
                "global": {"acls": {"manageSystemACLs": True,
                                    "replicationToken": {"secretKey": "replicationToken",
                                                         "secretName": "consul-federation"}},
                           "datacenter": "dc3",
                           "federation": {"enabled": True, "k8sAuthMethodHost": "https://203.0.113.30:6443",
                                          "primaryDatacenter": "dc1"},
                           "name": "consul", "tls": FROM_SECRET},
                "meshGateway": LB_GATEWAY, "server": SERVER_CONFIG}},
    "dc4": {"error": "Pulumi.dc1.yaml does not exist"},
    "bad": {"error": "1 configuration error(s); fix them in the stack's Pulumi.<stack>.yaml and run again "
                     "(nothing was changed):\n  - consul-federation:meshGateway.replicas: 0 is not valid; "
                     "expected a whole number from 1 to 100"},
    "json": {**CHART, **CONSUL, "role": "primary", "auth_host_derived": False, "values": {
        "connectInject": {"enabled": True},
        "global": {**PRIMARY_GLOBAL, "datacenter": "dc5"},
        "meshGateway": {**LB_GATEWAY, "replicas": 2}}},
}
# The first commit read object settings only as mappings (no OBJECT_KEYS): its frozen answer.
JSON_TEXT_AT_FIRST = {"error": "1 configuration error(s); fix them in the stack's Pulumi.<stack>.yaml and run "
                               "again (nothing was changed):\n  - consul-federation:meshGateway: "
                               "'{\"replicas\": 2}' is not valid; expected an object (a YAML mapping)"}


def test_the_program_answers_through_contract_1():
    assert evaluation.CONTRACT == evaluate.CONTRACT == 1
    assert {name: evaluation.evaluate_stack(r) for name, r in REQUESTS.items()} == EXPECTED


def test_a_relative_chart_path_is_answered_as_the_project_directorys(tmp_path, monkeypatch):
    (tmp_path / "charts" / "c").mkdir(parents=True)
    (tmp_path / "charts" / "c" / "Chart.yaml").write_text("name: consul\nversion: 1.9.11\n")
    monkeypatch.chdir(tmp_path)
    answer = evaluation.evaluate_stack(request({**REQUESTS["dc1"]["settings"], "chartPath": "charts/c"}))
    assert (answer["chart_path"], answer["chart_version"]) == (str(tmp_path / "charts" / "c"), "1.9.11")


def evaluate_tree(project):
    done = subprocess.run([sys.executable, "-B", "-P", evaluate.__file__, str(project)],
                          input=json.dumps({"stacks": REQUESTS}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("commit,contract,expected", [
    (FIRST, 0, {**EXPECTED, "json": JSON_TEXT_AT_FIRST}),
    (LAST_BEFORE_SEAM, 0, EXPECTED),
    (None, 1, EXPECTED),  # this working tree
])
def test_each_revision_is_evaluated_through_its_own_contract(tmp_path, commit, contract, expected):
    """Revisions from before the seam through the frozen adapter, with the answers the seam gives."""
    if commit is None:
        project = ROOT
    else:
        project = tmp_path / "base"
        export(commit, str(project))
    assert evaluate_tree(project) == {"contract": contract, "stacks": expected}


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def test_a_base_declaring_an_unknown_contract_is_an_error_not_a_diff(tmp_path):
    """A base newer than this code (its contract 2) is refused by name, before anything renders."""
    repo = tmp_path / "repo"
    shutil.copytree(f"{ROOT}/components", repo / "components", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Pulumi.yaml", "Pulumi.dc1.yaml"):
        shutil.copy(f"{ROOT}/{name}", repo / name)
    seam = repo / "components" / "evaluation.py"
    today = seam.read_text()
    assert "\nCONTRACT = 1\n" in today
    seam.write_text(today.replace("\nCONTRACT = 1\n", "\nCONTRACT = 2\n"))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a base from the future")
    seam.write_text(today)
    result = diff.run_diff(str(repo), "HEAD", None, render.Charts("/bin/false", {}))  # helm never runs
    [error] = result.errors
    assert re.fullmatch(r"base: /\S+/components/evaluation\.py declares CONTRACT = 2, and this diff knows only "
                        r"contract 1 \(and 0, the revisions before it\): run the diff from a revision that "
                        r"knows it", error), error
    assert [(s.name, s.changes, s.errors) for s in result.stacks] == [("dc1", [], [])]
    assert result.exit_code == 1
    assert f"\nerror: {error}\n" in report.text(result)
