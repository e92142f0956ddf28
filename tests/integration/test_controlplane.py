"""Two real control planes (etcd + kube-apiserver) on loopback, driven through one kubeconfig.

Needs the binaries from `bash tools/ensure.sh cluster` (a cold build takes a long time; warm it
is a no-op). Run: python -m pytest tests/integration/test_controlplane.py -m integration
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

try:
    from .controlplane import ControlPlane, write_kubeconfig
except ImportError:  # tests/integration is not a package
    from localcluster.controlplane import ControlPlane, write_kubeconfig

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def ensure_tools(group: str) -> dict[str, str]:
    """Run `bash tools/ensure.sh GROUP` from the repo root and parse its KEY=/path lines."""
    out = subprocess.run(
        ["bash", "tools/ensure.sh", group], cwd=REPO, check=True,
        stdout=subprocess.PIPE, text=True,
    ).stdout
    tools = {}
    for line in out.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and value:
            tools[key] = value
    return tools


@pytest.fixture(scope="module")
def cluster_binaries() -> dict[str, str]:
    tools = ensure_tools("cluster")
    for key in ("ETCD", "KUBE_APISERVER"):
        assert Path(tools.get(key, "")).is_file(), f"ensure.sh cluster printed no {key}: {tools}"
    return tools


@pytest.fixture(scope="module")
def planes(tmp_path_factory, cluster_binaries):
    workdir = tmp_path_factory.mktemp("planes")
    etcd, apiserver = cluster_binaries["ETCD"], cluster_binaries["KUBE_APISERVER"]
    with ControlPlane("dc1", workdir, etcd, apiserver) as dc1, \
            ControlPlane("dc2", workdir, etcd, apiserver) as dc2:
        print(f"startup: dc1 {dc1.startup_seconds:.1f}s, dc2 {dc2.startup_seconds:.1f}s")
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", [dc1, dc2])
        yield {"dc1": dc1, "dc2": dc2, "kubeconfig": str(kubeconfig)}
    assert not dc1.running and not dc2.running


def api_client(planes, context: str) -> k8s.ApiClient:
    return kubernetes.config.new_client_from_config(
        config_file=planes["kubeconfig"], context=context)


def test_two_separate_clusters(planes):
    dc1, dc2 = planes["dc1"], planes["dc2"]
    assert dc1.server != dc2.server
    assert dc1.egress_socket.endswith("/dc1/egress.sock")
    ns = "federation-test"
    for ctx in ("dc1", "dc2"):
        api = api_client(planes, ctx)
        version = k8s.VersionApi(api).get_code()
        assert version.major == "1" and int(version.minor.rstrip("+")) >= 22, version
        assert api.configuration.host == planes[ctx].server
        k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))

    core1 = k8s.CoreV1Api(api_client(planes, "dc1"))
    core2 = k8s.CoreV1Api(api_client(planes, "dc2"))
    core1.create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="only-in-dc1"), string_data={"token": "s3cret"}))
    assert core1.read_namespaced_secret("only-in-dc1", ns).data["token"]  # base64 of s3cret
    with pytest.raises(ApiException) as missing:
        core2.read_namespaced_secret("only-in-dc1", ns)
    assert missing.value.status == 404
    assert [s.metadata.name for s in core2.list_namespaced_secret(ns).items] == []


def test_crd_crud_without_egress_proxy(planes):
    """Nothing listens on the egress socket: CRDs and custom objects still work."""
    assert not Path(planes["dc2"].egress_socket).exists()
    api = api_client(planes, "dc2")
    group, plural = "test.federation.local", "widgets"
    crd = k8s.V1CustomResourceDefinition(
        metadata=k8s.V1ObjectMeta(name=f"{plural}.{group}"),
        spec=k8s.V1CustomResourceDefinitionSpec(
            group=group, scope="Namespaced",
            names=k8s.V1CustomResourceDefinitionNames(plural=plural, singular="widget", kind="Widget"),
            versions=[k8s.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=k8s.V1CustomResourceValidation(open_apiv3_schema=k8s.V1JSONSchemaProps(
                    type="object", x_kubernetes_preserve_unknown_fields=True)))],
        ),
    )
    ext = k8s.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    deadline = time.monotonic() + 30
    while True:
        conditions = ext.read_custom_resource_definition(f"{plural}.{group}").status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        assert time.monotonic() < deadline, f"CRD not established: {conditions}"
        time.sleep(0.2)

    custom = k8s.CustomObjectsApi(api)
    body = {"apiVersion": f"{group}/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"size": 3}}
    deadline = time.monotonic() + 30
    while True:  # discovery of a just-established CRD can lag by a moment
        try:
            custom.create_namespaced_custom_object(group, "v1", "default", plural, body)
            break
        except ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    got = custom.get_namespaced_custom_object(group, "v1", "default", plural, "w1")
    assert got["spec"] == {"size": 3}
    with pytest.raises(ApiException) as missing:  # dc1 has no such CRD
        k8s.CustomObjectsApi(api_client(planes, "dc1")).list_namespaced_custom_object(
            group, "v1", "default", plural)
    assert missing.value.status == 404


class _RecordingConnectProxy:
    """Accepts connections on a Unix socket, records the CONNECT line, answers 503."""

    def __init__(self, path: str):
        self.path = path
        self.requests: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.requests.append(data.split(b"\r\n", 1)[0].decode())
                    conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        Path(self.path).unlink(missing_ok=True)


def test_service_webhook_calls_go_through_egress_socket(planes):
    """A webhook with a service reference is dialled as CONNECT <clusterIP>:<port> on the socket."""
    dc1 = planes["dc1"]
    api = api_client(planes, "dc1")
    core, adm = k8s.CoreV1Api(api), k8s.AdmissionregistrationV1Api(api)
    ns = "hooked-" + uuid.uuid4().hex[:6]
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    svc = core.create_namespaced_service(ns, k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="hook"),
        spec=k8s.V1ServiceSpec(ports=[k8s.V1ServicePort(port=443, target_port=8443)])))
    assert svc.spec.cluster_ip  # allocated by the apiserver itself
    hook_name = f"{ns}-hook"
    adm.create_validating_webhook_configuration(k8s.V1ValidatingWebhookConfiguration(
        metadata=k8s.V1ObjectMeta(name=hook_name),
        webhooks=[k8s.V1ValidatingWebhook(
            name="check.test.federation.local",
            client_config=k8s.AdmissionregistrationV1WebhookClientConfig(
                service=k8s.AdmissionregistrationV1ServiceReference(
                    namespace=ns, name="hook", path="/validate", port=443)),
            rules=[k8s.V1RuleWithOperations(
                api_groups=[""], api_versions=["v1"], operations=["CREATE"],
                resources=["configmaps"])],
            namespace_selector=k8s.V1LabelSelector(
                match_labels={"kubernetes.io/metadata.name": ns}),
            failure_policy="Ignore", side_effects="None",
            admission_review_versions=["v1"], timeout_seconds=5,
        )],
    ))
    proxy = _RecordingConnectProxy(dc1.egress_socket)
    try:
        deadline = time.monotonic() + 30
        i = 0
        while not proxy.requests:  # the webhook configuration reaches the apiserver's cache async
            assert time.monotonic() < deadline, "no webhook call arrived on the egress socket"
            core.create_namespaced_config_map(ns, k8s.V1ConfigMap(
                metadata=k8s.V1ObjectMeta(name=f"cm{i}")))  # Ignore: proxy failure is not fatal
            i += 1
            time.sleep(0.2)
        assert proxy.requests[0] == f"CONNECT {svc.spec.cluster_ip}:443 HTTP/1.1", proxy.requests
    finally:
        proxy.close()
        adm.delete_validating_webhook_configuration(hook_name)


def test_no_endpoint_reconciler(planes):
    """--endpoint-reconciler-type=none: the apiserver makes the default/kubernetes Service but
    never publishes its loopback address as Endpoints (validation would reject it); whoever
    needs them (the harness) writes them."""
    core = k8s.CoreV1Api(api_client(planes, "dc1"))
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip and svc.spec.ports[0].port == 443
    with pytest.raises(ApiException) as err:
        core.read_namespaced_endpoints("kubernetes", "default")
    assert err.value.status == 404
