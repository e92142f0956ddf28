"""The local clusters' pure pieces: DNS answers, the kubelet's $(VAR) expansion, the image table."""

from __future__ import annotations

import socket
import struct

import pytest

from localcluster.dns import answer
from localcluster.images import ImageUnknown, image_of
from localcluster.kubelet import exit_status, expand

pytestmark = pytest.mark.unit


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def parse(packet: bytes) -> tuple[int, int, list[str]]:
    ident, flags, _qd, ancount, _ns, _ar = struct.unpack("!HHHHHH", packet[:12])
    offset = packet.index(b"\0", 12) + 5
    addresses = []
    for _ in range(ancount):
        _ptr, rtype, _cls, _ttl, length = struct.unpack("!HHHIH", packet[offset:offset + 12])
        assert (rtype, length) == (1, 4)
        addresses.append(socket.inet_ntoa(packet[offset + 12:offset + 16]))
        offset += 16
    return ident, flags & 0xF, addresses


RECORDS = {"consul-server.consul.svc.cluster.local": ["10.244.1.2", "10.244.1.3"],
           "dc3-gateway.consul.test": ["10.250.3.1"]}


def test_dns_answers_every_address_of_a_known_name_case_insensitively():
    ident, rcode, addresses = parse(answer(query("Consul-Server.consul.svc.cluster.local"), RECORDS))
    assert (ident, rcode, addresses) == (0x1234, 0, ["10.244.1.2", "10.244.1.3"])


def test_dns_unknown_name_is_nxdomain_and_aaaa_of_a_known_one_is_empty():
    assert parse(answer(query("consul-server.consul.svc.svc.cluster.local"), RECORDS))[1:] == (3, [])
    assert parse(answer(query("dc3-gateway.consul.test", qtype=28), RECORDS))[1:] == (0, [])


def test_kubelet_expands_known_variables_only():
    env = {"NAMESPACE": "consul", "POD_NAME": "consul-server-0"}
    assert expand("pod=$(NAMESPACE)/$(POD_NAME)", env) == "pod=consul/consul-server-0"
    assert expand("$(UNKNOWN) stays, $$(NAMESPACE) escapes", env) == "$(UNKNOWN) stays, $(NAMESPACE) escapes"


def test_a_container_killed_by_a_signal_exits_128_plus_the_signal_as_a_runtime_reports_it():
    assert (exit_status(0), exit_status(1), exit_status(-15), exit_status(-9)) == (0, 1, 143, 137)


def test_only_chart_1_2_1_images_run():
    assert image_of("docker.io/hashicorp/consul:1.16.1").binaries == ("consul",)
    assert image_of("hashicorp/consul-dataplane:1.2.1").binaries == ("consul-dataplane", "envoy")
    with pytest.raises(ImageUnknown, match="hashicorp/consul:1.21.4 cannot run here"):
        image_of("hashicorp/consul:1.21.4")
