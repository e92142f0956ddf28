"""Explaining a Release that Helm's wait gave up on: which workload, and what its pods lack."""

import pytest

from components.readiness import explain_unready, missing_references, replicas_short

pytestmark = pytest.mark.unit

SERVER_POD = {
    "volumes": [
        {"name": "config", "configMap": {"name": "consul-server-config"}},
        {"name": "userconfig-consul-federation", "secret": {
            "secretName": "consul-federation", "items": [{"key": "serverConfigJSON", "path": "config.json"}]}},
        {"name": "extra", "secret": {"secretName": "maybe", "optional": True}},
    ],
    "containers": [{"name": "consul", "env": [
        {"name": "GOSSIP_KEY", "valueFrom": {"secretKeyRef": {"name": "consul-federation", "key": "gossipEncryptionKey"}}},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ], "envFrom": [{"configMapRef": {"name": "consul-env"}}]}],
}


def statefulset(ready: int, replicas: int = 1, generation: int = 1, observed: int = 1) -> dict:
    return {"metadata": {"name": "consul-server", "namespace": "consul", "generation": generation},
            "spec": {"replicas": replicas, "template": {"spec": SERVER_POD}},
            "status": {"readyReplicas": ready, "observedGeneration": observed}}


def test_missing_secret_key_and_configmaps_are_named_and_optional_ones_are_not():
    secrets = {"consul-federation": {"caCert", "serverConfig", "gossipEncryptionKey"}}
    assert missing_references(SERVER_POD, secrets, {}) == [
        "ConfigMap consul-server-config does not exist",
        "Secret consul-federation has no key 'serverConfigJSON'",
        "ConfigMap consul-env does not exist",
    ]


def test_nothing_missing_when_everything_resolves():
    secrets = {"consul-federation": {"serverConfigJSON", "gossipEncryptionKey"}}
    maps = {"consul-server-config": {"server.json"}, "consul-env": set()}
    assert missing_references(SERVER_POD, secrets, maps) == []


@pytest.mark.parametrize("obj,expected", [
    (statefulset(ready=1), None),
    (statefulset(ready=0), "0 of 1 replicas ready"),
    (statefulset(ready=2, replicas=3), "2 of 3 replicas ready"),
    (statefulset(ready=1, generation=2, observed=1), "1 of 1 replicas ready"),  # not yet rolled
])
def test_replicas_short(obj, expected):
    assert replicas_short("StatefulSet", obj) == expected


def test_daemonset_counts_scheduled_pods():
    ds = {"metadata": {"generation": 1}, "status": {"desiredNumberScheduled": 3, "numberReady": 2,
                                                    "observedGeneration": 1}}
    assert replicas_short("DaemonSet", ds) == "2 of 3 replicas ready"


def test_explain_names_only_unready_workloads_with_what_their_pods_lack():
    ready_gateway = {"metadata": {"name": "consul-mesh-gateway", "namespace": "consul", "generation": 1},
                     "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "gw"}]}}},
                     "status": {"readyReplicas": 1, "observedGeneration": 1}}
    lines = explain_unready([("Deployment", ready_gateway), ("StatefulSet", statefulset(ready=0))],
                            {"consul-federation": {"gossipEncryptionKey"}},
                            {"consul-server-config": set(), "consul-env": set()})
    assert lines == ["StatefulSet consul/consul-server: 0 of 1 replicas ready; its pods cannot start: "
                     "Secret consul-federation has no key 'serverConfigJSON'"]


def test_the_release_explains_its_own_failure(monkeypatch):
    """The Release carries the error hook, bound to this stack's kubeconfig, context, namespace
    and release; when it fires it reads the cluster and logs what Helm's wait gave up on."""
    import pulumi

    from components import readiness
    from pulumi_mocks import run_program
    from stack_matrix import primary

    run = run_program(primary(namespace="mesh", releaseName="hc", kubeconfig="/k/config"),
                      federation={"mesh/consul-federation": {}})
    (release,) = [r for r in run.registrations if r.type == "kubernetes:helm.sh/v3:Release"]
    (hook,) = release.error_hooks
    assert hook.name == "dc1-consul-explain-unready"
    seen, logged = [], []
    monkeypatch.setattr(readiness, "read_unready", lambda *a: seen.append(a) or ["StatefulSet mesh/x: 0 of 1 replicas ready"])
    monkeypatch.setattr(readiness, "read_release_jobs", lambda *a: [])  # no hook failed
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    args = pulumi.ErrorHookArgs(urn="u", id="", name="dc1-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="create", errors=["context deadline exceeded"])
    assert hook(args) is False  # Helm already waited the release timeout: no retry
    assert seen == [("/k/config", "dc1", "mesh", "hc")]
    assert logged == ["Helm release mesh/hc (create) is not ready; Helm's wait gave up on:\n"
                      "  - StatefulSet mesh/x: 0 of 1 replicas ready"]


def test_a_failed_hook_job_is_named_with_its_logs_and_what_the_next_up_does(monkeypatch):
    """A post-upgrade hook failed, every workload is ready: the error names the hook Job, how it
    failed and the command that shows its logs."""
    import pulumi

    from components import readiness

    failed = {"metadata": {"name": "consul-create-federation-secret",
                           "annotations": {"helm.sh/hook": "post-install,post-upgrade",
                                           "helm.sh/hook-delete-policy": "hook-succeeded"}},
              "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}]}}
    logged = []
    monkeypatch.setattr(readiness, "read_unready", lambda *a: [])
    monkeypatch.setattr(readiness, "read_release_jobs", lambda *a: [failed])
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    hook = readiness.explain_failed_release("dc1-consul", "/k/config", "kind-dc1", "consul", "consul")
    args = pulumi.ErrorHookArgs(urn="u", id="consul/consul", name="dc1-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="update", errors=["post-upgrade hooks failed"])
    assert hook(args) is False
    (message,) = logged
    assert message.startswith("Helm release consul/consul (update): a hook failed, so Helm marked this "
                              "revision failed:\n  - hook Job consul/consul-create-federation-secret "
                              "(post-install,post-upgrade) Failed: BackoffLimitExceeded: Job has reached "
                              "the specified backoff limit; its logs: kubectl --context kind-dc1 -n consul "
                              "logs job/consul-create-federation-secret\n")
    assert "deletes the hook Jobs Helm left behind" in message


def test_a_cluster_that_cannot_be_read_is_a_warning_not_a_second_error(monkeypatch):
    import pulumi

    from components import readiness

    warned, logged = [], []

    def unreachable(*a):
        raise ConnectionRefusedError()

    monkeypatch.setattr(readiness, "read_unready", unreachable)
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    hook = readiness.explain_failed_release("dc2-consul", "/k/config", "dc2", "consul", "consul")
    args = pulumi.ErrorHookArgs(urn="u", id="", name="dc2-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="update", errors=["x"])
    assert hook(args) is False and not logged
    assert warned == ["could not read the workloads of Helm release consul/consul (context dc2) to explain "
                      "the failure: ConnectionRefusedError"]
