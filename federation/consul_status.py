"""Consul's own view of the federation, from its HTTP API's JSON (the formats documented for
``/v1/agent/members?wan=1``, ``/v1/catalog/datacenters``, ``/v1/acl/replication``,
``/v1/status/leader?dc=`` and ``/v1/operator/keyring``).

Parsers raise ConsulOutputError on anything else (an HTML error page from a proxy, a truncated
body), so that ``verify`` reports "could not read" instead of a wrong verdict. Verdicts are pure
functions of parsed answers, tested on recorded responses (tests/fixtures/consul).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

# Serf's MemberStatus (hashicorp/serf serf/serf.go), which /v1/agent/members reports as a number.
MEMBER_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}
_ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)


class ConsulOutputError(ValueError):
    """A response that is not in the format Consul documents for the endpoint."""


@dataclass(frozen=True)
class Member:
    name: str
    address: str
    datacenter: str
    role: str
    status: str


@dataclass(frozen=True)
class Replication:
    enabled: bool
    running: bool
    source_datacenter: str
    replication_type: str
    last_success: datetime
    last_error: datetime
    last_error_message: str


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConsulOutputError(f"{what}: not JSON ({exc})") from exc


def _json_list(text: str | bytes, what: str) -> list[Any]:
    doc = _json(text, what)
    if not isinstance(doc, list):
        raise ConsulOutputError(f"{what}: expected a JSON list")
    return doc


def parse_members(text: str | bytes) -> list[Member]:
    """Members as ``/v1/agent/members`` lists them (``?wan=1``: every WAN member)."""
    doc = _json_list(text, "members")
    members = []
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("Tags"), dict) \
                or not isinstance(item.get("Status"), int) or "Name" not in item:
            raise ConsulOutputError(f"members: unexpected entry {str(item)[:120]}")
        members.append(Member(name=str(item["Name"]), address=str(item.get("Addr", "")),
                              datacenter=str(item["Tags"].get("dc", "")),
                              role=str(item["Tags"].get("role", "")),
                              status=MEMBER_STATUS.get(item["Status"], f"unknown ({item['Status']})")))
    return members


def parse_datacenters(text: str | bytes) -> list[str]:
    doc = _json(text, "datacenters")
    if not isinstance(doc, list) or not all(isinstance(dc, str) for dc in doc):
        raise ConsulOutputError("datacenters: expected a JSON list of names")
    return doc


def _time(value: Any, field: str) -> datetime:
    """RFC 3339 as Go writes it (nanoseconds allowed; Python takes at most microseconds)."""
    if not isinstance(value, str):
        raise ConsulOutputError(f"replication: {field} is not a timestamp")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConsulOutputError(f"replication: {field} {value!r} is not RFC 3339") from exc


def parse_replication(text: str | bytes) -> Replication:
    doc = _json(text, "replication")
    if not isinstance(doc, dict) or not isinstance(doc.get("Enabled"), bool) \
            or not isinstance(doc.get("Running"), bool):
        raise ConsulOutputError("replication: expected an object with Enabled and Running")
    return Replication(
        enabled=doc["Enabled"], running=doc["Running"],
        source_datacenter=str(doc.get("SourceDatacenter", "")),
        replication_type=str(doc.get("ReplicationType", "")),
        last_success=_time(doc.get("LastSuccess", "0001-01-01T00:00:00Z"), "LastSuccess"),
        last_error=_time(doc.get("LastError", "0001-01-01T00:00:00Z"), "LastError"),
        last_error_message=str(doc.get("LastErrorMessage", "")))


def parse_leader(text: str | bytes) -> str:
    """The Raft leader's address as ``/v1/status/leader`` gives it ("" when there is none)."""
    doc = _json(text, "status/leader")
    if not isinstance(doc, str):
        raise ConsulOutputError("status/leader: expected a JSON string")
    return doc


def rpc_verdict(leaders: dict[str, str], errors: dict[str, str]) -> tuple[bool, str]:
    """Every other datacenter answered an RPC forwarded to it (through the mesh gateways) with
    its leader. Unlike WAN membership, which flaps when only one direction of a gateway path
    works, a forwarded RPC fails every time the path to that datacenter is broken."""
    problems = [f"{dc}: {error}" for dc, error in sorted(errors.items())]
    problems += [f"{dc}: no leader" for dc, leader in sorted(leaders.items()) if not leader]
    if problems:
        return False, "; ".join(problems)
    return True, f"leader of {', '.join(sorted(leaders))} answered"


def members_verdict(members: list[Member], datacenters: list[str]) -> tuple[bool, str]:
    """Every datacenter of the federation has a server alive in the WAN pool, and no WAN member
    is failed (a gateway or address problem shows up there first). A member that left did so
    on purpose (a scale-down) and stays listed until Serf reaps it, 72 h later: named, not failed."""
    alive = {m.datacenter for m in members if m.status == "alive" and m.role == "consul"}
    missing = [dc for dc in datacenters if dc not in alive]
    unwell = [f"{m.name} ({m.datacenter}) {m.status}" for m in members if m.status not in ("alive", "left")]
    problems = ([f"no alive server of {', '.join(missing)}"] if missing else []) + unwell
    if problems:
        return False, "; ".join(problems)
    left = [m.name for m in members if m.status == "left"]
    count = sum(m.status == "alive" for m in members)
    return True, (f"{count} WAN member(s) alive in {', '.join(sorted(alive))}"
                  + (f"; left: {', '.join(left)}" if left else ""))


def datacenters_verdict(found: list[str], expected: list[str]) -> tuple[bool, str]:
    missing = [dc for dc in expected if dc not in found]
    if missing:
        return False, f"catalog lacks {', '.join(missing)} (it has {', '.join(found) or 'none'})"
    return True, f"catalog has {', '.join(found)}"


def replication_verdict(status: Replication, primary: str) -> tuple[bool, str]:
    """Consul's documented health rule: enabled, running, from the primary, and no error newer
    than the last success."""
    if not status.enabled:
        return False, "ACL replication is not enabled"
    if not status.running:
        return False, "ACL replication is enabled but not running (it starts about 60 s after a leader election)"
    if status.source_datacenter != primary:
        return False, f"replicating from {status.source_datacenter!r}, not from the primary {primary!r}"
    if status.last_success == _ZERO_TIME:
        message = f"; last error: {status.last_error_message}" if status.last_error_message else ""
        return False, f"never synced: no replication round from {primary} has succeeded yet (LastSuccess is zero){message}"
    if status.last_error > status.last_success:
        message = f": {status.last_error_message}" if status.last_error_message else ""
        return False, f"last error ({status.last_error:%Y-%m-%dT%H:%M:%SZ}) is newer than the last success{message}"
    return True, f"{status.replication_type or 'running'} from {primary}, last success {status.last_success:%Y-%m-%dT%H:%M:%SZ}"


def parse_proxy_defaults_mode(text: str | bytes) -> str:
    """The mesh gateway mode of ``GET /v1/config/proxy-defaults/global`` ("" when unset)."""
    doc = _json(text, "proxy-defaults")
    if not isinstance(doc, dict) or doc.get("Kind") != "proxy-defaults":
        raise ConsulOutputError("proxy-defaults: expected a proxy-defaults config entry")
    return str((doc.get("MeshGateway") or {}).get("Mode") or "")


def proxy_defaults_verdict(mode: str, primary_mode: str) -> tuple[bool, str]:
    """A secondary has the primary's ProxyDefaults only through config entry replication."""
    if mode == primary_mode:
        return True, f"mesh gateway mode {mode}, replicated from the primary"
    return False, f"mesh gateway mode {mode or 'unset'}, but the primary's ProxyDefaults says {primary_mode}"


def primary_gateways(server_config_json: Optional[str]) -> list[str]:
    """``primary_gateways`` of the federation secret's ``serverConfigJSON``."""
    doc = _json(server_config_json or "", "serverConfigJSON")
    gateways = doc.get("primary_gateways") if isinstance(doc, dict) else None
    if not isinstance(gateways, list):
        raise ConsulOutputError("serverConfigJSON: no primary_gateways list")
    return [str(g) for g in gateways]


@dataclass(frozen=True)
class Ring:
    """One gossip pool as ``GET /v1/operator/keyring`` reports it: the WAN pool, or the LAN pool
    of one datacenter; keys map to the number of members that hold them."""

    wan: bool
    datacenter: str
    keys: dict[str, int]
    primary_keys: dict[str, int]
    num_nodes: int
    messages: dict[str, str]

    @property
    def name(self) -> str:
        return "WAN" if self.wan else f"{self.datacenter} LAN"


def parse_keyring(text: str | bytes) -> list[Ring]:
    doc = _json_list(text, "keyring")
    rings = []
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("WAN"), bool) \
                or not isinstance(item.get("NumNodes"), int) \
                or not all(isinstance(item.get(f) or {}, dict) for f in ("Keys", "PrimaryKeys", "Messages")):
            raise ConsulOutputError(f"keyring: unexpected entry {str(item)[:120]}")
        counts = {f: {str(k): v for k, v in (item.get(f) or {}).items()} for f in ("Keys", "PrimaryKeys")}
        if not all(isinstance(v, int) for c in counts.values() for v in c.values()):
            raise ConsulOutputError("keyring: key counts are not numbers")
        rings.append(Ring(wan=item["WAN"], datacenter=str(item.get("Datacenter", "")), keys=counts["Keys"],
                          primary_keys=counts["PrimaryKeys"], num_nodes=item["NumNodes"],
                          messages={str(k): str(v) for k, v in (item.get("Messages") or {}).items()}))
    return rings


def fingerprint(key: str) -> str:
    """How a gossip key is named in output: a prefix of its SHA-256, never the key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def on_every_member(rings: list[Ring], key: str, primary: bool = False) -> bool:
    """Whether every member of every pool holds `key` (as its primary key, with `primary`)."""
    return bool(rings) and all((r.primary_keys if primary else r.keys).get(key) == r.num_nodes > 0 for r in rings)


def keyring_verdict(rings: list[Ring], datacenters: list[str], secret_key: Optional[str],
                    wan: bool = True) -> tuple[bool, str]:
    """One primary key on every member of every pool (the WAN pool and each datacenter's LAN
    pool), and it is the key of the primary's gossip Secret, which a server that starts without
    a keyring (a new pod, a lost volume) uses. Other installed keys are named: mid-rotation."""
    if not rings:
        return False, "Consul listed no gossip pool"
    problems = []
    pools = {r.datacenter for r in rings if not r.wan}
    missing = [dc for dc in datacenters if dc not in pools]
    if missing:
        problems.append(f"no LAN pool of {', '.join(missing)} answered")
    if wan and not any(r.wan for r in rings):
        problems.append("the WAN pool did not answer")
    primaries = {k for r in rings for k in r.primary_keys}
    if len(primaries) != 1:
        problems.append(f"{len(primaries)} primary keys in use ({', '.join(sorted(map(fingerprint, primaries)))})")
    for r in rings:
        partial = [f"{fingerprint(k)} on {n}/{r.num_nodes}" for k, n in sorted(r.primary_keys.items())
                   if n != r.num_nodes]
        if partial:
            problems.append(f"{r.name}: primary key {', '.join(partial)} members")
        problems += [f"{r.name}: {node}: {message}" for node, message in sorted(r.messages.items())]
    (key,) = primaries if len(primaries) == 1 else (None,)
    if secret_key is None:
        problems.append("the primary's gossip Secret holds no key to compare with")
    elif key is not None and key != secret_key:
        problems.append(f"the primary key {fingerprint(key)} is not the gossip Secret's "
                        f"({fingerprint(secret_key)}): a rotation stopped half-way")
    if problems:
        return False, "; ".join(problems)
    extra = sorted({k for r in rings for k in r.keys} - {key})
    also = f"; also installed: {', '.join(map(fingerprint, extra))}" if extra else ""
    return True, f"primary key {fingerprint(key)} (= the gossip Secret's) on every member of {len(rings)} pool(s){also}"
