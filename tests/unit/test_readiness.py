"""Explaining a Release that Helm's wait gave up on: which workload, and what its pods lack."""

import pytest

from components.kube_cluster import KubeCluster
from components.readiness import Readiness, explain_unready, missing_references, replicas_short, workload_readiness
from pulumi_mocks import LoopProbe, run_hook

pytestmark = pytest.mark.unit


@pytest.fixture
def api(monkeypatch):
    """The client a hook makes stands for its kubeconfig file and context, read by nothing."""
    monkeypatch.setattr(KubeCluster, "api_client", lambda self: ("api", self.kubeconfig, self.context))

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


@pytest.mark.parametrize("kind, obj, expected", [
    ("StatefulSet", statefulset(ready=3, replicas=3), Readiness(3, 3, True)),
    ("StatefulSet", statefulset(ready=1, generation=2, observed=1), Readiness(1, 1, False)),
    ("Deployment", {"metadata": {"generation": 4}, "spec": {"replicas": 2},
                    "status": {"readyReplicas": 2, "availableReplicas": 1, "observedGeneration": 4}},
     Readiness(2, 2, True)),
    ("Deployment", {"metadata": {"generation": 1}, "spec": {}, "status": {}}, Readiness(0, 1, False)),
    ("Deployment", {"metadata": {"generation": 2}, "spec": {"replicas": 0}, "status": {"observedGeneration": 2}},
     Readiness(0, 0, True)),
    ("DaemonSet", {"metadata": {"generation": 1}, "spec": {},
                   "status": {"desiredNumberScheduled": 3, "numberReady": 3, "observedGeneration": 1}},
     Readiness(3, 3, True)),
])
def test_workload_readiness_counts_ready_pods_of_the_replicas_wanted(kind, obj, expected):
    """Ready pods count (not availableReplicas), spec.replicas defaults to 1, and a spec the
    controller has not observed yet is not complete."""
    assert workload_readiness(kind, obj) == expected


@pytest.mark.parametrize("readiness, complete", [
    (Readiness(1, 1, True), True), (Readiness(2, 1, True), True), (Readiness(0, 0, True), True),
    (Readiness(0, 1, True), False), (Readiness(1, 1, False), False),
])
def test_complete_means_every_wanted_pod_ready_for_the_current_spec(readiness, complete):
    assert readiness.complete is complete


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


def test_the_release_explains_its_own_failure(monkeypatch, api, tmp_path):
    """The Release carries the error hook, bound to this stack's kubeconfig, context, namespace
    and release; when it fires it reads the cluster and logs what Helm's wait gave up on."""
    import pulumi

    from components import readiness
    from pulumi_mocks import run_program
    from stack_matrix import primary, write_contexts

    path = write_contexts(tmp_path / "config", ["dc1"])
    run = run_program(primary(namespace="mesh", releaseName="hc", kubeconfig=path),
                      federation={"mesh/consul-federation": {}})
    (release,) = [r for r in run.registrations if r.type == "kubernetes:helm.sh/v3:Release"]
    (hook,) = release.error_hooks
    assert hook.name == "dc1-consul-explain-unready"
    seen, logged = [], []
    monkeypatch.setattr(readiness, "read_unready", lambda *a: seen.append(a[:3]) or (
        ["StatefulSet mesh/x: 0 of 1 replicas ready"],
        ['StatefulSet mesh/x: pod x-0, container consul (exited 1); its log ends: "bind: address in use"']))
    monkeypatch.setattr(readiness, "read_release_jobs", lambda *a: [])  # no hook failed
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    args = pulumi.ErrorHookArgs(urn="u", id="", name="dc1-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="create", errors=["context deadline exceeded"])
    assert run_hook(hook, args) is False  # Helm already waited the release timeout: no retry
    assert seen == [(("api", path, "dc1"), "mesh", "hc")]
    assert logged == ["Helm release mesh/hc (create) is not ready; Helm's wait gave up on:\n"
                      "  - StatefulSet mesh/x: 0 of 1 replicas ready",
                      "Helm release mesh/hc (create): failing containers (kubectl --context dc1 -n mesh "
                      "logs <pod> -c <container> for more):\n"
                      '  - StatefulSet mesh/x: pod x-0, container consul (exited 1); its log ends: '
                      '"bind: address in use"']


def test_a_failed_hook_job_is_named_with_its_logs_and_what_the_next_up_does(monkeypatch, api):
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
    monkeypatch.setattr(readiness, "read_unready", lambda *a: ([], []))
    monkeypatch.setattr(readiness, "read_release_jobs", lambda *a: [failed])
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    hook = readiness.explain_failed_release("dc1-consul", KubeCluster("/k/config", "kind-dc1", {}), "consul", "consul")
    args = pulumi.ErrorHookArgs(urn="u", id="consul/consul", name="dc1-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="update", errors=["post-upgrade hooks failed"])
    assert run_hook(hook, args) is False
    (message,) = logged
    assert message.startswith("Helm release consul/consul (update): a hook failed, so Helm marked this "
                              "revision failed:\n  - hook Job consul/consul-create-federation-secret "
                              "(post-install,post-upgrade) Failed: BackoffLimitExceeded: Job has reached "
                              "the specified backoff limit; its logs: kubectl --context kind-dc1 -n consul "
                              "logs job/consul-create-federation-secret\n")
    assert "deletes the hook Jobs Helm left behind" in message


def test_a_cluster_that_cannot_be_read_is_a_warning_not_a_second_error(monkeypatch, api):
    import pulumi

    from components import readiness

    warned, logged = [], []

    def unreachable(*a):
        raise ConnectionRefusedError()

    monkeypatch.setattr(readiness, "read_unready", unreachable)
    monkeypatch.setattr(readiness, "read_release_jobs", lambda *a: [])
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    hook = readiness.explain_failed_release("dc2-consul", KubeCluster("/k/config", "dc2", {}), "consul", "consul")
    args = pulumi.ErrorHookArgs(urn="u", id="", name="dc2-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="update", errors=["x"])
    assert run_hook(hook, args) is False and not logged
    assert warned == ["could not read the workloads of Helm release consul/consul (context dc2) to explain "
                      "the failure: ConnectionRefusedError"]


def test_the_error_hook_leaves_the_loop_free_while_it_reads_the_cluster(monkeypatch, api, tmp_path):
    """The SDK runs hooks on its asyncio loop, which also answers the engine: while the error
    hook waits for the API server, another coroutine on that loop runs."""
    import pulumi

    from components import readiness
    from pulumi_mocks import run_program
    from stack_matrix import primary, write_contexts

    probe = LoopProbe(([], []))
    monkeypatch.setattr(readiness, "read_unready", probe.read)
    monkeypatch.setattr(readiness, "read_release_jobs", lambda *a: [])
    run = run_program(primary(kubeconfig=write_contexts(tmp_path / "config", ["dc1"])))
    (hook,) = run.one("kubernetes:helm.sh/v3:Release").error_hooks
    args = pulumi.ErrorHookArgs(urn="u", id="", name="dc1-consul", type="kubernetes:helm.sh/v3:Release",
                                failed_operation="create", errors=["context deadline exceeded"])
    assert run_hook(hook, args, probe.alongside) is False
    assert probe.waited == [True]


def _pod(name: str, labels: dict, init: list | None = None, main: list | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels},
            "status": {"initContainerStatuses": init or [], "containerStatuses": main or []}}


def _owner(kind: str, name: str, match: dict, **status) -> tuple[str, dict]:
    spec = {"selector": {"matchLabels": match}, "replicas": 1,
            "template": {"spec": {"containers": [{"name": "c"}]}}}
    return kind, {"metadata": {"name": name, "namespace": "consul", "generation": 1},
                  "spec": spec, "status": {"observedGeneration": 1, **status}}


def test_failing_containers_are_quoted_from_their_logs_with_token_shaped_strings_redacted():
    """A crash-looping init container of an unready Deployment and a Job that keeps failing are
    named with their last log lines; ready workloads, completed Jobs and healthy containers are
    not; a UUID in a log line never reaches the message."""
    from components.readiness import failing_container_lines

    owners = [
        _owner("Deployment", "consul-mesh-gateway", {"app": "gw"}, readyReplicas=0),
        _owner("Deployment", "consul-connect-injector", {"app": "inj"}, readyReplicas=1),
        ("Job", {"metadata": {"name": "consul-server-acl-init", "namespace": "consul"},
                 "spec": {"selector": {"matchLabels": {"job": "acl"}}}, "status": {"failed": 2}}),
        ("Job", {"metadata": {"name": "consul-tls-init", "namespace": "consul"},
                 "spec": {"selector": {"matchLabels": {"job": "tls"}}},
                 "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
    ]
    crash = {"name": "mesh-gateway-init", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1}}}
    pods = [
        _pod("consul-mesh-gateway-1", {"app": "gw"}, init=[crash],
             main=[{"name": "mesh-gateway", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]),
        _pod("consul-connect-injector-1", {"app": "inj"}, main=[{"name": "sidecar-injector", "restartCount": 3,
                                                                  "state": {"running": {}}}]),
        _pod("consul-server-acl-init-a", {"job": "acl"},
             main=[{"name": "server-acl-init-job", "restartCount": 0, "state": {"terminated": {"exitCode": 1}}}]),
        _pod("consul-tls-init-b", {"job": "tls"},
             main=[{"name": "tls-init", "restartCount": 0, "state": {"terminated": {"exitCode": 1}}}]),
    ]
    logs = {
        ("consul-mesh-gateway-1", "mesh-gateway-init"):
            "2026-12-03T10:00:00Z [INFO] logging in\n\n2026-12-03T10:00:01Z [ERROR] login failed: "
            'token 6e8a4f5c-2b1d-4c3e-9f7a-0123456789ab: Post "https://10.240.2.1:1/apis": connection refused\n',
        ("consul-server-acl-init-a", "server-acl-init-job"): "",
    }
    lines = failing_container_lines(owners, pods, lambda pod, c: logs.get((pod, c)))
    assert lines == [
        "Deployment consul/consul-mesh-gateway: pod consul-mesh-gateway-1, container mesh-gateway-init "
        '(CrashLoopBackOff after 4 restarts, last exit 1); its log ends: "2026-12-03T10:00:00Z [INFO] logging in" | '
        '"2026-12-03T10:00:01Z [ERROR] login failed: token <redacted>: Post \\"https://10.240.2.1:1/apis\\": '
        'connection refused"'.replace('\\"', '"'),
        "Job consul/consul-server-acl-init: pod consul-server-acl-init-a, container server-acl-init-job "
        "(exited 1); it logged nothing",
    ]
    assert "6e8a4f5c" not in "".join(lines)


def test_a_container_whose_log_cannot_be_read_says_so():
    from components.pod_failures import pod_failure_lines, redact

    pod = _pod("p", {}, main=[{"name": "c", "restartCount": 2, "state": {"running": {}}, "ready": False},
                              {"name": "ok", "restartCount": 0, "state": {"running": {}}, "ready": True}])
    assert pod_failure_lines([pod], lambda p, c: None) == [
        "pod p, container c (running, not ready after 2 restarts); its log could not be read"]
    assert redact("key " + "A" * 43 + "= end") == "key <redacted> end"
    assert redact("a b " * 300) == ("a b " * 100)[:400] + "..."


def test_a_log_the_api_server_refuses_is_named_with_its_reason():
    """pods/log refused (an RBAC 403): the line quotes the server's message. The previous
    instance's log, which a container that never restarted lacks (400), adds nothing."""
    import json

    from kubernetes.client.rest import ApiException

    from components.pod_failures import api_log_reader, pod_failure_lines

    class Core:
        def read_namespaced_pod_log(self, pod, namespace, container, tail_lines, previous):
            if previous:
                exc = ApiException(status=400, reason="Bad Request")
                exc.body = json.dumps({"message": f'previous terminated container "{container}" not found'})
            else:
                exc = ApiException(status=403, reason="Forbidden")
                exc.body = json.dumps({"message": f'pods "{pod}" is forbidden: User "ci" cannot get '
                                                  f'resource "pods/log" in the namespace "{namespace}"'})
            raise exc

    pod = _pod("p", {}, main=[{"name": "c", "restartCount": 0, "state": {"running": {}}, "ready": False}])
    assert pod_failure_lines([pod], api_log_reader(Core(), "consul")) == [
        'pod p, container c (running, not ready); its log could not be read (403 Forbidden: pods "p" is '
        'forbidden: User "ci" cannot get resource "pods/log" in the namespace "consul")']


def test_a_login_whose_token_review_cannot_reach_k8s_auth_method_host_says_what_to_set():
    """What the consul tier saw in a secondary whose k8sAuthMethodHost the primary cannot reach:
    server-acl-init succeeds, and the mesh gateway's connect-init retries its login forever (an
    init container still running when Helm gives up), logging the token review's error."""
    from components.pod_failures import pod_failure_lines

    pod = _pod("consul-mesh-gateway-x", {}, init=[{"name": "mesh-gateway-init", "restartCount": 0,
                                                   "state": {"running": {}}}],
               main=[{"name": "mesh-gateway", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}])
    log = ('2026-12-03T19:08:21.578Z [ERROR] consul-server-connection-manager: ACL auth method login failed: '
           'error="rpc error: code = Unauthenticated desc = Post \\"https://10.240.2.1:1/apis/'
           'authentication.k8s.io/v1/tokenreviews\\": dial tcp 10.240.2.1:1: connect: connection refused"\n')
    (line,) = pod_failure_lines([pod], lambda p, c: log)
    assert line.startswith("pod consul-mesh-gateway-x, container mesh-gateway-init (init container still "
                           "running); its log ends: \"2026-12-03T19:08:21.578Z [ERROR] ")
    assert "connect: connection refused" in line
    assert line.endswith("; likely: the login's token review failed: the primary's servers call this cluster's "
                         "API server at k8sAuthMethodHost (the URL in the line) and could not reach or trust it; "
                         "set consul-federation:k8sAuthMethodHost to an https URL of this API server that the "
                         "primary's servers can reach (consul-k8s#2138)")
    unrelated = pod_failure_lines([pod], lambda p, c: "[ERROR] bind: address already in use\n")
    assert unrelated and "likely" not in unrelated[0]
