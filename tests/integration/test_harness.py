"""Integration tests of the ``harness`` package (``ClusterHarness``).

Without a cluster: the egress proxy + TLS + AdmissionReview path (the test plays the
apiserver's side), command parsing, and ``test_chart_table_covers_rendered_charts``, which
renders every pinned chart with the program's own values and fails on any Job command,
workload or webhook the harness table does not know.

With two real control planes (``localcluster.controlplane.ControlPlane``) and the real chart 2.0.3 installed
by the real helm with ``--wait``: dc1 as the primary (LoadBalancer gateway), dc2 as a secondary
from dc1's federation secret; what Helm's wait, the Pulumi program and a reviewer rely on.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import ssl
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

import harness as H
from harness.jobs import Jobs, plan_job
from harness.workloads import classify
from localcluster.pki import issue_cert, make_ca
from stack_matrix import CASES, Case, case

pytestmark = pytest.mark.integration

CHART = "2.0.3"
NAMESPACE, PREFIX = "consul", "consul"
GOSSIP_SECRET, GOSSIP_KEY = "consul-gossip-encryption-key", "key"
FEDERATION = f"{PREFIX}-federation"
LB_IP = "127.0.0.2"
ENDPOINT_IP = "192.0.2.10"
ENDPOINT_IP_DC2 = "192.0.2.20"

logging.basicConfig(level=logging.INFO)


# ---------------------------------------------------------------------------------------------
# no cluster


def _connect_via_egress(sock_path: str, target: str) -> tuple[bytes, socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0], s


def _post(tls: ssl.SSLSocket, path: str, body: dict) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    tls.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += tls.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        rest += tls.recv(4096)
    return int(head.split()[1]), json.loads(rest[:length])


def _review(kind: str, name: str, op: str = "CREATE", mode: str = "local") -> dict:
    obj = {"metadata": {"name": name}, "spec": {"meshGateway": {"mode": mode}}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "operation": op, "name": name, "namespace": "consul",
        "kind": {"group": "consul.hashicorp.com", "version": "v1alpha1", "kind": kind},
        "resource": {"group": "consul.hashicorp.com", "version": "v1alpha1",
                     "resource": kind.lower()},
        "object": obj}}


def test_egress_proxy_tls_admission_standalone(tmp_path):
    """The apiserver's path to a webhook, played by the test: CONNECT over the Unix socket,
    TLS with SNI and CA verification, AdmissionReviews on one kept-alive tunnel."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({  # never contacted: only the network pieces run
        "apiVersion": "v1", "kind": "Config", "current-context": "dc1",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dc1", "context": {"cluster": "c", "user": "u"}}]}))
    h = H.ClusterHarness(kubeconfig, "dc1", str(tmp_path / "egress.sock"))
    threads = [h.webhooks.start_admission_server(), h.webhooks.start_egress_proxy()]
    try:
        ca, ca_key = make_ca("test webhook CA")
        host = "consul-connect-injector.consul.svc"
        cert, key = issue_cert(ca, ca_key, host, [host])
        image = "hashicorp/consul-k8s-control-plane:2.0.3"
        container = {"name": "sidecar-injector", "image": image,
                     "command": ["consul-k8s-control-plane", "inject-connect"]}
        dep = {"metadata": {"name": "consul-connect-injector", "namespace": "consul"},
               "spec": {"template": {"metadata": {}, "spec": {"containers": [container]}}}}
        server = H.Running("Deployment", dep, container, H.CHART_LINES["2.0"])
        h.webhooks.sni = {host: (H.server_context(cert, key), server)}
        h.webhooks.routes = {("10.0.0.17", 443): ("consul", "consul-connect-injector")}

        def hook(name: str, path: str, resource: str) -> dict:
            return {"name": name, "clientConfig": {"service": {
                "name": "consul-connect-injector", "namespace": "consul", "path": path}},
                "rules": [{"apiGroups": ["consul.hashicorp.com"], "apiVersions": ["v1alpha1"],
                           "operations": ["CREATE", "UPDATE"], "resources": [resource]}]}
        h.webhooks.configurations = lambda: [("Mutating", {
            "metadata": {"name": "consul-connect-injector"}, "webhooks": [
                hook("mutate-servicedefaults.consul.hashicorp.com",
                     "/mutate-v1alpha1-servicedefaults", "servicedefaults"),
                hook("mutate-proxydefaults.consul.hashicorp.com",
                     "/mutate-v1alpha1-proxydefaults", "proxydefaults")]})]
        client_ctx = ssl.create_default_context(cadata=ca.decode())

        status, s = _connect_via_egress(h.egress_socket, "10.0.0.17:443")
        assert b" 200 " in status + b" "
        with client_ctx.wrap_socket(s, server_hostname=host) as tls:
            _, out = _post(tls, "/mutate-v1alpha1-servicedefaults?timeout=10s",
                           _review("ServiceDefaults", "web"))
            assert out["response"]["allowed"] is True and out["kind"] == "AdmissionReview"
            _, out = _post(tls, "/mutate-v1alpha1-proxydefaults",
                           _review("ProxyDefaults", "not-global"))
            assert 'must be "global"' in out["response"]["status"]["message"]
            _, out = _post(tls, "/mutate-v1alpha1-proxydefaults",
                           _review("ProxyDefaults", "global", "UPDATE", "bogus"))
            assert 'spec.meshGateway.mode: Invalid value: "bogus"' in \
                out["response"]["status"]["message"]
            _, out = _post(tls, "/mutate-v1alpha1-proxydefaults",
                           _review("ProxyDefaults", "global", "UPDATE", "remote"))
            assert out["response"]["allowed"] is True
            _, out = _post(tls, "/mutate-v2-unknown", _review("Thing", "x"))
            assert out["response"]["allowed"] is False
        assert [(r.kind, r.operation, r.allowed, r.service) for r in h.admissions()] == [
            ("ServiceDefaults", "CREATE", True, "consul/consul-connect-injector"),
            ("ProxyDefaults", "CREATE", False, "consul/consul-connect-injector"),
            ("ProxyDefaults", "UPDATE", False, "consul/consul-connect-injector"),
            ("ProxyDefaults", "UPDATE", True, "consul/consul-connect-injector"),
            ("Thing", "CREATE", False, "consul/consul-connect-injector")]
        assert h.clear_errors("/mutate-v2-unknown") and h.errors() == []

        status, s = _connect_via_egress(h.egress_socket, "10.0.0.99:443")
        s.close()
        assert b" 502 " in status + b" "  # nothing ready behind it: as with no endpoints
        status, s = _connect_via_egress(h.egress_socket, "10.0.0.17:443")
        with pytest.raises(ssl.SSLError):  # a name the injector's certificate does not cover
            client_ctx.wrap_socket(s, server_hostname="other.consul.svc")
        s.close()
    finally:
        h.stopping.set()
        h.webhooks.stop()
        for t in threads:
            t.join(5)
    assert not os.path.exists(h.egress_socket)


def test_command_parsing():
    """Scripts are read as the pod runs them: exec stripped, variables expanded, Go flags."""
    container = {"command": ["/bin/sh", "-ec", (
        'CONSUL_FULLNAME="consul"\n'
        "exec consul-k8s-control-plane create-federation-secret \\\n"
        "  -export-replication-token=true \\\n"
        '  -k8s-namespace="${NAMESPACE}" \\\n'
        "  -resource-prefix=${CONSUL_FULLNAME}\n")]}
    [(sub, flags)] = H.parse_control_plane_invocations(container, {"NAMESPACE": "consul"})
    assert sub == "create-federation-secret"
    assert flags == {"export-replication-token": ["true"], "k8s-namespace": ["consul"],
                     "resource-prefix": ["consul"]}
    exec_form = {"command": ["consul-k8s-control-plane"],
                 "args": ["delete-completed-job", "-k8s-namespace=$(NS)", "consul-server-acl-init"]}
    [(sub, flags)] = H.parse_control_plane_invocations(exec_form, {"NS": "consul"})
    assert flags == {"k8s-namespace": ["consul"], "": ["consul-server-acl-init"]}


def _job_spec(*command: str, image: str = "hashicorp/consul-k8s-control-plane:2.0.3") -> dict:
    return {"containers": [{"name": "c", "image": image, "command": list(command)}]}


def test_job_table_fails_closed():
    """Unknown images, commands, flags and positionals are refused before anything runs."""
    for spec, message in (
            (_job_spec("consul-k8s-control-plane", "frobnicate"), "frobnicate"),
            (_job_spec("consul-k8s-control-plane", "tls-init", "-name-prefix=x", "-bogus=1"),
             "unknown flag -bogus"),
            (_job_spec("consul-k8s-control-plane", "delete-completed-job"), "positional"),
            (_job_spec("sh", "-c", "echo hi", image="busybox"), "busybox"),
            (_job_spec("sh", "-c", "rm -rf /tmp/x"), "rm -rf /tmp/x")):
        with pytest.raises(H.HarnessError, match=re.escape(message)):
            plan_job(spec)
    line, plan = plan_job(_job_spec("consul-k8s-control-plane", "tls-init", "-name-prefix=x"))
    assert line.version == "2.0" and [cmd for _, cmd, _ in plan] == [
        "consul-k8s-control-plane tls-init"]


def _server_spec(script: str) -> dict:
    return {"containers": [{"name": "consul", "image": "hashicorp/consul:2.0.0",
                            "command": ["/bin/sh", "-ec", script]}]}


def test_workload_table_fails_closed():
    """Every statement of a workload's script and every flag is checked, as for Jobs: a known
    last statement does not vouch for what runs before it."""
    agent = "exec /usr/local/bin/docker-entrypoint.sh consul agent -config-dir=/consul/config"
    for spec, message in (
            (_server_spec(f"rm -rf /consul/data\n{agent}"), "'rm -rf /consul/data'"),
            (_server_spec(f"{agent} -no-such-flag=1"), "unknown flag -no-such-flag"),
            ({"containers": [{"name": "consul", "image": "hashicorp/consul:2.0.0"}]},
             "runs its image's entrypoint")):
        with pytest.raises(ValueError, match=re.escape(message)):
            classify("StatefulSet", spec)
    line, roles = classify("StatefulSet", _server_spec(
        f'cp /a /b\n[ -n "${{HOST_IP}}" ] && sed -Ei "s|HOST_IP|x|g" /b\n{agent}'))
    assert line.version == "2.0" and [role for _, role in roles] == ["consul-server"]


def test_a_failing_pass_reaches_the_test_and_a_dropped_connection_does_not(tmp_path):
    """A loop's pass that raises anything but a dropped connection or a 409 is in errors()."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n")
    h = H.ClusterHarness(kubeconfig, "c", tmp_path / "egress.sock")

    def boom():
        raise KeyError("status")

    def dropped():
        raise ConnectionResetError("reset by peer")

    h.run_pass("probe", boom)
    h.run_pass("probe", dropped)
    h.run_pass("probe", lambda: (_ for _ in ()).throw(ApiException(status=409)))
    assert h.errors() == ["probe: KeyError('status')"]


def test_every_job_command_has_a_side_effect():
    """The table and the handlers are the same set: no command without its effect, no
    effect without a command."""
    table = set().union(*(line.jobs for line in H.CHART_LINES.values()))
    assert table and table == set(Jobs(None).handlers)


def test_chart_table_covers_rendered_charts():
    """Every Job command, workload and webhook of every pinned chart the harness plays (all but
    1.2.1, whose pods run for real in tests/consul), rendered with the primary's and
    secondaries' exact values, is one the harness table knows."""
    from localcluster.tools import consul_charts, ensure
    helm, charts = ensure("chart")["HELM"], consul_charts()
    assert set(charts) == {"2.0.3", "1.9.11", "1.8.16", "1.2.1"}, charts
    charts = {version: path for version, path in charts.items() if version != "1.2.1"}
    renders = {}  # cases with equal values (e.g. mesh gateway mode only) render once
    for version in charts:
        for c in CASES:
            c = c.on_chart(version)
            renders.setdefault((version, json.dumps(c.chart_values(), sort_keys=True)), c)

    def render(key):
        version, values = key
        return subprocess.run(
            [helm, "template", "consul", charts[version], "--namespace",
             renders[key].parsed().namespace, "--kube-version", "1.35.0", "-f", "-"],
            input=values, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        procs = dict(zip(renders, pool.map(render, renders)))
    assert len({v for v, _ in renders}) == 3
    for (version, values), proc in sorted(procs.items()):
        c = renders[(version, values)]
        assert proc.returncode == 0, f"{version} {c.id}: {proc.stderr}"
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        jobs = [d for d in docs if d["kind"] == "Job"]
        workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet",
                                                      "DaemonSet")]
        hooks = [(d["kind"][:-len("WebhookConfiguration")], w) for d in docs
                 if d["kind"].endswith("WebhookConfiguration") for w in d["webhooks"]]
        assert jobs and workloads and hooks, (version, c.id)
        where = f"chart {version}, case {c.id}"
        for job in jobs:
            try:
                plan_job(job["spec"]["template"]["spec"])
            except H.HarnessError as e:
                pytest.fail(f"{where}: Job {job['metadata']['name']}: {e}")
        lines = {}
        for w in workloads:
            try:
                line, _ = classify(w["kind"], w["spec"]["template"]["spec"])
            except ValueError as e:
                pytest.fail(f"{where}: {w['kind']} {w['metadata']['name']}: {e}")
            lines[line.version] = line
        assert len(lines) == 1, (where, sorted(lines))
        [line] = lines.values()
        for kind, w in hooks:
            svc = w["clientConfig"]["service"]
            assert line.webhook_known(kind, w["name"], svc["path"]), \
                f"{where}: {kind} webhook {w['name']} at {svc['path']}"


# ---------------------------------------------------------------------------------------------
# two real control planes, the real chart 2.0.3, helm --wait


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    from localcluster.tools import consul_charts, ensure
    return {**ensure("cluster"), **ensure("chart"), "CHART": consul_charts()[CHART]}


@pytest.fixture(scope="module")
def planes(tools, tmp_path_factory):
    """Two real control planes, dc1 and dc2, one kubeconfig, and a harness on each."""
    from localcluster.controlplane import ControlPlane, write_kubeconfig
    workdir = tmp_path_factory.mktemp("hns")  # short: the egress socket path is limited
    with ControlPlane("dc1", workdir, tools["ETCD"], tools["KUBE_APISERVER"],
                      extra_sans=[ENDPOINT_IP]) as dc1, \
            ControlPlane("dc2", workdir, tools["ETCD"], tools["KUBE_APISERVER"],
                         extra_sans=[ENDPOINT_IP_DC2]) as dc2:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", [dc1, dc2])
        with H.ClusterHarness(kubeconfig, "dc1", dc1.egress_socket, lb_ip=LB_IP,
                              apiserver_endpoint_ip=ENDPOINT_IP, job_timeout=60) as h1, \
                H.ClusterHarness(kubeconfig, "dc2", dc2.egress_socket,  # its server-acl-init
                                 apiserver_endpoint_ip=ENDPOINT_IP_DC2,  # waits for servers
                                 job_timeout=180) as h2:
            yield {"kubeconfig": kubeconfig, "dc1": h1, "dc2": h2,
                   "ports": {"dc1": dc1.port, "dc2": dc2.port}}


def _helm(tools, planes, context: str, *args: str, values: dict | None = None
          ) -> subprocess.CompletedProcess:
    home = Path(planes["kubeconfig"]).parent
    cmd = [tools["HELM"], "--kubeconfig", str(planes["kubeconfig"]), "--kube-context", context,
           *args] + (["-f", "-"] if values is not None else [])
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "helm-cache"),
           "HELM_CONFIG_HOME": str(home / "helm-config"), "HELM_DATA_HOME": str(home / "helm-data")}
    return subprocess.run(cmd, input=json.dumps(values) if values is not None else None,
                          capture_output=True, text=True, timeout=600, env=env)


def _secret(h, name, ns=NAMESPACE) -> dict[str, bytes]:
    s = h.core().read_namespaced_secret(name, ns)
    return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}


def _values(case_id: str, **config) -> dict:
    c = case(case_id).on_chart(CHART)
    return Case(c.id, {**c.config, **config}, c.primary).chart_values()


def _auth_method_host(planes) -> str:
    """dc2's API server at its Endpoints address, as the program derives k8sAuthMethodHost."""
    return f"https://{ENDPOINT_IP_DC2}:{planes['ports']['dc2']}"


@pytest.fixture(scope="module")
def primary(tools, planes):
    """dc1 installed with the program's primary values and helm --wait (LoadBalancer gateway)."""
    h = planes["dc1"]
    h.core().create_namespace({"metadata": {"name": NAMESPACE}})
    gossip = base64.b64encode(os.urandom(32))  # what `consul keygen` prints
    h.core().create_namespaced_secret(NAMESPACE, {"metadata": {"name": GOSSIP_SECRET},
                                                  "data": {GOSSIP_KEY: base64.b64encode(gossip).decode()}})
    values = _values("dc1")
    assert values["meshGateway"]["service"]["type"] == "LoadBalancer"
    started = time.monotonic()
    proc = _helm(tools, planes, "dc1", "install", "consul", tools["CHART"], "--namespace",
                 NAMESPACE, "--wait", "--timeout", "3m", values=values)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{h.errors()}\n{h.unready()}"
    logging.info("helm install --wait of dc1 took %.1fs", time.monotonic() - started)
    return {"gossip": gossip}


def test_primary_install_waits_for_readiness(planes, primary):
    """What helm's wait read is what a deployment controller would have written."""
    h = planes["dc1"]
    assert h.unready() == {} and h.errors() == []
    apps = h.apps()
    for dep in apps.list_namespaced_deployment(NAMESPACE).items:
        [rs] = [r for r in apps.list_namespaced_replica_set(NAMESPACE).items
                if r.metadata.owner_references[0].uid == dep.metadata.uid]
        assert rs.metadata.owner_references[0].controller
        assert rs.metadata.labels["pod-template-hash"] == \
            rs.spec.selector.match_labels["pod-template-hash"]
        assert rs.status.ready_replicas == dep.spec.replicas == dep.status.ready_replicas
        assert dep.status.observed_generation == dep.metadata.generation
    sts = apps.read_namespaced_stateful_set(f"{PREFIX}-server", NAMESPACE)
    assert sts.status.ready_replicas == sts.spec.replicas
    assert sts.status.current_revision == sts.status.update_revision
    gw = h.core().read_namespaced_service(f"{PREFIX}-mesh-gateway", NAMESPACE)
    assert gw.spec.type == "LoadBalancer"
    assert [i.ip for i in gw.status.load_balancer.ingress] == [LB_IP]
    ep = h.core().read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for a in ep.subsets[0].addresses] == [ENDPOINT_IP]
    assert [(p.name, p.port) for p in ep.subsets[0].ports] == [("https", planes["ports"]["dc1"])]
    done = {j.name: j.outcome for j in h.jobs()}
    for job in ("tls-init", "server-acl-init", "create-federation-secret", "gateway-resources",
                "server-acl-init-cleanup"):
        assert done.get(f"{PREFIX}-{job}") == "complete", done
    gcc = h.custom().get_cluster_custom_object("consul.hashicorp.com", "v1alpha1",
                                               "gatewayclassconfigs", "consul-api-gateway")
    assert gcc["spec"]["serviceType"] == "LoadBalancer"


def test_federation_secret(planes, primary):
    from cryptography import x509
    h = planes["dc1"]
    fed = _secret(h, FEDERATION)
    assert set(fed) == {"caCert", "caKey", "serverConfigJSON", "replicationToken",
                        "gossipEncryptionKey"}
    assert fed["caCert"] == _secret(h, f"{PREFIX}-ca-cert")["tls.crt"]
    server = x509.load_pem_x509_certificate(_secret(h, f"{PREFIX}-server-cert")["tls.crt"])
    assert server.issuer == x509.load_pem_x509_certificate(fed["caCert"]).subject
    assert json.loads(fed["serverConfigJSON"]) == {"primary_datacenter": "dc1",
                                                   "primary_gateways": [f"{LB_IP}:443"]}
    assert fed["gossipEncryptionKey"] == primary["gossip"]
    assert fed["replicationToken"] == _secret(h, f"{PREFIX}-acl-replication-acl-token")["token"]
    uuid.UUID(_secret(h, f"{PREFIX}-bootstrap-acl-token")["token"].decode())


def _proxy_defaults(name: str, mode: str) -> dict:
    return {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ProxyDefaults",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"meshGateway": {"mode": mode}}}


def _synced(custom, gvr, status: str, timeout: float = 15) -> dict:
    """The Synced condition of ProxyDefaults global once it has ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        pd = custom.get_namespaced_custom_object(*gvr, "global")
        found = [c for c in (pd.get("status") or {}).get("conditions", []) if c["type"] == "Synced"]
        if [c["status"] for c in found] == [status] or time.monotonic() > deadline:
            assert [c["status"] for c in found] == [status], pd.get("status")
            return {k: found[0].get(k) for k in ("status", "reason", "message") if k in found[0]}
        time.sleep(0.5)


def _rejected(call) -> str:
    with pytest.raises(ApiException) as err:
        call()
    return json.loads(err.value.body)["message"]


def test_proxy_defaults_webhook(planes, primary):
    """The injector's ProxyDefaults rules, through the real apiserver: bad mode on create and
    update, a second name; the admitted object is then deleted (CRs outlive helm)."""
    h = planes["dc1"]
    custom = h.custom()
    gvr = ("consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults")
    msg = _rejected(lambda: custom.create_namespaced_custom_object(
        *gvr, _proxy_defaults("global", "bogus")))
    assert 'spec.meshGateway.mode: Invalid value: "bogus"' in msg
    custom.create_namespaced_custom_object(*gvr, _proxy_defaults("global", "local"))
    rec = h.wait_for_admission("ProxyDefaults", "global", timeout=5)
    assert rec.service == f"{NAMESPACE}/{PREFIX}-connect-injector"
    assert rec.path == "/mutate-v1alpha1-proxydefaults"
    assert 'must be "global"' in _rejected(lambda: custom.create_namespaced_custom_object(
        *gvr, _proxy_defaults("other", "local")))
    # The injector's config-entry controller marks it Synced (a status write, so updates below
    # start from the object after it, as a client racing a controller would retry).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pd = custom.get_namespaced_custom_object(*gvr, "global")
        if [c["status"] for c in (pd.get("status") or {}).get("conditions", []) if c["type"] == "Synced"] == ["True"]:
            break
        time.sleep(0.5)
    assert pd["status"]["conditions"][0]["reason"] == "PlayedNoConsul", pd.get("status")
    pd["spec"]["meshGateway"]["mode"] = "sideways"
    assert 'Invalid value: "sideways"' in _rejected(
        lambda: custom.replace_namespaced_custom_object(*gvr, "global", pd))
    pd["spec"]["meshGateway"]["mode"] = "remote"
    custom.replace_namespaced_custom_object(*gvr, "global", pd)
    assert [(a.operation, a.allowed) for a in h.admissions("ProxyDefaults")] == [
        ("CREATE", False), ("CREATE", True), ("CREATE", False), ("UPDATE", False),
        ("UPDATE", True)]
    custom.delete_namespaced_custom_object(*gvr, "global")


def _job(name: str, *command: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "serviceAccountName": f"{PREFIX}-tls-init",
                "containers": [{"name": "c", "image": "hashicorp/consul-k8s-control-plane:2.0.3",
                                "command": list(command)}]}}}}


def test_unknown_and_forbidden_jobs_fail(planes, primary):
    """An unknown command fails with it in the message; a known one whose ServiceAccount
    may not do the side effect fails with the apiserver's 403."""
    h = planes["dc1"]
    batch = h.batch()
    batch.create_namespaced_job(NAMESPACE, _job("frob", "consul-k8s-control-plane", "frobnicate"))
    batch.create_namespaced_job(NAMESPACE, _job(
        "rbac", "consul-k8s-control-plane", "delete-completed-job", "-k8s-namespace=consul",
        f"{PREFIX}-server-acl-init"))  # tls-init's ServiceAccount may not touch Jobs
    frob, rbac = h.wait_for_job("frob", 30), h.wait_for_job("rbac", 30)
    assert frob.outcome == "failed" and "frobnicate" in frob.message
    assert rbac.outcome == "failed" and "403" in rbac.message
    status = batch.read_namespaced_job("frob", NAMESPACE).status
    assert {c.type for c in status.conditions} == {"FailureTarget", "Failed"}
    assert "frobnicate" in next(c.message for c in status.conditions if c.type == "Failed")
    assert h.clear_errors("job consul/frob") and h.clear_errors("job consul/rbac")
    for name in ("frob", "rbac"):
        batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")


def test_secondary_missing_key_then_upgrade(tools, planes, primary):
    """dc2 from dc1's federation secret, first without serverConfigJSON: the servers stay
    unready, so server-acl-init (which needs them) and with it the install's post-install hook
    wait, until the key appears; then an upgrade rolls the Deployments and tls-init signs dc2's
    server certificate with dc1's CA."""
    from cryptography import x509
    h = planes["dc2"]
    fed = _secret(planes["dc1"], FEDERATION)
    h.core().create_namespace({"metadata": {"name": NAMESPACE}})
    h.core().create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": FEDERATION},
        "data": {k: base64.b64encode(v).decode() for k, v in fed.items()
                 if k != "serverConfigJSON"}})
    values = _values("dc2", k8sAuthMethodHost=_auth_method_host(planes))
    with ThreadPoolExecutor(max_workers=1) as pool:
        install = pool.submit(_helm, tools, planes, "dc2", "install", "consul", tools["CHART"],
                              "--namespace", NAMESPACE, "--timeout", "3m", values=values)
        # Everything else becomes ready (the injector once its webhook certificate is
        # written); the servers never do.
        key = f"StatefulSet/{NAMESPACE}/{PREFIX}-server"
        deadline = time.monotonic() + 60
        while set(h.unready()) != {key} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert h.unready() == {key: f"secret {FEDERATION} has no key serverConfigJSON"}
        assert not install.done()  # its post-install hook waits for server-acl-init
        # The injector is up, but with no server to write to, its controller cannot sync.
        custom = h.custom()
        gvr = ("consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults")
        deadline = time.monotonic() + 15
        while True:  # the injector's route may lag its readiness by a pass: retry, as kubectl
            try:
                custom.create_namespaced_custom_object(*gvr, _proxy_defaults("global", "local"))
                break
            except ApiException as e:
                if e.status != 500 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert _synced(custom, gvr, "False") == {
            "status": "False", "reason": "ConsulAgentError",
            "message": f"no Consul server is running in namespace {NAMESPACE} to write the "
                       f"entry to"}
        h.core().patch_namespaced_secret(FEDERATION, NAMESPACE, {"data": {
            "serverConfigJSON": base64.b64encode(fed["serverConfigJSON"]).decode()}})
        proc = install.result()
    assert proc.returncode == 0, f"{proc.stderr}\n{h.errors()}"
    assert h.wait_until_ready(30) == {}
    assert _synced(custom, gvr, "True")["reason"] == "PlayedNoConsul"
    custom.delete_namespaced_custom_object(*gvr, "global")
    # A new pod template for the injector only (a Job's template is immutable).
    values.setdefault("connectInject", {})["logLevel"] = "debug"
    proc = _helm(tools, planes, "dc2", "upgrade", "consul", tools["CHART"], "--namespace",
                 NAMESPACE, "--wait", "--timeout", "3m", values=values)
    assert proc.returncode == 0, f"{proc.stderr}\n{h.errors()}\n{h.unready()}"
    apps = h.apps()
    injector = apps.read_namespaced_deployment(f"{PREFIX}-connect-injector", NAMESPACE)
    sets = sorted((r.metadata.annotations["deployment.kubernetes.io/revision"], r.spec.replicas)
                  for r in apps.list_namespaced_replica_set(NAMESPACE).items
                  if r.metadata.owner_references[0].uid == injector.metadata.uid)
    assert sets == [("1", 0), ("2", injector.spec.replicas)]
    for name in (f"{PREFIX}-ca-cert", f"{PREFIX}-ca-key"):
        with pytest.raises(ApiException):
            h.core().read_namespaced_secret(name, NAMESPACE)
    server = x509.load_pem_x509_certificate(_secret(h, f"{PREFIX}-server-cert")["tls.crt"])
    assert server.issuer == x509.load_pem_x509_certificate(fed["caCert"]).subject
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "server.dc2.consul" in sans.get_values_for_type(x509.DNSName)
    assert h.errors() == []


def _acl_init_job(name: str, *flags: str, token_file: bool = True) -> dict:
    """dc2's server-acl-init as the chart runs it, with ``flags``; ``token_file`` mounts the
    federation secret's replication token and passes it."""
    mount = "/consul/acl/tokens"
    flags = (*flags, f"-acl-replication-token-file={mount}/acl-replication-token") \
        if token_file else flags
    job = _job(name, "consul-k8s-control-plane", "server-acl-init",
               f"-resource-prefix={PREFIX}", f"-k8s-namespace={NAMESPACE}", *flags)
    spec = job["spec"]["template"]["spec"]
    spec["serviceAccountName"] = f"{PREFIX}-server-acl-init"
    if token_file:
        spec["volumes"] = [{"name": "token", "secret": {"secretName": FEDERATION, "items": [
            {"key": "replicationToken", "path": "acl-replication-token"}]}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "token", "mountPath": mount}]
    return job


def test_what_the_harness_cannot_play_is_refused(planes, primary):
    """Each way the harness used to fail open, now refused with the reason: a workload whose
    ServiceAccount does not exist, a fieldRef or file it does not play, a webhook configuration
    that is not the chart's, and a secondary's server-acl-init without its replication token,
    with an auth-method host that is not its API server, or whose API server refuses the
    auth method's TokenReview."""
    from harness.errors import HarnessError
    from harness.pod import PodView
    h = planes["dc2"]
    apps, batch, rbac = h.apps(), h.batch(), None
    image = "hashicorp/consul-k8s-control-plane:2.0.3"
    apps.create_namespaced_deployment(NAMESPACE, {
        "metadata": {"name": "orphan"}, "spec": {
            "selector": {"matchLabels": {"app": "orphan"}},
            "template": {"metadata": {"labels": {"app": "orphan"}}, "spec": {
                "serviceAccountName": "nosuch", "containers": [{
                    "name": "c", "image": image, "command": [
                        "consul-k8s-control-plane", "connect-init", "-pod-name=x"]}]}}}})
    deadline = time.monotonic() + 15
    while "Deployment/consul/orphan" not in h.unready() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert h.unready().get("Deployment/consul/orphan") == "serviceaccount nosuch does not exist"
    apps.delete_namespaced_deployment("orphan", NAMESPACE)

    container = {"name": "c", "env": [{"name": "ZONE", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['topology.kubernetes.io/zone']"}}}]}
    view = PodView(h, NAMESPACE, "p", {}, container)
    with pytest.raises(HarnessError, match=re.escape("fieldRef metadata.labels['topology")):
        view.env()
    with pytest.raises(HarnessError, match="is on no mounted volume of container c"):
        view.has_file("/consul/config/config.yaml")

    admreg = h.admreg()
    chart = admreg.read_mutating_webhook_configuration(f"{PREFIX}-connect-injector")
    hook = next(w for w in chart.webhooks if w.name.startswith("mutate-servicedefaults"))
    hook.name = "rogue.example.com"
    admreg.create_mutating_webhook_configuration({
        "metadata": {"name": "rogue"}, "webhooks": [h.api().sanitize_for_serialization(hook)]})
    try:
        message = _rejected(lambda: h.custom().create_namespaced_custom_object(
            "consul.hashicorp.com", "v1alpha1", NAMESPACE, "servicedefaults",
            {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceDefaults",
             "metadata": {"name": "web"}, "spec": {"protocol": "http"}}))
    finally:
        admreg.delete_mutating_webhook_configuration("rogue")
    assert ("MutatingWebhookConfiguration rogue webhook rogue.example.com sends CREATE "
            "consul.hashicorp.com/v1alpha1/servicedefaults to /mutate-v1alpha1-servicedefaults: "
            "not the chart's") in message, message
    assert h.clear_errors("rogue.example.com")

    host = _auth_method_host(planes)
    binding = h.api().sanitize_for_serialization(
        client.RbacAuthorizationV1Api(h.api()).read_cluster_role_binding(
            f"{PREFIX}-authdelegator"))
    cases = {"no-token": (_acl_init_job("no-token", f"-auth-method-host={host}",
                                        token_file=False),
                          "datacenter dc2 is a secondary of dc1 and no "
                          "-acl-replication-token-file is set"),
             "elsewhere": (_acl_init_job("elsewhere", "-auth-method-host=https://203.0.113.20:6443"),
                           "https://203.0.113.20:6443 is not this cluster's API server"),
             "no-review": (_acl_init_job("no-review", f"-auth-method-host={host}"),
                           "answered 403: tokenreviews.authentication.k8s.io is forbidden")}
    rbac = client.RbacAuthorizationV1Api(h.api())
    rbac.delete_cluster_role_binding(f"{PREFIX}-authdelegator")
    try:
        for name, (job, _) in cases.items():
            batch.create_namespaced_job(NAMESPACE, job)
        outcomes = {name: h.wait_for_job(name, 60) for name in cases}
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            binding["metadata"].pop(key, None)
        rbac.create_cluster_role_binding(binding)
    for name, (_, message) in cases.items():
        assert outcomes[name].outcome == "failed" and message in outcomes[name].message, \
            (name, outcomes[name])
        assert h.clear_errors(f"job consul/{name}")
        batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
    assert h.errors() == []


# Secrets the chart's Jobs write that neither helm nor a garbage collector removes (upstream
# too), plus the gossip key this test made.
LEFT_BEHIND = {"dc1": {GOSSIP_SECRET, FEDERATION, f"{PREFIX}-bootstrap-acl-token",
                       f"{PREFIX}-acl-replication-acl-token"},
               "dc2": {FEDERATION}}
# Hook objects whose only delete policy is before-hook-creation: `helm uninstall` leaves them
# (upstream too; `pulumi destroy` removes them with the namespace).
HOOK_LEFTOVERS = {f"{PREFIX}-tls-init"}


@pytest.mark.parametrize("dc", ["dc2", "dc1"])
def test_uninstall_leaves_nothing(tools, planes, primary, dc):
    """helm uninstall --wait runs the pre-delete hooks (as their ServiceAccounts) and, with
    the garbage collector played, leaves only the Secrets upstream leaves too."""
    h = planes[dc]
    proc = _helm(tools, planes, dc, "uninstall", "consul", "--namespace", NAMESPACE, "--wait",
                 "--timeout", "2m")
    assert proc.returncode == 0, f"{proc.stderr}\n{h.errors()}"
    assert h.wait_for_job(f"{PREFIX}-tls-init-cleanup", 5).outcome == "complete"
    core, apps, batch = h.core(), h.apps(), h.batch()

    def left():
        return {
            "secrets": {s.metadata.name for s in core.list_namespaced_secret(NAMESPACE).items}
            - LEFT_BEHIND[dc],
            "other": [o.metadata.name for lister in (
                apps.list_namespaced_deployment, apps.list_namespaced_replica_set,
                apps.list_namespaced_stateful_set, batch.list_namespaced_job,
                core.list_namespaced_service, core.list_namespaced_config_map,
                core.list_namespaced_service_account) for o in lister(NAMESPACE).items]
            + [w.metadata.name for w in h.admreg().list_mutating_webhook_configuration().items]
            + [w.metadata.name for w in h.admreg().list_validating_webhook_configuration().items]
            + gateway_class_configs()}

    def left_by_us():
        found = left()
        return {**found, "other": [name for name in found["other"] if name not in HOOK_LEFTOVERS]}

    def gateway_class_configs():
        """What gateway-cleanup deletes; with the chart's CRD gone, there can be none."""
        try:
            return [g["metadata"]["name"] for g in h.custom().list_cluster_custom_object(
                "consul.hashicorp.com", "v1alpha1", "gatewayclassconfigs")["items"]]
        except ApiException as e:
            if e.status == 404:
                return []
            raise
    deadline = time.monotonic() + 30
    while left_by_us() != {"secrets": set(), "other": []} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left_by_us() == {"secrets": set(), "other": []}
    assert h.errors() == []


def test_deletions_finish(planes, primary):
    """What Pulumi's destroy waits for: foreground and namespace deletions finish."""
    h = planes["dc1"]
    core = h.core()
    core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "doomed"}})
    core.delete_namespaced_secret("doomed", NAMESPACE, propagation_policy="Foreground")
    core.delete_namespace(NAMESPACE, propagation_policy="Foreground")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespace(NAMESPACE)
        except ApiException as e:
            assert e.status == 404
            break
        time.sleep(0.5)
    else:
        pytest.fail("namespace still there")
    assert h.errors() == []
