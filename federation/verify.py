"""Check that the federation holds, per datacenter, as a table (or JSON with --json).

Through the Kubernetes API of each stack's cluster (kubeconfig and context from the stack's
configuration, resolved as the program does): the server StatefulSet and the mesh gateway
Deployment are ready; the gateway Service has an address other datacenters can dial;
ProxyDefaults ``global`` is Synced; each secondary's federation secret equals the primary's
(compared by SHA-256 of the data maps: no value is printed); the ``primary_gateways`` the
primary's federation secret advertises are the primary gateway's current address (stale after a
gateway change: consul-k8s#417).

Through Consul (its HTTP API, reached by the API server's service proxy to ``<globalName>-server``
port 8501, with the primary's bootstrap ACL token): WAN members alive from every datacenter, every
datacenter in the catalog, an RPC forwarded to every other datacenter answered (through the mesh
gateways: it fails every time a path is broken, where WAN membership may flap), ACL replication
running in the secondaries, and the primary's ProxyDefaults replicated to them (only the primary
has the custom resource: a secondary's own would be refused as managed in another datacenter).

A row is "passed", "failed" or "not checked" (with the reason: never "passed" for what could not
be looked at). Exit 0 only when every checked row passed and no Kubernetes row is "not checked";
Consul rows may be "not checked" only with --kubernetes-only (which skips them: for clusters where
no Consul runs, such as the integration tests' control planes). Exit 1 otherwise, 2 when the
stack files are refused (see ``up``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from dataclasses import asdict, dataclass
from typing import Any, Callable, Collection, Optional

from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from components.constants import FED_CA_CERT
from components.helm_values import advertised_port
from components.readiness import workload_readiness
from components.settings import DatacenterConfig

from . import cli, cluster_access as access, consul_status, tls_ca
from .cluster_access import Datacenter
from .runner import Runner, cli_error
from .stack_plan import Plan

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "not checked"
PROXY_DEFAULTS_REPLICATED = "ProxyDefaults global replicated"
GOSSIP_KEYRING = "gossip keyring: one primary key"
# verify lists each datacenter's own LAN pool, through that datacenter's API server: a listing
# of every pool is a Serf query over the WAN pool, which here kept failing for many minutes after
# a gateway stopped or a server restarted, and loaded the WAN gateways with its traffic.
LOCAL_KEYRING_QUERY = [("local-only", "true")]
RPC_TO_EVERY_DATACENTER = "RPC reaches every datacenter"
TLS_TRUST = "TLS: every server's CA trusted"
KUBERNETES, CONSUL = "kubernetes", "consul"
_STALE_FIX = ("re-run up on the primary and then the secondaries: python -m federation up "
              "(consul-k8s#417)")


@dataclass(frozen=True)
class Row:
    datacenter: str
    stack: str
    check: str
    source: str
    status: str
    detail: str


def row(dc: Datacenter, check: str, status: str, detail: str, source: str = KUBERNETES) -> Row:
    return Row(dc.cfg.datacenter, dc.stack, check, source, status, detail)


def exit_code(rows: list[Row], kubernetes_only: bool) -> int:
    """0 only if every checked row passed and nothing but (skipped) Consul rows went unchecked."""
    if not rows:
        return cli.EXIT_FAILED
    for row in rows:
        if row.status == FAILED:
            return cli.EXIT_FAILED
        if row.status == NOT_CHECKED and not (kubernetes_only and row.source == CONSUL):
            return cli.EXIT_FAILED
    return cli.EXIT_OK


def advertised_gateways(data: Optional[dict[str, str]]) -> list[str]:
    """``primary_gateways`` in a federation secret's ``serverConfigJSON``."""
    try:
        raw = base64.b64decode((data or {}).get("serverConfigJSON", ""), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise consul_status.ConsulOutputError(f"serverConfigJSON is not base64 text ({exc})") from exc
    return consul_status.primary_gateways(raw)


def gateway_addresses(cfg: DatacenterConfig, service: Any, host_ips: list[str]) -> tuple[Optional[list[str]], str]:
    """The addresses other datacenters dial for this gateway, as the chart advertises them
    (wanAddress.source Static, or Service: load balancer ingress, node IP with the node port,
    cluster IP), or (None, why they are unknown)."""
    gateway = cfg.mesh_gateway
    if gateway.wan_address:
        return [f"{gateway.wan_address}:{advertised_port(gateway)}"], ""
    spec = service.spec
    port = spec.ports[0]
    if spec.type == "LoadBalancer":
        ingress = (service.status.load_balancer.ingress if service.status and service.status.load_balancer
                   else None) or []
        hosts = [i.ip or i.hostname for i in ingress if i.ip or i.hostname]
        if not hosts:
            return None, "the LoadBalancer has no ingress address (Pending): nothing to advertise"
        return [f"{h}:{port.port}" for h in hosts], ""
    if spec.type == "NodePort":
        if not host_ips:
            return None, ("no node address is known (no gateway pod reports a host IP) and no "
                          "meshGateway.wanAddress is set")
        return [f"{ip}:{port.node_port}" for ip in sorted(set(host_ips))], ""
    return [f"{spec.cluster_ip}:{port.port}"], ""


def _ready(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Ready as the Release's error hook counts it (readiness.workload_readiness), and at least
    one replica wanted: a server StatefulSet or gateway scaled to zero holds no federation."""
    r = workload_readiness(kind, obj)
    if r.complete and r.want > 0:
        return PASSED, f"{r.ready}/{r.want} ready"
    return FAILED, f"{r.ready}/{r.want} ready{'' if r.observed else ' (rollout not observed yet)'}"


def workload_rows(dc: Datacenter) -> list[Row]:
    rows = []
    for check, kind, suffix, read in (
            ("server StatefulSet ready", "StatefulSet", "server", dc.apps.read_namespaced_stateful_set),
            ("mesh gateway Deployment ready", "Deployment", "mesh-gateway", dc.apps.read_namespaced_deployment)):
        try:
            obj = read(dc.name(suffix), dc.ns, _request_timeout=access.TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise
            rows.append(row(dc, check, FAILED, f"{kind} {dc.ns}/{dc.name(suffix)} does not exist: run up"))
            continue
        status, detail = _ready(kind, dc.api.sanitize_for_serialization(obj))
        rows.append(row(dc, check, status, f"{kind} {dc.ns}/{obj.metadata.name}: {detail}"))
    return rows


def gateway_rows(dc: Datacenter) -> tuple[list[Row], Optional[list[str]], str]:
    """The Service's row, and the gateway's current addresses (or why unknown)."""
    check = "gateway Service address"
    try:
        service = dc.core.read_namespaced_service(dc.name("mesh-gateway"), dc.ns, _request_timeout=access.TIMEOUT)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return [row(dc, check, FAILED, f"Service {dc.ns}/{dc.name('mesh-gateway')} does not exist: run up")], \
            None, "no gateway Service"
    selector = ",".join(f"{k}={v}" for k, v in sorted((service.spec.selector or {}).items()))
    pods = dc.core.list_namespaced_pod(dc.ns, label_selector=selector, _request_timeout=access.TIMEOUT).items \
        if selector else []
    host_ips = [p.status.host_ip for p in pods if p.status and p.status.host_ip]
    addresses, why = gateway_addresses(dc.cfg, service, host_ips)
    kind = service.spec.type
    if addresses:
        source = "static wanAddress" if dc.cfg.mesh_gateway.wan_address else kind
        return [row(dc, check, PASSED, f"{source}: {', '.join(addresses)}")], addresses, ""
    if kind == "NodePort" and service.spec.ports and service.spec.ports[0].node_port:
        # the port exists, but which address the other datacenters dial is unseen: not a pass
        return [row(dc, check, NOT_CHECKED, f"NodePort {service.spec.ports[0].node_port}; {why}")], None, why
    return [row(dc, check, FAILED, why)], None, why


def proxy_defaults_row(dc: Datacenter) -> Row:
    check = "ProxyDefaults global Synced"
    try:
        obj = dc.custom.get_namespaced_custom_object("consul.hashicorp.com", "v1alpha1", dc.ns, "proxydefaults",
                                                     "global", _request_timeout=access.TIMEOUT)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return row(dc, check, FAILED, f"ProxyDefaults {dc.ns}/global does not exist: run up")
    synced = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Synced"]
    if not synced:
        return row(dc, check, NOT_CHECKED, "no status: nothing has reported whether Consul accepted it "
                                          "(the controller sets status.conditions Synced)")
    if synced[0].get("status") == "True":
        return row(dc, check, PASSED, "Synced True")
    reason = ": ".join(str(x) for x in (synced[0].get("reason"), synced[0].get("message")) if x)
    return row(dc, check, FAILED, f"Synced {synced[0].get('status')}{': ' + reason if reason else ''}")


def primary_gateways_row(dc: Datacenter, current: Optional[list[str]], why: str) -> Row:
    check = "primary_gateways current"
    data = dc.secret_data(dc.cfg.federation_secret_name)
    if data is None:
        return row(dc, check, FAILED, f"no federation secret {dc.ns}/{dc.cfg.federation_secret_name}: run up")
    try:
        advertised = advertised_gateways(data)
    except consul_status.ConsulOutputError as exc:
        return row(dc, check, FAILED, f"{dc.cfg.federation_secret_name}: {exc}")
    if current is None:
        return row(dc, check, NOT_CHECKED, f"advertised {', '.join(advertised)}; the gateway's address is unknown: {why}")
    if sorted(advertised) == sorted(current):
        return row(dc, check, PASSED, f"advertised {', '.join(advertised)} = the gateway's address")
    return row(dc, check, FAILED, f"stale: the federation secret advertises {', '.join(advertised) or 'nothing'}, "
                                 f"the gateway is now at {', '.join(current)}; {_STALE_FIX}")


def secret_copy_row(dc: Datacenter, primary: Datacenter, primary_data: Optional[dict[str, str]]) -> Row:
    check = "federation secret = primary's"
    name = dc.cfg.federation_secret_name
    data = dc.secret_data(name)
    if data is None:
        return row(dc, check, FAILED, f"no federation secret {dc.ns}/{name}: run up on {dc.stack} (after the primary)")
    if primary_data is None:
        return row(dc, check, FAILED, f"the primary {primary.stack} has no federation secret to compare with: "
                                     f"run up on {primary.stack} first")
    mine, theirs = access.data_digest(data), access.data_digest(primary_data)
    if mine == theirs:
        return row(dc, check, PASSED, f"sha256 {mine[:12]} = {primary.stack}'s")
    try:
        copied, current = advertised_gateways(data), advertised_gateways(primary_data)
    except consul_status.ConsulOutputError:
        copied = current = []
    if copied != current:
        return row(dc, check, FAILED, f"stale: its copy's primary_gateways are {', '.join(copied) or 'none'}, "
                                     f"{primary.stack}'s are now {', '.join(current) or 'none'}; {_STALE_FIX}")
    return row(dc, check, FAILED, f"differs from {primary.stack}'s (sha256 {mine[:12]} vs {theirs[:12]}): an older "
                                 f"copy or a hand edit; {_STALE_FIX}; after a hand edit (the state still "
                                 f"holds the primary's), pulumi up --refresh -s {dc.stack} writes it back; "
                                 f"then restart {dc.stack}'s servers "
                                 f"(kubectl -n {dc.ns} delete pod -l component=server) to load it")


def kubernetes_rows(dc: Datacenter, primary: Datacenter) -> list[Row]:
    rows = workload_rows(dc)
    service_rows, addresses, why = gateway_rows(dc)
    rows += service_rows
    if dc is primary:  # secondaries get it from Consul's replication (a Consul row)
        rows.append(proxy_defaults_row(dc))
        rows.append(primary_gateways_row(dc, addresses, why))
    else:
        rows.append(secret_copy_row(dc, primary, primary.secret_data(primary.cfg.federation_secret_name)))
    return rows


def consul_rows(dc: Datacenter, primary: Datacenter, datacenters: list[str], token: Optional[str]) -> list[Row]:
    checks: list[tuple[str, str, list[tuple[str, str]], Callable[[bytes], tuple[bool, str]]]] = [
        ("WAN members alive", "/v1/agent/members", [("wan", "1")],
         lambda body: consul_status.members_verdict(consul_status.parse_members(body), datacenters)),
        ("catalog has every datacenter", "/v1/catalog/datacenters", [],
         lambda body: consul_status.datacenters_verdict(consul_status.parse_datacenters(body), datacenters)),
    ]
    if dc is not primary and dc.cfg.acls:
        checks.append(("ACL replication running", "/v1/acl/replication", [],
                       lambda body: consul_status.replication_verdict(
                           consul_status.parse_replication(body), primary.cfg.datacenter)))
    if dc is not primary:
        checks.append((PROXY_DEFAULTS_REPLICATED, "/v1/config/proxy-defaults/global", [],
                       lambda body: consul_status.proxy_defaults_verdict(
                           consul_status.parse_proxy_defaults_mode(body), primary.cfg.mesh_gateway.mode)))
    if dc.cfg.gossip_encryption:  # this datacenter's LAN pool, through its own cluster
        checks.append((GOSSIP_KEYRING, access.KEYRING_PATH, LOCAL_KEYRING_QUERY,
                       lambda body: consul_status.keyring_verdict(
                           consul_status.parse_keyring(body), [dc.cfg.datacenter], access.gossip_secret_key(primary),
                           wan=False)))
    rows = []
    for check, path, query, verdict in checks:
        try:
            ok, detail = verdict(access.keyring_get(dc, query, token) if path == access.KEYRING_PATH
                                 else access.consul_get(dc, path, query, token))
        except ApiException as exc:
            if exc.status == 404 and check == PROXY_DEFAULTS_REPLICATED and access.consul_answered(exc):
                rows.append(row(dc, check, FAILED, "Consul has no proxy-defaults global here: not "
                                                  "replicated from the primary (yet)", CONSUL))
                continue
            if access.consul_answered(exc):  # Consul's own error (no leader, a datacenter out of reach)
                rows.append(row(dc, check, FAILED, f"Consul answered {access.consul_error(exc)}", CONSUL))
                continue
            rows.append(row(dc, check, NOT_CHECKED, _unchecked(exc), CONSUL))
            continue
        except (consul_status.ConsulOutputError, *access.NETWORK_ERRORS) as exc:
            rows.append(row(dc, check, NOT_CHECKED, _unchecked(exc), CONSUL))
            continue
        rows.append(row(dc, check, PASSED if ok else FAILED, detail, CONSUL))
    others = [name for name in datacenters if name != dc.cfg.datacenter]
    if others:
        rows.append(rpc_row(dc, others, token))
    return rows


def _unchecked(exc: Exception) -> str:
    """Why a Consul row could not be checked: the service proxy's error, an answer not in
    Consul's format, or no answer."""
    if isinstance(exc, ApiException):
        return f"Consul not reachable through the API server's service proxy ({access.api_error_text(exc)})"
    if isinstance(exc, consul_status.ConsulOutputError):
        return f"could not read Consul's answer: {exc}"
    return f"Consul not reachable: {exc.__class__.__name__}"


def rpc_row(dc: Datacenter, others: list[str], token: Optional[str]) -> Row:
    """``/v1/status/leader?dc=<other>`` from this datacenter's server for every other one: Consul
    forwards each through the mesh gateways. An error Consul itself gives ("No path to
    datacenter", an RPC timeout) fails the row, naming the datacenter."""
    leaders: dict[str, str] = {}
    errors: dict[str, str] = {}
    for other in others:
        try:
            leaders[other] = consul_status.parse_leader(access.consul_get(dc, "/v1/status/leader", [("dc", other)], token))
        except ApiException as exc:
            if not access.consul_answered(exc):
                return row(dc, RPC_TO_EVERY_DATACENTER, NOT_CHECKED, _unchecked(exc), CONSUL)
            errors[other] = access.consul_text(exc)
        except consul_status.ConsulOutputError as exc:
            return row(dc, RPC_TO_EVERY_DATACENTER, NOT_CHECKED, _unchecked(exc), CONSUL)
        except access.NETWORK_ERRORS as exc:
            return row(dc, RPC_TO_EVERY_DATACENTER, NOT_CHECKED,
                          f"{_unchecked(exc)} asking for the leader of {other} (no answer within {access.TIMEOUT} s: "
                          "an RPC that hangs in a gateway path ends so too)", CONSUL)
    ok, detail = consul_status.rpc_verdict(leaders, errors)
    return row(dc, RPC_TO_EVERY_DATACENTER, PASSED if ok else FAILED, detail, CONSUL)




@dataclass(frozen=True)
class TlsMaterial:
    """A datacenter's CA file and server certificate as its Secrets hold them (what its pods load
    when they start), or why they could not be read."""

    trusted: list[str]
    server: Optional[str]
    why_not: str = ""


def tls_material(dc: Datacenter) -> TlsMaterial:
    """The primary's CA file is the chart's ``<globalName>-ca-cert``, a secondary's the ``caCert``
    of its copy of the federation secret; the server certificate is tls-init's ``-server-cert``."""
    ca_secret, ca_key = ((dc.name("ca-cert"), "tls.crt") if dc.cfg.is_primary
                         else (dc.cfg.federation_secret_name, FED_CA_CERT))
    try:
        ca, server = dc.secret_data(ca_secret), dc.secret_data(dc.name("server-cert"))
    except (ApiException, *access.NETWORK_ERRORS) as exc:
        why = access.api_error_text(exc) if isinstance(exc, ApiException) else access.network_cause(exc)
        return TlsMaterial([], None, f"cannot read its Secrets: {why}")
    missing = [f"{dc.ns}/{name}" for name, data, key in ((ca_secret, ca, ca_key), (dc.name("server-cert"), server,
                                                                                   "tls.crt"))
               if not data or key not in data]
    if missing:
        return TlsMaterial([], None, f"no {' or '.join(missing)} (the chart's tls-init has not run)")
    return TlsMaterial(tls_ca.certificates(base64.b64decode(ca[ca_key]).decode()),
                       base64.b64decode(server["tls.crt"]).decode())


def tls_row(dc: Datacenter, material: dict[str, TlsMaterial]) -> Row:
    """Whether this datacenter's CA file trusts the CA of every datacenter's server certificate:
    a TLS CA rotation keeps it passing at every step. A Kubernetes row (Secrets, no Consul)."""
    own = material[dc.cfg.datacenter]
    if own.why_not:
        return row(dc, TLS_TRUST, NOT_CHECKED, own.why_not)
    unread = sorted(f"{name}: {m.why_not}" for name, m in material.items() if m.why_not)
    try:
        ok, detail = tls_ca.trust_verdict(dc.cfg.datacenter, own.trusted,
                                          {name: m.server for name, m in material.items() if m.server})
    except tls_ca.BadMaterial as exc:
        return row(dc, TLS_TRUST, FAILED, str(exc))
    if ok and unread:
        return row(dc, TLS_TRUST, NOT_CHECKED, f"{detail}; not read: {'; '.join(unread)}")
    return row(dc, TLS_TRUST, PASSED if ok else FAILED, detail)


def _unreachable(dc: Datacenter, exc: Exception) -> list[Row]:
    """The cluster could not be read: which one (context, server URL, kubeconfig), why, and what
    to check."""
    where = (f"the Kubernetes API server of context {dc.cfg.kube_context} "
             f"({dc.kube.server or 'no server in the kubeconfig'}; kubeconfig {dc.kube.kubeconfig})")
    if not isinstance(exc, ApiException):
        detail = (f"cannot reach {where}: {access.network_cause(exc)}. Check that the cluster is running, that "
                  "this machine can reach that address (VPN, firewall, proxy), and that the context's server "
                  "in the kubeconfig is current (a re-created cluster often has a new address or port)")
    elif exc.status in (401, 403):
        detail = (f"{where} answered {access.api_error_text(exc)}. Check the context's credentials and that its "
                  f"user may read namespace {dc.ns}")
    else:
        detail = f"{where} answered {access.api_error_text(exc)}"
    return [row(dc, "Kubernetes API", NOT_CHECKED, detail)]


def collect(p: Plan, runner: Runner, kubernetes_only: bool,
            members: Optional[Collection[str]] = None) -> list[Row]:
    """Every row of the selected stacks. ``members``: the stacks whose datacenters make up the
    federation (default: every stack file); ``up`` passes the ones deployed so far."""
    names = [p.primary] + [s for s in p.secondaries if members is None or s in members]
    dcs: dict[str, Datacenter] = {}
    rows: list[Row] = []
    for name in names:
        try:
            dcs[name] = Datacenter(name, access.load_config(runner, name))
        except auto.errors.StackNotFoundError:
            rows.append(Row(name, name, "stack configuration", KUBERNETES, FAILED,
                            f"stack {name} does not exist in the backend yet: python -m federation up creates it"))
        except auto.errors.CommandError as exc:
            rows.append(Row(name, name, "stack configuration", KUBERNETES, FAILED, cli_error(exc)[:400]))
        except access.CONFIG_ERRORS as exc:
            rows.append(Row(name, name, "stack configuration", KUBERNETES, FAILED, str(exc).strip()[:400]))
    rows = [r for r in rows if r.stack in p.selected]
    primary = dcs.get(p.primary)
    if primary is None:
        if p.primary not in p.selected:
            rows.append(Row(p.primary, p.primary, "stack configuration", KUBERNETES, FAILED,
                            f"the primary {p.primary} (needed to compare with) could not be read"))
        return rows
    datacenters = [dc.cfg.datacenter for dc in dcs.values()]
    token, no_token = (None, "") if kubernetes_only else _token_or_reason(primary)
    material = {dc.cfg.datacenter: tls_material(dc) for dc in dcs.values()}
    for name in names:
        dc = dcs.get(name)
        if dc is None or name not in p.selected:
            continue
        try:
            rows += kubernetes_rows(dc, primary)
        except (ApiException, *access.NETWORK_ERRORS) as exc:
            rows += _unreachable(dc, exc)
            continue
        rows.append(tls_row(dc, material))
        if kubernetes_only:
            rows += [row(dc, check, NOT_CHECKED, "--kubernetes-only", CONSUL) for check in _consul_checks(dc, primary, datacenters)]
        elif no_token:
            rows += [row(dc, check, NOT_CHECKED, no_token, CONSUL) for check in _consul_checks(dc, primary, datacenters)]
        else:
            rows += consul_rows(dc, primary, datacenters, token)
    return rows


def _token_or_reason(primary: Datacenter) -> tuple[Optional[str], str]:
    try:
        return access.bootstrap_token(primary)
    except (ApiException, *access.NETWORK_ERRORS) as exc:
        why = access.api_error_text(exc) if isinstance(exc, ApiException) else access.network_cause(exc)
        return None, f"cannot read the bootstrap ACL token: {why}"


def _consul_checks(dc: Datacenter, primary: Datacenter, datacenters: list[str]) -> list[str]:
    checks = ["WAN members alive", "catalog has every datacenter"]
    if dc is not primary and dc.cfg.acls:
        checks.append("ACL replication running")
    if dc is not primary:
        checks.append(PROXY_DEFAULTS_REPLICATED)
    if dc.cfg.gossip_encryption:
        checks.append(GOSSIP_KEYRING)
    if [name for name in datacenters if name != dc.cfg.datacenter]:
        checks.append(RPC_TO_EVERY_DATACENTER)
    return checks


def table(rows: list[Row]) -> str:
    headers = ("DATACENTER", "CHECK", "STATUS", "DETAIL")
    cells = [(r.datacenter, r.check, r.status.upper() if r.status == FAILED else r.status, r.detail) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers[:3])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:3], widths)) + "  " + headers[3]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell[:3], widths)) + "  " + cell[3] for cell in cells]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_arguments(parser, parallel=False)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--kubernetes-only", action="store_true",
                        help="skip the Consul checks (they show as 'not checked'); for clusters with no Consul running")


def run(args: argparse.Namespace) -> int:
    p = cli.plan_or_report("verify", args.project_dir, args.stacks, nothing="nothing was checked")
    if p is None:
        return cli.EXIT_REFUSED
    try:
        rows = collect(p, Runner(args.project_dir), args.kubernetes_only)
    except cli.CLI_MISSING as exc:
        return cli.report_cli_missing("verify", exc)
    code = exit_code(rows, args.kubernetes_only)
    if args.json:
        print(json.dumps({"ok": code == 0, "kubernetesOnly": args.kubernetes_only,
                          "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(table(rows))
        print(f"\nverify: {'everything holds' if code == 0 else 'NOT everything holds'}"
              f"{' (Consul not checked: --kubernetes-only)' if args.kubernetes_only else ''}")
    return code
