"""The chart's admission webhooks: certificates, the server, and the network path to it.

REAL: the apiserver calls the chart's Mutating/ValidatingWebhookConfigurations over TLS,
verifying ``caBundle`` and the serving certificate for ``<svc>.<ns>.svc``; ``failurePolicy``
is the apiserver's; the Service and ClusterIP it resolves are real objects.

PLAYED:

* webhook-cert-manager (a RUNNING workload with role ``webhook-cert-manager``), AS ITS
  ServiceAccount: reads its ``-config-file``; for each entry makes a CA ("Consul Webhook
  Certificates") and a serving certificate for ``tlsAutoHosts``, writes Secret ``secretName``
  (kubernetes.io/tls, owned by the ``-deployment-name`` Deployment) and patches the CA into
  every ``caBundle`` of the MutatingWebhookConfiguration ``name`` and of the
  ValidatingWebhookConfiguration of the same name when there is one; re-checked every
  ``poll_interval`` and whenever a webhook configuration changes (an upgrade resets caBundle).
* the webhook server (a READY workload with role ``webhook-server``, i.e. the connect
  injector once its pod could start, which needs the certificate Secret above): one loopback
  HTTPS AdmissionReview server serves, by SNI ``<svc>.<ns>.svc``, the certificate mounted at
  its ``-tls-cert-dir``, for the Services selecting its pods. Paths its chart line's table
  lists are answered ``allowed`` with no patch (no pods run, none are injected), except the
  ProxyDefaults rules of upstream's ``ProxyDefaultsWebhook`` (served on
  ``/mutate-v1alpha1-proxydefaults`` of the MUTATING configuration in charts 1.8-2.0; the
  ValidatingWebhookConfiguration holds only gateway policies and registrations): on CREATE
  the name must be ``global`` and no other ProxyDefaults may exist (listed as the injector's
  ServiceAccount); on CREATE and UPDATE ``spec.meshGateway.mode`` must be one of "remote",
  "local", "none", "" (``shared_types.go`` ``MeshGateway.validate``). Other ProxyDefaults
  fields are not validated. A path not in the table is DENIED and recorded in ``errors()``, as
  is a request sent by a webhook configuration or webhook the table does not name for that
  path (the callers are found from the configurations' services, paths and rules).
  Every answer is recorded (``admissions()``).
* the network: the apiserver sends its ``cluster`` egress as HTTP CONNECT over the Unix socket
  ``egress_socket``; the proxy tunnels ``CONNECT <clusterIP|svc.ns.svc>:<port>`` to the server
  only for a Service port selecting a READY webhook server, and refuses anything else with
  502, as a Service without ready endpoints would fail (so ``failurePolicy: Fail`` rejects
  ProxyDefaults until the injector is ready).
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Optional

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from localcluster.pki import issue_cert, make_ca

from .chart_table import CERT_MANAGER, WEBHOOK_SERVER
from .commands import flag, parse_control_plane_invocations
from .config_entries import mesh_gateway_mode_problem
from .errors import TRANSPORT_ERRORS, HarnessError, NotYet
from .pod import PodView
from .records import AdmissionRecord

if TYPE_CHECKING:
    from .core import ClusterHarness
    from .workloads import Running

__all__ = ["Webhooks", "server_context"]

REQUEST_TIMEOUT = (5, 30)
_PROXYDEFAULTS = ("consul.hashicorp.com", "v1alpha1", "proxydefaults")


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context for a PEM certificate and key (ssl loads chains from files only:
    written to a private temp dir and removed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="harness-tls-") as d:
        cert_file, key_file = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        with open(cert_file, "wb") as f:
            f.write(cert_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


class Webhooks:
    def __init__(self, h: "ClusterHarness"):
        self.h = h
        self.event = threading.Event()
        self._bundles: dict[tuple[str, str], dict] = {}
        self._ctx_cache: dict[bytes, ssl.SSLContext] = {}
        # rebuilt every pass: (host, port) -> (ns, svc); "<svc>.<ns>.svc" -> (ctx, server)
        self.routes: dict[tuple[str, int], tuple[str, str]] = {}
        self.sni: dict[str, tuple[ssl.SSLContext, Optional["Running"]]] = {}
        self._open: set[socket.socket] = set()
        self._http: Optional[ThreadingHTTPServer] = None
        self._unix: Optional[socket.socket] = None
        self.admission_port: Optional[int] = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> list[threading.Thread]:
        return [self.start_admission_server(), self.start_egress_proxy(),
                self.h.spawn("webhooks", self.h.poll_loop, "webhooks", self.reconcile,
                             self.event),
                self.h.spawn("webhook-events", self._watch_configurations)]

    def stop(self) -> None:
        self.event.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._unix is not None:
            self._unix.close()
        with self.h.lock:
            socks = list(self._open)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        try:
            os.unlink(self.h.egress_socket)
        except OSError:
            pass

    def _watch_configurations(self) -> None:
        """React to a new or reset webhook configuration at once, as the real cert manager
        (which watches) does: a ProxyDefaults created right after install must not meet the
        chart's placeholder caBundle."""
        admreg = self.h.admreg()
        while not self.h.stopping.is_set():
            for lister in (admreg.list_mutating_webhook_configuration,
                           admreg.list_validating_webhook_configuration):
                try:
                    for _ in watch.Watch().stream(lister, timeout_seconds=1,
                                                  _request_timeout=(5, 10)):
                        self.event.set()
                        if self.h.stopping.is_set():
                            return
                except (ApiException, *TRANSPORT_ERRORS) as e:  # reset, timeout: watch again
                    if not self.h.stopping.is_set():
                        self.h.log.debug("webhook configuration watch interrupted (%r)", e)
                        self.h.sleep(1.0)
                except Exception as e:  # a harness bug: the test sees it
                    if not self.h.stopping.is_set():
                        self.h.error_once("webhook configuration watch: %r", e)
                        self.h.sleep(1.0)

    # ---- one pass: cert manager, then routes ---------------------------------------------------

    def reconcile(self) -> None:
        for mgr in self.h.workloads.running(CERT_MANAGER):
            try:
                self._cert_manager(mgr)
            except NotYet as e:
                self.h.log.debug("webhook-cert-manager %s: %s", mgr.name, e)
            except HarnessError as e:
                self.h.error_once("webhook-cert-manager %s: %s", mgr.name, e)
            except ApiException as e:
                if self._gone(mgr):  # uninstalled since the last pass: its RBAC may be gone first
                    self.h.log.debug("webhook-cert-manager %s is being removed: %s", mgr.name, e.reason)
                else:
                    self.h.error_once("webhook-cert-manager %s: %s %s", mgr.name, e.status, e.reason)
        routes: dict[tuple[str, int], tuple[str, str]] = {}
        sni: dict = {}
        for srv in self.h.workloads.running(WEBHOOK_SERVER):
            ctx = self._serving_context(srv)
            if ctx is None:
                continue
            for svc in self.h.core().list_namespaced_service(
                    srv.namespace, _request_timeout=REQUEST_TIMEOUT).items:
                sel = svc.spec.selector or {}
                if not sel or any(srv.pod_labels.get(k) != v for k, v in sel.items()):
                    continue
                name, ns = svc.metadata.name, srv.namespace
                for host in (f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
                    sni[host] = (ctx, srv)
                for p in svc.spec.ports or []:
                    for host in (svc.spec.cluster_ip, f"{name}.{ns}.svc",
                                 f"{name}.{ns}.svc.cluster.local"):
                        if host and host != "None":
                            routes[(host, p.port)] = (ns, name)
        with self.h.lock:
            self.routes, self.sni = routes, sni

    def _gone(self, mgr: "Running") -> bool:
        """Whether the manager's Deployment no longer exists or is being deleted (admin read)."""
        try:
            dep = self.h.apps().read_namespaced_deployment(mgr.name, mgr.namespace,
                                                           _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return dep.metadata.deletion_timestamp is not None

    def _serving_context(self, srv: "Running") -> Optional[ssl.SSLContext]:
        invocations = parse_control_plane_invocations(srv.container, {})
        cert_dir = next((flag(f, srv.line.webhook_cert_dir_flag) for _, f in invocations), None)
        if not cert_dir:
            self.h.error_once("webhook server %s/%s: no -%s", srv.namespace, srv.name,
                              srv.line.webhook_cert_dir_flag)
            return None
        pod = PodView(self.h, srv.namespace, srv.name, srv.pod_spec, srv.container)
        try:
            cert = pod.read_file(cert_dir.rstrip("/") + "/tls.crt")
            key = pod.read_file(cert_dir.rstrip("/") + "/tls.key")
        except (NotYet, HarnessError) as e:
            self.h.error_once("webhook server %s/%s: %s", srv.namespace, srv.name, e)
            return None
        ctx = self._ctx_cache.get(cert + key)
        if ctx is None:
            if len(self._ctx_cache) > 16:
                self._ctx_cache.clear()
            ctx = self._ctx_cache[cert + key] = server_context(cert, key)
        return ctx

    def _cert_manager(self, mgr: "Running") -> None:
        [(_, flags)] = parse_control_plane_invocations(mgr.container, {})
        config_file, dep_name = flag(flags, "config-file"), flag(flags, "deployment-name")
        dep_ns = flag(flags, "deployment-namespace")
        if not (config_file and dep_name and dep_ns):
            raise HarnessError("-config-file, -deployment-name and -deployment-namespace "
                               "must be set")
        pod = PodView(self.h, mgr.namespace, mgr.name, mgr.pod_spec, mgr.container)
        try:
            entries = json.loads(pod.read_file(config_file))
        except ValueError as e:
            raise HarnessError(f"bad config file: {e}") from e
        api = self.h.sa_client(mgr.namespace, mgr.pod_spec.get("serviceAccountName") or "default")
        admreg, core = client.AdmissionregistrationV1Api(api), client.CoreV1Api(api)
        dep = client.AppsV1Api(api).read_namespaced_deployment(dep_name, dep_ns,
                                                               _request_timeout=REQUEST_TIMEOUT)
        for entry in entries:
            name, secret_name = entry.get("name"), entry.get("secretName")
            secret_ns, hosts = entry.get("secretNamespace"), entry.get("tlsAutoHosts") or []
            if not (name and secret_name and secret_ns and hosts):
                raise HarnessError(f"incomplete config entry {entry}")
            key = (secret_ns, secret_name)
            bundle = self._bundles.get(key)
            if bundle is None or bundle["hosts"] != hosts:
                ca_pem, ca_key = make_ca("Consul Webhook Certificates", days=1)
                cert, tls_key = issue_cert(ca_pem, ca_key, hosts[0], hosts, days=1)
                bundle = self._bundles[key] = {"hosts": hosts, "ca": ca_pem, "cert": cert,
                                               "key": tls_key}
            self._write_cert_secret(core, secret_ns, secret_name, bundle, dep)
            want = base64.b64encode(bundle["ca"]).decode()
            for read, patch, required in (
                    (admreg.read_mutating_webhook_configuration,
                     admreg.patch_mutating_webhook_configuration, True),
                    (admreg.read_validating_webhook_configuration,
                     admreg.patch_validating_webhook_configuration, False)):
                try:
                    cfg = read(name, _request_timeout=REQUEST_TIMEOUT)
                except ApiException as e:
                    if e.status != 404:
                        raise
                    if required:
                        raise NotYet(f"MutatingWebhookConfiguration {name} must exist") from e
                    continue
                hooks = cfg.webhooks or []
                if all(w.client_config.ca_bundle == want for w in hooks):
                    continue
                ops = [{"op": "test", "path": "/metadata/resourceVersion",
                        "value": cfg.metadata.resource_version}]
                ops += [{"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle",
                         "value": want} for i in range(len(hooks))]
                try:
                    patch(name, ops, _request_timeout=REQUEST_TIMEOUT)
                    self.h.log.info("patched caBundle of %d webhook(s) of %s %s", len(hooks),
                                    type(cfg).__name__, name)
                except ApiException as e:
                    if e.status not in (409, 422):  # changed under us: next pass
                        raise

    def _write_cert_secret(self, core, ns: str, name: str, bundle: dict, dep) -> None:
        data = {"tls.crt": base64.b64encode(bundle["cert"]).decode(),
                "tls.key": base64.b64encode(bundle["key"]).decode()}
        try:
            cur = core.read_namespaced_secret(name, ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise
            cur = None
        if cur is not None and cur.data == data:
            return
        body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": name, "namespace": ns,
                             "labels": {"managed-by": "consul-k8s"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                  "name": dep.metadata.name,
                                                  "uid": dep.metadata.uid}]},
                "data": data}
        if cur is None:
            core.create_namespaced_secret(ns, body, _request_timeout=REQUEST_TIMEOUT)
        else:
            body["metadata"]["resourceVersion"] = cur.metadata.resource_version
            core.replace_namespaced_secret(name, ns, body, _request_timeout=REQUEST_TIMEOUT)
        self.h.log.info("webhook certificate written to secret %s/%s", ns, name)

    # ---- HTTPS admission server --------------------------------------------------------------

    def start_admission_server(self) -> threading.Thread:
        hooks = self
        placeholder = server_context(*issue_cert(*make_ca("harness placeholder", days=1),
                                                 "placeholder", ["placeholder.invalid"],
                                                 days=1))

        def pick(sock: ssl.SSLObject, server_name: Optional[str], _ctx) -> Optional[int]:
            with hooks.h.lock:
                found = hooks.sni.get(server_name or "")
            if found is None:
                hooks.h.log.warning("TLS handshake for unknown server name %r", server_name)
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            sock.context = found[0]
            sock.harness_server = (server_name, found[1])  # read by the handler
            return None

        placeholder.sni_callback = pick

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def finish_request(self, request, client_address):
                request.settimeout(30)
                with hooks.h.lock:
                    hooks._open.add(request)
                try:
                    try:
                        tls = placeholder.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError) as e:
                        hooks.h.log.warning("admission TLS handshake failed: %r", e)
                        return
                    self.RequestHandlerClass(tls, client_address, self)
                finally:
                    with hooks.h.lock:
                        hooks._open.discard(request)

            def handle_error(self, request, client_address):
                hooks.h.log.warning("admission connection error", exc_info=True)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, fmt, *args):
                hooks.h.log.debug("admission: " + fmt, *args)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server_name, server = getattr(self.connection, "harness_server", (None, None))
                code, out = hooks.admit(self.path, body, server_name, server)
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = Server(("127.0.0.1", 0), Handler)
        self.admission_port = self._http.server_address[1]
        return self.h.spawn("admission-https", self._http.serve_forever, 0.5)

    def admit(self, path: str, body: bytes, server_name: Optional[str],
              server: Optional["Running"]) -> tuple[int, dict]:
        """Answer one AdmissionReview sent to ``server`` (None: a test's bare server, which
        knows no chart line and so no paths)."""
        try:
            review = json.loads(body)
            req = review["request"]
        except (ValueError, KeyError, TypeError) as e:
            self.h.error("admission: bad AdmissionReview on %s: %r", path, e)
            return 400, {"error": f"bad AdmissionReview: {e}"}
        path = path.split("?", 1)[0]
        kind = req.get("kind") or {}
        obj = req.get("object") or req.get("oldObject") or {}
        name = req.get("name") or (obj.get("metadata") or {}).get("name") or ""
        op = req.get("operation", "")
        known = server is not None and any(p == path for _, p in server.line.webhooks)
        stranger = None if not known else self._stranger_caller(server, server_name, path, req)
        if not known:
            allowed, message = False, f"harness: no webhook of the chart table is served at " \
                                      f"{path}"
            self.h.error(message)
        elif stranger:
            allowed, message = False, f"harness: {stranger}"
            self.h.error(message)
        elif path.endswith("-proxydefaults"):
            allowed, message = self._proxydefaults(server, op, name, obj)
        else:
            allowed, message = True, ""
        service = ""
        if server_name and server_name.endswith(".svc"):
            svc, _, ns = server_name[:-4].partition(".")
            service = f"{ns}/{svc}"
        rec = AdmissionRecord(path=path, service=service, kind=kind.get("kind", ""),
                              group=kind.get("group", ""), version=kind.get("version", ""),
                              name=name, namespace=req.get("namespace") or "", operation=op,
                              uid=req.get("uid", ""), allowed=allowed, message=message)
        self.h.record_admission(rec)
        self.h.log.info("admission %s %s %s via %s: %s", op, rec.kind, name, path,
                        "allowed" if allowed else f"denied: {message}")
        response: dict = {"uid": req.get("uid", ""), "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 400, "message": message, "status": "Failure"}
        return 200, {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                     "kind": "AdmissionReview", "response": response}

    def configurations(self) -> list[tuple[str, dict]]:
        """[("Mutating"|"Validating", configuration)] as the apiserver holds them (admin read;
        a test without an apiserver replaces this)."""
        admreg, api = self.h.admreg(), self.h.api()
        return [(kind, api.sanitize_for_serialization(cfg))
                for kind, lister in (("Mutating", admreg.list_mutating_webhook_configuration),
                                     ("Validating", admreg.list_validating_webhook_configuration))
                for cfg in lister(_request_timeout=REQUEST_TIMEOUT).items]

    def _stranger_caller(self, server: "Running", server_name: Optional[str], path: str,
                         req: dict) -> Optional[str]:
        """Why the webhooks that send this request here are not the chart's (None: they are).
        The request does not name its webhook, so the callers are found as the apiserver
        finds them: every webhook of every configuration whose service and path are this
        server's and whose rules match the request."""
        svc, _, ns = (server_name or "").removesuffix(".cluster.local").removesuffix(".svc") \
            .partition(".")
        res = req.get("resource") or {}
        sub = req.get("subResource") or ""
        what = f"{req.get('operation')} {res.get('group') or 'core'}/{res.get('version')}/" \
               f"{res.get('resource')}{'/' + sub if sub else ''}"
        callers = []
        for kind, cfg in self.configurations():
            for w in cfg.get("webhooks") or []:
                ref = (w.get("clientConfig") or {}).get("service")
                if ref is None or (ref.get("name"), ref.get("namespace"),
                                   ref.get("path") or "/") != (svc, ns, path):
                    continue
                if any(_rule_matches(r, req, res, sub) for r in w.get("rules") or []):
                    callers.append((kind, cfg["metadata"]["name"], w["name"]))
        if not callers:
            return f"no webhook configuration sends {what} to {svc}.{ns} at {path}"
        for kind, cfg_name, hook in callers:
            if not server.line.webhook_known(kind, hook, path, cfg_name):
                return (f"{kind}WebhookConfiguration {cfg_name} webhook {hook} sends {what} to "
                        f"{path}: not the chart's (chart line {server.line.version})")
        return None

    def _proxydefaults(self, server: "Running", op: str, name: str, obj: dict
                       ) -> tuple[bool, str]:
        """upstream ProxyDefaultsWebhook.Handle (control-plane/api/v1alpha1)."""
        if op == "CREATE":
            if name != "global":
                return False, 'ProxyDefaults resource name must be "global"'
            try:
                api = self.h.sa_client(server.namespace,
                                       server.pod_spec.get("serviceAccountName") or "default")
                existing = client.CustomObjectsApi(api).list_cluster_custom_object(
                    *_PROXYDEFAULTS, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e:
                return False, f"listing proxydefaults: {e.status} {e.reason}"
            if existing.get("items"):
                return False, ("ProxyDefaults resource already defined - only one global "
                               "entry is supported")
        problem = mesh_gateway_mode_problem(name, obj)
        return problem is None, problem or ""

    # ---- HTTP CONNECT proxy on the apiserver's egress socket ---------------------------------

    def start_egress_proxy(self) -> threading.Thread:
        path = self.h.egress_socket
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
        return self.h.spawn("egress-accept", self._accept_loop, srv)

    def _accept_loop(self, srv: socket.socket) -> None:
        while not self.h.stopping.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.h.stopping.is_set():
                    return
                raise
            self.h.spawn("egress-conn", self._tunnel, conn)

    def _tunnel(self, conn: socket.socket) -> None:
        upstream: Optional[socket.socket] = None
        with self.h.lock:
            self._open.add(conn)
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
            parts = header.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or parts[0] != "CONNECT" or ":" not in parts[1]:
                self.h.error("egress proxy: unexpected request %r", parts)
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = parts[1].rpartition(":")
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            with self.h.lock:
                route = self.routes.get((host, int(port))) if port.isdigit() else None
            if route is None:
                msg = f"no ready webhook server behind {parts[1]}".encode()
                self.h.log.warning("egress proxy: refusing CONNECT %s", parts[1])
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: " + str(len(msg)).encode() + b"\r\n\r\n" + msg)
                return
            upstream = socket.create_connection(("127.0.0.1", self.admission_port), timeout=5)
            with self.h.lock:
                self._open.add(upstream)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            self._relay(conn, upstream)
        except OSError as e:
            if not self.h.stopping.is_set():
                self.h.log.info("egress proxy connection ended: %r", e)
        finally:
            for s in (conn, upstream):
                if s is not None:
                    with self.h.lock:
                        self._open.discard(s)
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
            while open_reads and not self.h.stopping.is_set():
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


def _rule_matches(rule: dict, req: dict, res: dict, sub: str) -> bool:
    """Whether a webhook rule (apiGroups, apiVersions, operations, resources: "*", "r",
    "r/sub", "*/sub", "r/*", "*/*") matches the request, as the apiserver reads it."""
    def any_of(values, value) -> bool:
        return "*" in (values or []) or value in (values or [])

    if not (any_of(rule.get("apiGroups"), res.get("group", "")) and
            any_of(rule.get("apiVersions"), res.get("version", "")) and
            any_of(rule.get("operations"), req.get("operation", ""))):
        return False
    for pattern in rule.get("resources") or []:
        name, _, pattern_sub = pattern.partition("/")
        if name not in ("*", res.get("resource")):
            continue
        if (not sub and "/" not in pattern) or (sub and pattern_sub in ("*", sub)):
            return True
    return False
