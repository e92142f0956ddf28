"""The pull request workflow's steps that call the project, run as a runner runs them
(workflow_runner.py says what is played): each job gets a fresh Python holding only what its
own steps install, on a pull request that changes dc2's stack file."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from localcluster.tools import consul_charts, ensure
from pulumi_mocks import ROOT
from workflow_runner import NODE24_MAJORS, PLAYED, JobRun, WorkflowError, action_of, load

pytestmark = pytest.mark.chart

WORKFLOWS = sorted(Path(ROOT, ".github", "workflows").glob("*.yml"))
PREVIEW = Path(ROOT, ".github", "workflows", "preview.yml")
# run: steps that call the project, and where they are run: here, or why not
CALLS_THE_PROJECT = {
    ("preview.yml", "stacks", "Stacks whose files or code changed"): "test_the_stacks_job_names_the_changed_stack",
    ("preview.yml", "objects", "Diff the chart objects of every stack"): "test_the_objects_job_diffs_the_changed_stack",
    ("test.yml", "test", "tools/test.sh"): ".ci/run runs it: the whole test command",
}


def calls_the_project(script: str) -> bool:
    """A line that runs `python -m federation` or a script of tools/ (not one that only says so)."""
    return any(re.search(r"python -m federation |tools/\w", line) for line in script.splitlines()
               if not line.strip().startswith(("echo ", "#")))


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory):
    """A clone of this commit (the base) with one more commit (the head) that changes dc2."""
    repo = tmp_path_factory.mktemp("pr") / "repo"
    subprocess.run(["git", "clone", "-q", "--no-local", ROOT, str(repo)], check=True)
    # the working tree under test (what CI's clean clone has anyway), committed as the base
    shutil.copytree(ROOT, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base", "--allow-empty")
    base = git(repo, "rev-parse", "HEAD")
    stack = repo / "Pulumi.dc2.yaml"
    stack.write_text(stack.read_text().replace("    nodePort: 30002\n", "    nodePort: 30002\n    replicas: 2\n"))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "dc2: two gateway replicas")
    return repo, base, git(repo, "rev-parse", "HEAD")


def context(base, head):
    # A pull request from a fork: its token cannot comment, so the comment step is skipped.
    return {"github": {"sha": head, "repository": "example/consul-federation", "token": "not-a-token",
                       "event": {"pull_request": {"number": 7, "base": {"sha": base},
                                                  "head": {"repo": {"full_name": "fork/consul-federation"}}}}},
            "secrets": {}}


def machine_env():
    """How this machine reaches PyPI (index, certificates, timeouts): no packages."""
    return {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "SSL_CERT", "REQUESTS_CA"))}


def test_every_action_is_a_node24_major_and_every_project_step_is_run_somewhere():
    steps = set()
    used = []
    for workflow in WORKFLOWS:
        for job, spec in load(workflow)["jobs"].items():
            for step in spec["steps"]:
                if "uses" in step:
                    used.append(step["uses"])
                elif calls_the_project(step["run"]):
                    steps.add((workflow.name, job, step.get("name", step["run"].strip())))
    assert used and steps
    for uses in used:
        name, major = action_of(uses)
        assert name in NODE24_MAJORS, f"{uses}: which major runs on Node 24 is not known here"
        assert major >= NODE24_MAJORS[name], f"{uses}: a Node 20 major; use v{NODE24_MAJORS[name]}"
    assert steps == set(CALLS_THE_PROJECT), steps ^ set(CALLS_THE_PROJECT)


def test_the_runner_refuses_what_it_does_not_play(tmp_path, pull_request):
    repo, base, head = pull_request
    workflow = {"jobs": {"j": {"steps": [{"uses": "actions/upload-artifact@v7"}]}}}
    with pytest.raises(WorkflowError, match="not an action this runner plays"):
        JobRun(workflow, "j", repo, tmp_path / "a", context(base, head)).run()
    workflow = {"jobs": {"j": {"steps": [{"run": "echo ${{ fromJSON(github.sha) }}"}]}}}
    with pytest.raises(WorkflowError, match="cannot evaluate"):
        JobRun(workflow, "j", repo, tmp_path / "b", context(base, head)).run()
    workflow = {"jobs": {"j": {"steps": [{"run": "echo ${{ github.event.after }}"}]}}}
    with pytest.raises(WorkflowError, match="the context has no 'after'"):
        JobRun(workflow, "j", repo, tmp_path / "c", context(base, head)).run()
    assert set(PLAYED) <= set(NODE24_MAJORS)


def test_the_stacks_job_names_the_changed_stack(tmp_path, pull_request):
    """Only what the job installs (PyYAML): `affected` must not import pulumi."""
    repo, base, head = pull_request
    job = JobRun(load(PREVIEW), "stacks", repo, tmp_path, context(base, head), extra_env=machine_env())
    results = job.run()
    assert results and all(r.returncode == 0 for r in results), [(r.name, r.stderr[-3000:]) for r in results]
    assert job.outputs["affected"] == {"stacks": '["dc2"]'}
    assert 'Stacks to preview: ["dc2"]' in job.summary.read_text()
    pip = job.path[0]
    listed = subprocess.run([f"{pip}/python", "-m", "pip", "list", "--format=json"], capture_output=True,
                            text=True, check=True).stdout
    assert "pulumi" not in {p["name"].lower() for p in json.loads(listed)}  # the job installed no pulumi


def test_the_objects_job_diffs_the_changed_stack(tmp_path, pull_request):
    """The runner would pull chart 2.0.3 from HashiCorp's repository; here the chart rule's own
    variable stands in for that network."""
    repo, base, head = pull_request
    charts = consul_charts()
    job = JobRun(load(PREVIEW), "objects", repo, tmp_path, context(base, head), helm=ensure("chart")["HELM"],
                 extra_env={**machine_env(), "CONSUL_FEDERATION_CHART_2_0_3": charts["2.0.3"]})
    results = {r.name: r for r in job.run()}
    failed = [(n, r.stderr[-3000:]) for n, r in results.items() if r.returncode]
    assert not failed, failed
    assert job.outputs["diff"] == {"status": "2"}  # changes
    markdown = (job.temp / "diff.md").read_text()
    assert "dc2" in markdown and "replicas" in markdown, markdown[:3000]
    assert markdown in job.summary.read_text()
    assert results["Comment the diff on the pull request (edit the earlier comment if there is one)"].skipped
    assert results["Fail when the diff failed"].skipped


def test_the_preview_job_installs_what_its_policy_pack_runs_on(tmp_path, pull_request):
    """pulumi/actions (not played) runs `pulumi preview --policy-pack policy`; the CLI starts the
    pack with the virtualenv its PulumiPolicy.yaml names. The job's steps before it run here as
    the runner runs them, and that virtualenv must then hold everything the pack imports."""
    repo, base, head = pull_request
    workflow = load(PREVIEW)
    steps = workflow["jobs"]["preview"]["steps"]
    actions = [i for i, step in enumerate(steps) if step.get("uses", "").startswith("pulumi/actions@")]
    assert len(actions) == 1, steps
    assert steps[actions[0]]["with"]["policyPacks"] == "policy"
    before = {**workflow, "jobs": {"preview": {**workflow["jobs"]["preview"], "steps": steps[:actions[0]]}}}
    played = {**context(base, head), "matrix": {"stack": "dc2"}, "secrets": {"KUBECONFIG": "kind: Config"},
              "needs": {"stacks": {"outputs": {"stacks": '["dc2"]'}}}}
    # pip's cache of this machine (tools/venv.sh filled it): the same packages, fetched once
    cache = {"PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", os.path.expanduser("~/.cache/pip"))}
    job = JobRun(before, "preview", repo, tmp_path, played, extra_env={**machine_env(), **cache})
    results = job.run()
    assert results and all(r.returncode == 0 for r in results), [(r.name, r.stderr[-3000:]) for r in results]
    pack = job.workspace / "policy"
    runtime = yaml.safe_load((pack / "PulumiPolicy.yaml").read_text())["runtime"]
    venv = (pack / runtime["options"]["virtualenv"]).resolve()
    assert venv == (job.workspace / ".venv").resolve()
    done = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sys; sys.path.insert(0, '.'); import pulumi_policy, policy.rules, "
                           "federation.chart_source; print(sorted(federation.chart_source.pins()))"],
                          cwd=job.workspace, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['1.2.1', '1.8.16', '1.9.11', '2.0.3']"
