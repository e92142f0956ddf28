"""The consul tier's shared federation: three datacenters installed once by
``python -m federation up`` for every module that asks for ``fed`` and ``project`` (day one's
tests, then day two's), torn down at the end of the session."""

from __future__ import annotations

import time

import pytest

from realenv import NAMESPACE, real_federation
from threedc import DATACENTERS, STATIC_GATEWAY


@pytest.fixture(scope="session")
def fed(tmp_path_factory):
    with real_federation(tmp_path_factory.mktemp("fed"), DATACENTERS) as f:
        # what a user of dc3 runs in front of its ClusterIP gateway: a load balancer and a name
        f.clusters["dc3"].expose(STATIC_GATEWAY, NAMESPACE, "consul-mesh-gateway", 443)
        yield f


@pytest.fixture(scope="session")
def project(fed):
    project = fed.project()
    project.overrides["dc3"] = {"meshGateway": {"serviceType": "ClusterIP", "wanAddress": STATIC_GATEWAY}}
    for dc in DATACENTERS:
        project.init_stack(dc)
    started = time.monotonic()
    done = fed.cli(project, "up")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{fed.diagnose()}"
    print(f"\n[timing] python -m federation up, 3 datacenters, real Consul: {time.monotonic() - started:.1f} s")
    return project
