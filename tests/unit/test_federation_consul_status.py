"""Consul's HTTP API answers, parsed and judged as `federation verify` does, on the sample
responses of Consul's API documentation (tests/fixtures/consul/README.md says where each is from)."""

import json
from pathlib import Path

import pytest

from federation import consul_status as cs

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "consul"


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def variant(name: str, change) -> str:
    """The recorded document with one field changed, so the format stays the recorded one."""
    doc = json.loads(recorded(name))
    change(doc)
    return json.dumps(doc)


def test_members_parse_the_recorded_response():
    members = cs.parse_members(recorded("agent-members.json"))
    assert members == [cs.Member(name="foobar", address="10.1.10.12", datacenter="dc1", role="consul",
                                 status="alive")]


def test_members_verdict_needs_an_alive_server_in_every_datacenter():
    members = cs.parse_members(recorded("agent-members.json"))
    assert cs.members_verdict(members, ["dc1"]) == (True, "1 WAN member(s) alive in dc1")
    ok, detail = cs.members_verdict(members, ["dc1", "dc2"])
    assert not ok and detail == "no alive server of dc2"


def test_a_failed_member_fails_the_verdict_and_is_named():
    def fail(doc):
        doc[0]["Status"] = 4
    ok, detail = cs.members_verdict(cs.parse_members(variant("agent-members.json", fail)), ["dc1"])
    assert not ok
    assert detail == "no alive server of dc1; foobar (dc1) failed"


def test_only_servers_count_as_a_datacenters_alive_members():
    def client_only(doc):
        doc[0]["Status"] = 4
        doc.append({**doc[0], "Name": "node-a", "Status": 1, "Tags": {**doc[0]["Tags"], "role": "node"}})
    ok, detail = cs.members_verdict(cs.parse_members(variant("agent-members.json", client_only)), ["dc1"])
    assert (ok, detail) == (False, "no alive server of dc1; foobar (dc1) failed")


def test_a_member_that_left_is_named_but_does_not_fail():
    def leave(doc):
        doc.append({**doc[0], "Name": "foobar-2", "Status": 3})
    assert cs.members_verdict(cs.parse_members(variant("agent-members.json", leave)), ["dc1"]) == (
        True, "1 WAN member(s) alive in dc1; left: foobar-2")


def test_datacenters_parse_and_verdict():
    found = cs.parse_datacenters(recorded("catalog-datacenters.json"))
    assert found == ["dc1", "dc2"]
    assert cs.datacenters_verdict(found, ["dc1", "dc2"])[0]
    assert cs.datacenters_verdict(found, ["dc1", "dc2", "dc3"]) == (False, "catalog lacks dc3 (it has dc1, dc2)")


def test_replication_parse_the_recorded_response():
    status = cs.parse_replication(recorded("acl-replication.json"))
    assert (status.enabled, status.running, status.source_datacenter, status.replication_type) == \
        (True, True, "dc1", "tokens")
    assert status.last_error < status.last_success


def test_replication_verdict_on_the_recorded_response():
    status = cs.parse_replication(recorded("acl-replication.json"))
    assert cs.replication_verdict(status, "dc1") == (True, "tokens from dc1, last success 2018-11-03T06:28:58Z")
    ok, detail = cs.replication_verdict(status, "east")
    assert not ok and "not from the primary 'east'" in detail


@pytest.mark.parametrize("field, value, expected", [
    ("Enabled", False, "ACL replication is not enabled"),
    ("Running", False, "ACL replication is enabled but not running"),
    ("LastError", "2018-11-03T06:29:58.123456789Z",
     "last error (2018-11-03T06:29:58Z) is newer than the last success: failed to retrieve ACL policy "
     "updates: RPC rate limit exceeded"),
])
def test_replication_verdict_failures(field, value, expected):
    status = cs.parse_replication(variant("acl-replication.json", lambda doc: doc.update({field: value})))
    ok, detail = cs.replication_verdict(status, "dc1")
    assert not ok and detail.startswith(expected)


def test_replication_that_never_synced_fails_even_without_an_error():
    """Running, no error at all, but no round ever succeeded (zero LastSuccess): not healthy."""
    status = cs.parse_replication(variant("acl-replication.json", lambda doc: doc.update(
        LastSuccess="0001-01-01T00:00:00Z", LastError="0001-01-01T00:00:00Z", LastErrorMessage="")))
    assert cs.replication_verdict(status, "dc1") == (
        False, "never synced: no replication round from dc1 has succeeded yet (LastSuccess is zero)")


@pytest.mark.parametrize("parse, text", [
    (cs.parse_members, "<html>503 Service Unavailable</html>"),
    (cs.parse_members, '{"Name": "foobar"}'),
    (cs.parse_members, '[{"Name": "foobar", "Status": "alive"}]'),
    (cs.parse_datacenters, '{"dc1": true}'),
    (cs.parse_replication, '["dc1"]'),
    (cs.parse_replication, '{"Enabled": true, "Running": true, "LastSuccess": "yesterday"}'),
    (cs.parse_leader, '["10.1.10.12:8300"]'),
    (cs.parse_leader, "No path to datacenter"),
])
def test_other_formats_are_refused_not_judged(parse, text):
    with pytest.raises(cs.ConsulOutputError):
        parse(text)


def test_primary_gateways_of_server_config_json():
    assert cs.primary_gateways('{"primary_datacenter":"dc1","primary_gateways":["127.0.1.1:443"]}') == \
        ["127.0.1.1:443"]
    with pytest.raises(cs.ConsulOutputError):
        cs.primary_gateways('{"primary_datacenter":"dc1"}')


def test_proxy_defaults_mode_is_read_from_consuls_config_entry():
    body = b'{"Kind":"proxy-defaults","Name":"global","MeshGateway":{"Mode":"local"},"CreateIndex":31}'
    mode = cs.parse_proxy_defaults_mode(body)
    assert mode == "local"
    assert cs.proxy_defaults_verdict(mode, "local") == (
        True, "mesh gateway mode local, replicated from the primary")
    assert cs.proxy_defaults_verdict(
        cs.parse_proxy_defaults_mode(b'{"Kind":"proxy-defaults","Name":"global"}'), "remote") == (
        False, "mesh gateway mode unset, but the primary's ProxyDefaults says remote")
    with pytest.raises(cs.ConsulOutputError):
        cs.parse_proxy_defaults_mode(b'{"Kind":"service-defaults"}')


def test_leader_parse_and_rpc_verdict():
    assert cs.parse_leader(recorded("status-leader.json")) == "10.1.10.12:8300"
    assert cs.rpc_verdict({"dc2": "10.1.10.12:8300", "dc3": "10.1.10.13:8300"}, {}) == \
        (True, "leader of dc2, dc3 answered")
    assert cs.rpc_verdict({"dc2": "10.1.10.12:8300", "dc4": ""}, {"dc3": "No path to datacenter"}) == \
        (False, "dc3: No path to datacenter; dc4: no leader")


# The sample keyring's keys (K1 primary) and their fingerprints (`printf %s KEY | sha256sum`).
K1, K2, K3 = ("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", "ZWTL+bgjHyQPhJRKcFe3ccirc2SFHmc/Nw67l8NQfdk=",
              "WbL6oaTPom+7RG7Q/INbJWKy09OLar/Hf2SuOAdoQE4=")
FP1, FP2, FP3 = "sha256:1a529216c579", "sha256:2d868d71211c", "sha256:1f4f4d0b9426"


def settled(keys: dict[str, int], primary: str):
    """The recorded keyring with every pool holding `keys` (counts) and `primary` on all 3 nodes."""
    def change(doc):
        for ring in doc:
            ring["Keys"], ring["PrimaryKeys"] = dict(keys), {primary: 3}
    return cs.parse_keyring(variant("operator-keyring.json", change))


def test_keyring_parses_the_recorded_response():
    rings = cs.parse_keyring(recorded("operator-keyring.json"))
    assert [(r.name, r.num_nodes, r.primary_keys) for r in rings] == [("WAN", 3, {K1: 1}), ("dc1 LAN", 3, {K1: 1})]
    assert rings[0].keys == {K1: 1, K2: 1, K3: 1} and rings[0].messages == {}
    assert cs.fingerprint(K1) == FP1 and cs.fingerprint(K2) == FP2


@pytest.mark.parametrize("text", ['{"WAN": true}', '[{"WAN": "yes", "NumNodes": 3}]',
                                  '[{"WAN": true, "NumNodes": 3, "Keys": {"k": "1"}}]', "<html>"])
def test_keyring_that_is_not_consuls_format_is_refused(text):
    with pytest.raises(cs.ConsulOutputError):
        cs.parse_keyring(text)


def test_keyring_verdict_one_primary_key_on_every_member_equal_to_the_secret():
    assert cs.keyring_verdict(settled({K1: 3}, K1), ["dc1"], K1) == (
        True, f"primary key {FP1} (= the gossip Secret's) on every member of 2 pool(s)")
    ok, detail = cs.keyring_verdict(settled({K1: 3, K2: 3}, K1), ["dc1"], K1)
    assert ok and detail.endswith(f"; also installed: {FP2}")


@pytest.mark.parametrize("rings, datacenters, secret, problem", [
    ("recorded", ["dc1"], K1, f"WAN: primary key {FP1} on 1/3 members; dc1 LAN: primary key {FP1} on 1/3 members"),
    (("settled", K2), ["dc1"], K1, f"the primary key {FP2} is not the gossip Secret's ({FP1}): a rotation stopped half-way"),
    (("settled", K1), ["dc1", "dc2"], K1, "no LAN pool of dc2 answered"),
    (("settled", K1), ["dc1"], None, "the primary's gossip Secret holds no key to compare with"),
    ("empty", ["dc1"], K1, "Consul listed no gossip pool"),
])
def test_keyring_verdict_fails_naming_what_is_wrong(rings, datacenters, secret, problem):
    parsed = {"recorded": lambda: cs.parse_keyring(recorded("operator-keyring.json")),
              "empty": lambda: []}.get(rings) if isinstance(rings, str) else (lambda: settled({K1: 3, K2: 3}, rings[1]))
    ok, detail = cs.keyring_verdict(parsed(), datacenters, secret)
    assert not ok and problem in detail, detail


def test_two_primary_keys_and_a_members_message_fail():
    def change(doc):
        doc[0]["PrimaryKeys"] = {K1: 3}
        doc[1]["PrimaryKeys"] = {K2: 3}
        doc[1]["Messages"] = {"consul-server-0": "No installed keys could decrypt the message"}
        for ring in doc:
            ring["Keys"] = {K1: 3, K2: 3}
    ok, detail = cs.keyring_verdict(cs.parse_keyring(variant("operator-keyring.json", change)), ["dc1"], K1)
    assert not ok
    assert f"2 primary keys in use ({FP1}, {FP2})" in detail
    assert "dc1 LAN: consul-server-0: No installed keys could decrypt the message" in detail


def test_on_every_member_counts_each_pool():
    rings = settled({K1: 3, K2: 3}, K1)
    assert cs.on_every_member(rings, K2) and not cs.on_every_member(rings, K2, primary=True)
    assert cs.on_every_member(rings, K1, primary=True)
    assert not cs.on_every_member(cs.parse_keyring(recorded("operator-keyring.json")), K1)
    assert not cs.on_every_member([], K1)
