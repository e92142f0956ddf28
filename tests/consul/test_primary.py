"""A primary datacenter of chart 1.2.1 installed with helm, its pods run for real: the Consul
server elects itself, the chart's Jobs and hooks (tls-init, server-acl-init,
create-federation-secret) run their real binaries against it, and the mesh gateway's Envoy
listens. What is played is in ``localcluster``'s docstrings."""

from __future__ import annotations

import base64
import secrets

import pytest

from realenv import NAMESPACE, real_federation
from stack_matrix import case

pytestmark = pytest.mark.consul


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    with real_federation(tmp_path_factory.mktemp("real"), ("dc1",)) as f:
        yield f


def test_primary_installs_and_runs_consul(fed):
    values = case("dc1").on_chart("1.2.1").chart_values()
    core = fed.core("dc1")
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    gossip = base64.b64encode(secrets.token_bytes(32)).decode()
    core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "consul-gossip-encryption-key"},
                                              "stringData": {"key": gossip}})
    done = fed.helm("dc1", "install", "consul", fed.chart, "-n", NAMESPACE, "--wait",
                    "--timeout", "10m", values=values)
    assert done.returncode == 0, f"{done.stderr}\n{fed.diagnose()}"
    print(f"\n[timing] helm install dc1 (chart 1.2.1, real pods): {done.seconds:.1f} s")
    federation = fed.secret("dc1", "consul-federation")
    assert sorted(federation) == ["caCert", "caKey", "gossipEncryptionKey", "replicationToken",
                                  "serverConfigJSON"], fed.diagnose()
    assert federation["gossipEncryptionKey"].decode() == gossip
    assert fed.errors() == {}


def test_container_logs_through_the_api_server(fed):
    """kubectl logs works: the API server reads the stand-in kubelet's log endpoint."""
    core = fed.core("dc1")
    text = core.read_namespaced_pod_log("consul-server-0", NAMESPACE, container="consul", tail_lines=50)
    assert "agent: Consul agent running!" in text or "New leader elected" in text, text[-2000:]
    assert len(text.strip().splitlines()) <= 50
