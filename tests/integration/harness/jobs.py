"""Jobs: what the kubelet, the job controller and the Job's own command would do.

PLAYED, fail closed. Every unsuspended, unfinished Job in any namespace is "run":

1. Its pod template must be of a chart line of ``chart_table`` (by image), and every statement
   its containers run must be a command of that line's ``jobs`` table, with accepted flags and
   positional count, or one of its ``shell_noops``. Anything else FAILS the Job at once with
   the command in the message (and in ``errors()``): the harness never completes a Job whose
   effect it does not know.
2. Its pod must be able to start (``pod.blockers``: Secrets/ConfigMaps and their keys); it
   waits up to ``job_timeout`` for that, then fails naming what is missing.
3. Each command's side effect is performed, in order, AS THE JOB'S SERVICEACCOUNT (a
   TokenRequest token: the chart's real RBAC decides; a 403 fails the Job with its message).
   What stands in for Consul (the datacenter, the gateway's registered address) is read by the
   harness itself. Side effects (re-implemented from hashicorp/consul-k8s
   ``control-plane/subcommand/*``):

   - ``tls-init``: without ``-ca``/``-key`` reuses or creates the ``<prefix>-ca-cert`` /
     ``<prefix>-ca-key`` Secrets (a new ECDSA "Consul Agent CA"); with them (a secondary: the
     federation secret's CA, mounted) creates no CA secret. Then writes
     ``<prefix>-server-cert`` (kubernetes.io/tls) for ``server.<dc>.<domain>``, localhost,
     127.0.0.1 and the ``-additional-*`` SANs, signed by that CA.
   - ``server-acl-init``: Consul's ACL system does not exist here, so tokens are random UUIDs.
     Without ``-acl-replication-token-file`` (the primary) it stores the bootstrap token in
     ``<prefix>-bootstrap-acl-token``; with ``-create-acl-replication-token`` the replication
     token in ``<prefix>-acl-replication-acl-token`` (both key ``token``); with
     ``-acl-replication-token-file`` (a secondary) it reads that mounted file, which must not be
     empty. A secondary (its servers' ``primary_datacenter`` is another datacenter) without it
     FAILS (Consul bootstraps ACLs only in the primary). A secondary's ``-auth-method-host`` is
     called as the primary's servers will call it: a TokenReview there with the auth method's
     token must come back authenticated (``_review_at_auth_method_host``). With dataplanes
     (chart >= 1.0) no other Secret is referenced by the chart's pods.
   - ``create-federation-secret``: writes ``<prefix>-federation`` (``caCert``/``caKey`` from
     the mounted files, ``replicationToken`` from the replication Secret with
     ``-export-replication-token``, ``gossipEncryptionKey`` from ``-gossip-key-file``,
     ``serverConfigJSON`` ``{"primary_datacenter", "primary_gateways"}``). Upstream asks
     Consul for the datacenter and the gateway's ``wan`` address; here the datacenter is the
     running server StatefulSet's (``-datacenter`` or its config ``datacenter``) and the
     address is the one the endpoints controller registers for a RUNNING mesh gateway
     Deployment (its ``gateway-wan-address-*`` annotations: ``Service`` -> the LoadBalancer
     ingress / ClusterIP / node IP for NodePort, ``NodeIP`` -> ``node_ip``, ``NodeName`` ->
     the node name, ``Static`` -> the static value). It retries while there is none.
   - ``delete-completed-job``: waits until the named Job is Complete, then deletes it.
   - ``gateway-resources``: creates or updates the GatewayClassConfig (consul.hashicorp.com)
     and GatewayClass (gateway.networking.k8s.io/v1beta1) named by its flags, with
     ``resources.json`` from its mounted config. Nothing here reads them; they exercise the
     Job's RBAC and are what ``gateway-cleanup`` removes. A ``config.yaml`` (v2 gateway
     resources) is not played: the Job fails.
   - ``gateway-cleanup`` / ``gateway-cleanup-custom``: delete that GatewayClassConfig, then the
     GatewayClass (``customgatewayclasses`` for -custom, whose CRD the charts do not ship:
     "not found" there is "nothing to delete", as upstream).
   - ``curl -X DELETE https://$KUBERNETES_SERVICE_HOST/.../secrets/<name>`` with the pod's
     ServiceAccount token (``tls-init-cleanup``): deletes the Secret as that ServiceAccount.
     STRICTER than real curl, which exits 0 on any HTTP status: a 403 fails the Job.

A fault switched on with ``ClusterHarness.fail_jobs`` (``faults.py``) fails the named Jobs
before step 1, with no side effect.

4. The Job's status is set as the job controller would: ``startTime``/``active`` first, then
   ``succeeded`` + ``completionTime`` + ``SuccessCriteriaMet``/``Complete``, or ``failed`` =
   backoffLimit + 1 with ``FailureTarget``/``Failed`` carrying the message.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import ssl
import threading
import time
import uuid
from typing import TYPE_CHECKING, Callable, Optional

import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from localcluster.pki import issue_cert, make_ca

from .chart_table import CONSUL_SERVER, CONTROL_PLANE, MESH_GATEWAY
from .commands import argvs, check_invocation, command_of, flag, flag_bool, plan_pod, run_script
from .errors import TRANSPORT_ERRORS, HarnessError, NotYet, StopNow
from .faults import BACKOFF_LIMIT_MESSAGE
from .pod import PodView, blockers, read_data
from .records import JobRecord

if TYPE_CHECKING:
    from .core import ClusterHarness

__all__ = ["Jobs", "plan_job"]

REQUEST_TIMEOUT = (5, 30)
_RETRY = 1.0
_CLI_LABEL = {"managed-by": "consul-k8s"}
_SECRET_URL = re.compile(r"^https://[^/]+/api/v1/namespaces/([^/]+)/secrets/([^/?\s]+)$")
_SA_TOKEN_HEADER = "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"
_GW_DEFAULT_RESOURCES = {"requests": {"memory": "100Mi", "cpu": "100m"},
                         "limits": {"memory": "100Mi", "cpu": "100m"}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def plan_job(pod_spec: dict):
    """(chart line, [(container, command, argv)]) of what the Job runs, or HarnessError
    for anything the table does not know."""
    try:
        return plan_pod(pod_spec, lambda line: line.jobs, lambda line: line.shell_noops)
    except ValueError as e:
        raise HarnessError(str(e)) from None


class _Run:
    """One command of one Job container: what a handler gets."""

    def __init__(self, jobs: "Jobs", pod: PodView, flags: dict, positionals: list, argv: list,
                 sa: client.ApiClient):
        self.h, self.pod = jobs.h, pod
        self.flags, self.positionals, self.argv = flags, positionals, argv
        self.sa = sa

    def f(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return flag(self.flags, name, default)

    def need(self, *names: str) -> list[str]:
        values = [self.f(n) for n in names]
        for n, v in zip(names, values):
            if not v:
                raise HarnessError(f"-{n} must be set")
        return values


class Jobs:
    def __init__(self, h: "ClusterHarness"):
        self.h = h
        self._threads: dict[str, threading.Thread] = {}
        self.handlers: dict[str, Callable[[_Run], None]] = {
            f"{CONTROL_PLANE} tls-init": self._tls_init,
            f"{CONTROL_PLANE} server-acl-init": self._server_acl_init,
            f"{CONTROL_PLANE} create-federation-secret": self._create_federation_secret,
            f"{CONTROL_PLANE} delete-completed-job": self._delete_completed_job,
            f"{CONTROL_PLANE} gateway-resources": self._gateway_resources,
            f"{CONTROL_PLANE} gateway-cleanup": self._gateway_cleanup,
            f"{CONTROL_PLANE} gateway-cleanup-custom": self._gateway_cleanup,
            "curl": self._curl_delete,
        }

    def threads(self) -> list[threading.Thread]:
        with self.h.lock:
            return list(self._threads.values())

    # ---- watching ----------------------------------------------------------------------------

    def watch(self) -> None:
        batch = self.h.batch()
        rv: Optional[str] = None
        while not self.h.stopping.is_set():
            try:
                if rv is None:
                    jobs = batch.list_job_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT)
                    for job in jobs.items:
                        self._maybe_run(job)
                    rv = jobs.metadata.resource_version
                for ev in watch.Watch().stream(batch.list_job_for_all_namespaces,
                                               resource_version=rv, timeout_seconds=2,
                                               allow_watch_bookmarks=True,
                                               _request_timeout=(5, 10)):
                    if ev["type"] == "ERROR":
                        rv = None
                        break
                    rv = ev["object"].metadata.resource_version
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self._maybe_run(ev["object"])
                    if self.h.stopping.is_set():
                        break
            except (ApiException, *TRANSPORT_ERRORS) as e:  # 410 Gone, reset, timeout: re-list
                if not self.h.stopping.is_set():
                    self.h.log.info("job watch interrupted (%r); re-listing", e)
                    rv = None
                    self.h.sleep(_RETRY)
            except Exception as e:  # a harness bug: the test sees it, the watch goes on
                if not self.h.stopping.is_set():
                    self.h.error_once("job watch: %r", e)
                    self.h.log.exception("job watch failed")
                    rv = None
                    self.h.sleep(_RETRY)

    @staticmethod
    def _finished(job) -> bool:
        return any(c.type in ("Complete", "Failed") and c.status == "True"
                   for c in (job.status.conditions or []) if job.status)

    def _maybe_run(self, job) -> None:
        if self._finished(job) or job.metadata.deletion_timestamp or job.spec.suspend:
            return
        with self.h.lock:
            if job.metadata.uid in self._threads or self.h.stopping.is_set():
                return
            self._threads[job.metadata.uid] = self.h.spawn(
                f"job-{job.metadata.name}", self._run, job.metadata.namespace,
                job.metadata.name, job.metadata.uid)

    # ---- running one Job ---------------------------------------------------------------------

    def _run(self, ns: str, name: str, uid: str) -> None:
        try:
            job = self.h.batch().read_namespaced_job(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                self.h.error("job %s/%s: cannot read: %s", ns, name, e.reason)
            return
        if job.metadata.uid != uid or self._finished(job):
            return
        raw = self.h.api().sanitize_for_serialization(job)
        if not (job.status and job.status.start_time):
            self._patch_status(ns, name, {"startTime": _now(), "active": 1})
        done: list[str] = []
        injected = self.h.faults.job_failure(name)
        if injected is not None:  # faults.py: fails before any side effect, as Kubernetes would
            self._fail(raw, injected, done, condition_message=BACKOFF_LIMIT_MESSAGE)
            return
        try:
            self._perform(raw, done)
        except HarnessError as e:
            self._fail(raw, str(e), done)
            return
        except StopNow:
            return
        except Exception as e:
            self.h.log.exception("job %s/%s: harness crashed", ns, name)
            self._fail(raw, f"harness error: {e!r}", done)
            return
        self._complete(raw, done)

    def _perform(self, job: dict, done: list[str]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        pod_spec = job["spec"]["template"]["spec"]
        line, plan = plan_job(pod_spec)
        deadline = time.monotonic() + self.h.job_timeout
        pod_name = f"{name}-harness"

        def can_start():
            why = blockers(self.h, ns, pod_spec)
            if why:
                raise NotYet("; ".join(why))
        self._retry(deadline, f"{ns}/{name}: pod start", can_start)
        sa_name = pod_spec.get("serviceAccountName") or "default"
        try:
            sa = self.h.sa_client(ns, sa_name)
        except ApiException as e:
            raise HarnessError(f"token for serviceaccount {ns}/{sa_name}: {e.status} "
                               f"{e.reason}") from e
        seen: set[int] = set()
        for container, cmd, _ in plan:
            if id(container) in seen:
                continue
            seen.add(id(container))
            pod = PodView(self.h, ns, pod_name, pod_spec, container)
            env = self._retry(deadline, f"{ns}/{name}: env", pod.env)
            for argv in run_script(container, env)[0]:
                cmd = command_of(argv)
                if cmd not in self.handlers:
                    continue
                flags, positionals = check_invocation(cmd, line.jobs[cmd], argv)
                run = _Run(self, pod, flags, positionals, argv, sa)
                self.h.log.info("job %s/%s: playing %s", ns, name, cmd)
                try:
                    self._retry(deadline, f"{ns}/{name}: {cmd}",
                                lambda: self.handlers[cmd](run))
                except ApiException as e:
                    raise HarnessError(f"{cmd}: {e.status} {e.reason}: "
                                       f"{_api_message(e)}") from e
                except HarnessError as e:
                    raise HarnessError(f"{cmd}: {e}") from e
                done.append(cmd)

    def _retry(self, deadline: float, what: str, fn: Callable):
        last = None
        while True:
            try:
                return fn()
            except NotYet as e:
                if str(e) != last:
                    self.h.log.info("%s: waiting: %s", what, e)
                    last = str(e)
            if time.monotonic() > deadline:
                raise HarnessError(f"{what}: gave up after {self.h.job_timeout:.0f}s: {last}")
            if self.h.sleep(_RETRY):
                raise StopNow()

    # ---- status ------------------------------------------------------------------------------

    def _patch_status(self, ns: str, name: str, status: dict) -> bool:
        try:
            self.h.batch().patch_namespaced_job_status(name, ns, {"status": status},
                                                       _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as e:
            if e.status == 404:
                self.h.log.info("job %s/%s disappeared before its status was set", ns, name)
                return False
            raise

    def _complete(self, job: dict, done: list[str]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        now = _now()
        cond = lambda t: {"type": t, "status": "True", "reason": "CompletionsReached",  # noqa
                          "message": "Reached expected number of succeeded pods",
                          "lastProbeTime": now, "lastTransitionTime": now}
        status = {"active": 0, "ready": 0, "succeeded": job["spec"].get("completions") or 1,
                  "completionTime": now,
                  "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}
        try:
            ok = self._patch_status(ns, name, status)
        except ApiException as e:
            self.h.error("job %s/%s: status patch rejected: %s", ns, name, e.body)
            return
        if ok:
            self.h.log.info("job %s/%s complete (%s)", ns, name, ", ".join(done) or "-")
            self.h.record_job(JobRecord(ns, name, done, "complete"))

    def _fail(self, job: dict, message: str, done: list[str],
              condition_message: Optional[str] = None) -> None:
        """Fail the Job; with ``condition_message`` (an injected fault) the conditions carry
        it as the job controller words it, and the failure is not a harness error."""
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        if condition_message is None:
            self.h.error("job %s/%s failed: %s", ns, name, message)
        else:
            self.h.log.info("job %s/%s failed on purpose: %s", ns, name, message)
        now = _now()
        cond = lambda t: {"type": t, "status": "True", "reason": "BackoffLimitExceeded",  # noqa
                          "message": (condition_message or f"harness: {message}")[:1000],
                          "lastProbeTime": now, "lastTransitionTime": now}
        backoff = job["spec"].get("backoffLimit", 6)
        try:
            self._patch_status(ns, name, {"active": 0, "ready": 0, "failed": backoff + 1,
                                          "conditions": [cond("FailureTarget"),
                                                         cond("Failed")]})
        except ApiException as e:
            self.h.error("job %s/%s: failed-status patch rejected: %s", ns, name, e.body)
        self.h.record_job(JobRecord(ns, name, done, "failed", message))

    # ---- side effects, as the Job's ServiceAccount ------------------------------------------

    @staticmethod
    def _get_secret(core: client.CoreV1Api, ns: str, name: str) -> Optional[dict[str, bytes]]:
        try:
            s = core.read_namespaced_secret(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}

    def _create_secret(self, core: client.CoreV1Api, ns: str, name: str,
                       data: dict[str, bytes], type_: str = "Opaque", update: bool = False
                       ) -> None:
        """Create; with ``update``, replace it when it exists (upstream's Create, then Update
        on AlreadyExists: no read, which create-federation-secret's Role does not grant)."""
        body = {"apiVersion": "v1", "kind": "Secret", "type": type_,
                "metadata": {"name": name, "namespace": ns, "labels": dict(_CLI_LABEL)},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        try:
            core.create_namespaced_secret(ns, body, _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("created secret %s/%s (%s)", ns, name, ", ".join(sorted(data)))
        except ApiException as e:
            if e.status != 409 or not update:
                raise
            core.replace_namespaced_secret(name, ns, body, _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("updated secret %s/%s (%s)", ns, name, ", ".join(sorted(data)))

    def _tls_init(self, r: _Run) -> None:
        (prefix,) = r.need("name-prefix")
        ns = r.f("k8s-namespace", "default")
        ca_file, key_file = r.f("ca"), r.f("key")
        if bool(ca_file) != bool(key_file):
            raise HarnessError("either both -ca and -key or neither must be set")
        days = int(r.f("days", "1825"))
        if days <= 0:
            raise HarnessError("-days must be a positive integer")
        core = client.CoreV1Api(r.sa)
        if ca_file:
            ca_pem, ca_key = r.pod.read_file(ca_file), r.pod.read_file(key_file)
        else:
            cert_s = self._get_secret(core, ns, f"{prefix}-ca-cert")
            key_s = self._get_secret(core, ns, f"{prefix}-ca-key")
            if cert_s is not None and key_s is not None:
                ca_pem, ca_key = cert_s.get("tls.crt", b""), key_s.get("tls.key", b"")
            else:
                ca_pem, ca_key = make_ca("Consul Agent CA")
                self._create_secret(core, ns, f"{prefix}-ca-cert", {"tls.crt": ca_pem})
                self._create_secret(core, ns, f"{prefix}-ca-key", {"tls.key": ca_key})
        cn = f"server.{r.f('dc', 'dc1')}.{r.f('domain', 'consul')}"
        hosts = [d.strip() for d in r.flags.get("additional-dnsname", []) if d.strip()]
        hosts += [i.strip() for i in r.flags.get("additional-ipaddress", []) if i.strip()]
        hosts += [cn, "localhost", "127.0.0.1"]
        try:
            cert, key = issue_cert(ca_pem, ca_key, cn, hosts, days=days)
        except ValueError as e:
            raise HarnessError(f"cannot use the CA: {e}") from e
        data = {"tls.crt": cert, "tls.key": key}
        name = f"{prefix}-server-cert"
        try:
            cur = core.read_namespaced_secret(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise
            self._create_secret(core, ns, name, data, type_="kubernetes.io/tls")
            return
        cur.data = {k: base64.b64encode(v).decode() for k, v in data.items()}
        cur.metadata.labels = {**(cur.metadata.labels or {}), **_CLI_LABEL}
        core.replace_namespaced_secret(name, ns, cur, _request_timeout=REQUEST_TIMEOUT)

    def _server_acl_init(self, r: _Run) -> None:
        prefix, ns = r.need("resource-prefix", "k8s-namespace")
        core = client.CoreV1Api(r.sa)
        datacenter, primary = self._server_datacenters(ns)
        secondary = primary not in ("", datacenter)
        replication_file = r.f("acl-replication-token-file")
        if replication_file:
            if not r.pod.read_file(replication_file).strip():
                raise HarnessError(f"{replication_file} is empty")
        elif secondary:
            raise HarnessError(
                f"datacenter {datacenter} is a secondary of {primary} and no "
                f"-acl-replication-token-file is set, so server-acl-init would bootstrap its "
                f"servers' ACLs, which Consul allows only in the primary datacenter (it answers "
                f"'ACL support disabled')")
        elif self._get_secret(core, ns, f"{prefix}-bootstrap-acl-token") is None:
            self._create_secret(core, ns, f"{prefix}-bootstrap-acl-token",
                                {"token": str(uuid.uuid4()).encode()})
        if secondary and r.f("auth-method-host"):
            self._review_at_auth_method_host(r, core, prefix, ns, r.f("auth-method-host"))
        if flag_bool(r.flags, "create-acl-replication-token") and \
                self._get_secret(core, ns, f"{prefix}-acl-replication-acl-token") is None:
            self._create_secret(core, ns, f"{prefix}-acl-replication-acl-token",
                                {"token": str(uuid.uuid4()).encode()})

    def _review_at_auth_method_host(self, r: _Run, core: client.CoreV1Api, prefix: str,
                                    ns: str, host: str) -> None:
        """What the primary's servers do with the global auth method this creates, at every
        login from this datacenter: a TokenReview at ``host`` with the auth method's JWT (the
        ``<prefix>-auth-method`` token Secret, read as upstream reads it). Played at once: the
        host must be this cluster's API server (its Endpoints address), trusted with the
        Secret's ``ca.crt``, and must say the token is authenticated."""
        sa_name = secret_name = f"{prefix}-auth-method"
        core.read_namespaced_service_account(sa_name, ns, _request_timeout=REQUEST_TIMEOUT)
        secret = core.read_namespaced_secret(secret_name, ns, _request_timeout=REQUEST_TIMEOUT)
        if secret.type != "kubernetes.io/service-account-token":
            raise HarnessError(f"found no secret of type 'kubernetes.io/service-account-token' "
                               f"associated with the {sa_name} service account")
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        token = data.get("token", b"").decode()
        if not token:  # no token controller runs here: its token, bound to the Secret
            token = self.h.core().create_namespaced_service_account_token(
                sa_name, ns, {"spec": {"boundObjectRef": {
                    "apiVersion": "v1", "kind": "Secret", "name": secret_name,
                    "uid": secret.metadata.uid}}},
                _request_timeout=REQUEST_TIMEOUT).status.token
        ca = data.get("ca.crt") or self.h.apiserver_ca()
        try:
            status, answer = self.h.token_review(host, token, ca)
        except (ssl.SSLError, OSError) as e:
            raise HarnessError(f"-auth-method-host {host}: the TokenReview the primary's "
                               f"servers make there fails: {e}") from e
        review = answer.get("status") if status == 201 else None  # else a Status object
        if not (isinstance(review, dict) and review.get("authenticated")):
            why = answer.get("message") or (review or {}).get("error") or "not authenticated"
            raise HarnessError(f"-auth-method-host {host}: the TokenReview the primary's "
                               f"servers make with the {sa_name} token answered {status}: "
                               f"{why}")

    def _create_federation_secret(self, r: _Run) -> None:
        prefix, ns, ca_file, key_file, gw = r.need(
            "resource-prefix", "k8s-namespace", "server-ca-cert-file", "server-ca-key-file",
            "mesh-gateway-service-name")
        core = client.CoreV1Api(r.sa)
        data: dict[str, bytes] = {}
        gossip_file = r.f("gossip-key-file")
        if gossip_file:
            data["gossipEncryptionKey"] = r.pod.read_file(gossip_file)
            if not data["gossipEncryptionKey"]:
                raise HarnessError(f"gossip key file {gossip_file!r} was empty")
        data["caCert"] = r.pod.read_file(ca_file)
        data["caKey"] = r.pod.read_file(key_file)
        if flag_bool(r.flags, "export-replication-token"):
            token = self._get_secret(core, ns, f"{prefix}-acl-replication-acl-token")
            if token is None:
                raise NotYet(f"secret {prefix}-acl-replication-acl-token not yet created")
            if "token" not in token:
                raise HarnessError(f"expected key 'token' in secret "
                                   f"{prefix}-acl-replication-acl-token not set")
            data["replicationToken"] = token["token"]
        data["serverConfigJSON"] = json.dumps(
            {"primary_datacenter": self._datacenter(ns),
             "primary_gateways": self._gateway_wan_addrs(ns, gw)},
            separators=(",", ":")).encode()
        self._create_secret(core, ns, f"{prefix}-federation", data, update=True)

    def _datacenter(self, ns: str) -> str:
        """What Consul's ``/agent/self`` would say: the running servers' datacenter."""
        return self._server_datacenters(ns)[0]

    def _server_datacenters(self, ns: str) -> tuple[str, str]:
        """(datacenter, primary_datacenter) of the running servers of ``ns``, from their
        ``-datacenter`` flag or their config (primary "" when none is set)."""
        for srv in self.h.workloads.running(CONSUL_SERVER):
            if srv.namespace != ns:
                continue
            datacenter, primary = "", ""
            for argv in argvs(srv.container, {}):
                flags = [a for a in argv if a.startswith("-datacenter")]
                if flags and "=" in flags[-1]:
                    datacenter = flags[-1].split("=", 1)[1]
            for vol in srv.pod_spec.get("volumes") or []:
                cm = (vol.get("configMap") or {}).get("name")
                for value in (read_data(self.h, "configmap", ns, cm) or {}).values() if cm \
                        else ():
                    try:
                        doc = json.loads(value)
                    except ValueError:
                        continue
                    if isinstance(doc, dict):
                        datacenter = datacenter or doc.get("datacenter") or ""
                        primary = primary or doc.get("primary_datacenter") or ""
            if not datacenter:
                raise HarnessError(f"cannot tell the datacenter of {srv.kind} {ns}/{srv.name}")
            return datacenter, primary
        raise NotYet(f"no Consul server is running in namespace {ns}")

    def _gateway_wan_addrs(self, ns: str, consul_service: str) -> list[str]:
        """The ``wan`` addresses the endpoints controller's ``getWanData`` registers for the
        running mesh gateway pods of Consul service ``consul_service`` (every replica of a
        Deployment has the same one here: there is one pretend node)."""
        addrs: list[str] = []
        for gw in self.h.workloads.running(MESH_GATEWAY):
            ann = gw.obj["spec"]["template"]["metadata"].get("annotations") or {}
            if gw.namespace != ns or \
                    ann.get("consul.hashicorp.com/gateway-kind") != "mesh-gateway" or \
                    ann.get("consul.hashicorp.com/gateway-consul-service-name") != consul_service:
                continue
            source = ann.get("consul.hashicorp.com/gateway-wan-address-source")
            port = ann.get("consul.hashicorp.com/gateway-wan-port", "")
            if source == "NodeName":
                host = self.h.node_name
            elif source == "NodeIP":
                host = self.h.node_ip
            elif source == "Static":
                host = ann.get("consul.hashicorp.com/gateway-wan-address-static", "")
            elif source == "Service":
                host = self._service_host(gw)
            else:
                raise HarnessError(f"deployment {gw.name}: unknown wan address source "
                                   f"{source!r}")
            if not port.isdigit():
                raise HarnessError(f"failed to parse WAN port from value {port!r}")
            if f"{host}:{port}" not in addrs:
                addrs.append(f"{host}:{port}")
        if not addrs:
            raise NotYet(f"no running instance of mesh gateway service {consul_service!r}")
        return addrs

    def _service_host(self, gw) -> str:
        services = self.h.core().list_namespaced_service(gw.namespace,
                                                         _request_timeout=REQUEST_TIMEOUT).items
        svc = next((s for s in services if s.spec.selector and all(
            gw.pod_labels.get(k) == v for k, v in s.spec.selector.items())), None)
        if svc is None:
            raise NotYet(f"no Service selects the pods of {gw.name}")
        if svc.spec.type == "NodePort":
            return self.h.node_ip  # pod.Status.HostIP: a PLACEHOLDER, one pretend node
        if svc.spec.type == "ClusterIP":
            return svc.spec.cluster_ip
        if svc.spec.type == "LoadBalancer":
            lb = svc.status.load_balancer if svc.status else None
            for i in (lb.ingress or []) if lb else []:
                if i.ip or i.hostname:
                    return i.ip or i.hostname
            raise NotYet(f"LoadBalancer {gw.namespace}/{svc.metadata.name} has no ingress")
        raise HarnessError(f"service {svc.metadata.name}: type {svc.spec.type} not played")

    def _delete_completed_job(self, r: _Run) -> None:
        ns, (name,) = r.f("k8s-namespace", "default"), r.positionals
        batch = client.BatchV1Api(r.sa)
        try:
            job = batch.read_namespaced_job(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        if not any(c.type == "Complete" and c.status == "True"
                   for c in (job.status.conditions or [])):
            raise NotYet(f"job {ns}/{name} not complete yet")
        try:
            batch.delete_namespaced_job(name, ns, propagation_policy="Background",
                                        _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise

    _GCC = ("consul.hashicorp.com", "v1alpha1", "gatewayclassconfigs")
    _GC = ("gateway.networking.k8s.io", "v1beta1", "gatewayclasses")
    _CUSTOM_GC = ("consul.hashicorp.com", "v1alpha1", "customgatewayclasses")

    def _gateway_resources(self, r: _Run) -> None:
        cls, cfg_name, heritage, chart, app, release, component, controller = r.need(
            "gateway-class-name", "gateway-class-config-name", "heritage", "chart", "app",
            "release-name", "component", "controller-name")
        config_file = r.f("gateway-config-file-location", "/consul/config/config.yaml")
        if r.pod.has_file(config_file):
            raise HarnessError(f"{config_file}: v2 gateway resources are not played")
        res_file = r.f("resource-config-file-location", "/consul/config/resources.json")
        resources = _GW_DEFAULT_RESOURCES
        if r.pod.has_file(res_file):
            try:
                resources = json.loads(r.pod.read_file(res_file))
            except ValueError as e:
                raise HarnessError(f"Error loading api-gateway resource config: {e}") from e
        labels = {"app": app, "chart": chart, "heritage": heritage, "release": release,
                  "component": component}
        spec: dict = {"deployment": {"resources": resources},
                      "mapPrivilegedContainerPorts": int(r.f("map-privileged-container-ports",
                                                             "0"))}
        for key, fl in (("defaultInstances", "deployment-default-instances"),
                        ("maxInstances", "deployment-max-instances"),
                        ("minInstances", "deployment-min-instances")):
            if int(r.f(fl, "0")):
                spec["deployment"][key] = int(r.f(fl))
        if r.f("service-type"):
            spec["serviceType"] = r.f("service-type")
        for key, fl in (("nodeSelector", "node-selector"), ("tolerations", "tolerations")):
            if r.f(fl):
                spec[key] = yaml.safe_load(r.f(fl))
        if r.f("service-annotations"):
            spec["copyAnnotations"] = {"service": yaml.safe_load(r.f("service-annotations"))}
        if r.f("openshift-scc-name"):
            spec["openshiftSCCName"] = r.f("openshift-scc-name")
        custom = client.CustomObjectsApi(r.sa)
        self._force(custom, self._GCC, {"apiVersion": "consul.hashicorp.com/v1alpha1",
                                        "kind": "GatewayClassConfig",
                                        "metadata": {"name": cfg_name, "labels": labels},
                                        "spec": spec})
        self._force(custom, self._GC, {
            "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "GatewayClass",
            "metadata": {"name": cls, "labels": labels},
            "spec": {"controllerName": controller, "parametersRef": {
                "group": "consul.hashicorp.com", "kind": "GatewayClassConfig",
                "name": cfg_name}}})

    def _force(self, custom: client.CustomObjectsApi, gvr: tuple, body: dict) -> None:
        """upstream forceV1ClassConfig/forceV1Class: get, then update or create."""
        name = body["metadata"]["name"]
        try:
            cur = custom.get_cluster_custom_object(*gvr, name, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise
            custom.create_cluster_custom_object(*gvr, body, _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("created %s %s", body["kind"], name)
            return
        cur["spec"] = body["spec"]
        cur["metadata"]["labels"] = body["metadata"]["labels"]
        custom.replace_cluster_custom_object(*gvr, name, cur, _request_timeout=REQUEST_TIMEOUT)

    def _gateway_cleanup(self, r: _Run) -> None:
        cls, cfg_name = r.need("gateway-class-name", "gateway-class-config-name")
        custom = client.CustomObjectsApi(r.sa)
        klass = self._CUSTOM_GC if r.argv[1] == "gateway-cleanup-custom" else self._GC
        for gvr, name in ((self._GCC, cfg_name), (klass, cls)):
            try:
                custom.get_cluster_custom_object(*gvr, name, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e:
                if e.status == 404:  # upstream: nothing (more) to clean up
                    return
                raise
            custom.delete_cluster_custom_object(*gvr, name, _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("deleted %s %s", gvr[2], name)

    def _curl_delete(self, r: _Run) -> None:
        method = flag(r.flags, "X", "GET")
        (url,) = r.positionals
        m = _SECRET_URL.match(url)
        if method != "DELETE" or m is None or r.flags.get("H") != [_SA_TOKEN_HEADER]:
            raise HarnessError(f"only `curl -X DELETE <apiserver>/api/v1/namespaces/<ns>/"
                               f"secrets/<name> -H '{_SA_TOKEN_HEADER}'` is played, not "
                               f"{shlex.join(r.argv)!r}")
        try:
            client.CoreV1Api(r.sa).delete_namespaced_secret(m.group(2), m.group(1),
                                                            _request_timeout=REQUEST_TIMEOUT)
            self.h.log.info("deleted secret %s/%s", *m.groups())
        except ApiException as e:
            if e.status != 404:
                raise


def _api_message(e: ApiException) -> str:
    try:
        return json.loads(e.body).get("message", "")
    except (TypeError, ValueError):
        return str(e.body)
