"""A real, minimal Kubernetes control plane (one etcd + one kube-apiserver) for integration tests.

``ControlPlane(name, workdir, etcd, apiserver)`` starts etcd and kube-apiserver on free
127.0.0.1 ports, with everything (certificates, configs, etcd data, logs) under
``<workdir>/<name>/``; ``write_kubeconfig(path, planes)`` writes one kubeconfig with one
context per plane, named after the plane. The binaries come from ``tools/cluster.sh``
(``bash tools/ensure.sh cluster`` prints ``ETCD=...`` and ``KUBE_APISERVER=...``).

    with ControlPlane("dc1", tmp, etcd, apiserver) as dc1, \\
         ControlPlane("dc2", tmp, etcd, apiserver) as dc2:
        write_kubeconfig(tmp / "kubeconfig", [dc1, dc2])   # contexts "dc1" and "dc2"

What there is: the API (etcd-backed CRUD, CRDs, RBAC, admission webhooks, ...). What there is
not: no kubelet, scheduler or controller-manager, so no Pod ever runs or becomes Ready, no Job
completes, Deployments/StatefulSets never get Pods, Endpoints stay empty, no default
ServiceAccount or token Secrets appear, a deleted Namespace stays Terminating and objects
deleted with foreground propagation keep their ``foregroundDeletion`` finalizer (no garbage
collector). Service ClusterIPs and NodePorts *are* allocated (the apiserver does that itself).
The apiserver runs with ``--endpoint-reconciler-type=none``: it creates the ``default/kubernetes``
Service but never its Endpoints (the reconciler would write the loopback advertise address,
which Endpoints validation rejects); the harness writes them.

Authentication: the admin identity is a client certificate (CN=admin, O=system:masters)
signed by a per-plane CA that is also the ``--client-ca-file``; the same CA signs the serving
certificate (SANs 127.0.0.1, localhost, the first service IP and kubernetes.default.svc...).
Authorization is RBAC.

Admission: the defaults minus ``ServiceAccount`` (it would reject Pods because no controller
creates the ``default`` ServiceAccount) and ``StorageObjectInUseProtection`` (its finalizers
would make PVC/PV deletion hang without the protection controllers). NamespaceLifecycle,
MutatingAdmissionWebhook and ValidatingAdmissionWebhook stay on.

EGRESS / WEBHOOKS — read this if anything registers an admission or conversion webhook:
the apiserver runs with ``--egress-selector-config-file`` (apiserver.k8s.io/v1beta1
EgressSelectorConfiguration) that sends the ``cluster`` egress over **HTTP CONNECT through the
Unix domain socket** ``ControlPlane.egress_socket`` (``<workdir>/<name>/egress.sock``).
The ``cluster`` egress carries every call to a Service: webhooks registered with
``clientConfig.service`` (what the Consul chart does), conversion webhooks with a service,
``.../services/<svc>/proxy`` and aggregated API servers. Nothing listens on that socket by
default; the plane starts and plain CRUD works without it, but **whoever runs the plane must
serve an HTTP CONNECT proxy on ``egress_socket`` for any webhook call to reach anything**
(until then a webhook with ``failurePolicy: Fail`` rejects its requests, one with ``Ignore`` is
skipped). What the proxy receives, per connection: ``CONNECT <clusterIP>:<servicePort>
HTTP/1.1`` (the apiserver resolves ``service`` references to the Service's ClusterIP and port;
the Service object must exist, its Endpoints do not matter); it answers
``HTTP/1.1 200 Connection established`` and then relays bytes, and the apiserver speaks TLS
through the tunnel with SNI ``<service>.<namespace>.svc``, verifying the webhook's
``caBundle``. Webhooks registered with ``clientConfig.url`` use the ``controlplane`` egress,
which is not configured, i.e. they are dialled directly. Unix socket paths are limited to
107 bytes, so keep ``workdir`` short (pytest's ``tmp_path`` is fine).

Processes are started with PR_SET_PDEATHSIG so they die with the thread that started them,
and ``stop()`` is registered with ``atexit``; still, use the context manager or ``stop()``.
``start()`` after ``stop()`` (or ``restart()``, or ``with plane.stopped():``) brings the plane
back on the same ports with the same etcd data: the kubeconfig stays valid (an API server that
is down and returns, for fault tests); ``with plane.frozen():`` pauses kube-apiserver instead
(connections open, nothing answers).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .pki import issue_cert, make_ca

__all__ = ["ControlPlane", "ControlPlaneError", "write_kubeconfig"]

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ADMIN_USER = "admin"
_UNIX_PATH_MAX = 107
_LOG_TAIL_LINES = 40


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (the message includes the tail of the logs)."""


# --------------------------------------------------------------------------------------------
# small helpers

_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def _free_ports(count: int) -> list[int]:
    """Ports that are free on 127.0.0.1 now and were not handed out before by this process."""
    sockets, ports = [], []
    with _ports_lock:
        try:
            while len(ports) < count:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                sockets.append(s)
                port = s.getsockname()[1]
                if port not in _ports_handed_out:
                    ports.append(port)
        finally:
            for s in sockets:
                s.close()
        _ports_handed_out.update(ports)
    return ports


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: rely on stop()/atexit
        pass


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------------------------


class ControlPlane:
    """One etcd + one kube-apiserver on 127.0.0.1; see the module docstring.

    Attributes after ``start()`` (the constructor starts it unless ``start=False``):
    ``server`` (``https://127.0.0.1:<port>``), ``port``, ``etcd_url``, ``ca_file``/``ca_data``
    (PEM of the CA that signed the serving cert), ``client_cert_file``/``client_cert_data``,
    ``client_key_file``/``client_key_data`` (admin, system:masters), ``egress_socket``,
    ``egress_config_file``, ``service_account_issuer``, ``apiserver_log``, ``etcd_log``, ``dir``.
    """

    def __init__(self, name: str, workdir: os.PathLike | str, etcd: os.PathLike | str,
                 apiserver: os.PathLike | str, *, start: bool = True,
                 timeout: float = 180.0, extra_apiserver_args: Iterable[str] = (),
                 service_cidr: str = SERVICE_CLUSTER_IP_RANGE, extra_sans: Iterable[str] = ()):
        self.name = name
        self.workdir = Path(workdir).resolve()
        self.dir = self.workdir / name
        self.etcd_bin = str(Path(etcd).resolve())
        self.apiserver_bin = str(Path(apiserver).resolve())
        self.timeout = timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        # Distinct per plane where their pods share one network (tests/consul); the apiserver's
        # serving certificate names the first service IP and any address it is reached at.
        self.service_cidr = service_cidr
        self.extra_sans = list(extra_sans)

        self.egress_socket = str(self.dir / "egress.sock")
        if len(os.fsencode(self.egress_socket)) > _UNIX_PATH_MAX:
            raise ValueError(
                f"egress socket path is longer than {_UNIX_PATH_MAX} bytes, use a shorter "
                f"workdir: {self.egress_socket}"
            )
        self.etcd_data_dir = self.dir / "etcd-data"
        self.cert_dir = self.dir / "certs"
        self.etcd_log = self.dir / "etcd.log"
        self.apiserver_log = self.dir / "kube-apiserver.log"
        self.egress_config_file = self.dir / "egress-selector.yaml"

        self.port: Optional[int] = None
        self.server: Optional[str] = None
        self.etcd_url: Optional[str] = None
        self.service_account_issuer: Optional[str] = None
        self.startup_seconds: Optional[float] = None
        self._etcd: Optional[subprocess.Popen] = None
        self._apiserver: Optional[subprocess.Popen] = None
        self._log_files: list = []

        self._write_pki()
        self._write_egress_config()
        if start:
            self.start()

    # ---- files -------------------------------------------------------------------------------

    def _write_pki(self) -> None:
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        ca = make_ca(f"{self.name}-ca", days=365)
        service_ip = str(next(ipaddress.ip_network(self.service_cidr).hosts()))
        serving_cert, serving_key = issue_cert(
            *ca, "kube-apiserver", ["127.0.0.1", service_ip, "localhost", "kubernetes",
                                    "kubernetes.default", "kubernetes.default.svc",
                                    "kubernetes.default.svc.cluster.local", *self.extra_sans])
        self.client_cert_data, self.client_key_data = issue_cert(
            *ca, ADMIN_USER, [], organizations=["system:masters"])
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        self.ca_data = ca[0]
        d = self.cert_dir
        self.ca_file = str(_write(d / "ca.crt", self.ca_data))
        # Named like the files the apiserver would self-generate in --cert-dir.
        self.serving_cert_file = str(_write(d / "apiserver.crt", serving_cert))
        self.serving_key_file = str(_write(d / "apiserver.key", serving_key, 0o600))
        self.client_cert_file = str(_write(d / "admin.crt", self.client_cert_data))
        self.client_key_file = str(_write(d / "admin.key", self.client_key_data, 0o600))
        sa_key_pem = sa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
        self.sa_key_file = str(_write(d / "sa.key", sa_key_pem, 0o600))
        self.sa_pub_file = str(_write(d / "sa.pub", sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)))

    def _write_egress_config(self) -> None:
        # JSON is YAML; the apiserver decodes either.
        config = {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": [{
                "name": "cluster",
                "connection": {
                    "proxyProtocol": "HTTPConnect",
                    "transport": {"uds": {"udsName": self.egress_socket}},
                },
            }],
        }
        _write(self.egress_config_file, json.dumps(config, indent=2) + "\n")

    # ---- processes ---------------------------------------------------------------------------

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen:
        f = open(log, "ab")
        self._log_files.append(f)
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
            cwd=self.dir, preexec_fn=_die_with_parent,
        )

    def start(self) -> "ControlPlane":
        """Start etcd and kube-apiserver. After ``stop()`` this is a restart: the same ports
        and the same etcd data, so kubeconfigs, tokens and every stored object stay valid."""
        if self.running:
            return self
        started = time.monotonic()
        restart = self.port is not None
        last_error: Optional[ControlPlaneError] = None
        for attempt in range(3):  # a port picked as free can be taken before we bind it
            if not restart:
                self._ports = _free_ports(3)
                shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
            elif attempt:  # the same ports, never others: wait for the old sockets to go
                time.sleep(2.0)
            try:
                self._start_once()
                self.startup_seconds = time.monotonic() - started
                atexit.register(self.stop)
                return self
            except ControlPlaneError as e:
                self.stop()
                last_error = e
                if "address already in use" not in str(e):
                    raise
        assert last_error is not None
        raise last_error

    def restart(self) -> "ControlPlane":
        """``stop()`` then ``start()``: the same server URL and data (see ``start``)."""
        self.stop()
        return self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator["ControlPlane"]:
        """kube-apiserver is paused (SIGSTOP) inside the block: the kernel still completes TCP
        handshakes on its port, but nothing answers (a hung server, or a firewall that drops
        packets). It continues (SIGCONT) when the block ends."""
        proc = self._apiserver
        if proc is None or proc.poll() is not None:
            raise ControlPlaneError(f"kube-apiserver of plane {self.name} is not running")
        proc.send_signal(signal.SIGSTOP)
        try:
            yield self
        finally:
            proc.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def stopped(self) -> Iterator["ControlPlane"]:
        """The plane is down inside the block (its port refuses connections) and started again
        on the same port with the same data when the block ends, whatever happened in it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def _start_once(self) -> None:
        client_port, peer_port, self.port = self._ports
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        self.server = f"https://127.0.0.1:{self.port}"
        self.service_account_issuer = self.server
        peer_url = f"http://127.0.0.1:{peer_port}"
        deadline = time.monotonic() + self.timeout

        self._etcd = self._spawn([
            self.etcd_bin,
            f"--name={self.name}",
            f"--data-dir={self.etcd_data_dir}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self.name}={peer_url}",
            f"--initial-cluster-token={self.name}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # throw-away data; fsync on a shared disk is the slow part
            "--log-level=warn",
        ], self.etcd_log)
        self._wait("etcd", self._etcd, self.etcd_log, deadline, self._etcd_healthy)

        self._apiserver = self._spawn([
            self.apiserver_bin,
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={self.cert_dir}",
            f"--tls-cert-file={self.serving_cert_file}",
            f"--tls-private-key-file={self.serving_key_file}",
            f"--client-ca-file={self.ca_file}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # the real reconciler would publish 127.0.0.1, which Endpoints validation rejects;
            # whoever needs default/kubernetes Endpoints writes them (harness/loadbalancer.py)
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={self.service_cidr}",
            f"--service-account-issuer={self.service_account_issuer}",
            f"--service-account-key-file={self.sa_pub_file}",
            f"--service-account-signing-key-file={self.sa_key_file}",
            "--authorization-mode=RBAC",
            "--enable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,"
            "ValidatingAdmissionWebhook",
            "--disable-admission-plugins=ServiceAccount,StorageObjectInUseProtection",
            f"--egress-selector-config-file={self.egress_config_file}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ], self.apiserver_log)
        self._wait("kube-apiserver", self._apiserver, self.apiserver_log, deadline,
                   self._apiserver_ready)

    def _wait(self, what, proc, log, deadline, probe) -> None:
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{what} of plane {self.name} exited with {proc.returncode}; "
                    f"last lines of {log}:\n{_tail(log)}"
                )
            ok, last = probe()
            if ok:
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{what} of plane {self.name} not ready after {self.timeout:.0f}s "
                    f"({last}); last lines of {log}:\n{_tail(log)}"
                )
            time.sleep(0.25)

    def _etcd_healthy(self) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                body = r.read().decode()
            return json.loads(body).get("health") == "true", body
        except (OSError, ValueError) as e:
            return False, str(e)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the plane's CA and presents the admin certificate."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx

    def _apiserver_ready(self) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=5,
                                        context=self.ssl_context()) as r:
                body = r.read().decode()
            return r.status == 200 and body.strip() == "ok", body
        except urllib.error.HTTPError as e:  # 500 with the failing checks while starting
            body = e.read().decode("utf-8", "replace")
            failing = [l for l in body.splitlines() if "failed" in l]
            return False, f"HTTP {e.code}: {'; '.join(failing) or body[:200]}"
        except (OSError, ssl.SSLError) as e:
            return False, str(e)

    @property
    def running(self) -> bool:
        return any(p is not None and p.poll() is None for p in (self._etcd, self._apiserver))

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate kube-apiserver, then etcd (SIGTERM, SIGKILL after ``timeout``). Idempotent.
        The data, certificates and logs stay under ``<workdir>/<name>``."""
        for attr in ("_apiserver", "_etcd"):
            proc = getattr(self, attr)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            setattr(self, attr, None)
        for f in self._log_files:
            f.close()
        self._log_files = []
        atexit.unregister(self.stop)

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ControlPlane({self.name!r}, server={self.server!r}, running={self.running})"

    # ---- kubeconfig --------------------------------------------------------------------------

    def kubeconfig_entries(self) -> tuple[dict, dict, dict]:
        """(cluster, user, context) entries for a kubeconfig, all named after the plane."""
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        cluster = {"name": self.name, "cluster": {
            "server": self.server, "certificate-authority-data": b64(self.ca_data)}}
        user = {"name": f"{self.name}-{ADMIN_USER}", "user": {
            "client-certificate-data": b64(self.client_cert_data),
            "client-key-data": b64(self.client_key_data)}}
        context = {"name": self.name, "context": {
            "cluster": self.name, "user": f"{self.name}-{ADMIN_USER}", "namespace": "default"}}
        return cluster, user, context


def write_kubeconfig(path: os.PathLike | str, planes: Sequence[ControlPlane],
                     current_context: Optional[str] = None) -> Path:
    """Write one kubeconfig (as JSON, which every kubeconfig reader accepts as YAML) with a
    cluster, an admin user and a context per plane, each named after the plane; the current
    context is the first plane unless given."""
    if not planes:
        raise ValueError("write_kubeconfig needs at least one plane")
    if any(p.server is None for p in planes):
        raise ValueError("every plane must be started before writing the kubeconfig")
    clusters, users, contexts = zip(*(p.kubeconfig_entries() for p in planes))
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": list(clusters),
        "users": list(users),
        "contexts": list(contexts),
        "current-context": current_context or planes[0].name,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, json.dumps(config, indent=2) + "\n", 0o600)
    return path
