"""The consul tier's shared federation: three datacenters installed once by
``python -m federation up`` for every module that asks for ``fed`` and ``project`` (day one's
tests, then day two's), torn down at the end of the session.

Modules run in ``MODULE_ORDER``: first those that make their own clusters (two sets of local
clusters at once collide on the node addresses and DNS ports), then the shared federation's,
the ones that restart every server last. A module not in the list stops the collection."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from realenv import NAMESPACE, real_federation
from threedc import DATACENTERS, STATIC_GATEWAY


MODULE_ORDER = ("test_primary.py", "test_auth_method_host.py",  # their own clusters
                "test_day_two.py", "test_federation.py",  # the shared one, then what restarts every server:
                "test_tls_ca_rotation.py", "test_rolling_change.py")  # the CA first, on a federation day one left healthy


def pytest_collection_modifyitems(config, items):
    consul = [item for item in items if item.path.parent == Path(__file__).parent]
    unknown = sorted({item.path.name for item in consul} - set(MODULE_ORDER))
    if unknown:
        raise pytest.UsageError(f"tests/consul/conftest.py: add {', '.join(unknown)} to MODULE_ORDER")
    rank = {item: (MODULE_ORDER.index(item.path.name), n) for n, item in enumerate(consul)}
    items[:] = [i for i in items if i not in rank] + sorted(rank, key=rank.get)


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
