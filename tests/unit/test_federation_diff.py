"""federation's pure parts: object diff, Secret hiding, reports, affected stacks, stack files.

The chart tier (tests/chart/test_diff.py) runs the whole command with real helm and charts; these
pin the rules it is built from on small hand-made objects.
"""

import base64
import json
import os

import pytest

from federation import affected, diff_result, objdiff, render, report, stacks
from federation.objdiff import MISSING, FieldChange, Hidden
from pulumi_mocks import ROOT

pytestmark = pytest.mark.unit


def deployment(replicas=1, env=None, args=None):
    container = {"name": "app", "image": "app:1", "env": env or [], "args": args or ["-a"]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "gw", "namespace": "consul"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}}}


def secret(data=None, string_data=None, name="s"):
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "consul"}}
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_a_changed_field_is_its_dotted_path_with_both_values():
    changes = objdiff.diff([deployment(1)], [deployment(2)])
    assert [(c.op, str(c.key), c.fields) for c in changes] == [
        ("changed", "Deployment consul/gw", (FieldChange("spec.replicas", 1, 2),))]


def test_named_list_items_are_matched_by_name_so_an_insert_is_one_change():
    old = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    new = [{"name": "Z", "value": "0"}] + old
    changes = objdiff.field_changes(deployment(env=old), deployment(env=new))
    assert changes == [FieldChange("spec.template.spec.containers[name=app].env[name=Z]", MISSING,
                                   {"name": "Z", "value": "0"})]


def test_a_list_of_scalars_is_one_change_and_a_multiline_item_is_diffed_by_index():
    assert objdiff.field_changes(deployment(args=["-a"]), deployment(args=["-x", "-a"])) == [
        FieldChange("spec.template.spec.containers[name=app].args", ["-a"], ["-x", "-a"])]
    script = objdiff.field_changes(deployment(args=["-c", "one\ntwo\n"]), deployment(args=["-c", "one\n2\n"]))
    assert script == [FieldChange("spec.template.spec.containers[name=app].args[1]", "one\ntwo\n", "one\n2\n")]


def test_keys_with_dots_or_slashes_are_quoted_in_paths():
    old, new = deployment(), deployment()
    new["metadata"]["annotations"] = {"consul.hashicorp.com/x": "y"}
    assert objdiff.field_changes(old, new) == [FieldChange("metadata.annotations", MISSING,
                                                           {"consul.hashicorp.com/x": "y"})]
    old["metadata"]["annotations"] = {"consul.hashicorp.com/x": "z"}
    assert [c.path for c in objdiff.field_changes(old, new)] == ['metadata.annotations["consul.hashicorp.com/x"]']


def test_objects_added_and_removed_with_their_hooks():
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "tls-init", "namespace": "consul",
                        "annotations": {"helm.sh/hook": "pre-install,pre-upgrade",
                                        "helm.sh/hook-delete-policy": "hook-succeeded"}}}
    test_pod = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "t", "annotations": {"helm.sh/hook": "test"}}}
    changes = objdiff.diff([deployment(), test_pod], [job])
    assert [(c.op, str(c.key), c.hook) for c in changes] == [
        ("removed", "Deployment consul/gw", None),
        ("added", "Job consul/tls-init", "pre-install,pre-upgrade"),
        ("removed", "Pod t", "test")]


def test_objects_are_told_apart_by_api_group():
    ours = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "Gateway", "metadata": {"name": "g"}}
    theirs = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "g"}}
    assert [(c.op, c.key.group) for c in objdiff.diff([ours], [theirs])] == [
        ("removed", "consul.hashicorp.com"), ("added", "gateway.networking.k8s.io")]


def test_a_render_with_a_duplicate_object_is_refused():
    with pytest.raises(objdiff.DuplicateObject, match="Deployment consul/gw"):
        objdiff.diff([deployment(), deployment(2)], [])


def test_secret_values_are_replaced_by_which_key_changed():
    old = secret({"kept": b64("kept-value"), "changed": b64("old-value"), "gone": b64("gone-value")},
                 {"plain": "old-plain"})
    new = secret({"kept": b64("kept-value"), "changed": b64("new-value"), "new": b64("added-value")},
                 {"plain": "new-plain"})
    changes = objdiff.field_changes(old, new)
    assert {c.path: (c.old, c.new) for c in changes} == {
        "data.changed": (Hidden(0), Hidden(1)),
        "data.gone": (Hidden(0), MISSING),
        "data.new": (MISSING, Hidden(1)),
        "stringData.plain": (Hidden(0), Hidden(1)),
    }
    shown = repr(changes) + report.text(result_with(changes)) + report.markdown(result_with(changes))
    hidden = ["kept-value", "old-value", "new-value", "gone-value", "added-value", "old-plain", "new-plain"]
    assert not [v for v in hidden if v in shown or b64(v) in shown]
    assert "data.changed: changed (secret value not shown)" in report.text(result_with(changes))


def test_a_secret_data_field_that_is_not_a_map_is_hidden_too():
    changes = objdiff.field_changes(secret({"a": "1"}), secret(b64("raw-secret")))
    assert changes == [FieldChange("data", Hidden(0), Hidden(1))]


def result_with(fields, stack="dc1"):
    change = objdiff.ObjectChange("changed", objdiff.object_key(secret()), tuple(fields))
    return diff_result.Result("base", "head", [diff_result.StackDiff(stack, changes=[change])])


def test_markdown_starts_with_the_marker_and_collapses_each_stack():
    md = report.markdown(result_with([FieldChange("spec.replicas", 1, 2)]))
    assert md.startswith(report.MARKER + "\n")
    assert "<details><summary><b>dc1</b>: 1 changed</summary>" in md
    assert "```diff\n~ Secret consul/s\n-   spec.replicas: 1\n+   spec.replicas: 2\n```" in md


def test_markdown_fences_outlast_backticks_in_values():
    md = report.markdown(result_with([FieldChange("data.script", "```", "````")]))
    assert "`````diff\n" in md


def test_markdown_keeps_to_its_budget(monkeypatch):
    monkeypatch.setattr(report, "BUDGET", 2000)
    fields = [FieldChange(f"data.k{i}", "a" * 50, "b" * 50) for i in range(200)]
    md = report.markdown(result_with(fields))
    assert len(md) < 3500
    assert "more lines: run `python -m federation diff --stacks dc1` for all of them" in md


def test_exit_codes_errors_win_over_changes():
    changed = result_with([FieldChange("spec.replicas", 1, 2)])
    assert changed.exit_code == diff_result.EXIT_CHANGES == 2
    assert diff_result.Result("b", "h", [diff_result.StackDiff("dc1")]).exit_code == diff_result.EXIT_NO_CHANGE == 0
    changed.stacks.append(diff_result.StackDiff("dc2", errors=["working tree: bad"]))
    assert changed.exit_code == diff_result.EXIT_ERROR == 1


PRIMARIES = {"dc1": None, "dc2": "dc1", "dc3": "dc1", "eu1": None, "eu2": "eu1"}


@pytest.mark.parametrize("changed,expected", [
    (["components/helm_values.py"], sorted(PRIMARIES)),
    (["components/chart_keys/consul-2.0.3.txt"], sorted(PRIMARIES)),
    (["requirements.txt"], sorted(PRIMARIES)),
    (["__main__.py", "README.md"], sorted(PRIMARIES)),
    (["Pulumi.yaml"], sorted(PRIMARIES)),
    (["policy/team.yaml"], sorted(PRIMARIES)),
    (["Pulumi.dc2.yaml"], ["dc2"]),
    (["Pulumi.dc1.yaml"], ["dc1", "dc2", "dc3"]),
    (["Pulumi.eu1.yaml", "Pulumi.dc3.yaml"], ["dc3", "eu1", "eu2"]),
    (["Pulumi.gone.yaml"], []),  # a deleted stack is not previewed
    (["README.md", "federation/diff.py", ".github/workflows/preview.yml", "tests/unit/x.py"], []),
])
def test_affected_stacks(changed, expected):
    assert affected.affected_stacks(changed, PRIMARIES) == expected


def test_a_deleted_primary_touches_its_secondaries():
    assert affected.affected_stacks(["Pulumi.dc1.yaml"], {"dc2": "dc1"}) == ["dc2"]


def test_stack_files_read_as_pulumi_config(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: consul-federation\n")
    (tmp_path / "Pulumi.dc2.yaml").write_text(
        "config:\n"
        "  kubernetes:strictMode: 'true'\n"
        "  consul-federation:acls: false\n"
        "  consul-federation:releaseTimeoutSeconds: 600\n"
        "  consul-federation:primaryStack: organization/consul-federation/dc1\n"
        "  consul-federation:meshGateway:\n"
        "    replicas: 2\n"
        "  consul-federation:helmValues:\n"
        "    server:\n"
        "      extraConfig:\n"
        "        secure: v1:abc\n")
    (tmp_path / "Pulumi.dc3.yaml").write_text("config: [1\n")
    assert stacks.stack_names(str(tmp_path)) == ["dc2", "dc3"]
    stack = stacks.read_stack(str(tmp_path), "dc2")
    assert stack.raw["acls"] == "false" and stack.raw["releaseTimeoutSeconds"] == "600"
    assert stack.raw["meshGateway"] == {"replicas": 2}
    assert "strictMode" not in str(stack.raw)
    assert stack.primary_name == "dc1"
    assert stack.secret_keys == {"helmValues"}
    with pytest.raises(stacks.StackFileError, match="Pulumi.dc3.yaml is not valid YAML"):
        stacks.read_stack(str(tmp_path), "dc3")


def test_stack_files_follow_the_pulumi_clis_yaml_rules(tmp_path):
    """As the CLI reads a stack file (checked with pulumi 3.260: `pulumi config --json`): only
    true and false are booleans, so `acls: yes` is the text "yes", which the program refuses
    under the CLI and so does the diff; a key given twice fails the whole file."""
    from components.config import ConfigError, parse_config

    (tmp_path / "Pulumi.dc1.yaml").write_text(
        "config:\n"
        "  consul-federation:role: primary\n"
        "  consul-federation:datacenter: dc1\n"
        "  consul-federation:kubeContext: kind-dc1\n"
        "  consul-federation:acls: yes\n"
        "  consul-federation:gossipEncryption: True\n"
        "  consul-federation:helmValues:\n"
        "    ui:\n"
        "      enabled: on\n")
    (tmp_path / "Pulumi.dc2.yaml").write_text(
        "config:\n  consul-federation:datacenter: dc2\n  consul-federation:datacenter: dc3\n")
    raw = stacks.read_stack(str(tmp_path), "dc1").raw
    assert (raw["acls"], raw["gossipEncryption"], raw["helmValues"]) == ("yes", "true", {"ui": {"enabled": "on"}})
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert refused.value.errors == [
        "consul-federation:acls: 'yes' is not valid; expected true or false"]
    with pytest.raises(stacks.StackFileError,
                       match="Pulumi.dc2.yaml is not valid YAML: mapping key 'consul-federation:datacenter' "
                             "already defined at line 2"):
        stacks.read_stack(str(tmp_path), "dc2")


def test_chart_sources_in_order(tmp_path, monkeypatch):
    """A stack's chartPath, then --chart, then chart_source's rule (its own tests:
    test_chart_source.py), whose errors become the diff's."""
    for name, version in (("override", "2.0.3"), ("env", "1.9.11"), ("path", "2.0.3")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Chart.yaml").write_text(f"name: consul\nversion: {version}\n")
    charts = render.Charts("/bin/false", {"2.0.3": str(tmp_path / "override")})
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_2_0_3", str(tmp_path / "env"))
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_1_9_11", str(tmp_path / "env"))
    monkeypatch.setenv("CONSUL_FEDERATION_CHART_1_8_16", str(tmp_path / "missing"))
    assert charts.directory("2.0.3", "https://r", str(tmp_path / "path")) == str(tmp_path / "path")
    assert charts.directory("2.0.3", "https://r", None) == str(tmp_path / "override")
    assert charts.directory("1.9.11", "https://r", None) == str(tmp_path / "env")
    with pytest.raises(render.RenderError, match="CONSUL_FEDERATION_CHART_1_8_16=.* is neither a chart directory"):
        charts.directory("1.8.16", "https://r", None)


def test_the_preview_workflow_finds_its_comment_by_the_diffs_marker():
    with open(os.path.join(ROOT, ".github", "workflows", "preview.yml"), encoding="utf-8") as handle:
        workflow = handle.read()
    assert f'MARKER: "{report.MARKER}"' in workflow
    assert "python -m federation diff --base \"$BASE_SHA\" --markdown" in workflow


def test_affected_runs_where_only_pyyaml_is_installed():
    """The pull request workflow's first job installs PyYAML alone and runs `affected`: the
    command must not import pulumi, kubernetes or the program's Pulumi modules (a blocker makes
    those imports fail here as they would there; the program's stdlib-only leaves, such as
    ``components.stack_ref``, may load)."""
    import subprocess
    import sys

    blocker = (
        "import sys, importlib.abc\n"
        "class Absent(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('pulumi', 'pulumi_kubernetes', 'pulumi_random', 'kubernetes'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Absent())\n"
        "from federation.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", blocker, "affected", "--base", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    refused = subprocess.run([sys.executable, "-c", blocker, "verify", "--help"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "No module named" in refused.stderr  # the blocker works


def test_a_base_that_names_no_commit_says_so(tmp_path, capsys):
    """git rev-parse --quiet says nothing: the message was 'git rev-parse ...: ' and no reason."""
    import subprocess

    from federation import __main__ as main

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    code = main.main(["diff", "--base", "nosuch", "--repo", str(tmp_path), "--helm", "/bin/true"])
    root = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--show-toplevel"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert (code, capsys.readouterr().err) == (1, (
        f"federation diff: 'nosuch' names no commit in {root}: give a branch, tag or commit that exists "
        "there (git fetch first if only a remote has it)\n"))


def test_a_chart_that_cannot_be_fetched_is_one_error_with_the_fix(tmp_path, monkeypatch, capsys):
    """Offline: the helm error once (it was printed for each stack and side, four times here),
    with the way out (--chart VERSION=DIR); the stacks point at it. One pull per chart."""
    from components.settings import DEFAULT_CHART_VERSION as v
    from federation import __main__ as main, chart_source

    pulls = tmp_path / "pulls"
    helm = tmp_path / "helm"
    helm.write_text(f"#!/bin/sh\necho pull >> {pulls}\n"
                    "echo 'Error: looks like \"https://helm.releases.hashicorp.com\" is not a valid chart "
                    "repository or cannot be reached' >&2\nexit 1\n")
    helm.chmod(0o755)
    monkeypatch.setenv("CONSUL_FEDERATION_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(chart_source.variable(v), raising=False)
    monkeypatch.setattr(chart_source, "SHARED_CHARTS", str(tmp_path / "no-shared"))
    assert main.main(["diff", "--base", "HEAD", "--repo", ROOT, "--helm", str(helm), "--stacks", "dc1", "dc2"]) == 1
    assert capsys.readouterr().out.splitlines()[2:] == [
        f"error: no Consul chart {v}: helm pull consul {v} from https://helm.releases.hashicorp.com: Error: "
        "looks like \"https://helm.releases.hashicorp.com\" is not a valid chart repository or cannot be reached",
        f"  to render without the network, pass --chart {v}=DIR, DIR holding chart {v} (its Chart.yaml; "
        f"consul-{v}.tgz unpacked)",
        "dc1: error",
        f"  base: no chart {v} (the error above)",
        f"  working tree: no chart {v} (the error above)",
        "dc2: error",
        f"  base: no chart {v} (the error above)",
        f"  working tree: no chart {v} (the error above)",
    ]
    assert pulls.read_text() == "pull\n"


def test_an_errors_further_lines_continue_it_in_both_reports():
    """The missing chart's fix is its second line: indented in the text, quoted (not another
    "Error:") in the Markdown."""
    result = diff_result.Result("base", "head", [], errors=["no Consul chart 2.0.3: offline\nto render without "
                                                             "the network, pass --chart 2.0.3=DIR"])
    assert report.text(result).splitlines()[2:] == [
        "error: no Consul chart 2.0.3: offline", "  to render without the network, pass --chart 2.0.3=DIR"]
    assert "> **Error:** no Consul chart 2.0.3: offline\n> to render without the network, pass --chart 2.0.3=DIR\n" \
        in report.markdown(result)
