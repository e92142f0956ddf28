"""`python -m federation diff` on a scratch copy of the project, with real helm and real charts.

The scratch repository holds this project's program (``__main__.py``, ``components/``,
``Pulumi.yaml``), its dc1 and dc2 stack files, a secondary dc3 on chart 1.9.11 and a primary dc4
on a small chart of our own, in the repository (``chartPath``), that renders a Secret from the
values. Each test changes the working
tree and diffs it against the commit; the expected object changes were found by running the
diff once and reviewed against what the chart does with the value.

A pull request whose base is a real older revision of this repository, from before the program's
evaluation seam (components/evaluation.py), is diffed against today's program in a repository of
its own (tests/revisions.py names the revisions).

Also here: the workflows that run the diff and the previews pass actionlint (built by
tools/actionlint.sh from its Go module), which finds a deliberately broken copy.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest

from federation import diff, diff_result, render, report
from federation.objdiff import MISSING, Hidden
from pulumi_mocks import ROOT
from localcluster.tools import consul_charts, ensure
from revisions import BEFORE_SEAM, export

pytestmark = pytest.mark.chart

DC3 = """config:
  consul-federation:role: secondary
  consul-federation:datacenter: dc3
  consul-federation:kubeContext: kind-dc3
  consul-federation:primaryStack: organization/consul-federation/dc1
  consul-federation:chartVersion: 1.9.11
  consul-federation:k8sAuthMethodHost: https://203.0.113.30:6443
"""
DC4 = """config:
  consul-federation:role: primary
  consul-federation:datacenter: dc4
  consul-federation:kubeContext: kind-dc4
  consul-federation:chartPath: charts/secret
"""
# A chart named consul (chartPath requires it) whose only object is a Secret made from values.
SECRET_TEMPLATE = """apiVersion: v1
kind: Secret
metadata:
  name: {{ .Values.global.name }}-fake
  namespace: {{ .Release.Namespace }}
data:
  replicas: {{ printf "hidden-replicas-%v" .Values.meshGateway.replicas | b64enc }}
  datacenter: {{ .Values.global.datacenter | b64enc }}
stringData:
  replicas: "hidden-plain-{{ .Values.meshGateway.replicas }}"
"""
GATEWAY = "Deployment consul/consul-mesh-gateway"
GATEWAY_SERVICE = "Service consul/consul-mesh-gateway"
WAN_PORT = 'spec.template.metadata.annotations["consul.hashicorp.com/gateway-wan-port"]'


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """(repository, its first commit)."""
    repo = tmp_path_factory.mktemp("project")
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dc1.yaml", "Pulumi.dc2.yaml"):
        shutil.copy(os.path.join(ROOT, name), repo / name)
    shutil.copytree(os.path.join(ROOT, "components"), repo / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))
    chart = repo / "charts" / "secret"  # in the repository: the base side renders its own copy
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: consul\nversion: 1.0.0\n")
    (chart / "templates" / "secret.yaml").write_text(SECRET_TEMPLATE)
    (repo / "Pulumi.dc3.yaml").write_text(DC3)
    (repo / "Pulumi.dc4.yaml").write_text(DC4)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    return repo, git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def project(scratch):
    """The scratch repository back at its first commit, with a clean working tree."""
    repo, base = scratch
    git(repo, "reset", "-q", "--hard", base)
    git(repo, "clean", "-qfd")
    return repo


def edit(repo, name, old, new):
    path = repo / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new))


def charts():
    return render.Charts(ensure("chart")["HELM"], consul_charts())


def run(repo, *stacks):
    return diff.run_diff(str(repo), "HEAD", list(stacks), charts())


def stack(result, name):
    return next(s for s in result.stacks if s.name == name)


def changes(result, name):
    """(op, object, ((path, old, new), ...)) of one stack, after checking it had no error."""
    found = stack(result, name)
    assert found.errors == []
    return [(c.op, str(c.key), tuple((f.path, f.old, f.new) for f in c.fields)) for c in found.changes]


def objects(result, name, op):
    return {key for o, key, _ in changes(result, name) if o == op}


def cli(repo, *args):
    overrides = [arg for version, path in consul_charts().items() for arg in ("--chart", f"{version}={path}")]
    return subprocess.run([sys.executable, "-m", "federation", "diff", "--helm", ensure("chart")["HELM"],
                           *overrides, *args], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})


def test_gateway_replicas_change_only_the_gateway_deployment(project):
    edit(project, "Pulumi.dc1.yaml", "nodePort: 30001\n", "nodePort: 30001\n    replicas: 2\n")
    done = cli(project, "--markdown", "--stacks", "dc1")
    assert done.returncode == diff_result.EXIT_CHANGES, done.stderr
    assert done.stdout.startswith(report.MARKER + "\n")
    assert ("<details><summary><b>dc1</b>: 1 changed (primary; chart 2.0.3)</summary>\n\n"
            "```diff\n"
            f"~ {GATEWAY}\n"
            "-   spec.replicas: 1\n"
            "+   spec.replicas: 2\n"
            "```\n\n"
            "</details>\n") in done.stdout


def test_gateway_service_type_nodeport_to_loadbalancer(project):
    edit(project, "Pulumi.dc2.yaml", "serviceType: NodePort\n    nodePort: 30002\n", "serviceType: LoadBalancer\n")
    assert changes(run(project, "dc2"), "dc2") == [
        ("changed", GATEWAY, ((WAN_PORT, "30002", "443"),)),
        ("changed", GATEWAY_SERVICE, (("spec.ports[name=gateway].nodePort", 30002, MISSING),
                                      ("spec.type", "NodePort", "LoadBalancer"))),
    ]


def test_acls_off_removes_the_acl_objects_and_changes_their_users(project):
    edit(project, "Pulumi.dc1.yaml", "role: primary\n", "role: primary\n  consul-federation:acls: false\n")
    result = run(project, "dc1")
    assert objects(result, "dc1", "added") == set()
    assert objects(result, "dc1", "removed") == {
        "ClusterRole consul-auth-method", "ClusterRoleBinding consul-auth-method",
        "ClusterRoleBinding consul-authdelegator", "Job consul/consul-server-acl-init",
        "Job consul/consul-server-acl-init-cleanup", "Role consul/consul-server-acl-init",
        "Role consul/consul-server-acl-init-cleanup", "RoleBinding consul/consul-server-acl-init",
        "RoleBinding consul/consul-server-acl-init-cleanup", "Secret consul/consul-auth-method",
        "ServiceAccount consul/consul-auth-method", "ServiceAccount consul/consul-server-acl-init",
        "ServiceAccount consul/consul-server-acl-init-cleanup",
    }
    assert objects(result, "dc1", "changed") == {
        "ConfigMap consul/consul-server-config", "Deployment consul/consul-connect-injector", GATEWAY,
        "Job consul/consul-create-federation-secret", "Role consul/consul-create-federation-secret",
        "StatefulSet consul/consul-server",
    }
    fields = {key: dict((path, (old, new)) for path, old, new in f) for _, key, f in changes(result, "dc1")}
    old, new = fields["Job consul/consul-create-federation-secret"][
        "spec.template.spec.containers[name=create-federation-secret].command[2]"]
    assert "-export-replication-token=true" in old and "-export-replication-token" not in new
    assert fields["ConfigMap consul/consul-server-config"]['data["acl-config.json"]'][1] is MISSING


def test_chart_bump_renders_both_chart_versions(project):
    edit(project, "Pulumi.dc3.yaml", "chartVersion: 1.9.11", "chartVersion: 2.0.3")
    result = run(project, "dc3")
    assert (stack(result, "dc3").base.chart_version, stack(result, "dc3").head.chart_version) == ("1.9.11", "2.0.3")
    assert objects(result, "dc3", "added") == {
        "ClusterRole consul-gateway-cleanup-custom", "ClusterRole consul-gateway-resources-custom",
        "ClusterRoleBinding consul-gateway-cleanup-custom", "ClusterRoleBinding consul-gateway-resources-custom",
        "ConfigMap consul/consul-gateway-resources-config-custom",
        "CustomResourceDefinition ratelimits.consul.hashicorp.com",
        "CustomResourceDefinition routeextprocs.consul.hashicorp.com",
        "CustomResourceDefinition routetlssdsfilters.consul.hashicorp.com",
        "Job consul/consul-gateway-cleanup-custom", "ServiceAccount consul/consul-gateway-cleanup-custom",
        "ServiceAccount consul/consul-gateway-resources-custom",
    }
    # Gateway API CRDs that 2.0 no longer ships: Helm deletes them on upgrade.
    assert objects(result, "dc3", "removed") == {
        "CustomResourceDefinition grpcroutes.gateway.networking.k8s.io",
        "CustomResourceDefinition tlsroutes.gateway.networking.k8s.io",
        "CustomResourceDefinition udproutes.gateway.networking.k8s.io",
    }
    assert objects(result, "dc3", "changed") == {
        "ClusterRole consul-connect-injector", "ClusterRole consul-gateway-cleanup",
        "CustomResourceDefinition gatewayclassconfigs.consul.hashicorp.com",
        "CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io",
        "CustomResourceDefinition gateways.gateway.networking.k8s.io",
        "CustomResourceDefinition httproutes.gateway.networking.k8s.io",
        "CustomResourceDefinition referencegrants.gateway.networking.k8s.io",
        "CustomResourceDefinition routeauthfilters.consul.hashicorp.com",
        "CustomResourceDefinition terminatinggateways.consul.hashicorp.com",
        "Deployment consul/consul-connect-injector", GATEWAY, "Deployment consul/consul-webhook-cert-manager",
        "Job consul/consul-gateway-cleanup", "Job consul/consul-gateway-resources",
        "Job consul/consul-server-acl-init", "Job consul/consul-server-acl-init-cleanup",
        "Job consul/consul-tls-init", "Job consul/consul-tls-init-cleanup",
        "MutatingWebhookConfiguration consul/consul-connect-injector", "Pod consul/consul-test",
        "StatefulSet consul/consul-server", "ValidatingWebhookConfiguration consul/consul-connect-injector",
    }
    assert ("changed", (
        ("spec.template.spec.initContainers[name=locality-init].image",
         "hashicorp/consul-k8s-control-plane:1.9.11", "hashicorp/consul-k8s-control-plane:2.0.3"),
        ("spec.template.spec.containers[name=consul].image", "hashicorp/consul:1.22.7", "hashicorp/consul:2.0.3"),
    )) in {(op, f) for op, key, f in changes(result, "dc3") if key == "StatefulSet consul/consul-server"}


def test_a_change_that_touches_no_chart_value_is_no_change(project):
    edit(project, "Pulumi.dc1.yaml", "role: primary\n", "role: primary\n  consul-federation:releaseTimeoutSeconds: 600\n")
    edit(project, "Pulumi.dc2.yaml", "config:\n", "config:\n  # dc2 joins dc1 over the mesh gateways\n")
    assert git(project, "status", "--porcelain").split() == ["M", "Pulumi.dc1.yaml", "M", "Pulumi.dc2.yaml"]
    done = cli(project, "--stacks", "dc1", "dc2")
    assert done.returncode == diff_result.EXIT_NO_CHANGE, done.stdout + done.stderr
    assert "\ndc1: no change  [primary; chart 2.0.3]\n" in done.stdout
    assert "\ndc2: no change  [secondary; chart 2.0.3; k8sAuthMethodHost is derived" in done.stdout


def test_secret_data_shows_which_keys_changed_never_the_values(project):
    edit(project, "Pulumi.dc4.yaml", "kubeContext: kind-dc4\n",
         "kubeContext: kind-dc4\n  consul-federation:meshGateway:\n    replicas: 3\n")
    result = run(project, "dc4")
    assert changes(result, "dc4") == [
        ("changed", "Secret consul/consul-fake", (("data.replicas", Hidden(0), Hidden(1)),
                                                  ("stringData.replicas", Hidden(0), Hidden(1)))),
    ]
    shown = report.text(result) + report.markdown(result)
    assert "data.replicas: changed (secret value not shown)" in report.text(result)
    values = ["hidden-replicas-1", "hidden-replicas-3", "hidden-plain-1", "hidden-plain-3"]
    assert [v for v in values if v in shown] == []
    assert "aGlkZGVu" not in shown  # base64 of "hidden"


def test_the_program_code_of_each_side_computes_its_values(project):
    edit(project, "components/helm_values.py", "GATEWAY_SERVICE_PORT = 443\n", "GATEWAY_SERVICE_PORT = 8443\n")
    assert changes(run(project, "dc1"), "dc1") == [
        ("changed", GATEWAY_SERVICE, (("spec.ports[name=gateway].port", 443, 8443),)),
    ]


def test_a_stack_on_one_side_only_is_all_added_or_all_removed(project):
    (project / "Pulumi.dc5.yaml").write_text((project / "Pulumi.dc2.yaml").read_text().replace("dc2", "dc5"))
    (project / "Pulumi.dc2.yaml").unlink()
    result = run(project, "dc2", "dc5")
    removed, added = changes(result, "dc2"), changes(result, "dc5")
    assert not stack(result, "dc2").head_exists and not stack(result, "dc5").base_exists
    assert len(removed) > 50 and {op for op, _, _ in removed} == {"removed"}
    assert {op for op, _, _ in added} == {"added"}
    assert {key for _, key, _ in added} == {key for _, key, _ in removed}
    assert "StatefulSet consul/consul-server" in {key for _, key, _ in added}


def test_a_configuration_error_is_reported_per_stack_and_exits_1(project):
    edit(project, "Pulumi.dc1.yaml", "nodePort: 30001\n", "nodePort: 30001\n    replicas: 0\n")
    done = cli(project, "--stacks", "dc1")
    assert done.returncode == diff_result.EXIT_ERROR
    assert "\ndc1: error" in done.stdout
    assert ("  working tree: 1 configuration error(s); fix them in the stack's Pulumi.<stack>.yaml and run again"
            in done.stdout)
    assert "consul-federation:meshGateway.replicas: 0 is not valid; expected a whole number from 1 to 100" in done.stdout


def test_a_secondary_needs_its_primary_stack_file(project):
    (project / "Pulumi.dc1.yaml").unlink()
    assert stack(run(project, "dc2"), "dc2").errors == [
        "working tree: primaryStack 'organization/consul-federation/dc1' names stack dc1, "
        "but Pulumi.dc1.yaml does not exist"]


def test_a_tree_without_the_program_is_an_error_not_another_trees_code(project):
    shutil.rmtree(project / "components")  # the CLI runs with this project's root on PYTHONPATH
    done = cli(project, "--stacks", "dc1")
    assert done.returncode == diff_result.EXIT_ERROR
    assert f"error: working tree: no components package in {project}" in done.stdout


def test_a_setting_set_with_secret_is_shown_as_changed_and_never_rendered(project):
    """The diff has no passphrase: a setting encrypted on either side is left out of both sides'
    values (so it shows no object change of its own) and named as changed or unchanged; the rest
    of the stack is still rendered and compared."""
    edit(project, "Pulumi.dc1.yaml", "  consul-federation:meshGateway:\n    serviceType: NodePort\n    nodePort: 30001\n",
         "  consul-federation:meshGateway:\n    secure: v1:AAAA\n  consul-federation:releaseName: other\n")
    result = run(project, "dc1")
    dc1 = stack(result, "dc1")
    assert (dc1.errors, dc1.secrets) == ([], {"meshGateway": True})
    assert dc1.changes  # the release's new name is rendered and compared as before
    assert not [f for c in dc1.changes for f in c.fields if "nodePort" in f.path or ".type" in f.path]
    assert result.exit_code == diff_result.EXIT_CHANGES
    out = report.text(result)
    first = next(line for line in out.splitlines() if line.startswith("dc1: "))
    assert ", encrypted meshGateway changed  [primary; chart 2.0.3; set with --secret, so not decrypted and not " \
           "rendered (both sides use the defaults; review with pulumi config get KEY): meshGateway (changed)]" in first
    assert "AAAA" not in out and "AAAA" not in report.markdown(result)



def test_a_setting_that_may_not_be_secret_is_refused_by_name_not_as_missing(project):
    """kubeContext set with --secret: pulumi preview refuses it, and so does the diff, naming the
    rule (not "required but not set", which is all a side's code could say without the value)."""
    edit(project, "Pulumi.dc1.yaml", "consul-federation:kubeContext: kind-dc1\n",
         "consul-federation:kubeContext:\n    secure: v1:AAAA\n")
    result = run(project, "dc1")
    assert stack(result, "dc1").errors == [
        "working tree: consul-federation:kubeContext is set as a secret, but it names objects and ends up in "
        "resource names and URNs, which Pulumi never encrypts; set it without --secret (settings that can be "
        "secret: helmValues, meshGateway, k8sAuthMethodHost, chartRepo)"]
    assert result.exit_code == diff_result.EXIT_ERROR
@pytest.mark.parametrize("commit", BEFORE_SEAM)
def test_a_base_from_before_the_evaluation_seam_diffs_against_todays_program(tmp_path, commit):
    """A pull request whose base is a real older revision of this repository (no
    components/evaluation.py: its values come through evaluate.py's frozen contract 0) and whose
    head is today's program: only the change the pull request makes shows."""
    repo = tmp_path / "repo"
    export(commit, str(repo))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "an older revision")
    shutil.rmtree(repo / "components")
    shutil.copytree(os.path.join(ROOT, "components"), repo / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__main__.py", "Pulumi.yaml"):
        shutil.copy(os.path.join(ROOT, name), repo / name)
    edit(repo, "Pulumi.dc1.yaml", "nodePort: 30001\n", "nodePort: 30001\n    replicas: 2\n")
    result = run(repo, "dc1", "dc2")
    assert report.text(result).split("\n")[1:] == [
        "",
        "dc1: 1 changed  [primary; chart 2.0.3]",
        f"  ~ {GATEWAY}",
        "      spec.replicas: 1 -> 2",
        "dc2: no change  [secondary; chart 2.0.3; k8sAuthMethodHost is derived from the cluster at deploy "
        "time; rendered as https://<derived-at-deploy>]",
        "",
    ]
    assert result.exit_code == diff_result.EXIT_CHANGES


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_a_chart_without_a_local_source_is_pulled_from_chart_repo(project, tmp_path, monkeypatch):
    """The last chart source, against a chart repository served on loopback: a version with no
    pin and no archive in ../shared/charts (2.0.4, the 2.0.3 chart renumbered)."""
    helm = ensure("chart")["HELM"]
    served, chart = tmp_path / "repo", tmp_path / "src" / "consul"
    shutil.copytree(consul_charts()["2.0.3"], chart)
    (chart / "Chart.yaml").write_text((chart / "Chart.yaml").read_text().replace("\nversion: 2.0.3\n", "\nversion: 2.0.4\n"))
    subprocess.run([helm, "package", str(chart), "-d", str(served)], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        subprocess.run([helm, "repo", "index", str(served), "--url", url], check=True, capture_output=True)
        edit(project, "Pulumi.dc1.yaml", "role: primary\n",
             f"role: primary\n  consul-federation:chartRepo: {url}\n  consul-federation:chartVersion: 2.0.4\n")
        git(project, "commit", "-qam", "dc1 from the loopback repository")
        edit(project, "Pulumi.dc1.yaml", "nodePort: 30001\n", "nodePort: 30001\n    replicas: 2\n")
        monkeypatch.setenv("CONSUL_FEDERATION_CACHE", str(tmp_path / "cache"))
        result = diff.run_diff(str(project), "HEAD", ["dc1"], render.Charts(helm, {}))
    finally:
        server.shutdown()
        server.server_close()
    assert changes(result, "dc1") == [("changed", GATEWAY, (("spec.replicas", 1, 2),))]
    assert stack(result, "dc1").head.job.chart.startswith(str(tmp_path / "cache" / "consul-chart" / "2.0.4-"))


WORKFLOWS = [os.path.join(ROOT, ".github", "workflows", name) for name in ("preview.yml", "test.yml")]


@functools.lru_cache(maxsize=None)
def actionlint():
    done = subprocess.run(["bash", os.path.join(ROOT, "tools", "actionlint.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    path = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)["ACTIONLINT"]
    assert os.access(path, os.X_OK)
    return path


def test_the_workflows_pass_actionlint():
    assert WORKFLOWS and all(os.path.isfile(w) for w in WORKFLOWS)
    done = subprocess.run([actionlint(), "-no-color", *WORKFLOWS], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_flags_a_broken_workflow(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    with open(WORKFLOWS[0], encoding="utf-8") as handle:
        text = handle.read()
    assert "    needs: stacks\n" in text
    (workflows / "preview.yml").write_text(text.replace("    needs: stacks\n", "    needs: nosuchjob\n"))
    done = subprocess.run([actionlint(), "-no-color", str(workflows / "preview.yml")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert '"nosuchjob" which does not exist' in done.stdout, done.stdout
