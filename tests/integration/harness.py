"""A small, honest stand-in for the *workload side* of a Kubernetes cluster running the Consul
Helm chart, for integration tests against a real kube-apiserver that has no kubelet and no
controllers (see ``controlplane.py``).

``ClusterHarness(kubeconfig_path, context, egress_socket)`` runs background threads against one
cluster (``start()``/``stop()`` or ``with``). Everything it does goes through the real API
server with the ``kubernetes`` Python client, as the real components would. It recognises the
components by the ``consul-k8s-control-plane <subcommand>`` they run (``consul-k8s
<subcommand>`` in the archived hashicorp/consul-helm charts, e.g. 0.32.1), not by object
names, so it follows whatever the installed chart version renders. Verified end to end with
chart 0.32.1 (``test_harness.py``); the 1.x/2.x shapes (annotation-registered gateways,
config-entry webhooks served by inject-connect) are implemented from the upstream templates.

What is REAL here: the kube-apiserver and etcd, Helm (hooks, ordering, waiting for hook Jobs),
the chart's manifests, admission (the apiserver calls the chart's MutatingWebhookConfiguration
over TLS, verifying ``caBundle`` and the serving certificate for ``<svc>.<ns>.svc``), the
Service objects and ClusterIPs the apiserver resolves webhook calls to, and every certificate
(real X.509 made with ``cryptography``).

What is SIMULATED, and how:

* Jobs (kubelet + job controller). Every Job in any namespace that is not suspended and not
  finished is "run": its status subresource is patched to ``active: 1`` with a ``startTime``,
  the side effect of its control-plane subcommand (below) is performed, then
  the status becomes ``succeeded: <completions>``, ``completionTime`` and the conditions
  ``SuccessCriteriaMet=True`` + ``Complete=True`` (kube-apiserver >= 1.31 rejects ``Complete``
  without ``SuccessCriteriaMet`` when the JobManagedBy feature is on; older servers reject
  ``SuccessCriteriaMet`` on jobs without a successPolicy, so that case is retried without it).
  A side effect that cannot be performed (bad flags, a file the pod would mount that never
  appears within ``job_timeout``) fails the Job instead (``FailureTarget`` + ``Failed``), as
  a pod exiting non-zero past its backoff limit would, so Helm fails fast and says why.
  The command is learnt as the pod would run it: ``/bin/sh -ec <script>`` is parsed, line
  continuations joined, ``$(VAR)`` (kubelet) and ``$VAR``/``${VAR}`` (shell) expanded from
  the container's env (``fieldRef`` metadata.namespace/name, status.hostIP/podIP =
  ``node_ip``, ``secretKeyRef``, ``configMapKeyRef``), and every file flag is read through
  the pod spec's volumeMounts -> volumes -> Secret/ConfigMap items, like a mounted volume.
  Side effects, each a faithful re-implementation of the upstream Go command's behaviour
  (hashicorp/consul-k8s ``control-plane/subcommand/...``):

  - ``tls-init``: without ``-ca``/``-key`` and without existing ``<prefix>-ca-cert`` +
    ``<prefix>-ca-key`` Secrets, generates a self-signed "Consul Agent CA" (ECDSA P-256) and
    writes both Secrets (keys ``tls.crt`` / ``tls.key``); with ``-ca``/``-key`` (a secondary
    whose CA comes from the federation secret) it creates NO CA secrets and signs with the
    mounted CA. Either way it writes ``<prefix>-server-cert`` (kubernetes.io/tls) for
    ``server.<dc>.<domain>`` + the ``-additional-dnsname``/``-additional-ipaddress`` SANs.
  - ``create-federation-secret``: writes ``<prefix>-federation`` (keys ``caCert``, ``caKey``
    from the mounted CA files, ``serverConfigJSON``, ``replicationToken`` only with
    ``-export-replication-token=true`` — read, like upstream, from Secret
    ``<prefix>-acl-replication-acl-token`` key ``token``, waiting for it —, and
    ``gossipEncryptionKey`` only with ``-gossip-key-file``). Upstream asks the Consul agent
    for the datacenter and the Consul catalog for the mesh gateway's ``wan`` tagged address;
    there is no Consul here, so the datacenter is the one the server StatefulSet's agents run
    with (``-datacenter=`` / ``"datacenter"`` in the server config), and the gateway address
    is the one the gateway's pods would register: with chart >= 0.43 the endpoints
    controller's ``getWanData`` (the gateway Deployment's
    ``consul.hashicorp.com/gateway-wan-address-source`` / ``gateway-wan-port`` /
    ``gateway-wan-address-static`` pod annotations and the Service selecting it); with older
    charts the gateway's own init script (``WAN_ADDR``/``WAN_PORT`` before the service
    definition it registers; ``consul-k8s service-address`` for ClusterIP/LoadBalancer).
    With ``Service``+NodePort or ``NodeIP`` that is the node's IP, and there are no nodes:
    the PLACEHOLDER ``node_ip`` (default ``127.0.0.1``) stands in, e.g. ``127.0.0.1:30001``.
    A LoadBalancer Service without ingress keeps the job retrying, as upstream does.
  - ``server-acl-init``: with ``-create-acl-replication-token`` writes the replication token
    Secret ``<prefix>-acl-replication-acl-token`` (key ``token``, a random UUID: the real
    command gets it from Consul's ACL system, which does not exist here). No other ACL
    token is simulated.
  - ``delete-completed-job``: waits until the named Job is Complete, then deletes it.
  - ``gossip-encryption-autogenerate``: unless it exists, writes the gossip Secret
    (``-secret-name``/``-secret-key``) with 32 random bytes in base64, as ``consul keygen``.
  - ``curl -X DELETE .../api/v1/namespaces/<ns>/secrets/<name>`` lines in a Job's script
    (the chart's ``tls-init-cleanup`` pre-delete hook) delete those Secrets.
  - every other Job (gateway-resources, gateway-cleanup, ...) completes with no side
    effect: what they do concerns Consul or gateway CRDs that nothing here consumes.

* webhook-cert-manager (a Deployment running the ``webhook-cert-manager`` subcommand): its
  ``-config-file`` (the mounted ConfigMap) is read; for each entry
  a CA ("Consul Webhook Certificates") and a serving certificate for ``tlsAutoHosts`` are
  made, written to Secret ``secretName`` (kubernetes.io/tls, owner reference to the
  Deployment) and the CA is patched into every ``caBundle`` of MutatingWebhookConfiguration
  ``name``; like upstream this is re-checked every ``poll_interval`` (so a Helm upgrade that
  resets ``caBundle`` is repaired).

* the webhook servers: Deployments running ``inject-connect`` (pods; config entries too since
  the CRD controller merged into it) or, in older charts, ``controller`` (config entries,
  Service ``<prefix>-controller-webhook``). One HTTPS AdmissionReview server on a loopback
  port serves, by SNI ``<svc>.<ns>.svc``, the certificate from the Secret each such Deployment
  mounts at its ``-tls-cert-dir`` / ``-webhook-tls-cert-dir``, for the Services that select
  the Deployment's pods. Every review is answered ``allowed: true``
  with no patch (pods are NOT injected: none ever run here), except what upstream's
  ProxyDefaults webhook rejects on CREATE: a name other than ``global``, or a second
  ProxyDefaults. Every answered request is recorded (``admissions()``).

* the network path to webhooks: the apiserver sends its ``cluster`` egress as HTTP CONNECT
  over the Unix socket ``egress_socket``; the harness listens there and tunnels
  ``CONNECT <clusterIP>:<port>`` (or ``<svc>.<ns>.svc:<port>``) to the TLS server only when
  that Service port selects a simulated webhook server; anything else is refused with
  ``502``, so a webhook nobody plays fails like it would with no endpoints.

* finishing deletions (namespace controller + the garbage collector's finalizer handling),
  which ``pulumi destroy`` waits for: every ``poll_interval`` all listable resource types are
  listed; an object being deleted with the ``foregroundDeletion`` finalizer (pulumi-kubernetes
  deletes with Foreground propagation by default) has its dependents deleted and loses the
  finalizer once no ``blockOwnerDeletion`` dependent is left; ``orphan`` strips the owner
  references from its dependents first; a Terminating Namespace has its objects deleted
  (Background) and, once empty, its ``kubernetes`` finalizer removed via ``finalize``.

NOT simulated: Pods, ReplicaSets, readiness of Deployments/StatefulSets/DaemonSets,
LoadBalancer ingress, Endpoints, background garbage collection of dependents whose owners are
gone (e.g. the webhook certificate Secrets owned by the webhook-cert-manager Deployment stay
after ``helm uninstall``), ``helm test`` Pods, Consul itself. Helm with ``--wait`` (or a Pulumi
``helm.v3.Release`` without ``skip_await``) would wait for readiness forever.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import re
import selectors
import shlex
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from pki import issue_cert, make_ca

__all__ = ["ClusterHarness", "AdmissionRecord", "JobRecord", "HarnessError",
           "parse_control_plane_invocations"]

log = logging.getLogger("harness")

# The control-plane binary: consul-k8s-control-plane (chart >= 0.43 / consul-k8s 0.43+) or
# consul-k8s (the older, archived hashicorp/consul-helm charts).
CONTROL_PLANE_BINS = ("consul-k8s-control-plane", "consul-k8s")
# Subcommands that serve admission webhooks, and the flag naming their TLS cert directory:
# inject-connect (pods; and, since the controller merged into it, config entries) and the
# older separate ``controller`` (config entries).
WEBHOOK_SERVERS = {"inject-connect": "tls-cert-dir", "controller": "webhook-tls-cert-dir"}
REQUEST_TIMEOUT = (5, 30)  # (connect, read) seconds for every API call
_RETRY = 1.0  # seconds between retries of a side effect that waits for something


class HarnessError(RuntimeError):
    """A side effect cannot be performed (the Job is failed with this message)."""


class _NotYet(Exception):
    """A side effect must wait for something (retried until ``job_timeout``)."""


# ============================================================================================
# certificates


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    # ssl only loads a chain from files: write them to a private temp dir and remove them.
    with tempfile.TemporaryDirectory(prefix="harness-tls-") as d:
        cert_file, key_file = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        with open(cert_file, "wb") as f:
            f.write(cert_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


# ============================================================================================
# reading a container's command the way the pod would run it


_K8S_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_SHELL_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand_k8s(text: str, env: dict[str, str]) -> str:
    """Kubelet's $(VAR) expansion in command/args/env values (undefined ones stay as is)."""
    return _K8S_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _expand_shell(text: str, env: dict[str, str]) -> str:
    return _SHELL_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def _split_statements(script: str) -> list[str]:
    """Shell statements of a script: line continuations joined, comments and blank lines
    dropped, ``;`` / ``&&`` / ``||`` separated. Good enough for the chart's job scripts."""
    script = script.replace("\\\r\n", " ").replace("\\\n", " ")
    out: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lex = shlex.shlex(stripped, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        lex.commenters = ""
        current: list[str] = []
        try:
            tokens = list(lex)
        except ValueError:  # unbalanced quotes: keep the line whole
            out.append(stripped)
            continue
        for tok in tokens:
            if tok in (";", "&&", "||", "&", "|"):
                if current:
                    out.append(shlex.join(current))
                current = []
            else:
                current.append(tok)
        if current:
            out.append(shlex.join(current))
    return out


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def run_script(container: dict, env: dict[str, str]) -> tuple[list[list[str]], dict[str, str]]:
    """The argument vectors a container runs, and its shell variables at the end.

    The exec form is one argv. A ``sh -c``/``-ec`` script is read statement by statement:
    statements made only of ``NAME=value`` words set shell variables (later statements see
    them: the chart's scripts do ``CONSUL_FULLNAME="consul"`` then use
    ``${CONSUL_FULLNAME}``), every other statement is an argv. ``$(command)`` substitutions
    are left as they are (nothing runs here)."""
    env = dict(env)
    argv = [_expand_k8s(a, env) for a in (container.get("command") or [])]
    argv += [_expand_k8s(a, env) for a in (container.get("args") or [])]
    if not argv:
        return [], env
    if os.path.basename(argv[0]) in ("sh", "bash", "ash", "dash"):
        for i, a in enumerate(argv[1:], start=1):
            if a.startswith("-") and "c" in a[1:] and i + 1 < len(argv):
                result = []
                for stmt in _split_statements(argv[i + 1]):
                    try:
                        words = shlex.split(stmt)
                    except ValueError:
                        continue
                    words = [_expand_shell(w, env) for w in words]
                    if words and all(_ASSIGNMENT.match(w) for w in words):
                        for w in words:
                            k, _, v = w.partition("=")
                            env[k] = v
                        continue
                    if words and words[0] == "export" and len(words) > 1:
                        for w in words[1:]:
                            if _ASSIGNMENT.match(w):
                                k, _, v = w.partition("=")
                                env[k] = v
                        continue
                    result.append(words)
                return result, env
    return [argv], env


def _argvs(container: dict, env: dict[str, str]) -> list[list[str]]:
    return run_script(container, env)[0]


def parse_control_plane_invocations(container: dict, env: dict[str, str]
                                    ) -> list[tuple[str, dict[str, list[str]]]]:
    """``[(subcommand, {flag: [values]})]`` for each ``consul-k8s[-control-plane]`` invocation
    in the container (Go ``flag`` syntax: ``-f=v``, ``-f v``, ``--f=v``, bare booleans).
    Positional arguments are collected under the key ``""``."""
    found = []
    for argv in _argvs(container, env):
        if not argv or os.path.basename(argv[0]) not in CONTROL_PLANE_BINS or len(argv) < 2:
            continue
        sub, rest = argv[1], argv[2:]
        flags: dict[str, list[str]] = {}
        i = 0
        while i < len(rest):
            a = rest[i]
            if a.startswith("-") and len(a) > 1:
                name = a.lstrip("-")
                if "=" in name:
                    name, value = name.split("=", 1)
                elif i + 1 < len(rest) and not rest[i + 1].startswith("-"):
                    # Go's flag package would only do this for non-boolean flags; every flag
                    # the chart passes this way takes a value.
                    value = rest[i + 1]
                    i += 1
                else:
                    value = "true"
                flags.setdefault(name, []).append(value)
            else:
                flags.setdefault("", []).append(a)
            i += 1
        found.append((sub, flags))
    return found


def _flag(flags: dict[str, list[str]], name: str, default: Optional[str] = None) -> Optional[str]:
    values = flags.get(name)
    return values[-1] if values else default


def _flag_bool(flags: dict[str, list[str]], name: str) -> bool:
    return (_flag(flags, name, "false") or "").lower() in ("1", "t", "true")


# ============================================================================================
# records


@dataclass
class AdmissionRecord:
    """One AdmissionReview the simulated connect-injector answered."""
    path: str
    service: str  # "<namespace>/<service>" the request was addressed to (from SNI)
    kind: str
    group: str
    version: str
    name: str
    namespace: str
    operation: str
    uid: str
    allowed: bool
    message: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class JobRecord:
    namespace: str
    name: str
    subcommands: list[str]
    outcome: str  # "complete" | "failed"
    message: str = ""
    at: float = field(default_factory=time.time)


# ============================================================================================
# the harness


class ClusterHarness:
    """See the module docstring. Public after ``start()``: ``admission_port``,
    ``admissions()``, ``wait_for_admission()``, ``jobs()``, ``wait_for_job()``,
    ``errors()``."""

    def __init__(self, kubeconfig_path: os.PathLike | str, context: str,
                 egress_socket: os.PathLike | str, *, node_ip: str = "127.0.0.1",
                 poll_interval: float = 1.0, job_timeout: float = 300.0,
                 logger: Optional[logging.Logger] = None):
        self.kubeconfig_path = str(kubeconfig_path)
        self.context = context
        self.egress_socket = str(egress_socket)
        self.node_ip = node_ip
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.log = logger or log.getChild(context)

        self._cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig_path, context=context,
                                client_configuration=self._cfg, persist_config=False)
        self._local = threading.local()
        self._stop = threading.Event()
        self._webhook_event = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._job_threads: dict[str, threading.Thread] = {}
        self._open_sockets: set[socket.socket] = set()
        self._admissions: list[AdmissionRecord] = []
        self._jobs: list[JobRecord] = []
        self._errors: list[str] = []
        self._changed = threading.Condition(self._lock)

        # webhook-cert-manager state: (secretNamespace, secretName) -> bundle
        self._bundles: dict[tuple[str, str], dict] = {}
        # connect-injector routing, rebuilt every poll:
        self._routes: dict[tuple[str, int], tuple[str, str]] = {}  # (host, port) -> (ns, svc)
        self._sni: dict[str, ssl.SSLContext] = {}  # "<svc>.<ns>.svc" -> context
        self._ctx_cache: dict[bytes, ssl.SSLContext] = {}

        self._http: Optional[ThreadingHTTPServer] = None
        self._unix: Optional[socket.socket] = None
        self.admission_port: Optional[int] = None
        self._started = False

    # ---- plumbing ----------------------------------------------------------------------------

    def _api(self) -> client.ApiClient:
        """One ApiClient per thread (urllib3 pools are per client)."""
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = client.ApiClient(configuration=self._cfg)
        return api

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._api())

    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self._api())

    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self._api())

    def admreg(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self._api())

    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self._api())

    def _error(self, msg: str, *args) -> None:
        text = msg % args if args else msg
        self.log.error(text)
        with self._lock:
            self._errors.append(text)
            self._changed.notify_all()

    def _error_once(self, msg: str, *args) -> None:
        """An error a polling loop would hit on every pass: recorded and logged as an error
        once, then logged at debug level."""
        text = msg % args if args else msg
        with self._lock:
            seen = text in self._errors
        if seen:
            self.log.debug(text)
        else:
            self._error(text)

    def _spawn(self, name: str, target: Callable, *args) -> threading.Thread:
        def run():
            try:
                target(*args)
            except Exception as e:  # a thread must never die silently
                self._error("thread %s crashed: %r", name, e)
                self.log.exception("thread %s crashed", name)
        t = threading.Thread(target=run, name=f"harness-{self.context}-{name}", daemon=True)
        t.start()
        return t

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True if the harness is stopping."""
        return self._stop.wait(seconds)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "ClusterHarness":
        if self._started:
            return self
        self._stop.clear()
        self._start_admission_server()
        self._start_egress_proxy()
        self._threads = [
            self._spawn("jobs", self._watch_jobs),
            self._spawn("webhooks", self._reconcile_loop),
            self._spawn("webhook-events", self._watch_webhook_configurations),
            self._spawn("deletion", self._deletion_loop),
        ]
        self._started = True
        self.log.info("harness started (admission server 127.0.0.1:%s, egress socket %s)",
                      self.admission_port, self.egress_socket)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if not self._started:
            return
        self._stop.set()
        self._webhook_event.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._unix is not None:
            try:
                self._unix.close()
            except OSError:
                pass
        with self._lock:
            socks = list(self._open_sockets)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = self._threads + list(self._job_threads.values())
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self.log.warning("thread %s did not stop within %.0fs", t.name, timeout)
        try:
            os.unlink(self.egress_socket)
        except OSError:
            pass
        self._started = False
        self.log.info("harness stopped")

    def __enter__(self) -> "ClusterHarness":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what tests look at ------------------------------------------------------------------

    def admissions(self, kind: Optional[str] = None) -> list[AdmissionRecord]:
        with self._lock:
            return [a for a in self._admissions if kind is None or a.kind == kind]

    def wait_for_admission(self, kind: str, name: str, timeout: float = 30.0
                           ) -> Optional[AdmissionRecord]:
        return self._wait_for(self._admissions, lambda a: a.kind == kind and a.name == name, timeout)

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            return list(self._jobs)

    def wait_for_job(self, name: str, timeout: float = 60.0) -> Optional[JobRecord]:
        return self._wait_for(self._jobs, lambda j: j.name == name, timeout)

    def _wait_for(self, records: list, match: Callable, timeout: float):
        """The first record that matches, waiting up to `timeout` for one to be recorded."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = next((r for r in records if match(r)), None)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._changed.wait(min(left, 1.0))

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    # ==========================================================================================
    # Jobs

    def _watch_jobs(self) -> None:
        batch = self.batch()
        rv: Optional[str] = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    jobs = batch.list_job_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT)
                    for job in jobs.items:
                        self._maybe_run(job)
                    rv = jobs.metadata.resource_version
                w = watch.Watch()
                for ev in w.stream(batch.list_job_for_all_namespaces, resource_version=rv,
                                   timeout_seconds=2, allow_watch_bookmarks=True,
                                   _request_timeout=(5, 10)):
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        raw = ev.get("raw_object") or {}
                        if raw.get("code") == 410:
                            rv = None
                            break
                        self._error("job watch error: %s", raw)
                        rv = None
                        break
                    rv = obj.metadata.resource_version
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self._maybe_run(obj)
                    if self._stop.is_set():
                        w.stop()
                        break
            except ApiException as e:
                if e.status == 410:
                    rv = None
                    continue
                if not self._stop.is_set():
                    self._error("job watch failed: %s %s", e.status, e.reason)
                    rv = None
                    self._sleep(_RETRY)
            except Exception as e:  # connection reset, read timeout, ...
                if not self._stop.is_set():
                    self.log.warning("job watch interrupted (%r); re-listing", e)
                    rv = None
                    self._sleep(_RETRY)

    @staticmethod
    def _finished(job) -> bool:
        for c in (job.status.conditions or []) if job.status else []:
            if c.type in ("Complete", "Failed") and c.status == "True":
                return True
        return False

    def _maybe_run(self, job) -> None:
        uid = job.metadata.uid
        if self._finished(job) or job.metadata.deletion_timestamp is not None:
            return
        if job.spec.suspend:
            return  # a suspended Job runs no pods
        with self._lock:
            if uid in self._job_threads or self._stop.is_set():
                return
            self._job_threads[uid] = self._spawn(
                f"job-{job.metadata.name}", self._run_job, job.metadata.namespace,
                job.metadata.name, uid)

    def _run_job(self, ns: str, name: str, uid: str) -> None:
        batch = self.batch()
        try:
            job = batch.read_namespaced_job(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                self._error("job %s/%s: cannot read: %s", ns, name, e.reason)
            return
        if job.metadata.uid != uid or self._finished(job):
            return
        raw = self._api().sanitize_for_serialization(job)
        start = _now().replace(microsecond=0)
        if not (job.status and job.status.start_time):
            self._patch_job_status(ns, name, {"status": {
                "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "active": 1}})
        subcommands: list[str] = []
        try:
            subcommands = self._perform_side_effects(raw)
        except HarnessError as e:
            self._fail_job(ns, name, str(e), subcommands)
            return
        except _StopNow:
            return
        except Exception as e:
            self.log.exception("job %s/%s: side effect crashed", ns, name)
            self._fail_job(ns, name, f"harness error: {e!r}", subcommands)
            return
        self._complete_job(ns, name, raw, subcommands)

    def _patch_job_status(self, ns: str, name: str, body: dict) -> bool:
        try:
            self.batch().patch_namespaced_job_status(name, ns, body,
                                                     _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as e:
            if e.status == 404:
                self.log.info("job %s/%s disappeared before its status was set", ns, name)
                return False
            raise

    def _complete_job(self, ns: str, name: str, raw: dict, subcommands: list[str]) -> None:
        now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")  # never before startTime (same clock)
        completions = (raw.get("spec") or {}).get("completions") or 1
        cond = lambda t: {  # noqa: E731
            "type": t, "status": "True", "reason": "CompletionsReached",
            "message": "Reached expected number of succeeded pods",
            "lastProbeTime": now, "lastTransitionTime": now}
        status = {"active": 0, "ready": 0, "succeeded": completions, "completionTime": now,
                  "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}
        try:
            ok = self._patch_job_status(ns, name, {"status": status})
        except ApiException as e:
            if e.status == 422 and "SuccessCriteriaMet" in (e.body or ""):
                # An apiserver without JobManagedBy/JobPodReplacementPolicy only allows
                # SuccessCriteriaMet with a successPolicy: complete the old way.
                status["conditions"] = [cond("Complete")]
                try:
                    ok = self._patch_job_status(ns, name, {"status": status})
                except ApiException as e2:
                    self._error("job %s/%s: status patch rejected: %s", ns, name, e2.body)
                    return
            else:
                self._error("job %s/%s: status patch rejected: %s", ns, name, e.body)
                return
        if ok:
            self.log.info("job %s/%s complete (%s)", ns, name, ", ".join(subcommands) or "-")
            self._record_job(JobRecord(ns, name, subcommands, "complete"))

    def _fail_job(self, ns: str, name: str, message: str, subcommands: list[str]) -> None:
        self._error("job %s/%s failed: %s", ns, name, message)
        now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        cond = lambda t: {  # noqa: E731
            "type": t, "status": "True", "reason": "BackoffLimitExceeded",
            "message": f"harness: {message}"[:1000],
            "lastProbeTime": now, "lastTransitionTime": now}
        try:
            self._patch_job_status(ns, name, {"status": {
                "active": 0, "ready": 0, "failed": 1,
                "conditions": [cond("FailureTarget"), cond("Failed")]}})
        except ApiException as e:
            self._error("job %s/%s: failed-status patch rejected: %s", ns, name, e.body)
        self._record_job(JobRecord(ns, name, subcommands, "failed", message))

    def _record_job(self, rec: JobRecord) -> None:
        with self._lock:
            self._jobs.append(rec)
            self._changed.notify_all()

    # ---- what the Job's pod would have done --------------------------------------------------

    def _perform_side_effects(self, job: dict) -> list[str]:
        ns = job["metadata"]["namespace"]
        name = job["metadata"]["name"]
        pod_spec = job["spec"]["template"]["spec"]
        done: list[str] = []
        deadline = time.monotonic() + self.job_timeout
        for container in (pod_spec.get("initContainers") or []) + pod_spec["containers"]:
            env = self._retry(deadline, f"{ns}/{name}: env of {container['name']}",
                              lambda: self._container_env(ns, name, container))
            ctx = _PodContext(self, ns, name, pod_spec, container, env)
            for sub, flags in parse_control_plane_invocations(container, env):
                handler = {
                    "tls-init": self._tls_init,
                    "create-federation-secret": self._create_federation_secret,
                    "server-acl-init": self._server_acl_init,
                    "delete-completed-job": self._delete_completed_job,
                    "gossip-encryption-autogenerate": self._gossip_autogenerate,
                }.get(sub)
                done.append(sub)
                if handler is None:
                    self.log.info("job %s/%s: %s has no simulated side effect", ns, name, sub)
                    continue
                self.log.info("job %s/%s: simulating %s", ns, name, sub)
                self._retry(deadline, f"{ns}/{name}: {sub}", lambda: handler(ctx, flags))
            for argv in _argvs(container, env):
                if argv and os.path.basename(argv[0]) == "curl":
                    self._curl_delete(ns, name, argv)
                    done.append("curl")
        return done

    def _retry(self, deadline: float, what: str, fn: Callable):
        last = None
        while True:
            try:
                return fn()
            except _NotYet as e:
                if str(e) != last:
                    self.log.info("%s: waiting: %s", what, e)
                    last = str(e)
            if time.monotonic() > deadline:
                raise HarnessError(f"{what}: gave up after {self.job_timeout:.0f}s: {last}")
            if self._sleep(_RETRY):
                raise _StopNow()

    def _container_env(self, ns: str, pod_name: str, container: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = _expand_k8s(e.get("value") or "", env)
                continue
            vf = e.get("valueFrom") or {}
            if "fieldRef" in vf:
                path = vf["fieldRef"]["fieldPath"]
                env[e["name"]] = {
                    "metadata.namespace": ns, "metadata.name": f"{pod_name}-harness",
                    "status.hostIP": self.node_ip, "status.podIP": self.node_ip,
                    "spec.nodeName": "harness-node",
                    "spec.serviceAccountName": "",
                }.get(path, "")
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                kind = "secret" if "secretKeyRef" in vf else "configmap"
                data = self._read_data(kind, ns, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise _NotYet(f"{kind} {ns}/{ref['name']} key {ref['key']} for env "
                                  f"{e['name']} does not exist (pod would not start)")
                env[e["name"]] = data[ref["key"]].decode()
        return env

    def _read_data(self, kind: str, ns: str, name: str) -> Optional[dict[str, bytes]]:
        try:
            if kind == "secret":
                s = self.core().read_namespaced_secret(name, ns, _request_timeout=REQUEST_TIMEOUT)
                return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}
            cm = self.core().read_namespaced_config_map(name, ns,
                                                        _request_timeout=REQUEST_TIMEOUT)
            out = {k: v.encode() for k, v in (cm.data or {}).items()}
            out.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
            return out
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _put_secret(self, ns: str, name: str, data: dict[str, bytes], type_: str = "Opaque",
                    labels: Optional[dict] = None, owner: Optional[dict] = None,
                    overwrite: bool = True) -> None:
        body = {"apiVersion": "v1", "kind": "Secret", "type": type_,
                "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        core = self.core()
        try:
            core.create_namespaced_secret(ns, body, _request_timeout=REQUEST_TIMEOUT)
            self.log.info("created secret %s/%s (%s)", ns, name, ", ".join(sorted(data)))
        except ApiException as e:
            if e.status != 409 or not overwrite:
                raise
            current = core.read_namespaced_secret(name, ns, _request_timeout=REQUEST_TIMEOUT)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            body["metadata"]["labels"] = {**(current.metadata.labels or {}), **(labels or {})}
            body["type"] = current.type or type_  # type is immutable
            core.replace_namespaced_secret(name, ns, body, _request_timeout=REQUEST_TIMEOUT)
            self.log.info("updated secret %s/%s (%s)", ns, name, ", ".join(sorted(data)))

    # -- tls-init

    def _tls_init(self, pod: "_PodContext", flags: dict[str, list[str]]) -> None:
        prefix = _flag(flags, "name-prefix")
        if not prefix:
            raise HarnessError("tls-init: -name-prefix must be set")
        ns = _flag(flags, "k8s-namespace", "default")
        ca_file, key_file = _flag(flags, "ca"), _flag(flags, "key")
        if bool(ca_file) != bool(key_file):
            raise HarnessError("tls-init: either both -ca and -key or neither must be set")
        dc = _flag(flags, "dc", "dc1")
        domain = _flag(flags, "domain", "consul")
        days = int(_flag(flags, "days", "1825"))
        label = {"managed-by": "consul-k8s"}
        if ca_file:  # CA provided (e.g. the secondary, from the federation secret): no CA secrets
            ca_pem, ca_key = pod.read_file(ca_file), pod.read_file(key_file)
        else:
            cert_s = self._read_data("secret", ns, f"{prefix}-ca-cert")
            key_s = self._read_data("secret", ns, f"{prefix}-ca-key")
            if cert_s is not None and key_s is not None:
                self.log.info("tls-init: using existing CA %s/%s-ca-cert", ns, prefix)
                ca_pem, ca_key = cert_s.get("tls.crt", b""), key_s.get("tls.key", b"")
            else:
                ca_pem, ca_key = make_ca("Consul Agent CA")
                self._put_secret(ns, f"{prefix}-ca-cert", {"tls.crt": ca_pem}, labels=label,
                                 overwrite=False)
                self._put_secret(ns, f"{prefix}-ca-key", {"tls.key": ca_key}, labels=label,
                                 overwrite=False)
        hosts = [d.strip() for d in flags.get("additional-dnsname", []) if d.strip()]
        hosts += [i.strip() for i in flags.get("additional-ipaddress", []) if i.strip()]
        cn = f"server.{dc}.{domain}"
        hosts += [cn, "localhost", "127.0.0.1"]
        try:
            cert, key = issue_cert(ca_pem, ca_key, cn, hosts, days=days)
        except ValueError as e:
            raise HarnessError(f"tls-init: cannot use the CA: {e}") from e
        self._put_secret(ns, f"{prefix}-server-cert", {"tls.crt": cert, "tls.key": key},
                         type_="kubernetes.io/tls", labels=label)

    # -- server-acl-init

    def _server_acl_init(self, pod: "_PodContext", flags: dict[str, list[str]]) -> None:
        if not _flag_bool(flags, "create-acl-replication-token"):
            return
        prefix = _flag(flags, "resource-prefix")
        if not prefix and _flag(flags, "release-name"):  # the older spelling
            prefix = f"{_flag(flags, 'release-name')}-consul"
        ns = _flag(flags, "k8s-namespace")
        if not prefix or not ns:
            raise HarnessError("server-acl-init: -resource-prefix and -k8s-namespace must be set")
        name = f"{prefix}-acl-replication-acl-token"
        if self._read_data("secret", ns, name) is None:
            self._put_secret(ns, name, {"token": str(uuid.uuid4()).encode()},
                             labels={"managed-by": "consul-k8s"}, overwrite=False)

    # -- gossip-encryption-autogenerate

    def _gossip_autogenerate(self, pod: "_PodContext", flags: dict[str, list[str]]) -> None:
        ns, name = _flag(flags, "namespace"), _flag(flags, "secret-name")
        key = _flag(flags, "secret-key")
        if not (ns and name and key):
            raise HarnessError("gossip-encryption-autogenerate: -namespace, -secret-name and "
                               "-secret-key must be set")
        if self._read_data("secret", ns, name) is not None:
            self.log.info("gossip-encryption-autogenerate: secret %s/%s exists", ns, name)
            return
        # what `consul keygen` makes: 32 random bytes, standard base64
        self._put_secret(ns, name, {key: base64.b64encode(os.urandom(32))},
                         labels={"managed-by": "consul-k8s"}, overwrite=False)

    # -- delete-completed-job

    def _delete_completed_job(self, pod: "_PodContext", flags: dict[str, list[str]]) -> None:
        ns = _flag(flags, "k8s-namespace", "default")
        names = flags.get("", [])
        if len(names) != 1:
            raise HarnessError(f"delete-completed-job: expected one job name, got {names}")
        batch = self.batch()
        try:
            job = batch.read_namespaced_job(names[0], ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                self.log.info("delete-completed-job: %s/%s already gone", ns, names[0])
                return
            raise
        if not any(c.type == "Complete" and c.status == "True"
                   for c in (job.status.conditions or [])):
            raise _NotYet(f"job {ns}/{names[0]} not complete yet")
        try:
            batch.delete_namespaced_job(names[0], ns, propagation_policy="Background",
                                        _request_timeout=REQUEST_TIMEOUT)
            self.log.info("delete-completed-job: deleted %s/%s", ns, names[0])
        except ApiException as e:
            if e.status != 404:
                raise

    # -- curl -X DELETE .../secrets/<name> (tls-init-cleanup)

    _SECRET_URL = re.compile(r"/api/v1/namespaces/([^/]+)/secrets/([^/?\s]+)")

    def _curl_delete(self, ns: str, job: str, argv: list[str]) -> None:
        method = None
        for i, a in enumerate(argv):
            if a in ("-X", "--request") and i + 1 < len(argv):
                method = argv[i + 1]
            elif a.startswith("-X") and len(a) > 2:
                method = a[2:]
        if (method or "").upper() != "DELETE":
            self.log.info("job %s/%s: curl %s not simulated", ns, job, argv[1:])
            return
        for a in argv:
            m = self._SECRET_URL.search(a)
            if m:
                try:
                    self.core().delete_namespaced_secret(m.group(2), m.group(1),
                                                         _request_timeout=REQUEST_TIMEOUT)
                    self.log.info("job %s/%s: deleted secret %s/%s", ns, job, *m.groups())
                except ApiException as e:
                    if e.status != 404:
                        raise
            elif "://" in a:
                self.log.info("job %s/%s: curl DELETE %s not simulated", ns, job, a)

    # -- create-federation-secret

    def _create_federation_secret(self, pod: "_PodContext", flags: dict[str, list[str]]) -> None:
        prefix, ns = _flag(flags, "resource-prefix"), _flag(flags, "k8s-namespace")
        ca_file, key_file = _flag(flags, "server-ca-cert-file"), _flag(flags, "server-ca-key-file")
        gw_name = _flag(flags, "mesh-gateway-service-name")
        for flag_name, value in (("resource-prefix", prefix), ("k8s-namespace", ns),
                                 ("server-ca-cert-file", ca_file),
                                 ("server-ca-key-file", key_file),
                                 ("mesh-gateway-service-name", gw_name)):
            if not value:
                raise HarnessError(f"create-federation-secret: -{flag_name} must be set")
        data: dict[str, bytes] = {}
        gossip_file = _flag(flags, "gossip-key-file")
        if gossip_file:
            gossip = pod.read_file(gossip_file)
            if not gossip:
                raise HarnessError(f"gossip key file {gossip_file!r} was empty")
            data["gossipEncryptionKey"] = gossip
        data["caCert"] = pod.read_file(ca_file)
        data["caKey"] = pod.read_file(key_file)
        if _flag_bool(flags, "export-replication-token"):
            token_secret = f"{prefix}-acl-replication-acl-token"
            s = self._read_data("secret", ns, token_secret)
            if s is None:
                raise _NotYet(f"secret {ns}/{token_secret} not yet created")
            if "token" not in s:
                raise HarnessError(f"expected key 'token' in secret {token_secret} not set")
            data["replicationToken"] = s["token"]
        dc = self._consul_datacenter(ns, prefix)
        addrs = self._mesh_gateway_wan_addrs(ns, gw_name)
        data["serverConfigJSON"] = json.dumps(
            {"primary_datacenter": dc, "primary_gateways": addrs},
            separators=(",", ":")).encode()
        self._put_secret(ns, f"{prefix}-federation", data)

    def _consul_datacenter(self, ns: str, prefix: str) -> str:
        """What ``/agent/self`` Config.Datacenter would say: the datacenter the server agents
        are started with."""
        try:
            sts = self.apps().read_namespaced_stateful_set(f"{prefix}-server", ns,
                                                           _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                raise _NotYet(f"no Consul servers: statefulset {ns}/{prefix}-server") from e
            raise
        raw = self._api().sanitize_for_serialization(sts)
        for c in raw["spec"]["template"]["spec"]["containers"]:
            text = " ".join((c.get("command") or []) + (c.get("args") or []))
            m = re.search(r"-datacenter[= ]+\"?([A-Za-z0-9_.-]+)", text)
            if m:
                return m.group(1)
        for vol in raw["spec"]["template"]["spec"].get("volumes") or []:
            cm = (vol.get("configMap") or {}).get("name")
            if not cm:
                continue
            for value in (self._read_data("configmap", ns, cm) or {}).values():
                try:
                    doc = json.loads(value)
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("datacenter"):
                    return doc["datacenter"]
        raise HarnessError(f"cannot tell the datacenter of statefulset {ns}/{prefix}-server")

    def _mesh_gateway_wan_addrs(self, ns: str, consul_service: str) -> list[str]:
        """The ``wan`` tagged addresses the endpoints controller would register for the mesh
        gateway pods of Consul service ``consul_service`` (one per gateway Deployment:
        every replica of a Deployment gets the same address here, there being no nodes)."""
        addrs: list[str] = []
        deps = self.apps().list_namespaced_deployment(ns, _request_timeout=REQUEST_TIMEOUT)
        services = None
        for dep in deps.items:
            tmpl = dep.spec.template.metadata
            ann = tmpl.annotations or {}
            if ann.get("consul.hashicorp.com/gateway-kind") != "mesh-gateway":
                addr = self._legacy_gateway_wan_addr(dep, ns, consul_service)
                if addr and addr not in addrs:
                    addrs.append(addr)
                continue
            svc_name = ann.get("consul.hashicorp.com/gateway-consul-service-name", "mesh-gateway")
            if svc_name != consul_service:
                continue
            source = ann.get("consul.hashicorp.com/gateway-wan-address-source")
            port = ann.get("consul.hashicorp.com/gateway-wan-port")
            if source is None:
                raise HarnessError(f"deployment {dep.metadata.name}: no wan address source")
            if source == "NodeName":
                host = "harness-node"
            elif source == "NodeIP":
                host = self.node_ip
            elif source == "Static":
                host = ann.get("consul.hashicorp.com/gateway-wan-address-static", "")
            elif source == "Service":
                if services is None:
                    services = self.core().list_namespaced_service(
                        ns, _request_timeout=REQUEST_TIMEOUT).items
                svc = next((s for s in services if s.spec.selector and _selects(
                    s.spec.selector, tmpl.labels or {})), None)
                if svc is None:
                    raise _NotYet(f"no Service selects the pods of {dep.metadata.name}")
                if svc.spec.type == "NodePort":
                    host = self.node_ip  # pod.Status.HostIP: a PLACEHOLDER, no nodes here
                elif svc.spec.type == "ClusterIP":
                    host = svc.spec.cluster_ip
                elif svc.spec.type == "LoadBalancer":
                    ingress = (svc.status.load_balancer.ingress or []) if svc.status and \
                        svc.status.load_balancer else []
                    host = next((i.ip or i.hostname for i in ingress if i.ip or i.hostname), "")
                    if not host:
                        raise _NotYet(f"LoadBalancer {ns}/{svc.metadata.name} has no ingress")
                else:
                    host = ""
            else:
                raise HarnessError(f"unknown wan address source {source!r}")
            try:
                wan_port = int(port or "")
            except ValueError as e:
                raise HarnessError(f"failed to parse WAN port from value {port}") from e
            addr = f"{host}:{wan_port}"
            if addr not in addrs:
                addrs.append(addr)
        if not addrs:
            raise _NotYet(f"no instances of mesh gateway service {consul_service!r}")
        return addrs

    _HCL_GATEWAY = re.compile(r'kind\s*=\s*"mesh-gateway"\s*name\s*=\s*"([^"]+)"')

    def _legacy_gateway_wan_addr(self, dep, ns: str, consul_service: str) -> Optional[str]:
        """Charts before consul-k8s 0.43 (hashicorp/consul-helm): the gateway pod registers
        itself, its init container writing a service definition whose ``wan`` address is
        ``WAN_ADDR``/``WAN_PORT`` set earlier in the same script (``${HOST_IP}``, ``${NODE_NAME}``,
        a static value, or what ``consul-k8s service-address`` finds for the Service).
        Returns that address, or None if the Deployment is no such gateway."""
        raw = self._api().sanitize_for_serialization(dep)
        spec = raw["spec"]["template"]["spec"]
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            script = " ".join((c.get("command") or []) + (c.get("args") or []))
            m = self._HCL_GATEWAY.search(script)
            if not m or m.group(1) != consul_service:
                continue
            env = self._container_env(ns, dep.metadata.name, c)
            argvs, final = run_script(c, env)
            host, port = final.get("WAN_ADDR", ""), final.get("WAN_PORT", "")
            if "$(" in host:  # WAN_ADDR="$(cat /tmp/address.txt)" from service-address
                host = ""
                for sub, flags in parse_control_plane_invocations(c, env):
                    if sub == "service-address":
                        host = self._service_address(_flag(flags, "k8s-namespace", ns),
                                                     _flag(flags, "name", ""))
            if not host or not port.isdigit():
                raise HarnessError(f"gateway {dep.metadata.name}: cannot tell its WAN address "
                                   f"(WAN_ADDR={host!r} WAN_PORT={port!r})")
            return f"{host}:{port}"
        return None

    def _service_address(self, ns: str, name: str) -> str:
        """``consul-k8s service-address``: a LoadBalancer's ingress IP/hostname (retried until
        there is one) or a ClusterIP Service's IP."""
        try:
            svc = self.core().read_namespaced_service(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                raise _NotYet(f"service {ns}/{name} does not exist") from e
            raise
        if svc.spec.type == "ClusterIP":
            return svc.spec.cluster_ip
        if svc.spec.type == "LoadBalancer":
            lb = svc.status.load_balancer if svc.status else None
            for i in (lb.ingress or []) if lb else []:
                if i.ip or i.hostname:
                    return i.ip or i.hostname
            raise _NotYet(f"LoadBalancer {ns}/{name} has no ingress yet")
        raise HarnessError(f"service-address: unsupported service type {svc.spec.type}")

    # ==========================================================================================
    # namespace controller + garbage collector (only what finishes deletions)

    def _deletion_loop(self) -> None:
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.resource import ResourceList
        dyn = DynamicClient(self._api())
        types: list = []
        discovered_at = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - discovered_at > 10 or not types:  # CRDs come and go
                    dyn.resources.invalidate_cache()
                    seen: set[tuple[str, str]] = set()
                    types = []
                    for r in dyn.resources.search():
                        if isinstance(r, ResourceList) or "/" in (r.name or "") or \
                                not {"list", "delete", "patch"} <= set(r.verbs or []):
                            continue
                        if (r.group, r.kind) in seen and not r.preferred:
                            continue
                        seen.add((r.group, r.kind))
                        types.append(r)
                    discovered_at = time.monotonic()
                self._finish_deletions(types)
            except ApiException as e:
                if not self._stop.is_set():
                    self.log.warning("deletion loop: %s %s", e.status, e.reason)
                    discovered_at = 0.0
            except Exception as e:
                if not self._stop.is_set():
                    self.log.warning("deletion loop interrupted: %r", e)
                    discovered_at = 0.0
            self._sleep(self.poll_interval)

    def _finish_deletions(self, types: list) -> None:
        """One pass of what the garbage collector and the namespace controller do for objects
        being deleted: an object with the ``foregroundDeletion`` finalizer loses it once no
        blocking dependent is left (dependents are deleted first); one with ``orphan`` loses it
        after its dependents' owner references to it are removed; a Terminating namespace is
        emptied (its objects deleted in the background) and, once empty, its ``kubernetes``
        finalizer is removed through the ``finalize`` subresource."""
        everything: list[tuple[object, dict]] = []
        for r in types:
            try:
                items = r.get().to_dict().get("items") or []
            except ApiException as e:
                if e.status in (404, 405, 403):
                    continue
                raise
            everything.extend((r, o) for o in items)
        dependents: dict[str, list[tuple[object, dict, dict]]] = {}
        for r, o in everything:
            for ref in o["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref["uid"], []).append((r, o, ref))
        for r, o in everything:
            md = o["metadata"]
            if not md.get("deletionTimestamp"):
                continue
            fins = md.get("finalizers") or []
            if "orphan" in fins:
                for dr, dep, _ in dependents.get(md["uid"], []):
                    refs = [x for x in dep["metadata"]["ownerReferences"] if x["uid"] != md["uid"]]
                    self._patch_meta(dr, dep, {"ownerReferences": refs or None})
                self._drop_finalizer(r, o, "orphan")
            if "foregroundDeletion" in fins:
                blocking = 0
                for dr, dep, ref in dependents.get(md["uid"], []):
                    if not dep["metadata"].get("deletionTimestamp"):
                        self._delete(dr, dep, "Foreground")
                    if ref.get("blockOwnerDeletion"):
                        blocking += 1
                if not blocking:
                    self._drop_finalizer(r, o, "foregroundDeletion")
        for r, ns in everything:
            if r.kind != "Namespace" or r.group or not ns["metadata"].get("deletionTimestamp"):
                continue
            if "kubernetes" not in ((ns.get("spec") or {}).get("finalizers") or []):
                continue
            name = ns["metadata"]["name"]
            left = [(cr, o) for cr, o in everything
                    if cr.namespaced and o["metadata"].get("namespace") == name]
            for cr, o in left:
                if not o["metadata"].get("deletionTimestamp"):
                    self._delete(cr, o, "Background")
            if left:
                self.log.info("namespace %s terminating: %d object(s) left", name, len(left))
                continue
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                    "spec": {"finalizers": [f for f in ns["spec"]["finalizers"]
                                            if f != "kubernetes"]}}
            try:
                self.core().replace_namespace_finalize(name, body,
                                                       _request_timeout=REQUEST_TIMEOUT)
                self.log.info("namespace %s emptied and finalized", name)
            except ApiException as e:
                if e.status not in (404, 409):
                    raise

    def _delete(self, r, obj: dict, policy: str) -> None:
        md = obj["metadata"]
        try:
            r.delete(name=md["name"], namespace=md.get("namespace"),
                     body={"apiVersion": "v1", "kind": "DeleteOptions",
                           "propagationPolicy": policy})
            self.log.info("deleted %s %s/%s (%s)", r.kind, md.get("namespace", ""), md["name"],
                          policy)
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    def _patch_meta(self, r, obj: dict, meta: dict) -> None:
        md = obj["metadata"]
        try:
            r.patch(name=md["name"], namespace=md.get("namespace"),
                    body={"metadata": {**meta, "resourceVersion": md["resourceVersion"]}},
                    content_type="application/merge-patch+json")
        except ApiException as e:
            if e.status not in (404, 409):  # gone, or changed: the next pass sees it again
                raise

    def _drop_finalizer(self, r, obj: dict, finalizer: str) -> None:
        rest = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        self._patch_meta(r, obj, {"finalizers": rest or None})
        self.log.info("%s %s/%s: removed finalizer %s", r.kind,
                      obj["metadata"].get("namespace", ""), obj["metadata"]["name"], finalizer)

    # ==========================================================================================
    # webhook-cert-manager + connect-injector

    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reconcile_webhooks()
            except ApiException as e:
                if self._stop.is_set():
                    pass
                elif e.status == 409:  # raced with another writer: the next pass sees it
                    self.log.info("webhook reconcile: conflict, retrying: %s", e.reason)
                else:
                    self._error_once("webhook reconcile: %s %s", e.status, e.reason)
            except Exception as e:
                if not self._stop.is_set():
                    self.log.warning("webhook reconcile interrupted: %r", e)
            # Like the real cert manager, which watches: react to a new webhook configuration at
            # once rather than at the next poll, or a ProxyDefaults created right after
            # `helm install` can meet the chart's placeholder caBundle.
            self._webhook_event.wait(self.poll_interval)
            self._webhook_event.clear()

    def _watch_webhook_configurations(self) -> None:
        admreg = self.admreg()
        while not self._stop.is_set():
            try:
                for _ in watch.Watch().stream(admreg.list_mutating_webhook_configuration,
                                              timeout_seconds=2, _request_timeout=(5, 10)):
                    self._webhook_event.set()
                    if self._stop.is_set():
                        break
            except Exception as e:  # connection reset, read timeout: watch again
                if not self._stop.is_set():
                    self.log.debug("webhook configuration watch interrupted (%r)", e)
                    self._sleep(_RETRY)

    def _reconcile_webhooks(self) -> None:
        core, api = self.core(), self._api()
        deps = self.apps().list_deployment_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT)
        managers, injectors = [], []
        for dep in deps.items:
            if dep.metadata.deletion_timestamp is not None:
                continue
            raw = api.sanitize_for_serialization(dep)
            spec = raw["spec"]["template"]["spec"]
            for c in spec["containers"]:
                text = " ".join((c.get("command") or []) + (c.get("args") or []))
                if not any(b in text for b in CONTROL_PLANE_BINS) or not any(
                        sub in text for sub in ("webhook-cert-manager", *WEBHOOK_SERVERS)):
                    continue
                env = {}
                try:
                    env = self._container_env(dep.metadata.namespace, dep.metadata.name, c)
                except _NotYet:
                    pass
                for sub, flags in parse_control_plane_invocations(c, env):
                    pod = _PodContext(self, dep.metadata.namespace, dep.metadata.name, spec, c,
                                      env)
                    if sub == "webhook-cert-manager":
                        managers.append((raw, pod, flags))
                    elif sub in WEBHOOK_SERVERS:
                        injectors.append((raw, pod, _flag(flags, WEBHOOK_SERVERS[sub])))
        for raw, pod, flags in managers:
            try:
                self._cert_manager(raw, pod, flags)
            except _NotYet as e:
                self.log.debug("webhook-cert-manager %s: %s", raw["metadata"]["name"], e)
            except HarnessError as e:
                self._error_once("webhook-cert-manager %s: %s", raw["metadata"]["name"], e)
        routes: dict[tuple[str, int], tuple[str, str]] = {}
        sni: dict[str, ssl.SSLContext] = {}
        services_by_ns: dict[str, list] = {}
        for raw, pod, cert_dir in injectors:
            ns = raw["metadata"]["namespace"]
            if not cert_dir:
                continue
            try:
                cert = pod.read_file(cert_dir.rstrip("/") + "/tls.crt")
                key = pod.read_file(cert_dir.rstrip("/") + "/tls.key")
            except _NotYet as e:
                self.log.debug("webhook server %s not serving yet: %s",
                               raw["metadata"]["name"], e)
                continue
            except HarnessError as e:
                self._error_once("webhook server %s: %s", raw["metadata"]["name"], e)
                continue
            ctx = self._ctx_cache.get(cert + key)
            if ctx is None:
                if len(self._ctx_cache) > 16:
                    self._ctx_cache.clear()
                ctx = self._ctx_cache[cert + key] = _server_context(cert, key)
            labels = raw["spec"]["template"]["metadata"].get("labels") or {}
            if ns not in services_by_ns:
                services_by_ns[ns] = core.list_namespaced_service(
                    ns, _request_timeout=REQUEST_TIMEOUT).items
            for svc in services_by_ns[ns]:
                if not svc.spec.selector or not _selects(svc.spec.selector, labels):
                    continue
                name = svc.metadata.name
                for host in (f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
                    sni[host] = ctx
                for p in svc.spec.ports or []:
                    for host in (svc.spec.cluster_ip, f"{name}.{ns}.svc",
                                 f"{name}.{ns}.svc.cluster.local"):
                        if host and host != "None":
                            routes[(host, p.port)] = (ns, name)
        with self._lock:
            self._routes, self._sni = routes, sni

    def _cert_manager(self, dep: dict, pod: "_PodContext", flags: dict[str, list[str]]) -> None:
        config_file = _flag(flags, "config-file")
        if not config_file:
            raise HarnessError("webhook-cert-manager: -config-file must be set")
        try:
            entries = json.loads(pod.read_file(config_file))
        except ValueError as e:
            raise HarnessError(f"webhook-cert-manager: bad config file: {e}") from e
        admreg = self.admreg()
        for entry in entries:
            name, secret_name = entry.get("name"), entry.get("secretName")
            secret_ns, hosts = entry.get("secretNamespace"), entry.get("tlsAutoHosts") or []
            if not (name and secret_name and secret_ns):
                raise HarnessError(f"webhook-cert-manager: incomplete config entry {entry}")
            try:
                mwc = admreg.read_mutating_webhook_configuration(
                    name, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e:
                if e.status == 404:
                    raise _NotYet(f"MutatingWebhookConfiguration {name} must exist") from e
                raise
            key = (secret_ns, secret_name)
            bundle = self._bundles.get(key)
            if bundle is None or bundle["hosts"] != hosts:
                ca_pem, ca_key = make_ca("Consul Webhook Certificates", days=1)
                cert, tls_key = issue_cert(ca_pem, ca_key, hosts[0] if hosts else name, hosts,
                                           days=1)
                bundle = self._bundles[key] = {"hosts": hosts, "ca": ca_pem, "cert": cert,
                                               "key": tls_key}
            current = self._read_data("secret", secret_ns, secret_name)
            if current is None or current.get("tls.crt") != bundle["cert"] or \
                    current.get("tls.key") != bundle["key"]:
                owner = {"apiVersion": "apps/v1", "kind": "Deployment",
                         "name": dep["metadata"]["name"], "uid": dep["metadata"]["uid"]}
                self._put_secret(secret_ns, secret_name,
                                 {"tls.crt": bundle["cert"], "tls.key": bundle["key"]},
                                 type_="kubernetes.io/tls",
                                 labels={"managed-by": "consul-k8s"}, owner=owner)
            want = base64.b64encode(bundle["ca"]).decode()
            webhooks = self._api().sanitize_for_serialization(mwc).get("webhooks") or []
            if any((w.get("clientConfig") or {}).get("caBundle") != want for w in webhooks):
                patch = [{"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle",
                          "value": want} for i in range(len(webhooks))]
                patch.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                                 "value": mwc.metadata.resource_version})
                try:
                    admreg.patch_mutating_webhook_configuration(
                        name, patch, _request_timeout=REQUEST_TIMEOUT)
                    self.log.info("patched caBundle of %d webhook(s) in "
                                  "MutatingWebhookConfiguration %s", len(webhooks), name)
                except ApiException as e:
                    if e.status not in (409, 422):  # changed under us: next round
                        raise

    # ---- HTTPS admission server --------------------------------------------------------------

    def _start_admission_server(self) -> None:
        harness = self
        placeholder_ca, placeholder_key = make_ca("harness placeholder", days=1)
        base = _server_context(*issue_cert(placeholder_ca, placeholder_key, "placeholder",
                                           ["placeholder.invalid"], days=1))

        def pick(sock: ssl.SSLObject, server_name: Optional[str], _ctx) -> Optional[int]:
            with harness._lock:
                ctx = harness._sni.get(server_name or "")
            if ctx is None:
                harness.log.warning("TLS handshake for unknown server name %r", server_name)
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            sock.context = ctx
            try:
                sock.harness_server_name = server_name  # read by the handler
            except AttributeError:
                pass
            return None

        base.sni_callback = pick

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def finish_request(self, request, client_address):
                request.settimeout(30)
                with harness._lock:
                    harness._open_sockets.add(request)
                try:
                    try:
                        tls = base.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError) as e:
                        harness.log.warning("admission TLS handshake failed: %r", e)
                        return
                    self.RequestHandlerClass(tls, client_address, self)
                finally:
                    with harness._lock:
                        harness._open_sockets.discard(request)

            def handle_error(self, request, client_address):
                harness.log.warning("admission connection error", exc_info=True)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, fmt, *args):
                harness.log.debug("admission: " + fmt, *args)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server_name = getattr(self.connection, "harness_server_name", None)
                code, out = harness._admission(self.path, body, server_name)
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # readiness-style probe
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = Server(("127.0.0.1", 0), Handler)
        self.admission_port = self._http.server_address[1]
        self._threads.append(self._spawn("admission-https", self._http.serve_forever, 0.5))

    def _admission(self, path: str, body: bytes, server_name: Optional[str]
                   ) -> tuple[int, dict]:
        try:
            review = json.loads(body)
            req = review["request"]
        except (ValueError, KeyError, TypeError) as e:
            self._error("admission: bad AdmissionReview on %s: %r", path, e)
            return 400, {"error": f"bad AdmissionReview: {e}"}
        kind = req.get("kind") or {}
        obj = req.get("object") or req.get("oldObject") or {}
        name = req.get("name") or (obj.get("metadata") or {}).get("name") or ""
        namespace = req.get("namespace") or ""
        allowed, message = True, ""
        if kind.get("kind") == "ProxyDefaults" and req.get("operation") == "CREATE":
            allowed, message = self._validate_proxydefaults(name)
        service = ""
        if server_name and server_name.endswith(".svc"):
            svc, _, ns = server_name[:-4].partition(".")
            service = f"{ns}/{svc}"
        rec = AdmissionRecord(path=path.split("?", 1)[0], service=service, kind=kind.get("kind", ""),
                              group=kind.get("group", ""), version=kind.get("version", ""),
                              name=name, namespace=namespace,
                              operation=req.get("operation", ""), uid=req.get("uid", ""),
                              allowed=allowed, message=message)
        with self._lock:
            self._admissions.append(rec)
            self._changed.notify_all()
        self.log.info("admission %s %s %s/%s via %s: %s", rec.operation, rec.kind, namespace,
                      name, path, "allowed" if allowed else f"denied: {message}")
        response: dict = {"uid": req.get("uid", ""), "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 400, "message": message, "status": "Failure"}
        return 200, {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                     "kind": "AdmissionReview", "response": response}

    def _validate_proxydefaults(self, name: str) -> tuple[bool, str]:
        """Upstream's ProxyDefaults webhook on CREATE (control-plane/api/v1alpha1)."""
        if name != "global":
            return False, 'proxydefaults resource name must be "global"'
        try:
            existing = self.custom().list_cluster_custom_object(
                "consul.hashicorp.com", "v1alpha1", "proxydefaults",
                _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            return False, f"error listing proxydefaults: {e.reason}"
        if existing.get("items"):
            return False, ("proxydefaults resource already defined - only one global entry "
                           "is supported")
        return True, ""

    # ---- HTTP CONNECT proxy on the apiserver's egress socket ---------------------------------

    def _start_egress_proxy(self) -> None:
        path = self.egress_socket
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        os.chmod(path, 0o600)
        srv.listen(64)
        srv.settimeout(0.5)
        self._unix = srv
        self._threads.append(self._spawn("egress-accept", self._accept_loop, srv))

    def _accept_loop(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self._spawn("egress-conn", self._tunnel, conn)

    def _route(self, host: str, port: int) -> Optional[tuple[str, str]]:
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        with self._lock:
            return self._routes.get((host, port))

    def _tunnel(self, conn: socket.socket) -> None:
        upstream: Optional[socket.socket] = None
        with self._lock:
            self._open_sockets.add(conn)
        try:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
                if len(head) > 16384:
                    conn.sendall(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
                    return
            header, _, rest = head.partition(b"\r\n\r\n")
            request_line = header.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3 or parts[0] != "CONNECT" or ":" not in parts[1]:
                self._error("egress proxy: unexpected request %r", request_line)
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port_s = parts[1].rpartition(":")
            route = self._route(host, int(port_s)) if port_s.isdigit() else None
            if route is None:
                msg = (f"no simulated workload serves {parts[1]} (only Services selecting a "
                       f"webhook-serving Deployment are served)").encode()
                self.log.warning("egress proxy: refusing CONNECT %s", parts[1])
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: " + str(len(msg)).encode() + b"\r\n\r\n" + msg)
                return
            upstream = socket.create_connection(("127.0.0.1", self.admission_port), timeout=5)
            with self._lock:
                self._open_sockets.add(upstream)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.log.debug("egress proxy: CONNECT %s -> %s/%s", parts[1], *route)
            if rest:
                upstream.sendall(rest)
            self._relay(conn, upstream)
        except OSError as e:
            if not self._stop.is_set():
                self.log.info("egress proxy connection ended: %r", e)
        finally:
            for s in (conn, upstream):
                if s is not None:
                    with self._lock:
                        self._open_sockets.discard(s)
                    try:
                        s.close()
                    except OSError:
                        pass

    def _relay(self, a: socket.socket, b: socket.socket, idle_timeout: float = 300.0) -> None:
        a.setblocking(False)
        b.setblocking(False)
        peer = {a: b, b: a}
        open_reads = {a, b}
        sel = selectors.DefaultSelector()
        for s in (a, b):
            sel.register(s, selectors.EVENT_READ)
        last = time.monotonic()
        try:
            while open_reads and not self._stop.is_set():
                events = sel.select(timeout=0.5)
                if not events:
                    if time.monotonic() - last > idle_timeout:
                        return
                    continue
                last = time.monotonic()
                for key, _ in events:
                    src = key.fileobj
                    try:
                        data = src.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    if not data:
                        sel.unregister(src)
                        open_reads.discard(src)
                        try:
                            peer[src].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    dst = peer[src]
                    dst.setblocking(True)
                    dst.settimeout(30)
                    try:
                        dst.sendall(data)
                    finally:
                        dst.setblocking(False)
        finally:
            sel.close()


class _StopNow(Exception):
    """The harness is stopping: abandon the job without touching it."""


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class _PodContext:
    """Reads files the way the Job's container would see them: through its volumeMounts."""

    def __init__(self, harness: ClusterHarness, ns: str, owner: str, pod_spec: dict,
                 container: dict, env: dict[str, str]):
        self.h, self.ns, self.owner = harness, ns, owner
        self.pod_spec, self.container, self.env = pod_spec, container, env

    def read_file(self, path: str) -> bytes:
        mounts = sorted(self.container.get("volumeMounts") or [],
                        key=lambda m: len(m["mountPath"]), reverse=True)
        for m in mounts:
            mount = m["mountPath"].rstrip("/")
            if path != mount and not path.startswith(mount + "/"):
                continue
            rel = path[len(mount):].lstrip("/")
            if m.get("subPath"):
                rel = m["subPath"] if not rel else f"{m['subPath']}/{rel}"
            vol = next((v for v in self.pod_spec.get("volumes") or []
                        if v["name"] == m["name"]), None)
            if vol is None:
                raise HarnessError(f"volumeMount {m['name']} has no volume")
            if "secret" in vol or "configMap" in vol:
                kind = "secret" if "secret" in vol else "configmap"
                src = vol.get("secret") or vol.get("configMap")
                obj_name = src.get("secretName") or src.get("name")
                data = self.h._read_data(kind, self.ns, obj_name)
                if data is None:
                    if src.get("optional"):
                        raise HarnessError(f"{path}: optional {kind} {obj_name} is missing")
                    raise _NotYet(f"{kind} {self.ns}/{obj_name} (volume {vol['name']}) does "
                                  f"not exist: the pod would stay ContainerCreating")
                items = src.get("items")
                if items:
                    item = next((i for i in items if i["path"] == rel), None)
                    if item is None:
                        raise HarnessError(f"{path}: no item of volume {vol['name']} is {rel}")
                    key = item["key"]
                else:
                    key = rel
                if key not in data:
                    raise _NotYet(f"{kind} {self.ns}/{obj_name} has no key {key!r}")
                return data[key]
            raise HarnessError(f"{path}: volume {vol['name']} is not a secret or configMap "
                               f"({', '.join(k for k in vol if k != 'name')}), cannot simulate")
        raise HarnessError(f"{path} is on no mounted volume of container "
                           f"{self.container['name']}")
