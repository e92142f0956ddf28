"""A secondary whose k8sAuthMethodHost the primary's servers cannot reach (consul-k8s#2138,
consul-helm#1039), for real: Consul 1.16.1 servers, the chart's server-acl-init and the mesh
gateway's login through the auth method, on chart 1.2.1.

What really happens (the test pins it): the secondary's server-acl-init succeeds, because
creating the auth method in the primary does not dial its host; every later login through it
does. The primary's servers call the secondary's API server at k8sAuthMethodHost to review the
login's token, so the mesh gateway's connect-init and the connect injector retry their login until
Helm gives up. ``up`` must fail naming those containers, quoting the token review's error and
saying which setting to change."""

from __future__ import annotations

import time

import pytest

from localcluster.network import ClusterAddresses
from realenv import real_federation

pytestmark = pytest.mark.consul

DATACENTERS = ("dc1", "dc2")
# dc2's node address, on a port nothing listens on: refused at once, inside this run's namespace
UNREACHABLE = f"https://{ClusterAddresses(2).node_ip}:1"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    with real_federation(tmp_path_factory.mktemp("authhost"), DATACENTERS) as f:
        yield f


def test_an_unreachable_k8s_auth_method_host_fails_up_quoting_the_login_error(fed):
    project = fed.project()
    project.overrides["dc2"] = {"k8sAuthMethodHost": UNREACHABLE, "releaseTimeoutSeconds": 90}
    for dc in DATACENTERS:
        project.init_stack(dc)
    done = fed.cli(project, "up", "--stacks", "dc1")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{fed.diagnose()}"

    started = time.monotonic()
    done = fed.cli(project, "up", "--stacks", "dc2")
    print(f"\n[timing] up of dc2 fails {time.monotonic() - started:.1f} s after it started "
          "(releaseTimeoutSeconds 90)")
    assert done.returncode == 1, done.stdout[-4000:]
    out = done.stdout
    failing = [line for line in out.splitlines() if "- Deployment consul/" in line and ", container " in line]
    assert failing, out[-6000:]
    print("\n".join(failing))
    gateway = [line for line in failing if "container mesh-gateway-init" in line]
    assert gateway, failing
    for line in gateway:
        assert "ACL auth method login failed" in line and "tokenreviews" in line, line
        assert f"{UNREACHABLE.removeprefix('https://')}: connect: connection refused" in line, line
        assert "likely: the login's token review failed" in line, line
        assert "set consul-federation:k8sAuthMethodHost" in line, line
    assert "Deployment consul/consul-mesh-gateway: 0 of 1 replicas ready" in out

    # server-acl-init itself succeeded: creating the auth method does not dial its host
    logs = fed.core("dc2").list_namespaced_pod("consul", label_selector="component=server-acl-init").items
    assert logs and all(p.status.phase == "Succeeded" for p in logs), [p.status.phase for p in logs]
    assert fed.errors() == {}
