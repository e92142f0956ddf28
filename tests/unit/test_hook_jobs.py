"""Hook Jobs a failed Helm operation leaves behind: which ones block the next upgrade, and the
Release's before-update hook that deletes them (components/hook_jobs.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pulumi
import pytest

from components import hook_jobs
from components.hook_jobs import failed_hook_lines, finished, leftover_hook_jobs
from components.kube_cluster import KubeCluster
from pulumi_mocks import LoopProbe, call_hook, run_hook, run_program
from stack_matrix import primary, write_contexts

pytestmark = pytest.mark.unit

FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
          "message": "Job has reached the specified backoff limit"}
COMPLETE = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}


def job(name: str, *conditions: dict, hook: str | None = "post-install,post-upgrade",
        policy: str | None = "hook-succeeded") -> dict:
    annotations = {}
    if hook is not None:
        annotations["helm.sh/hook"] = hook
    if policy is not None:
        annotations["helm.sh/hook-delete-policy"] = policy
    return {"metadata": {"name": name, "annotations": annotations},
            "status": {"conditions": list(conditions)}}


@pytest.mark.parametrize("conditions,expected", [
    ((), None),
    (({"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},), None),
    ((COMPLETE,), "Complete"),
    (({"type": "SuccessCriteriaMet", "status": "True"}, COMPLETE), "Complete"),
    (({**COMPLETE, "status": "False"},), None),
    ((FAILED,), "Failed: BackoffLimitExceeded: Job has reached the specified backoff limit"),
    (({"type": "Failed", "status": "True"},), "Failed"),
])
def test_finished(conditions, expected):
    assert finished(job("j", *conditions)) == expected


def test_leftovers_are_the_finished_hooks_helm_would_not_delete_before_creating_them():
    """After a failed create-federation-secret (chart 2.0.3): it and server-acl-init-cleanup,
    which succeeded before it, block the next upgrade; the others do not."""
    jobs = [
        job("consul-create-federation-secret", FAILED),                                   # hook-succeeded
        job("consul-server-acl-init-cleanup", COMPLETE, policy="hook-succeeded,hook-failed"),
        job("consul-gateway-resources", COMPLETE, policy="hook-succeeded,before-hook-creation"),
        job("consul-no-policy", COMPLETE, policy=None),           # Helm's default: before-hook-creation
        job("consul-still-running"),                              # not finished: never touched
        job("consul-server-acl-init", COMPLETE, hook=None, policy=None),  # not a hook
    ]
    assert leftover_hook_jobs(jobs) == [
        ("consul-create-federation-secret",
         "Failed: BackoffLimitExceeded: Job has reached the specified backoff limit"),
        ("consul-server-acl-init-cleanup", "Complete")]


def test_failed_hook_lines_name_only_failed_hooks():
    jobs = [job("consul-create-federation-secret", FAILED), job("consul-server-acl-init-cleanup", COMPLETE),
            job("consul-server-acl-init", FAILED, hook=None)]
    assert failed_hook_lines(jobs, "kind-dc1", "consul") == [
        "hook Job consul/consul-create-federation-secret (post-install,post-upgrade) Failed: "
        "BackoffLimitExceeded: Job has reached the specified backoff limit; its logs: "
        "kubectl --context kind-dc1 -n consul logs job/consul-create-federation-secret"]


def hook_args() -> pulumi.ResourceHookArgs:
    return pulumi.ResourceHookArgs(urn="u", id="consul/consul", name="dc1-consul",
                                   type="kubernetes:helm.sh/v3:Release")


@pytest.fixture
def api(monkeypatch):
    """The client a hook makes stands for its kubeconfig file and context, read by nothing."""
    monkeypatch.setattr(KubeCluster, "api_client", lambda self: ("api", self.kubeconfig, self.context))
    return ("api", "/k/config", "dc1")


def the_hook(namespace: str = "consul", release: str = "consul") -> pulumi.ResourceHook:
    return hook_jobs.delete_leftover_hook_jobs("dc1-consul", KubeCluster("/k/config", "dc1", {}), namespace, release)


def test_the_release_deletes_leftover_hook_jobs_before_an_update(monkeypatch, api, tmp_path):
    """The Release of every stack carries the hook, bound to its kubeconfig, context, namespace
    and release; it deletes exactly the leftovers and says which."""
    path = write_contexts(tmp_path / "config", ["dc1"])
    run = run_program(primary(namespace="mesh", releaseName="hc", kubeconfig=path),
                      federation={"mesh/consul-federation": {}})
    (release,) = [r for r in run.registrations if r.type == "kubernetes:helm.sh/v3:Release"]
    (hook,) = release.before_update_hooks
    assert hook.name == "dc1-consul-delete-leftover-hook-jobs"
    assert not hook.opts or not hook.opts.on_dry_run  # never in a preview
    read, deleted, warned = [], [], []
    monkeypatch.setattr(hook_jobs, "read_release_jobs", lambda *a: read.append(a) or [
        job("consul-create-federation-secret", FAILED), job("consul-gateway-resources", COMPLETE,
                                                            policy="before-hook-creation")])

    async def delete_jobs(*a):
        deleted.append(a)
        return []

    monkeypatch.setattr(hook_jobs, "delete_jobs", delete_jobs)
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    run_hook(hook, hook_args())
    assert read == [(("api", path, "dc1"), "mesh", "hc")]
    assert deleted == [(("api", path, "dc1"), "mesh", ["consul-create-federation-secret"])]
    assert warned == ["deleted hook Job mesh/consul-create-federation-secret (Failed: BackoffLimitExceeded: "
                      "Job has reached the specified backoff limit), which a failed Helm operation of this "
                      "release left behind: Helm could not create it again otherwise"]


def test_nothing_left_means_nothing_deleted_or_said(monkeypatch, api):
    monkeypatch.setattr(hook_jobs, "read_release_jobs", lambda *a: [job("consul-x", COMPLETE,
                                                                        policy="before-hook-creation")])
    monkeypatch.setattr(hook_jobs, "delete_jobs", lambda *a: pytest.fail("nothing to delete"))
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: pytest.fail(message))
    run_hook(the_hook(), hook_args())


def test_a_cluster_that_cannot_be_read_does_not_block_the_upgrade(monkeypatch, api):
    warned = []

    def refused(*a):
        raise ConnectionRefusedError()

    monkeypatch.setattr(hook_jobs, "read_release_jobs", refused)
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    run_hook(the_hook(), hook_args())  # no exception: Helm reports the real problem
    assert warned == ["could not look for hook Jobs left by a failed Helm operation of release consul/consul "
                      "(context dc1): ConnectionRefusedError"]


def test_the_hook_leaves_the_loop_free_while_it_reads_the_cluster(monkeypatch, api, tmp_path):
    """The SDK runs hooks on its asyncio loop, which also answers the engine: while the hook
    waits for the API server, another coroutine on that loop runs."""
    probe = LoopProbe([])
    monkeypatch.setattr(hook_jobs, "read_release_jobs", probe.read)
    run = run_program(primary(kubeconfig=write_contexts(tmp_path / "config", ["dc1"])))
    (hook,) = run.one("kubernetes:helm.sh/v3:Release").before_update_hooks
    run_hook(hook, hook_args(), probe.alongside)
    assert probe.waited == [True]


class Batch:
    """BatchV1Api of a cluster whose deleted Jobs are listed `polls` more times, then gone."""

    def __init__(self, polls: int):
        self.polls, self.deleted = polls, []

    def delete_namespaced_job(self, name, namespace, propagation_policy):
        self.deleted.append((namespace, name, propagation_policy))

    def list_namespaced_job(self, namespace):
        self.polls -= 1
        names = [n for _, n, _ in self.deleted] if self.polls >= 0 else []
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=n)) for n in names])


def test_waiting_for_deleted_jobs_leaves_the_loop_free(monkeypatch, api):
    """While the hook waits for the Jobs it deleted to be gone (two polls DELETE_POLL_SECONDS
    apart), the loop keeps running other coroutines: none waits anywhere near a poll interval."""
    from kubernetes import client

    batch, warned, gaps, done = Batch(polls=2), [], [], threading.Event()

    async def ticker():
        await asyncio.sleep(0)  # the hook starts first
        while not done.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - before)

    async def hook_then_done():
        await call_hook(hook, hook_args())
        done.set()

    async def both():
        await asyncio.gather(hook_then_done(), ticker())

    monkeypatch.setattr(client, "BatchV1Api", lambda api: batch)
    monkeypatch.setattr(hook_jobs, "read_release_jobs", lambda *a: [job("consul-create-federation-secret", FAILED)])
    monkeypatch.setattr(hook_jobs, "DELETE_POLL_SECONDS", 0.5)
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    hook = the_hook()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(both())
    finally:
        loop.close()
    assert batch.deleted == [("consul", "consul-create-federation-secret", "Background")]
    assert batch.polls == -1  # listed three times: present, present, gone
    assert len(warned) == 1 and warned[0].startswith("deleted hook Job consul/consul-create-federation-secret")
    assert len(gaps) > 20 and max(gaps) < 0.25, max(gaps)
