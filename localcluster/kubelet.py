"""The stand-in kubelet: runs each Pod bound to the cluster's node as real processes.

REAL: the containers' own commands and arguments as rendered (``$(VAR)`` expanded as the kubelet
does), with the binaries of their images (``images.py``), their environment (values, downward
API fields, Secret and ConfigMap references), their volumes at their mount paths (Secrets,
ConfigMaps, emptyDirs, the StatefulSet's claims as directories that outlive the pod), the
ServiceAccount token the API server issues for the pod, and exec, HTTP and TCP probes run
against the container. Each pod has its own network namespace (its IP on the node bridge) and
hostname; each container its own mount namespace whose root is a tmpfs holding the host's
``/usr`` (read-only), ``/dev``, ``/proc``, the pod's ``/etc/hosts`` and ``/etc/resolv.conf``
(cluster DNS, ``dns.py``) and the image's ``/usr/local/bin``.

PLAYED, and how: no container runtime or image (the host's ``/usr`` is every image's userland);
no cgroups, resource limits, security contexts or users (everything runs as root); restarts back
off 1, 2, 4 ... 16 s. What the kubelet cannot do fails the pod loudly, never quietly: an image
with no binaries here, a volume or env source of a kind not listed above, a fieldRef it does not
know, a ServiceAccount that does not exist. Missing Secrets, ConfigMaps or keys keep the pod
waiting (``ContainerCreating``) until they appear, as a real kubelet does.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from kubernetes.client.rest import ApiException

from .images import ImageUnknown, image_of

if TYPE_CHECKING:
    from .cluster import LocalCluster

__all__ = ["Kubelet", "PodFailed"]

REQUEST_TIMEOUT = (5, 30)
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GRACE_SECONDS = 10.0
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")

# Runs inside the container's new mount namespace (see the module docstring): $1 root, $2 the
# mounts file (kind<TAB>source<TAB>target per line), $3 working directory, then the command.
LAUNCH = r"""
root=$1; mounts=$2; wd=$3; shift 3
mount -t tmpfs -o mode=0755 none "$root"
mkdir -p "$root/usr" "$root/etc" "$root/dev" "$root/proc" "$root/tmp" "$root/run" "$root/var"
mount --rbind /usr "$root/usr"
mount -o remount,bind,ro "$root/usr"
for l in bin lib lib32 lib64 libx32 sbin; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$root/$l"; fi
done
ln -s ../run "$root/var/run"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
chmod 1777 "$root/tmp"
mount -t tmpfs -o mode=0755 none "$root/usr/local/bin"
while IFS='	' read -r kind src dst; do
  case "$kind" in
    dir|rodir) mkdir -p "$root$dst"; mount --bind "$src" "$root$dst" ;;
    file|rofile) mkdir -p "$(dirname "$root$dst")"; : > "$root$dst"; mount --bind "$src" "$root$dst" ;;
    *) echo "launch: unknown mount kind $kind" >&2; exit 126 ;;
  esac
  case "$kind" in ro*) mount -o remount,bind,ro "$root$dst" ;; esac
done < "$mounts"
cd "$root"
exec chroot "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$wd" "$@"
"""


class PodFailed(RuntimeError):
    """The pod can never run here (the message says why): it is marked Failed at once."""


class PodWaiting(RuntimeError):
    """Something the pod needs does not exist yet (a Secret, a key): retried."""


# Lines this kubelet adds to a container's log file, for the tests' diagnosis only.
NOTE = "--- kubelet: "


def exit_status(returncode: int) -> int:
    """A container's exit code as a container runtime reports it: 128 + the signal that ended it
    (Python's returncode is minus the signal)."""
    return returncode if returncode >= 0 else 128 - returncode


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: known names are replaced, ``$$`` is ``$``, and an
    unknown reference stays as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


@dataclass
class Container:
    spec: dict
    init: bool
    proc: Optional[subprocess.Popen] = None
    restarts: int = 0
    started_at: Optional[float] = None
    exit_code: Optional[int] = None
    reason: str = ""
    ready: bool = False
    started: bool = False          # the startup probe passed (or there is none)
    next_start: float = 0.0
    probe_state: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class PodRun:
    """One pod's processes, from its sandbox to its end (one thread)."""

    def __init__(self, kubelet: "Kubelet", pod: dict):
        self.k = kubelet
        self.c = kubelet.cluster
        md = pod["metadata"]
        self.pod = pod
        self.uid, self.name, self.ns = md["uid"], md["name"], md["namespace"]
        self.spec = pod["spec"]
        self.dir = self.c.workdir / "pods" / f"{self.ns}_{self.name}_{self.uid[:8]}"
        self.ip: Optional[str] = None
        self.pause: Optional[subprocess.Popen] = None
        self.veth: Optional[str] = None
        self.stopping = threading.Event()
        self.phase = "Pending"
        self.message = ""
        self.waiting_reason = "ContainerCreating"
        self.init_containers = [Container(c, True) for c in self.spec.get("initContainers") or []]
        self.containers = [Container(c, False) for c in self.spec["containers"]]
        self.initialized = not self.init_containers
        self._status_sent: Optional[str] = None
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.c.name}-{self.name}",
                                       daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._sandbox()
            self._prepare()
            self._loop()
        except PodFailed as e:
            self.phase, self.message = "Failed", str(e)
            self.c.error(f"pod {self.ns}/{self.name} failed: {e}")
            self._send_status()
        except Exception as e:  # a bug here must reach the test, never hide
            if not self.stopping.is_set():
                detail = f"{e.status} {e.body}" if isinstance(e, ApiException) else repr(e)
                self.c.error(f"kubelet: pod {self.ns}/{self.name} crashed: {detail}")
                self.c.log.exception("pod %s/%s", self.ns, self.name)
                self.phase, self.message = "Failed", f"kubelet error: {e!r}"
                self._send_status()
        finally:
            self._kill_all()

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    # ---- sandbox, volumes, env --------------------------------------------------------------------

    def _sandbox(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ip = self.c.addresses.pod_ip()
        hostname = self.spec.get("hostname") or self.name
        self.pause = subprocess.Popen(["unshare", "-n", "-u", "sleep", "infinity"],
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.pause.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise PodFailed("the pod's network namespace did not appear")
            time.sleep(0.01)
        self.veth = self.c.network.attach(self.pause.pid, self.ip)
        subprocess.run(["nsenter", "-t", str(self.pause.pid), "-u", "hostname", hostname],
                       check=True, capture_output=True)
        etc = self.dir / "etc"
        etc.mkdir(exist_ok=True)
        sub = self.spec.get("subdomain")
        fqdn = f"{hostname}.{sub}.{self.ns}.svc.cluster.local" if sub else ""
        (etc / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{self.ip}\t{fqdn} {hostname}\n")
        (etc / "resolv.conf").write_text(
            f"nameserver {self.c.addresses.dns_ip}\n"
            f"search {self.ns}.svc.cluster.local svc.cluster.local cluster.local\n"
            "options ndots:5\n")
        (etc / "hostname").write_text(hostname + "\n")
        self._send_status()

    def _prepare(self) -> None:
        """Volumes and environments; waits (as ContainerCreating) for missing references."""
        for c in self.init_containers + self.containers:
            try:
                image_of(c.spec["image"])
            except ImageUnknown as e:
                raise PodFailed(f"container {c.name}: {e}") from None
        while True:
            try:
                self.volumes = self._volumes()
                self.envs = {c.name: self._env(c.spec) for c in self.init_containers + self.containers}
                break
            except PodWaiting as e:
                if self.message != str(e):
                    self.message = str(e)
                    self._send_status()
                if self.stopping.wait(1.0):
                    return
        self.message = ""

    def _secret_data(self, kind: str, name: str, optional: bool) -> Optional[dict[str, bytes]]:
        core = self.c.core()
        try:
            if kind == "secret":
                obj = core.read_namespaced_secret(name, self.ns, _request_timeout=REQUEST_TIMEOUT)
                return {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}
            obj = core.read_namespaced_config_map(name, self.ns, _request_timeout=REQUEST_TIMEOUT)
            return {k: v.encode() for k, v in (obj.data or {}).items()}
        except ApiException as e:
            if e.status != 404:
                raise
            if optional:
                return None
            raise PodWaiting(f"{kind} {self.ns}/{name} not found") from None

    def _volumes(self) -> dict[str, Path]:
        root = self.dir / "volumes"
        out: dict[str, Path] = {}
        claims = {t["metadata"]["name"] for t in self.k.claim_templates(self.pod)}
        for vol in self.spec.get("volumes") or []:
            name = vol["name"]
            path = root / name
            if "emptyDir" in vol:
                path.mkdir(parents=True, exist_ok=True)
            elif "secret" in vol or "configMap" in vol:
                kind = "secret" if "secret" in vol else "configMap"
                src = vol[kind]
                ref = src.get("secretName") if kind == "secret" else src.get("name")
                data = self._secret_data(kind, ref, bool(src.get("optional")))
                staged = root / f".{name}.new"
                shutil.rmtree(staged, ignore_errors=True)
                staged.mkdir(parents=True)
                items = src.get("items") or [{"key": k, "path": k} for k in (data or {})]
                for item in items:
                    if data is None:
                        break
                    if item["key"] not in data:
                        raise PodWaiting(f"{kind} {self.ns}/{ref} has no key {item['key']!r}")
                    target = staged / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data[item["key"]])
                shutil.rmtree(path, ignore_errors=True)
                staged.rename(path)
            elif "persistentVolumeClaim" in vol and vol["persistentVolumeClaim"]["claimName"].removesuffix(
                    f"-{self.name}") in claims:
                path = self.c.workdir / "claims" / self.ns / vol["persistentVolumeClaim"]["claimName"]
                path.mkdir(parents=True, exist_ok=True)
            else:
                kinds = sorted(k for k in vol if k != "name")
                raise PodFailed(f"volume {name} is of a kind the kubelet here does not mount: {kinds}")
            out[name] = path
        if self._automount():
            out[SA_MOUNT] = self._service_account_files(root / "kube-api-access")
        return out

    def _automount(self) -> bool:
        if self.spec.get("automountServiceAccountToken") is not None:
            return bool(self.spec["automountServiceAccountToken"])
        sa = self._service_account()
        return sa.automount_service_account_token is not False

    def _service_account(self):
        name = self.spec.get("serviceAccountName") or "default"
        try:
            return self.c.core().read_namespaced_service_account(
                name, self.ns, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                raise PodFailed(f"serviceaccount {self.ns}/{name} does not exist") from None
            raise

    def _service_account_files(self, path: Path) -> Path:
        sa = self._service_account()
        token = self.c.core().create_namespaced_service_account_token(
            sa.metadata.name, self.ns, {"spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name,
                                   "uid": self.uid}}},
            _request_timeout=REQUEST_TIMEOUT).status.token
        path.mkdir(parents=True, exist_ok=True)
        (path / "token").write_text(token)
        (path / "ca.crt").write_bytes(self.c.apiserver_ca)
        (path / "namespace").write_text(self.ns)
        return path

    def _field(self, path: str) -> str:
        md = self.pod["metadata"]
        simple = {
            "metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
            "spec.nodeName": self.c.node_name, "spec.serviceAccountName":
                self.spec.get("serviceAccountName") or "default",
            "status.podIP": self.ip, "status.podIPs": self.ip, "status.hostIP": self.c.addresses.node_ip,
        }
        if path in simple:
            return simple[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return (md.get(m.group(1)) or {}).get(m.group(2), "")
        raise PodFailed(f"fieldRef {path!r} is not one the kubelet here knows")

    def _env(self, spec: dict) -> dict[str, str]:
        svc_host = self.c.addresses.kubernetes_service_ip
        env = {"PATH": PATH, "HOSTNAME": self.spec.get("hostname") or self.name, "HOME": "/root",
               "KUBERNETES_SERVICE_HOST": svc_host, "KUBERNETES_SERVICE_PORT": "443",
               "KUBERNETES_SERVICE_PORT_HTTPS": "443",
               "KUBERNETES_PORT": f"tcp://{svc_host}:443"}
        for src in spec.get("envFrom") or []:
            kind = "secret" if "secretRef" in src else "configMap" if "configMapRef" in src else None
            if kind is None:
                raise PodFailed(f"container {spec['name']}: envFrom {sorted(src)} not known here")
            ref = src["secretRef" if kind == "secret" else "configMapRef"]
            data = self._secret_data(kind, ref["name"], bool(ref.get("optional"))) or {}
            env.update({src.get("prefix", "") + k: v.decode() for k, v in data.items()})
        for e in spec.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = expand(e.get("value", ""), env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = self._field(vf["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind = "secret" if "secretKeyRef" in vf else "configMap"
                ref = vf["secretKeyRef" if kind == "secret" else "configMapKeyRef"]
                data = self._secret_data(kind, ref["name"], bool(ref.get("optional")))
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise PodWaiting(f"{kind} {self.ns}/{ref['name']} has no key {ref['key']!r}")
                env[e["name"]] = data[ref["key"]].decode()
            else:
                raise PodFailed(f"container {spec['name']}: env {e['name']} from {sorted(vf)} "
                                "is not a source the kubelet here knows")
        return env

    # ---- containers ----------------------------------------------------------------------------

    def _mounts_file(self, c: Container) -> Path:
        image = image_of(c.spec["image"])
        lines = [("rofile", str(self.dir / "etc" / f), f"/etc/{f}") for f in
                 ("hosts", "resolv.conf", "hostname")]
        lines += [("rofile", f"/etc/{f}", f"/etc/{f}") for f in ("passwd", "group", "nsswitch.conf")
                  if os.path.exists(f"/etc/{f}")]
        lines += [("rodir", "/etc/ssl", "/etc/ssl")] if os.path.isdir("/etc/ssl") else []
        for binary in image.binaries:
            lines.append(("rofile", str(self.c.bin_dir / binary), f"/usr/local/bin/{binary}"))
        for shim_name, text in image.shims:
            shim = self.dir / "shims" / shim_name
            shim.parent.mkdir(exist_ok=True)
            shim.write_text(text)
            shim.chmod(0o755)
            lines.append(("rofile", str(shim), f"/usr/local/bin/{shim_name}"))
        mounted = set()
        for m in c.spec.get("volumeMounts") or []:
            src = self.volumes.get(m["name"])
            if src is None:
                raise PodFailed(f"container {c.name} mounts volume {m['name']}, which the pod lacks")
            if m.get("subPath"):
                src = src / m["subPath"]
            target = m["mountPath"].rstrip("/") or "/"
            kind = "dir" if src.is_dir() or not src.exists() else "file"
            if kind == "dir":
                src.mkdir(parents=True, exist_ok=True)
            lines.append((("ro" if m.get("readOnly") else "") + kind, str(src), target))
            mounted.add(target)
        if SA_MOUNT in self.volumes and SA_MOUNT not in mounted:
            lines.append(("rodir", str(self.volumes[SA_MOUNT]), SA_MOUNT))
        path = self.dir / f"{c.name}.mounts"
        path.write_text("".join("\t".join(line) + "\n" for line in lines))
        return path

    def _argv(self, c: Container) -> list[str]:
        env = self.envs[c.name]
        command = c.spec.get("command")
        args = c.spec.get("args")
        if command is None:
            command = list(image_of(c.spec["image"]).entrypoint)
            if args is None:
                raise PodFailed(f"container {c.name} gives neither command nor args, and the "
                                "image's default arguments are not known here")
        return [expand(a, env) for a in list(command) + list(args or [])]

    def _start(self, c: Container) -> None:
        argv = self._argv(c)
        root = self.dir / "roots" / c.name
        root.mkdir(parents=True, exist_ok=True)
        mounts = self._mounts_file(c)
        log = open(self.dir / f"{c.name}.log", "ab")
        log.write(f"{NOTE}start {time.strftime('%H:%M:%S')} (restart {c.restarts})\n".encode())
        log.flush()
        launcher = ["nsenter", "-t", str(self.pause.pid), "-n", "-u", "--",
                    "unshare", "-m", "--propagation", "private", "--",
                    "/bin/sh", "-ec", LAUNCH, "launch", str(root), str(mounts),
                    c.spec.get("workingDir") or "/", *argv]
        c.proc = subprocess.Popen(launcher, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, env=self.envs[c.name],
                                  start_new_session=True)
        log.close()
        c.started_at = time.monotonic()
        c.exit_code, c.reason, c.ready = None, "", False
        c.started = "startupProbe" not in c.spec
        c.probe_state = {}

    def _kill(self, c: Container, grace: float = GRACE_SECONDS) -> None:
        if c.proc is None:
            return
        if c.proc.poll() is None:
            try:
                os.killpg(c.proc.pid, signal.SIGTERM)
                c.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
            except ProcessLookupError:
                pass
        try:  # children the container's shell left behind
            os.killpg(c.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _kill_all(self) -> None:
        for c in self.init_containers + self.containers:
            self._kill(c, grace=2.0 if self.stopping.is_set() else GRACE_SECONDS)
        if self.pause is not None and self.pause.poll() is None:
            os.killpg(self.pause.pid, signal.SIGKILL)
            self.pause.wait()
        if self.veth:
            self.c.network.detach(self.veth)

    def log_tail(self, container: str, lines: int = 20, notes: bool = True) -> str:
        """The last lines of the container's log; ``notes=False`` leaves out this kubelet's own
        notes (starts, probe restarts), which a real kubelet never writes into a container's log."""
        try:
            text = (self.dir / f"{container}.log").read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if notes or not line.startswith(NOTE)]
        return "\n".join(kept[-lines:])

    # ---- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        policy = self.spec.get("restartPolicy", "Always")
        for c in self.init_containers:
            while not self.stopping.is_set():
                self._start(c)
                self._send_status()
                while c.proc.poll() is None and not self.stopping.wait(0.2):
                    pass
                if self.stopping.is_set():
                    return
                c.exit_code = exit_status(c.proc.returncode)
                if c.exit_code == 0:
                    c.reason = "Completed"
                    break
                c.reason = "Error"
                if policy == "Never":
                    self.phase = "Failed"
                    self.message = f"init container {c.name} exited with {c.exit_code}"
                    self._send_status()
                    return
                c.restarts += 1
                self._send_status()
                if self.stopping.wait(self._backoff(c)):
                    return
        self.initialized = True
        for c in self.containers:
            self._start(c)
        self.phase = "Running"
        self._send_status()
        while not self.stopping.wait(0.25):
            changed = False
            for c in self.containers:
                if c.proc is not None and c.proc.poll() is not None and c.exit_code is None:
                    c.exit_code = exit_status(c.proc.returncode)
                    c.reason = "Completed" if c.exit_code == 0 else "Error"
                    c.ready = False
                    changed = True
                    if policy == "Always" or (policy == "OnFailure" and c.exit_code != 0):
                        c.next_start = time.monotonic() + self._backoff(c)
                        c.restarts += 1
                if c.exit_code is not None and c.next_start and time.monotonic() >= c.next_start:
                    c.next_start = 0.0
                    self._start(c)
                    changed = True
                if c.running:
                    changed |= self._probe(c)
            if policy != "Always" and all(c.exit_code is not None and not c.next_start
                                          for c in self.containers):
                failed = [c for c in self.containers if c.exit_code != 0]
                self.phase = "Failed" if failed else "Succeeded"
                self.message = "; ".join(f"container {c.name} exited with {c.exit_code}"
                                         for c in failed)
                self._send_status()
                return
            if changed:
                self._send_status()

    @staticmethod
    def _backoff(c: Container) -> float:
        return float(min(16, 2 ** c.restarts))

    # ---- probes --------------------------------------------------------------------------------

    def _probe(self, c: Container) -> bool:
        """Run the container's probes that are due; True when its readiness changed."""
        now = time.monotonic()
        before = c.ready
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = c.spec.get(kind)
            if probe is None:
                if kind == "readinessProbe":
                    c.ready = c.started
                continue
            if kind != "startupProbe" and not c.started:
                continue
            if kind == "startupProbe" and c.started:
                continue
            state = c.probe_state.setdefault(kind, {"next": c.started_at + probe.get(
                "initialDelaySeconds", 0), "ok": 0, "bad": 0})
            if now < state["next"]:
                continue
            state["next"] = now + probe.get("periodSeconds", 10)
            ok = self._run_probe(c, probe)
            state["ok"], state["bad"] = (state["ok"] + 1, 0) if ok else (0, state["bad"] + 1)
            if kind == "startupProbe" and state["ok"] >= 1:
                c.started = True
            elif kind == "startupProbe" and state["bad"] >= probe.get("failureThreshold", 3):
                self._restart_unhealthy(c, "startup")
            elif kind == "livenessProbe" and state["bad"] >= probe.get("failureThreshold", 3):
                self._restart_unhealthy(c, "liveness")
            elif kind == "readinessProbe":
                if state["ok"] >= probe.get("successThreshold", 1):
                    c.ready = True
                elif state["bad"] >= probe.get("failureThreshold", 3):
                    c.ready = False
        return c.ready != before

    def _restart_unhealthy(self, c: Container, which: str) -> None:
        with open(self.dir / f"{c.name}.log", "a") as log:
            log.write(f"{NOTE}{which} probe failed {c.spec[which + 'Probe'].get('failureThreshold', 3)} times, restarting\n")
        self._kill(c)

    def _run_probe(self, c: Container, probe: dict) -> bool:
        timeout = probe.get("timeoutSeconds", 1)
        try:
            if "exec" in probe:
                argv = ["nsenter", "-t", str(c.proc.pid), "-m", "-n", "-u", "-r", "-w", "--",
                        *probe["exec"]["command"]]
                done = subprocess.run(argv, env=self.envs[c.name], capture_output=True,
                                      timeout=timeout)
                return done.returncode == 0
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = self._port(c, get["port"])
                if get.get("scheme", "HTTP").upper() == "HTTPS":
                    conn = http.client.HTTPSConnection(self.ip, port, timeout=timeout,
                                                       context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection(self.ip, port, timeout=timeout)
                try:
                    conn.request("GET", get.get("path", "/"))
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "tcpSocket" in probe:
                with socket.create_connection((self.ip, self._port(c, probe["tcpSocket"]["port"])),
                                              timeout=timeout):
                    return True
        except (OSError, subprocess.TimeoutExpired, http.client.HTTPException):
            return False
        raise PodFailed(f"container {c.name}: a probe of kind {sorted(probe)} is not known here")

    @staticmethod
    def _port(c: Container, port: Any) -> int:
        if isinstance(port, int):
            return port
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return p["containerPort"]
        raise PodFailed(f"container {c.name} has no port named {port!r}")

    # ---- status --------------------------------------------------------------------------------

    def ready(self) -> bool:
        return self.phase == "Running" and all(c.ready for c in self.containers)

    def _container_status(self, c: Container) -> dict:
        if c.running:
            state = {"running": {"startedAt": _rfc3339()}}
        elif c.exit_code is not None:
            state = {"terminated": {"exitCode": c.exit_code, "reason": c.reason,
                                    "message": self.log_tail(c.name, 5, notes=False)[-1024:]}}
        else:
            state = {"waiting": {"reason": self.waiting_reason, "message": self.message}}
        return {"name": c.name, "image": c.spec["image"], "imageID": "", "ready": c.ready,
                "started": c.running and c.started, "restartCount": c.restarts, "state": state}

    def status(self) -> dict:
        ready = self.ready()
        cond = lambda t, ok: {"type": t, "status": "True" if ok else "False"}  # noqa: E731
        return {
            "phase": self.phase, "message": self.message, "hostIP": self.c.addresses.node_ip,
            "podIP": self.ip, "podIPs": [{"ip": self.ip}] if self.ip else [],
            "conditions": [cond("PodScheduled", True), cond("Initialized", self.initialized),
                           cond("ContainersReady", ready), cond("Ready", ready)],
            "initContainerStatuses": [self._container_status(c) for c in self.init_containers],
            "containerStatuses": [self._container_status(c) for c in self.containers],
        }

    def _send_status(self) -> None:
        status = self.status()
        key = json.dumps(status, sort_keys=True)
        if key == self._status_sent:
            return
        try:
            self.c.core().patch_namespaced_pod_status(self.name, self.ns, {"status": status},
                                                      _request_timeout=REQUEST_TIMEOUT)
            self._status_sent = key
        except ApiException as e:
            if e.status == 404:  # deleted meanwhile: the kubelet stops this run
                self.stopping.set()
            else:
                self.c.error(f"kubelet: status of pod {self.ns}/{self.name}: {e.status} {e.reason}")
        self.c.notify()


def _rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Kubelet:
    """Runs the pods bound to the node (one ``PodRun`` each) and stops those deleted."""

    def __init__(self, cluster: "LocalCluster"):
        self.cluster = cluster
        self.runs: dict[str, PodRun] = {}
        self.lock = threading.Lock()

    def claim_templates(self, pod: dict) -> list[dict]:
        return self.cluster.controllers.claim_templates(pod)

    def reconcile(self) -> None:
        c = self.cluster
        pods = c.core().list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={c.node_name}", _request_timeout=REQUEST_TIMEOUT).items
        live = {}
        for p in pods:
            obj = c.api().sanitize_for_serialization(p)
            uid = obj["metadata"]["uid"]
            if p.metadata.deletion_timestamp is None:
                live[uid] = obj
            elif uid in self.runs:  # graceful deletion: stop, then remove the object
                self._finish(uid)
                self._delete_object(obj)
            else:
                self._delete_object(obj)
        with self.lock:
            for uid in [u for u in self.runs if u not in live]:
                self._finish(uid)
            for uid, obj in live.items():
                if uid not in self.runs and (obj.get("status") or {}).get("phase") not in (
                        "Succeeded", "Failed"):
                    run = PodRun(self, obj)
                    self.runs[uid] = run
                    run.start()

    def _finish(self, uid: str) -> None:
        run = self.runs.pop(uid, None)
        if run is not None:
            run.stop()
            run.join(GRACE_SECONDS + 5)

    def _delete_object(self, obj: dict) -> None:
        try:
            self.cluster.core().delete_namespaced_pod(
                obj["metadata"]["name"], obj["metadata"]["namespace"], grace_period_seconds=0,
                _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise

    def run_of(self, namespace: str, name: str) -> Optional[PodRun]:
        with self.lock:
            return next((r for r in self.runs.values() if (r.ns, r.name) == (namespace, name)), None)

    def stop(self) -> None:
        with self.lock:
            runs = list(self.runs.values())
            self.runs.clear()
        for r in runs:
            r.stop()
        for r in runs:
            r.join(GRACE_SECONDS + 5)
