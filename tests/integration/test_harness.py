"""Integration tests of ``harness.ClusterHarness``.

``test_egress_proxy_tls_admission_standalone`` needs no binaries: it plays the apiserver's side
of the egress socket (HTTP CONNECT over a Unix socket, then TLS with SNI and CA verification,
then AdmissionReview) against the harness's proxy and HTTPS server.

The others start a real control plane (``controlplane.ControlPlane``: etcd + kube-apiserver
from ``bash tools/ensure.sh cluster``) and the harness, then ``helm install`` the real Consul
chart (``bash tools/ensure.sh chart``) with federation, TLS, ACLs, gossip and a NodePort mesh
gateway, without ``--wait``, and check what the Pulumi program relies on: hooks complete, the
federation secret, the ProxyDefaults webhook path, ``helm uninstall``.
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
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402
from pki import issue_cert, make_ca  # noqa: E402

pytestmark = pytest.mark.integration

RELEASE, NAMESPACE, PREFIX = "consul", "consul", "consul"
GOSSIP_SECRET, GOSSIP_KEY = "consul-gossip-encryption-key", "key"
NODE_PORT = 30001
CHART_VALUES = {
    "global.name": "consul",
    "global.datacenter": "dc1",
    "global.tls.enabled": "true",
    "global.federation.enabled": "true",
    "global.federation.createFederationSecret": "true",
    "global.acls.manageSystemACLs": "true",
    "global.acls.createReplicationToken": "true",
    "global.gossipEncryption.secretName": GOSSIP_SECRET,
    "global.gossipEncryption.secretKey": GOSSIP_KEY,
    "meshGateway.enabled": "true",
    "meshGateway.service.type": "NodePort",
    "meshGateway.service.nodePort": str(NODE_PORT),
}

logging.basicConfig(level=logging.INFO)


# ---------------------------------------------------------------------------------------------
# standalone: proxy + TLS + AdmissionReview, no apiserver


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


def _review(kind: str, name: str, op: str = "CREATE") -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "operation": op, "name": name, "namespace": "consul",
        "kind": {"group": "consul.hashicorp.com", "version": "v1alpha1", "kind": kind},
        "object": {"metadata": {"name": name}}}}


def test_egress_proxy_tls_admission_standalone(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({  # never contacted: only the network pieces run
        "apiVersion": "v1", "kind": "Config", "current-context": "dc1",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dc1", "context": {"cluster": "c", "user": "u"}}]}))
    h = H.ClusterHarness(kubeconfig, "dc1", str(tmp_path / "egress.sock"))
    h._start_admission_server()
    h._start_egress_proxy()
    h._started = True
    try:
        ca, ca_key = make_ca("test webhook CA")
        host = "consul-connect-injector.consul.svc"
        cert, key = issue_cert(ca, ca_key, host, [host])
        h._sni = {host: H._server_context(cert, key)}
        h._routes = {("10.0.0.17", 443): ("consul", "consul-connect-injector")}
        client_ctx = ssl.create_default_context(cadata=ca.decode())

        status, s = _connect_via_egress(h.egress_socket, "10.0.0.17:443")
        assert b" 200 " in status + b" "
        with client_ctx.wrap_socket(s, server_hostname=host) as tls:
            code, out = _post(tls, "/mutate-v1alpha1-servicedefaults?timeout=10s",
                              _review("ServiceDefaults", "web"))
            assert code == 200 and out["response"]["allowed"] is True
            assert out["kind"] == "AdmissionReview"
            # a second request on the same tunnel (the apiserver keeps connections alive)
            code, out = _post(tls, "/mutate-v1alpha1-proxydefaults",
                              _review("ProxyDefaults", "not-global"))
            assert out["response"]["allowed"] is False
            assert 'must be "global"' in out["response"]["status"]["message"]
        recs = h.admissions()
        assert [(r.kind, r.name, r.service, r.path) for r in recs] == [
            ("ServiceDefaults", "web", "consul/consul-connect-injector",
             "/mutate-v1alpha1-servicedefaults"),
            ("ProxyDefaults", "not-global", "consul/consul-connect-injector",
             "/mutate-v1alpha1-proxydefaults")]

        # a Service nobody plays is refused, as a webhook without endpoints would be
        status, s = _connect_via_egress(h.egress_socket, "10.0.0.99:443")
        s.close()
        assert b" 502 " in status + b" "
        # a server name the injector's certificate does not cover fails the handshake
        status, s = _connect_via_egress(h.egress_socket, "10.0.0.17:443")
        with pytest.raises(ssl.SSLError):
            client_ctx.wrap_socket(s, server_hostname="other.consul.svc")
        s.close()
    finally:
        h.stop()
    assert not os.path.exists(h.egress_socket)


def test_parse_control_plane_invocations():
    container = {
        "command": ["/bin/sh", "-ec", (
            "consul-k8s-control-plane create-federation-secret \\\n"
            "  -log-level=info \\\n"
            "  -gossip-key-file=/consul/gossip/gossip.key \\\n"
            "  -export-replication-token=true \\\n"
            "  -k8s-namespace=\"${NAMESPACE}\" \\\n"
            "  -resource-prefix=\"consul\" \\\n"
            "  -server-ca-cert-file=/consul/tls/ca/tls.crt\n")],
    }
    [(sub, flags)] = H.parse_control_plane_invocations(container, {"NAMESPACE": "consul"})
    assert sub == "create-federation-secret"
    assert flags["k8s-namespace"] == ["consul"] and flags["resource-prefix"] == ["consul"]
    assert flags["export-replication-token"] == ["true"]
    exec_form = {"command": ["consul-k8s-control-plane"],
                 "args": ["delete-completed-job", "-k8s-namespace=$(NS)", "consul-server-acl-init"]}
    [(sub, flags)] = H.parse_control_plane_invocations(exec_form, {"NS": "consul"})
    assert sub == "delete-completed-job"
    assert flags == {"k8s-namespace": ["consul"], "": ["consul-server-acl-init"]}


# ---------------------------------------------------------------------------------------------
# against a real kube-apiserver + the real chart


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    """ETCD, KUBE_APISERVER, HELM, CONSUL_CHART_* from tools/ensure.sh (a cold build of the
    cluster binaries takes long; a warm cache answers at once)."""
    from real_tools import ensure
    return {**ensure("cluster"), **ensure("chart")}


@pytest.fixture(scope="module")
def chart(tools) -> tuple[str, dict[str, str], tuple[int, ...]]:
    """(chart dir, --set values, version): the newest chart tools/chart.sh provides. Charts before
    consul-k8s 0.43 (hashicorp/consul-helm) have connectInject and the CRD controller off by
    default; the mesh gateway needs the former and ProxyDefaults the latter. The chart version
    is the Chart.yaml ``version`` encoded in the CONSUL_CHART_<x_y_z> key."""
    charts = {tuple(int(x) for x in k[len("CONSUL_CHART_"):].split("_")): v
              for k, v in tools.items() if k.startswith("CONSUL_CHART_")}
    assert charts, f"tools/chart.sh provided no chart: {tools}"
    version = max(charts)
    values = dict(CHART_VALUES)
    if version < (0, 43):
        values.update({"connectInject.enabled": "true", "controller.enabled": "true"})
    if version < (0, 40):
        # the server PodDisruptionBudget of these charts is policy/v1beta1, which Kubernetes
        # removed in 1.25: helm cannot map it on the 1.35 apiserver
        values["server.disruptionBudget.enabled"] = "false"
    return charts[version], values, version


@pytest.fixture(scope="module")
def planes(tools, tmp_path_factory):
    """Two real control planes, "dc1" and "dc2", and one kubeconfig with both contexts."""
    from controlplane import ControlPlane, write_kubeconfig
    # pytest keeps the last few of these (logs of etcd and kube-apiserver for inspection);
    # the path is short enough for the egress socket (at most 107 bytes)
    workdir = tmp_path_factory.mktemp("hns")
    with ControlPlane("dc1", workdir, tools["ETCD"], tools["KUBE_APISERVER"]) as dc1, \
            ControlPlane("dc2", workdir, tools["ETCD"], tools["KUBE_APISERVER"]) as dc2:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", [dc1, dc2])
        yield {"dc1": dc1, "dc2": dc2}, kubeconfig


@pytest.fixture(scope="module")
def cluster(planes):
    """The primary's plane, the kubeconfig and a running harness on context dc1."""
    by_name, kubeconfig = planes
    with H.ClusterHarness(kubeconfig, "dc1", by_name["dc1"].egress_socket) as harness:
        yield by_name["dc1"], kubeconfig, harness


@pytest.fixture(scope="module")
def secondary_cluster(planes):
    by_name, kubeconfig = planes
    with H.ClusterHarness(kubeconfig, "dc2", by_name["dc2"].egress_socket) as harness:
        yield by_name["dc2"], kubeconfig, harness


def _helm(tools, kubeconfig, *args, context="dc1", timeout=600) -> subprocess.CompletedProcess:
    cmd = [tools["HELM"], "--kubeconfig", str(kubeconfig), "--kube-context", context, *args]
    env = {**os.environ, "HELM_CACHE_HOME": str(Path(kubeconfig).parent / "helm-cache"),
           "HELM_CONFIG_HOME": str(Path(kubeconfig).parent / "helm-config"),
           "HELM_DATA_HOME": str(Path(kubeconfig).parent / "helm-data")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def installed(tools, chart, cluster):
    plane, kubeconfig, harness = cluster
    core = harness.core()
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    gossip = base64.b64encode(os.urandom(32))  # what `consul keygen` prints
    core.create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": GOSSIP_SECRET},
        "data": {GOSSIP_KEY: base64.b64encode(gossip).decode()}})
    chart_dir, values, _ = chart
    sets = [x for k, v in values.items() for x in ("--set", f"{k}={v}")]
    started = time.monotonic()
    proc = _helm(tools, kubeconfig, "install", RELEASE, chart_dir,
                 "--namespace", NAMESPACE, "--timeout", "5m", *sets)
    assert proc.returncode == 0, (
        f"helm install failed:\n{proc.stdout}\n{proc.stderr}\nharness errors: "
        f"{harness.errors()}\njobs: {harness.jobs()}")
    return {"gossip": gossip, "install_seconds": time.monotonic() - started}


def _secret(harness, name) -> dict[str, bytes]:
    s = harness.core().read_namespaced_secret(name, NAMESPACE)
    return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}


def test_install_runs_hooks(cluster, installed):
    _, _, harness = cluster
    done = {j.name: j for j in harness.jobs()}
    for job in (f"{PREFIX}-tls-init", f"{PREFIX}-create-federation-secret",
                f"{PREFIX}-server-acl-init", f"{PREFIX}-server-acl-init-cleanup"):
        assert job in done and done[job].outcome == "complete", (job, done.get(job))
    assert "create-federation-secret" in done[f"{PREFIX}-create-federation-secret"].subcommands
    assert harness.errors() == []


def test_federation_secret(cluster, installed):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    _, _, harness = cluster
    fed = _secret(harness, f"{PREFIX}-federation")
    assert set(fed) == {"caCert", "caKey", "serverConfigJSON", "replicationToken",
                        "gossipEncryptionKey"}
    ca = x509.load_pem_x509_certificate(fed["caCert"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject == ca.issuer  # self-signed
    key = serialization.load_pem_private_key(fed["caKey"], password=None)
    assert key.public_key().public_numbers() == ca.public_key().public_numbers()
    assert fed["caCert"] == _secret(harness, f"{PREFIX}-ca-cert")["tls.crt"]
    assert fed["caKey"] == _secret(harness, f"{PREFIX}-ca-key")["tls.key"]
    server = x509.load_pem_x509_certificate(_secret(harness, f"{PREFIX}-server-cert")["tls.crt"])
    assert server.issuer == ca.subject
    assert json.loads(fed["serverConfigJSON"]) == {
        "primary_datacenter": "dc1", "primary_gateways": [f"127.0.0.1:{NODE_PORT}"]}
    assert fed["gossipEncryptionKey"] == installed["gossip"]
    uuid.UUID(fed["replicationToken"].decode())
    assert fed["replicationToken"] == \
        _secret(harness, f"{PREFIX}-acl-replication-acl-token")["token"]


def _proxydefaults_webhook(harness):
    """(MutatingWebhookConfiguration, webhook) of the chart's ProxyDefaults webhook."""
    for mwc in harness.admreg().list_mutating_webhook_configuration().items:
        for w in mwc.webhooks or []:
            if any("proxydefaults" in (r.resources or []) for r in w.rules or []):
                return mwc, w
    raise AssertionError("the chart registered no ProxyDefaults webhook")


def test_webhook_ca_bundle_patched(cluster, installed):
    from cryptography import x509
    _, _, harness = cluster
    mwc, hook = _proxydefaults_webhook(harness)
    assert hook.failure_policy == "Fail"
    bundles = {w.client_config.ca_bundle for w in mwc.webhooks}
    assert len(bundles) == 1 and None not in bundles  # every webhook of it, one CA
    ca = x509.load_pem_x509_certificate(base64.b64decode(bundles.pop()))
    assert ca.subject == ca.issuer
    # the serving certificate the webhook-cert-manager stored, signed by that CA
    cm = json.loads(harness.core().read_namespaced_config_map(
        f"{PREFIX}-webhook-cert-manager-config", NAMESPACE).data["webhook-config.json"])
    entry = next(e for e in cm if e["name"] == mwc.metadata.name)
    leaf = x509.load_pem_x509_certificate(_secret(harness, entry["secretName"])["tls.crt"])
    assert leaf.issuer == ca.subject
    svc = hook.client_config.service
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{svc.name}.{svc.namespace}.svc" in sans.get_values_for_type(x509.DNSName)


def _proxy_defaults(name: str) -> dict:
    return {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ProxyDefaults",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"meshGateway": {"mode": "local"}}}


def test_proxy_defaults_goes_through_webhook(cluster, installed):
    from kubernetes.client.rest import ApiException
    _, _, harness = cluster
    custom = harness.custom()
    deadline = time.monotonic() + 60  # the harness patches caBundle within a poll interval
    while True:
        try:
            custom.create_namespaced_custom_object("consul.hashicorp.com", "v1alpha1",
                                                   NAMESPACE, "proxydefaults",
                                                   _proxy_defaults("global"))
            break
        except ApiException as e:
            if time.monotonic() > deadline:
                raise
            logging.info("ProxyDefaults not accepted yet: %s", e.body)
            time.sleep(1)
    rec = harness.wait_for_admission("ProxyDefaults", "global", timeout=10)
    assert rec is not None and rec.allowed and rec.operation == "CREATE"
    _, hook = _proxydefaults_webhook(harness)
    svc = hook.client_config.service
    assert rec.service == f"{svc.namespace}/{svc.name}" and rec.path == svc.path
    # the webhook really is in the path: what upstream's webhook rejects is rejected
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object("consul.hashicorp.com", "v1alpha1", NAMESPACE,
                                               "proxydefaults", _proxy_defaults("other"))
    assert 'must be "global"' in json.loads(err.value.body)["message"]


def test_secondary_install_uses_the_federation_secret(tools, chart, cluster, secondary_cluster,
                                                     installed):
    """dc2 as the docs set up a secondary: CA, replication token, gossip key and server config
    from the federation secret copied from dc1. Its tls-init gets -ca/-key (the mounted
    federation secret) and must create NO CA secrets, only a server cert signed by dc1's CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from kubernetes.client.rest import ApiException
    _, _, primary = cluster
    _, kubeconfig, harness = secondary_cluster
    fed = _secret(primary, f"{PREFIX}-federation")
    core = harness.core()
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_namespaced_secret(NAMESPACE, {  # what the Pulumi program does: copy it over
        "metadata": {"name": f"{PREFIX}-federation"},
        "data": {k: base64.b64encode(v).decode() for k, v in fed.items()}})
    chart_dir, primary_values, version = chart
    fed_name = f"{PREFIX}-federation"
    values = {
        "global.name": PREFIX, "global.datacenter": "dc2",
        "global.tls.enabled": "true",
        "global.tls.caCert.secretName": fed_name, "global.tls.caCert.secretKey": "caCert",
        "global.tls.caKey.secretName": fed_name, "global.tls.caKey.secretKey": "caKey",
        "global.federation.enabled": "true",
        "global.acls.manageSystemACLs": "true",
        "global.acls.replicationToken.secretName": fed_name,
        "global.acls.replicationToken.secretKey": "replicationToken",
        "global.gossipEncryption.secretName": fed_name,
        "global.gossipEncryption.secretKey": "gossipEncryptionKey",
        "meshGateway.enabled": "true", "meshGateway.service.type": "NodePort",
        "meshGateway.service.nodePort": str(NODE_PORT),
        "server.extraVolumes[0].type": "secret", "server.extraVolumes[0].name": fed_name,
        "server.extraVolumes[0].items[0].key": "serverConfigJSON",
        "server.extraVolumes[0].items[0].path": "config.json",
        "server.extraVolumes[0].load": "true",
    }
    for k in ("connectInject.enabled", "controller.enabled", "server.disruptionBudget.enabled"):
        if k in primary_values:
            values[k] = primary_values[k]
    if version >= (0, 42):  # charts that know it (older ones take it from serverConfigJSON)
        values["global.federation.primaryDatacenter"] = "dc1"
    sets = [x for k, v in values.items() for x in ("--set", f"{k}={v}")]
    proc = _helm(tools, kubeconfig, "install", RELEASE, chart_dir, "--namespace", NAMESPACE,
                 "--timeout", "5m", *sets, context="dc2")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{harness.errors()}"
    tls_init = harness.wait_for_job(f"{PREFIX}-tls-init", timeout=5)
    assert tls_init is not None and tls_init.outcome == "complete"
    for name in (f"{PREFIX}-ca-cert", f"{PREFIX}-ca-key"):
        with pytest.raises(ApiException) as err:
            core.read_namespaced_secret(name, NAMESPACE)
        assert err.value.status == 404, name
    ca = x509.load_pem_x509_certificate(fed["caCert"])
    server = x509.load_pem_x509_certificate(_secret(harness, f"{PREFIX}-server-cert")["tls.crt"])
    assert server.issuer == ca.subject
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes,
                           ec.ECDSA(server.signature_hash_algorithm))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "server.dc2.consul" in sans.get_values_for_type(x509.DNSName)
    assert harness.wait_for_job(f"{PREFIX}-create-federation-secret", timeout=1) is None
    assert harness.errors() == []


def _job(name: str, command: list[str]) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": command}]}}}}


def test_plain_and_failing_jobs(cluster):
    """A Job with nothing to simulate completes; one whose side effect cannot be done is
    failed the way the job controller fails it (FailureTarget + Failed) — both status
    patches accepted by the real apiserver's Job status validation."""
    _, _, harness = cluster
    harness.core().create_namespace({"metadata": {"name": "jobs"}})
    batch = harness.batch()
    batch.create_namespaced_job("jobs", _job("plain", ["sh", "-c", "echo hi"]))
    batch.create_namespaced_job("jobs", _job(
        "bad-tls-init", ["consul-k8s-control-plane", "tls-init", "-name-prefix=x",
                         "-ca=/nowhere/tls.crt"]))
    plain = harness.wait_for_job("plain", timeout=30)
    bad = harness.wait_for_job("bad-tls-init", timeout=30)
    assert plain is not None and plain.outcome == "complete"
    assert bad is not None and bad.outcome == "failed" and "-ca and -key" in bad.message
    conds = {c.type: c.status for c in batch.read_namespaced_job("plain", "jobs").status.conditions}
    assert conds == {"SuccessCriteriaMet": "True", "Complete": "True"}
    status = batch.read_namespaced_job("bad-tls-init", "jobs").status
    assert {c.type: c.status for c in status.conditions} == {"FailureTarget": "True",
                                                             "Failed": "True"}
    assert status.failed == 1 and not status.completion_time
    with harness._lock:  # the expected failure is not a harness error for the other tests
        harness._errors = [e for e in harness._errors if "bad-tls-init" not in e]


def test_uninstall(tools, cluster, installed):
    _, kubeconfig, harness = cluster
    from kubernetes.client.rest import ApiException
    proc = _helm(tools, kubeconfig, "uninstall", RELEASE, "--namespace", NAMESPACE,
                 "--timeout", "5m")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{harness.errors()}"
    cleanup = harness.wait_for_job(f"{PREFIX}-tls-init-cleanup", timeout=5)
    assert cleanup is not None and cleanup.outcome == "complete"
    for name in (f"{PREFIX}-ca-cert", f"{PREFIX}-ca-key", f"{PREFIX}-server-cert"):
        with pytest.raises(ApiException) as err:
            harness.core().read_namespaced_secret(name, NAMESPACE)
        assert err.value.status == 404
    assert harness.errors() == []


def test_deletions_finish(cluster, installed):
    """What Pulumi's destroy waits for: a foreground deletion (pulumi-kubernetes' default) and
    a namespace deletion finish, though no garbage collector or namespace controller runs."""
    from kubernetes.client.rest import ApiException
    _, _, harness = cluster
    core = harness.core()
    core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "doomed"}})
    core.delete_namespaced_secret("doomed", NAMESPACE, propagation_policy="Foreground")
    _wait_gone(lambda: core.read_namespaced_secret("doomed", NAMESPACE), ApiException)
    core.delete_namespace(NAMESPACE, propagation_policy="Foreground")
    _wait_gone(lambda: core.read_namespace(NAMESPACE), ApiException)
    assert harness.errors() == []


def _wait_gone(read, api_exception, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            obj = read()
        except api_exception as e:
            assert e.status == 404
            return
        assert time.monotonic() < deadline, f"still there: {obj.metadata}"
        time.sleep(0.5)
