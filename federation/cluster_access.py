"""One datacenter as the operator commands reach it: its cluster through the stack's own
kubeconfig context, and its Consul through the API server's service proxy to
``<globalName>-server`` port 8501 (no port-forward, no route into the cluster needed).

Shared by ``verify`` (its rows) and ``rotate-gossip-key`` (keyring operations), so that neither
imports the other for plumbing. Secrets read here (the bootstrap token, the gossip key) are
returned to the caller and never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, Callable, Optional

from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto
from urllib3.exceptions import HTTPError as TransportError, TimeoutError as TransportTimeout

from components.config import ConfigError, parse_config
from components.constants import GOSSIP_SECRET_KEY
from components.kube_cluster import resolve_cluster
from components.settings import DatacenterConfig
from components.stack_config import automation_config

from .runner import Runner

KEYRING_PATH = "/v1/operator/keyring"
# Keyring operations are Serf queries; each answer also travels through this many other members.
# Right after a server restarts, WAN gossip packets between two datacenters get lost for minutes
# while indirect probes (through a third member) still succeed (seen in the consul tier), and
# without relays a listing then fails with "WAN error: 2/3 nodes reported success".
KEYRING_QUERY = [("relay-factor", "2")]
KEYRING_ATTEMPTS = 3
TIMEOUT = 10
# What a request that never got an HTTP answer raises (timeouts, refused connections).
NETWORK_ERRORS = (OSError, TransportError)
# What a stack's settings or kubeconfig raise when they give no cluster (KubeconfigError is a
# ValueError): a configuration to fix, not a failure of the cluster.
CONFIG_ERRORS = (ConfigError, kube_config.ConfigException, ValueError)


def network_cause(exc: BaseException) -> str:
    """Why a request got no HTTP answer, in the socket's words ("Connection refused", "Name or
    service not known", no answer in time), not urllib3's wrapper (MaxRetryError)."""
    chain: list[BaseException] = []
    cause: Optional[BaseException] = exc
    while cause is not None and all(cause is not c for c in chain):
        chain.append(cause)
        reason = getattr(cause, "reason", None)  # urllib3's MaxRetryError: the last attempt's error
        cause = reason if isinstance(reason, BaseException) else (cause.__cause__ or cause.__context__)
    # the socket's own error first: urllib3's NewConnectionError is also one of its timeouts
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    if any(isinstance(cause, (TimeoutError, TransportTimeout)) for cause in chain):
        return f"no answer within {TIMEOUT} s"
    return exc.__class__.__name__


def data_digest(data: Optional[dict[str, str]]) -> str:
    """SHA-256 of a Secret's data map (base64 values as the API returns them), key order aside."""
    return hashlib.sha256(json.dumps(data or {}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_config(runner: Runner, name: str) -> DatacenterConfig:
    """The stack's settings as the program reads them (secrets decrypted by the engine's config)."""
    return parse_config(*automation_config(runner.stack(name, create=False)))


class Datacenter:
    """One stack's cluster, read through its own kubeconfig context."""

    def __init__(self, stack: str, cfg: DatacenterConfig):
        self.stack = stack
        self.cfg = cfg
        kube = resolve_cluster(cfg.kubeconfig, cfg.kube_context)
        self.kube = kube  # named in the messages: which file, which server
        try:
            self.api = kube.api_client()
        except kube_config.ConfigException as exc:
            raise kube_config.ConfigException(f"kubeconfig {kube.kubeconfig}, context {cfg.kube_context}: {exc}") from exc
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    @property
    def ns(self) -> str:
        return self.cfg.namespace

    def name(self, suffix: str) -> str:
        return f"{self.cfg.resource_prefix}-{suffix}"

    def secret_data(self, name: str) -> Optional[dict[str, str]]:
        try:
            return self.core.read_namespaced_secret(name, self.ns, _request_timeout=TIMEOUT).data or {}
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


def datacenter_of(runner: Runner, name: str, refused: type[Exception]) -> Datacenter:
    """A stack's cluster, or `refused` naming the stack when its configuration or kubeconfig does
    not give one (a command resolves every datacenter before its first step)."""
    try:
        return Datacenter(name, load_config(runner, name))
    except auto.errors.StackNotFoundError:
        raise refused(f"stack {name} does not exist in the backend yet: python -m federation up creates it")
    except CONFIG_ERRORS as exc:
        raise refused(f"stack {name}: {str(exc).strip()}")


def consul_request(dc: Datacenter, method: str, path: str, query: list[tuple[str, str]], token: Optional[str],
                   body: Optional[dict[str, Any]] = None) -> bytes:
    """Consul's HTTP API on the server Service through the API server's service proxy."""
    headers = {"Accept": "application/json", **({"X-Consul-Token": token} if token else {})}
    if body is not None:
        headers["Content-Type"] = "application/json"
    method, url, headers, body_out, _ = dc.api.param_serialize(
        method, f"/api/v1/namespaces/{dc.ns}/services/https:{dc.name('server')}:8501/proxy{path}",
        query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"])
    response = dc.api.call_api(method, url, header_params=headers, body=body_out, _request_timeout=TIMEOUT)
    response.read()
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)
    return response.data


def consul_get(dc: Datacenter, path: str, query: list[tuple[str, str]], token: Optional[str]) -> bytes:
    return consul_request(dc, "GET", path, query, token)


def lost_answers(exc: ApiException) -> bool:
    """Consul's error for a Serf query whose answers did not all arrive in time."""
    return consul_answered(exc) and "reported success" in (exc.body or "")


def keyring_get(dc: Datacenter, query: list[tuple[str, str]], token: Optional[str],
                attempts: int = KEYRING_ATTEMPTS, pause: float = 3.0,
                sleep: Callable[[float], None] = time.sleep) -> bytes:
    """The keyring listing, asked again when Serf's answers did not all arrive in time ("WAN
    error: 2/3 nodes reported success"): a lost packet, not yet a verdict."""
    for _ in range(attempts - 1):
        try:
            return consul_get(dc, KEYRING_PATH, query, token)
        except ApiException as exc:
            if not lost_answers(exc):
                raise
        sleep(pause)
    return consul_get(dc, KEYRING_PATH, query, token)


def api_error_text(exc: ApiException) -> str:
    """Status and reason, and the API server's own message when the body is a Status."""
    try:
        message = json.loads(exc.body or "").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def consul_text(exc: ApiException) -> str:
    """The text of an error Consul itself answered (plain text, on one line)."""
    return " ".join((exc.body or "").split())[:240] or f"HTTP {exc.status}"


def consul_error(exc: ApiException) -> str:
    """The status and text of an error Consul itself answered."""
    return f"{exc.status}: {consul_text(exc)}" if (exc.body or "").strip() else consul_text(exc)


def consul_answered(exc: ApiException) -> bool:
    """A 404 from Consul itself (its body is plain text), not the API server's Status JSON."""
    try:
        json.loads(exc.body or "")
    except ValueError:
        return True
    return False


def gossip_secret_key(primary: Datacenter) -> Optional[str]:
    """The key in the primary's gossip Secret (None when it has none), never printed."""
    data = primary.secret_data(primary.cfg.gossip_secret_name) or {}
    if GOSSIP_SECRET_KEY not in data:
        return None
    return base64.b64decode(data[GOSSIP_SECRET_KEY]).decode()


def bootstrap_token(primary: Datacenter) -> tuple[Optional[str], str]:
    """The primary's bootstrap ACL token (global, so valid in every datacenter), never printed."""
    if not primary.cfg.acls:
        return None, ""
    data = primary.secret_data(primary.name("bootstrap-acl-token"))
    if not data or "token" not in data:
        return None, f"no bootstrap ACL token in {primary.ns}/{primary.name('bootstrap-acl-token')}"
    return base64.b64decode(data["token"]).decode(), ""
