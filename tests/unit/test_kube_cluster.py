"""The reachability check of a datacenter's API server (components/kube_cluster.py): the probe
against sockets on this machine's loopback interface (no other network), and the program under
mocks with the probe's answer set by the `probes` fixture (conftest.py)."""

from __future__ import annotations

import socket
import threading

import pytest

from components import kube_cluster
from components.config import ConfigError
from components.kube_cluster import (REACHABILITY_TIMEOUT, ClusterUnreachable, KubeCluster, KubeconfigError,
                                     goes_through_proxy, require_reachable, resolve_cluster)
from pulumi_mocks import ProgramFailed, primary_outputs, run_program
from stack_matrix import PRIMARY_REF, primary, secondary, write_contexts, write_kubeconfig

pytestmark = pytest.mark.unit

REAL_PROBE = kube_cluster.probe_api_server  # conftest replaces it once a test starts


def kubeconfig(tmp_path, server: str, **cluster) -> str:
    return write_kubeconfig(tmp_path / "kubeconfig", server, **cluster)


@pytest.fixture
def listener():
    """A loopback socket that listens but never accepts: the kernel completes the TCP handshake
    and then nothing answers, like a hung API server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def http_server():
    """A loopback server that answers every connection with 401 (an answer all the same)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_probe_refused():
    assert REAL_PROBE(f"https://127.0.0.1:{closed_port()}", 2.0) == "Connection refused"


def test_probe_silent_server_times_out(listener):
    assert REAL_PROBE(f"https://127.0.0.1:{listener}", 0.5) == "no answer within 0.5 s"


def test_probe_any_http_answer_is_reachable(http_server):
    assert REAL_PROBE(f"http://127.0.0.1:{http_server}", 2.0) is None


def test_probe_a_tls_alert_is_an_answer(http_server):
    """A plain-HTTP answer to a TLS hello fails the handshake: still a server that is up."""
    assert REAL_PROBE(f"https://127.0.0.1:{http_server}", 2.0) is None


def test_unreachable_names_the_context_the_server_and_what_to_check(tmp_path, probes):
    path = kubeconfig(tmp_path, "https://10.9.8.7:6443")
    probes.answers["https://10.9.8.7:6443"] = "no answer within 10 s"
    with pytest.raises(ClusterUnreachable) as info:
        require_reachable(resolve_cluster(path, "dc2"))
    assert probes.calls == [("https://10.9.8.7:6443", REACHABILITY_TIMEOUT)]
    assert str(info.value) == (
        f"the Kubernetes API server of kubeconfig context 'dc2' is unreachable: https://10.9.8.7:6443 "
        f"(no answer within 10 s; kubeconfig {path}). Nothing was changed. Check that this cluster is "
        "running and that this machine can reach that address (VPN, firewall, proxy), and that the "
        "context's server in the kubeconfig is current (a re-created cluster often has a new address "
        "or port); then run again.")


def test_no_server_or_a_proxy_skips_the_check(tmp_path, probes, monkeypatch):
    require_reachable(KubeCluster(str(tmp_path / "kubeconfig"), "dc2", {}))  # the context's cluster has no server
    require_reachable(resolve_cluster(
        kubeconfig(tmp_path, "https://10.9.8.7:6443", **{"proxy-url": "http://proxy:3128"}), "dc2"))
    assert probes.calls == []
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "10.9.8.7")
    assert not goes_through_proxy({}, "https://10.9.8.7:6443")
    assert goes_through_proxy({}, "https://10.9.8.6:6443")


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_an_unreachable_cluster_stops_the_program_before_any_kubernetes_resource(tmp_path, probes, role):
    """Nothing of the cluster reaches the engine, not even its provider: the error is the only
    thing the run says, and `pulumi preview` fails the same way."""
    server = "https://127.0.0.1:44123"
    probes.answers[server] = "Connection refused"
    path = kubeconfig(tmp_path, server)
    if role == "primary":
        config, stack, stacks = primary(kubeContext="dc2", kubeconfig=path), "dc1", {}
    else:
        config, stack, stacks = secondary(kubeconfig=path), "dc2", {PRIMARY_REF: primary_outputs()}
    with pytest.raises(ProgramFailed) as info:
        run_program(config, stack, stacks=stacks)
    assert isinstance(info.value.error, ClusterUnreachable)
    assert info.value.error.context == "dc2" and info.value.error.server == server
    assert not [t for t in info.value.types() if t.startswith(("kubernetes:", "pulumi:providers:"))]
    assert probes.calls == [(server, REACHABILITY_TIMEOUT)]


def test_a_reachable_cluster_is_probed_once_per_run(tmp_path, probes):
    path = kubeconfig(tmp_path, "https://dc2.example.com:6443")
    run_program(secondary(kubeconfig=path), "dc2", stacks={PRIMARY_REF: primary_outputs()})
    assert probes.calls == [("https://dc2.example.com:6443", REACHABILITY_TIMEOUT)]


def test_secrets_are_updated_in_place(tmp_path):
    """A new federation secret from the primary updates the secondary's copy; it is never
    deleted and created again (the provider's default for a Secret whose data changes)."""
    run = run_program(secondary(kubeconfig=kubeconfig(tmp_path, "https://dc2.example.com:6443")), "dc2",
                      stacks={PRIMARY_REF: primary_outputs()})
    (provider,) = [r for r in run.registrations if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["enable_secret_mutable"] == "true"  # provider inputs travel as JSON text


def test_error_summary_says_what_the_api_server_said():
    """A hook's warning names an RBAC refusal as such, not by the exception's class alone."""
    from kubernetes.client.rest import ApiException

    from components.kube_cluster import error_summary
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = '{"kind": "Status", "message": "jobs.batch is forbidden: User \\"ci\\" cannot list"}'
    assert error_summary(forbidden) == '403 Forbidden: jobs.batch is forbidden: User "ci" cannot list'
    bare = ApiException(status=500, reason="Internal Server Error")
    assert error_summary(bare) == "500 Internal Server Error"
    assert error_summary(ConnectionRefusedError(111, "Connection refused")) == \
        "ConnectionRefusedError: [Errno 111] Connection refused"
    assert error_summary(TimeoutError()) == "TimeoutError"


@pytest.fixture
def opened(monkeypatch):
    """Every file the program opens, by path (the kubeconfig is read with open())."""
    import builtins

    paths, real_open = [], builtins.open

    def counting_open(file, *args, **kwargs):
        paths.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return paths


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_the_kubeconfig_is_read_once_per_run(tmp_path, opened, role):
    """The provider, the reachability check, k8sAuthMethodHost (taken from the kubeconfig's
    server here) and the Release's hooks take one resolved KubeCluster: one read of the file."""
    path = kubeconfig(tmp_path, "https://dc2.example.com:6443")
    if role == "primary":
        run = run_program(primary(kubeContext="dc2", kubeconfig=path), "dc1")
    else:
        config = secondary(kubeconfig=path)
        del config["k8sAuthMethodHost"]
        run = run_program(config, "dc2", stacks={PRIMARY_REF: primary_outputs()})
        assert run.outputs["k8sAuthMethodHost"] == "https://dc2.example.com:6443"
    assert [p for p in opened if p == path] == [path]
    assert run.one("pulumi:providers:kubernetes").inputs["kubeconfig"] == path


def test_a_kubeconfig_list_is_read_once_per_file(tmp_path, opened):
    """With $KUBECONFIG a:b and the context in b: a and b read once each, b for the provider."""
    other = tmp_path / "other"
    other.write_text("apiVersion: v1\nkind: Config\ncontexts: [{name: dc9, context: {cluster: c9}}]\n")
    path = kubeconfig(tmp_path, "https://dc2.example.com:6443")
    run = run_program(secondary(), "dc2", stacks={PRIMARY_REF: primary_outputs()},
                      env={"KUBECONFIG": f"{other}:{path}"})
    assert [p for p in opened if p in (str(other), path)] == [str(other), path]
    assert run.one("pulumi:providers:kubernetes").inputs["kubeconfig"] == path


# --- A kubeContext the kubeconfig does not define: a configuration error at preview -----------

def test_a_context_the_kubeconfig_lacks_names_the_file_and_its_contexts(tmp_path):
    path = write_contexts(tmp_path / "config", ["kind-dc1", "kind-dc2"])
    with pytest.raises(KubeconfigError) as info:
        resolve_cluster(path, "kind-dc9")
    assert str(info.value) == (f"consul-federation:kubeContext: 'kind-dc9' is not a context of {path}; "
                               "its contexts: kind-dc1, kind-dc2")


@pytest.mark.parametrize("content, why", [
    (None, "does not exist"),
    ("contexts: [\n", "cannot be read as a kubeconfig: ParserError"),
    ("- a list\n", "is not a kubeconfig (not a YAML mapping)"),
])
def test_a_kubeconfig_setting_that_is_no_kubeconfig_is_named(tmp_path, content, why):
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KubeconfigError) as info:
        resolve_cluster(str(path), "dc1")
    message = str(info.value)
    assert message.startswith(f"consul-federation:kubeconfig: '{path}' {why}"), message
    assert message.endswith("; expected a kubeconfig file that defines context 'dc1'")


def test_without_a_kubeconfig_setting_the_default_file_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeconfigError) as info:
        resolve_cluster(None, "dc1")
    assert str(info.value) == (
        f"consul-federation:kubeContext: 'dc1' is not a context of {tmp_path}/.kube/config: the file does "
        "not exist (the default kubeconfig; set consul-federation:kubeconfig or $KUBECONFIG to the file "
        "that defines it)")


def test_every_file_of_kubeconfig_env_is_named(tmp_path, monkeypatch):
    """Missing files of the list are skipped (kubectl's rule) when another defines the context."""
    a = write_contexts(tmp_path / "a", ["kind-dc1"])
    b = write_contexts(tmp_path / "b", ["dc2"])
    monkeypatch.setenv("KUBECONFIG", f"{a}:{tmp_path}/none:{b}")
    assert resolve_cluster(None, "dc2").kubeconfig == b
    with pytest.raises(KubeconfigError) as info:
        resolve_cluster(None, "dc9")
    assert str(info.value) == (f"consul-federation:kubeContext: 'dc9' is not a context of any file of "
                               f"$KUBECONFIG: {a} (contexts: kind-dc1), {tmp_path}/none (does not exist), "
                               f"{b} (contexts: dc2)")


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_an_unknown_context_is_a_config_error_among_the_others_before_anything_registers(tmp_path, role):
    """The program refuses it with the other configuration errors, before the primary's stack
    reference or any provider reaches the engine (`pulumi preview` fails the same way)."""
    path = write_contexts(tmp_path / "config", ["kind-dc1", "kind-dc2"])
    config = (primary if role == "primary" else secondary)(kubeContext="kind-dc9", kubeconfig=path, releaseName="Bad!")
    with pytest.raises(ProgramFailed) as info:
        run_program(config, config["datacenter"], stacks={PRIMARY_REF: primary_outputs()})
    assert isinstance(info.value.error, ConfigError)
    assert [e.split(":")[1] for e in info.value.error.errors] == ["releaseName", "kubeContext"]
    assert info.value.error.errors[1] == (f"consul-federation:kubeContext: 'kind-dc9' is not a context of "
                                          f"{path}; its contexts: kind-dc1, kind-dc2")
    assert info.value.engine == []


def test_a_missing_kubeconfig_file_is_a_config_error_of_the_program(tmp_path):
    with pytest.raises(ProgramFailed) as info:
        run_program(primary(kubeconfig=str(tmp_path / "nowhere")))
    assert info.value.error.errors == [
        f"consul-federation:kubeconfig: '{tmp_path}/nowhere' does not exist; expected a kubeconfig file "
        "that defines context 'dc1'"]
    assert info.value.engine == []
