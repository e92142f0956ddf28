"""federation/helm_records.py: the one reader of Helm's release records (Secrets
``sh.helm.release.v1.<name>.v<N>``), used by recovery and by the integration tests."""

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from federation.helm_records import ClusterHelmRecords, decode_release, label_selector, record_name

pytestmark = pytest.mark.unit

# The `release` key of a record as the API returns it: base64 of Helm's base64 of gzipped JSON
# {"name":"consul","version":10,"info":{"status":"deployed"},"config":{"global":{"datacenter":"dc1"}}}
RELEASE_V10 = ("SDRzSUFBQUFBQUFDQXhXTFN3ckFJQkRGN3ZMV0x1clcyMHgxRk1IT0ZEK0ZJdDY5ZFJkSU1pRjBNUnk4U2hzRkJnL1hsbFhnN0dH"
               "UUpTcmNST3ZVUi91endIZlJsd09XMlV2TWFldFU5S1N5S1ZBbno5SzU3dGhickxVK3RzSU45V1FBQUFBPQ==")


def record(version, status, release="e30="):
    return client.V1Secret(metadata=client.V1ObjectMeta(
        name=f"sh.helm.release.v1.consul.v{version}",
        labels={"owner": "helm", "name": "consul", "version": str(version), "status": status}),
        data={"release": release})


class FakeCore:
    def __init__(self, items=None, error=None):
        self.items, self.error, self.calls = items or [], error, []

    def list_namespaced_secret(self, namespace, **kwargs):
        self.calls.append(("list", namespace, kwargs))
        if self.error:
            raise self.error
        return client.V1SecretList(items=self.items)

    def delete_namespaced_secret(self, name, namespace, **kwargs):
        self.calls.append(("delete", name, namespace, kwargs))


def test_names_and_labels_of_the_records():
    assert record_name("consul", 3) == "sh.helm.release.v1.consul.v3"
    assert label_selector("consul") == "owner=helm,name=consul"


def test_a_record_decodes_to_the_release_helm_stored():
    assert decode_release(RELEASE_V10) == {"name": "consul", "version": 10, "info": {"status": "deployed"},
                                           "config": {"global": {"datacenter": "dc1"}}}


def test_revisions_are_listed_by_the_release_labels_in_numeric_order():
    core = FakeCore([record(10, "deployed"), record(9, "superseded"), record(1, "superseded")])
    assert ClusterHelmRecords(core).revisions("consul", "consul") == [(1, "superseded"), (9, "superseded"),
                                                                      (10, "deployed")]
    assert core.calls == [("list", "consul", {"label_selector": "owner=helm,name=consul",
                                              "_request_timeout": (5, 30)})]


def test_newest_is_the_highest_revision_not_the_last_listed():
    core = FakeCore([record(10, "deployed", RELEASE_V10), record(9, "superseded")])
    assert ClusterHelmRecords(core).newest("consul", "consul")["config"] == {"global": {"datacenter": "dc1"}}


def test_a_missing_namespace_has_no_revisions_and_other_errors_are_raised():
    assert ClusterHelmRecords(FakeCore(error=ApiException(status=404))).revisions("consul", "consul") == []
    with pytest.raises(ApiException):
        ClusterHelmRecords(FakeCore(error=ApiException(status=403))).revisions("consul", "consul")


def test_delete_removes_the_record_of_one_revision():
    core = FakeCore()
    ClusterHelmRecords(core).delete("consul", "consul", 1)
    assert core.calls == [("delete", "sh.helm.release.v1.consul.v1", "consul", {"_request_timeout": (5, 30)})]
