"""``ClusterHarness``: lifecycle, API clients, records; the players live in the sibling modules.

REAL: everything goes through the cluster's real kube-apiserver with the ``kubernetes``
client. Two kinds of credentials: the kubeconfig's admin identity, used only where the harness
plays a kubelet or a controller (status subresources, ReplicaSets, LoadBalancer status,
Endpoints, deletions, reading Secrets for pod volumes), and per-ServiceAccount bearer tokens
(TokenRequest), used for everything a chart's own process would do (Job side effects, the
webhook-cert-manager, the injector's ProxyDefaults lookups): the real RBAC of the chart decides
(``sa_client``).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
from typing import Callable, Optional
from urllib.parse import urlparse

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .config_entries import ConfigEntries
from .deletion import Deletions
from .errors import TRANSPORT_ERRORS, HarnessError
from .faults import Faults
from .jobs import Jobs
from .loadbalancer import ApiserverEndpoints, LoadBalancers
from .records import AdmissionRecord, JobRecord
from .webhooks import Webhooks
from .workloads import Workloads

__all__ = ["ClusterHarness"]

log = logging.getLogger("harness")
REQUEST_TIMEOUT = (5, 30)
_TOKEN_SECONDS = 3600
_DOC_RANGES = [ipaddress.ip_network(n) for n in
               ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]  # RFC 5737


class ClusterHarness:
    """Plays a cluster's kubelets and controllers for the Consul chart. Arguments:

    - ``kubeconfig_path``, ``context``: the cluster (admin credentials);
    - ``egress_socket``: the apiserver's egress Unix socket (see ``webhooks.py``);
    - ``lb_ip``: the loopback address every LoadBalancer Service gets as ingress;
    - ``apiserver_endpoint_ip``: the address written into ``default/kubernetes`` Endpoints,
      an RFC 5737 documentation address nothing ever dials (see ``loadbalancer.py``);
    - ``node_ip``: the PLACEHOLDER host/pod IP of the one pretend node (fieldRefs, NodePort
      gateway addresses);
    - ``poll_interval``, ``job_timeout``: reconcile period; how long a Job waits for what it
      needs before it fails.

    Use as a context manager (or ``start()``/``stop()``). For tests: ``admissions()``,
    ``wait_for_admission()``, ``jobs()``, ``wait_for_job()``, ``unready()``,
    ``wait_until_ready()``, ``errors()``, ``clear_errors()``, ``fail_jobs()``/``clear_faults()``
    (``faults.py``), and the admin API clients
    ``core()``, ``apps()``, ``batch()``, ``admreg()``, ``custom()``.
    """

    def __init__(self, kubeconfig_path: os.PathLike | str, context: str,
                 egress_socket: os.PathLike | str, *, lb_ip: str = "127.0.0.2",
                 apiserver_endpoint_ip: str = "192.0.2.10", node_ip: str = "127.0.0.1",
                 poll_interval: float = 1.0, job_timeout: float = 300.0,
                 logger: Optional[logging.Logger] = None):
        if not ipaddress.ip_address(lb_ip).is_loopback:
            raise ValueError(f"lb_ip must be a loopback address, got {lb_ip}")
        if not ipaddress.ip_address(node_ip).is_loopback:
            raise ValueError(f"node_ip must be a loopback address, got {node_ip}")
        if not any(ipaddress.ip_address(apiserver_endpoint_ip) in n for n in _DOC_RANGES):
            raise ValueError("apiserver_endpoint_ip must be an RFC 5737 documentation address "
                             f"(never dialled), got {apiserver_endpoint_ip}")
        self.kubeconfig_path = str(kubeconfig_path)
        self.context = context
        self.egress_socket = str(egress_socket)
        self.lb_ip = lb_ip
        self.apiserver_endpoint_ip = apiserver_endpoint_ip
        self.node_ip = node_ip
        self.node_name = "harness-node"
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.log = logger or log.getChild(context)

        self._cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig_path, context=context,
                                client_configuration=self._cfg, persist_config=False)
        self.apiserver_port = urlparse(self._cfg.host).port or 443
        self._local = threading.local()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._threads: list[threading.Thread] = []
        self._tokens: dict[tuple[str, str, str], tuple[float, client.Configuration]] = {}
        self._admissions: list[AdmissionRecord] = []
        self._jobs: list[JobRecord] = []
        self._errors: list[str] = []
        self._service_ip: Optional[str] = None

        self.workloads = Workloads(self)
        self.jobs_player = Jobs(self)
        self.webhooks = Webhooks(self)
        self.config_entries = ConfigEntries(self)
        self.load_balancers = LoadBalancers(self)
        self.endpoints = ApiserverEndpoints(self)
        self.deletions = Deletions(self)
        self.faults = Faults()
        self._started = False

    # ---- clients -----------------------------------------------------------------------------

    def api(self) -> client.ApiClient:
        """The admin ApiClient of this thread (urllib3 pools are per client)."""
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = client.ApiClient(configuration=self._cfg)
        return api

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api())

    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api())

    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api())

    def admreg(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self.api())

    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api())

    def sa_client(self, ns: str, service_account: str) -> client.ApiClient:
        """An ApiClient authenticated as ServiceAccount ``ns/service_account`` (a bound token
        from the TokenRequest API, renewed after half its life). A missing ServiceAccount is
        the ApiException 404 of the read. Tokens are bound to the ServiceAccount's uid, and Helm
        re-creates hook ServiceAccounts on upgrade, so the cache is keyed by uid too."""
        uid = self.core().read_namespaced_service_account(
            service_account, ns, _request_timeout=REQUEST_TIMEOUT).metadata.uid
        key = (ns, service_account, uid)
        with self.lock:
            cached = self._tokens.get(key)
        if cached is None or time.monotonic() - cached[0] > _TOKEN_SECONDS / 2:
            tr = self.core().create_namespaced_service_account_token(
                service_account, ns, {"spec": {"expirationSeconds": _TOKEN_SECONDS}},
                _request_timeout=REQUEST_TIMEOUT)
            cfg = client.Configuration()
            cfg.host = self._cfg.host
            cfg.ssl_ca_cert = self._cfg.ssl_ca_cert
            cfg.verify_ssl = self._cfg.verify_ssl
            cfg.api_key = {"authorization": f"Bearer {tr.status.token}"}
            cached = (time.monotonic(), cfg)
            with self.lock:
                self._tokens[key] = cached
        return client.ApiClient(configuration=cached[1])

    def apiserver_ca(self) -> bytes:
        """The cluster CA the kubeconfig trusts (what a token Secret's ``ca.crt`` holds)."""
        with open(self._cfg.ssl_ca_cert, "rb") as f:
            return f.read()

    def token_review(self, url: str, token: str, ca_pem: bytes) -> tuple[int, dict]:
        """(status, answer) of a TokenReview of ``token``, authenticated by it, at ``url``, as
        a client outside the cluster makes it: TLS verified against ``ca_pem`` for the URL's
        host. Only this cluster's API server answers, at its Endpoints address
        (``https://<apiserver_endpoint_ip>:<port>``, reached at its real loopback address);
        any other URL is a HarnessError, never dialled."""
        target = urlparse(url)
        own = (self.apiserver_endpoint_ip, self.apiserver_port)
        if target.scheme != "https" or (target.hostname, target.port or 443) != own:
            raise HarnessError(f"{url} is not this cluster's API server (https://{own[0]}:"
                               f"{own[1]}); the harness dials no other address")
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                           "spec": {"token": token}}).encode()
        real = urlparse(self._cfg.host)
        with socket.create_connection((real.hostname, real.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=target.hostname) as tls:
            tls.sendall(b"POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\n"
                        + f"Host: {target.netloc}\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                          f"Connection: close\r\n\r\n".encode() + body)
            response = http.client.HTTPResponse(tls)
            response.begin()
            answer = response.read()
        try:
            return response.status, json.loads(answer)
        except ValueError:
            return response.status, {"message": answer[:200].decode(errors="replace")}

    def kubernetes_service_ip(self) -> str:
        """ClusterIP of ``default/kubernetes`` (what pods get as KUBERNETES_SERVICE_HOST)."""
        if self._service_ip is None:
            self._service_ip = self.core().read_namespaced_service(
                "kubernetes", "default", _request_timeout=REQUEST_TIMEOUT).spec.cluster_ip
        return self._service_ip

    # ---- faults (faults.py) ----------------------------------------------------------------

    def fail_jobs(self, names) -> None:
        """Fail every Job of these names picked up from now on (BackoffLimitExceeded)."""
        self.faults.fail_jobs(names)

    def hold_workloads(self, names) -> None:
        """Keep these Deployments and StatefulSets unready (Helm's wait then waits) until cleared."""
        self.faults.hold_workloads(names)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---- records -----------------------------------------------------------------------------

    def error(self, msg: str, *args) -> None:
        text = msg % args if args else msg
        self.log.error(text)
        with self.lock:
            self._errors.append(text)
            self.changed.notify_all()

    def error_once(self, msg: str, *args) -> None:
        """An error a polling loop would hit on every pass: recorded once."""
        text = msg % args if args else msg
        with self.lock:
            seen = text in self._errors
        if not seen:
            self.error(text)

    def record_admission(self, rec: AdmissionRecord) -> None:
        with self.lock:
            self._admissions.append(rec)
            self.changed.notify_all()

    def record_job(self, rec: JobRecord) -> None:
        with self.lock:
            self._jobs.append(rec)
            self.changed.notify_all()

    def admissions(self, kind: Optional[str] = None) -> list[AdmissionRecord]:
        with self.lock:
            return [a for a in self._admissions if kind is None or a.kind == kind]

    def wait_for_admission(self, kind: str, name: str, timeout: float = 30.0
                           ) -> Optional[AdmissionRecord]:
        return self._wait_for(lambda: self._admissions,
                              lambda a: a.kind == kind and a.name == name, timeout)

    def jobs(self) -> list[JobRecord]:
        with self.lock:
            return list(self._jobs)

    def wait_for_job(self, name: str, timeout: float = 60.0) -> Optional[JobRecord]:
        return self._wait_for(lambda: self._jobs, lambda j: j.name == name, timeout)

    def _wait_for(self, records: Callable[[], list], match: Callable, timeout: float):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                found = next((r for r in records() if match(r)), None)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self.changed.wait(min(left, 1.0))

    def errors(self) -> list[str]:
        with self.lock:
            return list(self._errors)

    def clear_errors(self, containing: str) -> list[str]:
        """Forget the errors that mention ``containing`` (a test's expected failure) and
        return them."""
        with self.lock:
            gone = [e for e in self._errors if containing in e]
            self._errors = [e for e in self._errors if containing not in e]
        return gone

    def unready(self) -> dict[str, str]:
        """``{"<Kind>/<namespace>/<name>": why}`` for every workload that is not ready."""
        return self.workloads.unready()

    def wait_until_ready(self, timeout: float = 60.0) -> dict[str, str]:
        """Wait until no workload is unready; returns what is still unready at the end."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.unready()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    # ---- lifecycle ---------------------------------------------------------------------------

    def spawn(self, name: str, target: Callable, *args) -> threading.Thread:
        def run():
            try:
                target(*args)
            except Exception as e:  # a thread must never die silently
                self.error("thread %s crashed: %r", name, e)
                self.log.exception("thread %s crashed", name)
        t = threading.Thread(target=run, name=f"harness-{self.context}-{name}", daemon=True)
        t.start()
        return t

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True if the harness is stopping."""
        return self.stopping.wait(seconds)

    def poll_loop(self, name: str, step: Callable[[], None],
                  wake: Optional[threading.Event] = None) -> None:
        """Run ``step`` (one ``run_pass``) every ``poll_interval`` (or when ``wake`` is set)
        until stopped."""
        while not self.stopping.is_set():
            self.run_pass(name, step)
            if wake is None:
                self.sleep(self.poll_interval)
            else:
                wake.wait(self.poll_interval)
                wake.clear()

    def run_pass(self, name: str, step: Callable[[], None]) -> None:
        """One pass of a loop: a 409 is a race with another writer (the next pass sees it), a
        dropped connection is retried next pass, anything else (other API errors, a harness
        bug) is recorded once in ``errors()``, where the test sees it."""
        try:
            step()
        except ApiException as e:
            if self.stopping.is_set():
                return
            if e.status == 409:
                self.log.info("%s: conflict, retrying: %s", name, e.reason)
            else:
                self.error_once("%s: %s %s", name, e.status, e.reason)
        except TRANSPORT_ERRORS as e:
            if not self.stopping.is_set():
                self.log.warning("%s interrupted: %r", name, e)
        except Exception as e:
            if not self.stopping.is_set():
                self.error_once("%s: %r", name, e)
                self.log.exception("%s failed", name)

    def start(self) -> "ClusterHarness":
        if self._started:
            return self
        self.stopping.clear()
        self._threads = self.webhooks.start()
        self._threads += [
            self.spawn("jobs", self.jobs_player.watch),
            self.spawn("workloads", self.poll_loop, "workloads", self.workloads.reconcile),
            self.spawn("load-balancers", self.poll_loop, "load balancers",
                       self.load_balancers.reconcile),
            self.spawn("endpoints", self.poll_loop, "apiserver endpoints",
                       self.endpoints.reconcile),
            self.spawn("config-entries", self.poll_loop, "config entries",
                       self.config_entries.reconcile),
            self.spawn("deletion", self.deletions.loop),
        ]
        self._started = True
        self.log.info("harness started (egress socket %s)", self.egress_socket)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if not self._started:
            return
        self.stopping.set()
        self.webhooks.stop()
        deadline = time.monotonic() + timeout
        for t in self._threads + self.jobs_player.threads():
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self.log.warning("thread %s did not stop within %.0fs", t.name, timeout)
        self._started = False
        self.log.info("harness stopped")

    def __enter__(self) -> "ClusterHarness":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
