#!/usr/bin/env python3
"""TLS CA rotation of two WAN-joined Consul datacenters, done the way the Consul chart 1.2.1 would
do it, on loopback. Not a test: it prints what each step's RPCs and TLS clients see.

What is real:
- Consul v1.16.1 (tools/consul.sh), one server per datacenter (dc1 primary, dc2), with the TLS
  settings chart 1.2.1 renders in consul-server-config's tls-config.json (verify_incoming and
  verify_server_hostname on internal RPC, verify_outgoing, ca_file, cert_file, key_file; HTTPS
  and gRPC-TLS without client certificates).
- Every CA and server certificate is made by consul-k8s-control-plane 1.2.1's `tls-init`, the
  command the chart's tls-init hook Job runs, with the Job's flags (SANs, -days=730, -ca/-key
  from the mounted caCert/caKey secret keys). tls-init needs a Kubernetes API: here a stand-in
  on loopback that stores the Secrets it reads and writes (GET, POST, PUT of /api/v1 secrets).
- The old CA is the one tls-init makes in the primary when global.tls.caCert is not set (as in
  this program's primary); the new CA is made the same way, so both are "Consul Agent CA" with
  the same subject.

What is not: no Kubernetes, no chart pods, no Helm hooks (the script plays their order: tls-init
before a server restarts, as pre-upgrade), no mesh gateways (the servers WAN-join directly;
through mesh gateways the server TLS is end to end, the gateways route by SNI), no ACLs, no gossip
encryption. The clients of each step are TLS handshakes to each server's grpc_tls port with one
CA file and the server name server.<dc>.consul, as consul-dataplane (mesh gateway, injected
sidecar) makes with -ca-certs and -tls-server-name; once, when dc1 has a new-CA certificate and
dc2 an old-CA one, consul-dataplane 1.2.1 itself connects with the old CA, the new one and the
bundle (no proxy is registered: it stops after connecting).

Run as root from the repository (loopback only; it listens on 127.0.0.1 ports 18300-18502 and
28300-28502 and one ephemeral port):
    python3 bench/ca_rotation.py [--apply restart|reload] [--keep]
--apply reload sends SIGHUP (`consul reload`) after the files changed instead of restarting the
server (Kubernetes updates a mounted Secret in place; the chart does not restart the servers).
Consul reloads the TLS files, but RPCs between servers keep using the connections opened before,
so even the naive change answers for a while: a reload shows nothing about trust, a restart does.
Everything goes to a temporary directory, removed at the end unless --keep (then the server logs
and certificates stay there for reading). About 110 s with restarts, 25 s with reloads.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CACHE = os.environ.get("CONSUL_FEDERATION_CACHE", os.path.expanduser("~/.cache/consul-federation"))
NS = "consul"
PREFIX = "consul"
PORTS = {"dc1": 18000, "dc2": 28000}  # + 300 server, 301 serf_lan, 302 serf_wan, 501 https, 502 grpc_tls


def tool(name: str, version: str) -> str:
    """A binary tools/consul.sh published (its .done marker), never built here."""
    path = os.path.join(CACHE, name, version, name)
    if not os.path.isfile(os.path.join(CACHE, name, version, ".done")):
        sys.exit(f"no {path}: run tools/consul.sh (Consul 1.16.1 only)")
    return path


# ---------------------------------------------------------------- a stand-in Kubernetes API

class Secrets(http.server.BaseHTTPRequestHandler):
    """Just enough of /api/v1/namespaces/<ns>/secrets for tls-init: GET, POST, PUT."""

    store: dict[tuple[str, str], dict] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> list[str]:
        return self.path.split("?")[0].strip("/").split("/")  # api v1 namespaces NS secrets [NAME]

    def do_GET(self) -> None:
        p = self._path()
        obj = self.store.get((p[3], p[5])) if len(p) == 6 else None
        if obj is None:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "NotFound", "code": 404, "message": "not found",
                             "details": {"name": p[-1], "kind": "secrets"}})
        else:
            self._send(200, obj)

    def _write(self, code: int) -> None:
        obj = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        obj.setdefault("kind", "Secret")
        obj.setdefault("apiVersion", "v1")
        self.store[(self._path()[3], obj["metadata"]["name"])] = obj
        self._send(code, obj)

    def do_POST(self) -> None:
        self._write(201)

    def do_PUT(self) -> None:
        self._write(200)


def secret_value(ns: str, name: str, key: str) -> bytes:
    return base64.b64decode(Secrets.store[(ns, name)]["data"][key])


# ---------------------------------------------------------------- one datacenter's server

class Server:
    def __init__(self, root: str, dc: str, consul: str):
        self.dc, self.consul = dc, consul
        self.base = PORTS[dc]
        self.dir = os.path.join(root, dc)
        self.tls = os.path.join(self.dir, "tls")
        self.log_path = os.path.join(self.dir, "consul.log")
        os.makedirs(os.path.join(self.dir, "config"), exist_ok=True)
        os.makedirs(os.path.join(self.tls, "ca"), exist_ok=True)
        os.makedirs(os.path.join(self.tls, "server"), exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log = None

    @property
    def https(self) -> int:
        return self.base + 501

    @property
    def grpc_tls(self) -> int:
        return self.base + 502

    @property
    def ca_file(self) -> str:
        return os.path.join(self.tls, "ca", "tls.crt")

    def write_config(self) -> None:
        b = self.base
        server = {
            "bind_addr": "127.0.0.1", "client_addr": "127.0.0.1", "advertise_addr": "127.0.0.1",
            "advertise_addr_wan": "127.0.0.1", "bootstrap_expect": 1, "server": True,
            "connect": {"enabled": True}, "datacenter": self.dc, "primary_datacenter": "dc1",
            "data_dir": os.path.join(self.dir, "data"), "domain": "consul", "node_name": f"{self.dc}-server-0",
            "ports": {"dns": -1, "http": -1, "grpc": -1, "server": b + 300, "serf_lan": b + 301,
                      "serf_wan": b + 302, "https": b + 501, "grpc_tls": b + 502},
            "log_level": "INFO",
        }
        if self.dc != "dc1":
            server["retry_join_wan"] = [f"127.0.0.1:{PORTS['dc1'] + 302}"]
        # chart 1.2.1, consul-server-config: tls-config.json (paths moved under this directory)
        tls = {"tls": {
            "internal_rpc": {"verify_incoming": True, "verify_server_hostname": True},
            "grpc": {"verify_incoming": False},
            "defaults": {"verify_outgoing": True, "ca_file": self.ca_file,
                         "cert_file": os.path.join(self.tls, "server", "tls.crt"),
                         "key_file": os.path.join(self.tls, "server", "tls.key")}}}
        for name, body in (("server.json", server), ("tls-config.json", tls)):
            with open(os.path.join(self.dir, "config", name), "w") as f:
                json.dump(body, f, indent=1)

    def start(self) -> None:
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.consul, "agent", "-config-dir", os.path.join(self.dir, "config")],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
        self.proc = None

    def apply(self, how: str) -> None:
        if how == "reload":
            assert self.proc is not None
            self.proc.send_signal(signal.SIGHUP)
        else:
            self.stop()
            self.start()

    def log_lines(self) -> list[str]:
        with open(self.log_path, errors="replace") as f:
            return f.read().splitlines()


# ---------------------------------------------------------------- the chart's tls-init

class TlsInit:
    def __init__(self, root: str, control_plane: str, api_port: int):
        self.bin = control_plane
        self.root = root
        self.kubeconfig = os.path.join(root, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: stand-in, cluster: {{server: "http://127.0.0.1:{api_port}"}}}}]
contexts: [{{name: stand-in, context: {{cluster: stand-in, user: u}}}}]
current-context: stand-in
users: [{{name: u, user: {{}}}}]
""")

    def run(self, dc: str, ns: str, ca: str | None = None, key: str | None = None) -> tuple[int, str]:
        """The chart's tls-init Job command (tls-init-job.yaml), -k8s-namespace=ns."""
        args = [self.bin, "tls-init", "-log-level=info", "-log-json=false", "-domain=consul",
                "-days=730", f"-name-prefix={PREFIX}", f"-k8s-namespace={ns}", f"-kubeconfig={self.kubeconfig}"]
        if ca:
            args += [f"-ca={ca}", f"-key={key}"]
        for n in (f"{PREFIX}-server", f"*.{PREFIX}-server", f"*.{PREFIX}-server.{NS}",
                  f"{PREFIX}-server.{NS}", f"*.{PREFIX}-server.{NS}.svc", f"{PREFIX}-server.{NS}.svc",
                  f"*.server.{dc}.consul"):
            args.append(f"-additional-dnsname={n}")
        args.append(f"-dc={dc}")
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return done.returncode, (done.stdout + done.stderr).strip()


# ---------------------------------------------------------------- checks

def rpc(src: Server, dst: str, timeout: float) -> tuple[bool, str]:
    """GET /v1/catalog/nodes?dc=dst at src's HTTPS port (an RPC src forwards to dst's server),
    trusting src's own ca_file as the chart's CONSUL_CACERT does; retried until timeout."""
    ctx = ssl.create_default_context(cafile=src.ca_file)
    url = f"https://127.0.0.1:{src.https}/v1/catalog/nodes?dc={dst}"
    deadline, last = time.monotonic() + timeout, "no answer"
    start, seen = time.monotonic(), []
    while True:
        if last != "no answer" and last[:60] not in seen:
            seen.append(last[:60])
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
                nodes = [n["Node"] for n in json.load(r)] or ["answered, no node registered yet"]
                before = f"; before: {' / '.join(seen)}" if seen else ""
                return True, f"ok after {time.monotonic() - start:.1f} s ({', '.join(nodes)}){before}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read().decode(errors='replace').strip()[:220]}"
        except Exception as e:  # connection refused while restarting, TLS errors
            last = f"{type(e).__name__}: {e}"[:220]
        if time.monotonic() > deadline:
            return False, f"FAILED for {timeout:.0f} s: {last}"
        time.sleep(1)


def wan_members(src: Server) -> str:
    env = {**os.environ, "CONSUL_HTTP_ADDR": f"https://127.0.0.1:{src.https}", "CONSUL_CACERT": src.ca_file}
    done = subprocess.run([src.consul, "members", "-wan"], capture_output=True, text=True, env=env, timeout=20)
    if done.returncode != 0:
        return "members -wan failed: " + (done.stdout + done.stderr).strip()[:200]
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    return ", ".join(f"{r[0]} {r[2]}" for r in rows)


def handshake(server: Server, ca: str) -> str:
    """A TLS client with only `ca`, as consul-dataplane -ca-certs=<ca> -tls-server-name=server.<dc>.consul."""
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", server.grpc_tls), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=f"server.{server.dc}.consul"):
                return "ok"
    except ssl.SSLCertVerificationError as e:
        return f"FAIL ({e.verify_message})"
    except OSError as e:
        return f"FAIL ({type(e).__name__}: {e})"


def dataplane(binary: str, server: Server, ca: str, timeout: float = 4) -> str:
    """consul-dataplane 1.2.1 itself, with the flags a mesh gateway or sidecar gets
    (-ca-certs, -tls-server-name), up to its gRPC connection to the server: no proxy is registered,
    so once connected it stops at "Service not found"; a TLS failure makes it retry for ever."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, "-addresses=127.0.0.1", f"-grpc-port={server.grpc_tls}", f"-ca-certs={ca}",
                             f"-tls-server-name=server.{server.dc}.consul", "-proxy-service-id=none-sidecar-proxy",
                             f"-service-node-name={server.dc}-server-0"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            log.seek(0)
            out = log.read().decode(errors="replace")
            if "connected to Consul server over gRPC" in out:
                return "connected"
            if "handshake failed" in out:
                i = out.find("x509:", out.find("handshake failed"))
                return f"FAIL ({out[i:i + 45]})"
        return f"no connection in {timeout:.0f} s"
    finally:
        proc.kill()
        proc.wait()
        log.close()


def issuer(cert: str, cas: dict[str, str]) -> str:
    for name, path in cas.items():
        done = subprocess.run(["openssl", "verify", "-partial_chain", "-CAfile", path, cert],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return name
    return "neither CA"


def pem_certs(path: str) -> int:
    with open(path) as f:
        return f.read().count("BEGIN CERTIFICATE")


# ---------------------------------------------------------------- the experiment

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apply", choices=("restart", "reload"), default="restart")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--fail-wait", type=float, default=20, help="seconds an RPC is retried before it counts as failed")
    args = parser.parse_args()
    consul, control_plane = tool("consul", "v1.16.1"), tool("consul-k8s-control-plane", "1.2.1")
    consul_dataplane = tool("consul-dataplane", "1.2.1")
    version = subprocess.run([consul, "version"], capture_output=True, text=True).stdout.splitlines()[0]
    if not version.startswith("Consul v1.16.1"):
        sys.exit(f"refusing {consul}: {version} (only Consul v1.16.1 may run here)")
    cp_version = subprocess.run([control_plane, "version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; {cp_version}; servers apply a change by {args.apply}")

    root = tempfile.mkdtemp(prefix="ca-rotation-")
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Secrets)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    tls_init = TlsInit(root, control_plane, api.server_address[1])
    servers = {dc: Server(root, dc, consul) for dc in ("dc1", "dc2")}
    started = time.monotonic()

    def files(name: str, *pems: bytes) -> str:
        path = os.path.join(root, name)
        with open(path, "wb") as f:
            f.write(b"".join(pems))
        return path

    def must(code_out: tuple[int, str], what: str) -> None:
        if code_out[0] != 0:
            sys.exit(f"{what} failed:\n{code_out[1]}")

    # The old CA: what the primary's tls-init makes when global.tls.caCert is not set
    # (Secrets consul-ca-cert / consul-ca-key); the new CA: the same code, in another namespace.
    must(tls_init.run("dc1", "old"), "tls-init (old CA)")
    must(tls_init.run("dc1", "new"), "tls-init (new CA)")
    old_cert, old_key = secret_value("old", f"{PREFIX}-ca-cert", "tls.crt"), secret_value("old", f"{PREFIX}-ca-key", "tls.key")
    new_cert, new_key = secret_value("new", f"{PREFIX}-ca-cert", "tls.crt"), secret_value("new", f"{PREFIX}-ca-key", "tls.key")
    cas = {"old CA": files("old.crt", old_cert), "new CA": files("new.crt", new_cert)}
    keys = {"old": files("old.key", old_key), "new": files("new.key", new_key)}
    bundles = {"old": cas["old CA"], "new": cas["new CA"],
               "old+new": files("old+new.crt", old_cert, new_cert),
               "new+old": files("new+old.crt", new_cert, old_cert)}

    def set_dc(dc: str, ca_cert: str, ca_key: str) -> str:
        """What a helm upgrade with global.tls.caCert=<ca_cert>, caKey=<ca_key> leaves on the
        server's disk: the tls-init hook's new server certificate, the caCert secret as ca_file."""
        s = servers[dc]
        code, out = tls_init.run(dc, dc, bundles[ca_cert], keys[ca_key])
        if code != 0:
            return f"tls-init FAILED (exit {code}): " + " | ".join(line for line in out.splitlines() if "error" in line.lower())
        shutil.copy(bundles[ca_cert], s.ca_file)
        for k in ("tls.crt", "tls.key"):
            with open(os.path.join(s.tls, "server", k), "wb") as f:
                f.write(secret_value(dc, f"{PREFIX}-server-cert", k))
        return f"tls-init ok, server certificate issued by the {issuer(os.path.join(s.tls, 'server', 'tls.crt'), cas)}"

    def tls_errors() -> dict[str, int]:
        return {dc: sum("x509" in line or "bad certificate" in line for line in s.log_lines())
                for dc, s in servers.items()}

    def check(title: str, before: dict[str, int]) -> None:
        print(f"  checks after {title}:")
        for a, b in (("dc1", "dc2"), ("dc2", "dc1")):
            ok, text = rpc(servers[a], b, args.fail_wait)
            print(f"    RPC {a} -> {b}: {text}")
        for dc, s in servers.items():
            print(f"    {dc} members -wan: {wan_members(s)}")
        for name, path in cas.items():
            print(f"    client trusting only the {name}: " +
                  ", ".join(f"{dc} {handshake(s, path)}" for dc, s in servers.items()))
        print("    server log lines with x509 or bad certificate since the change: " + ", ".join(
            f"{dc} {n - before[dc]}" for dc, n in tls_errors().items()))

    def step(label: str, dc: str, ca_cert: str, ca_key: str) -> None:
        print(f"{label} {dc}: caCert={ca_cert}, caKey={ca_key}: {set_dc(dc, ca_cert, ca_key)}; "
              f"ca_file has {pem_certs(servers[dc].ca_file)} certificate(s); {args.apply}")
        before = tls_errors()
        servers[dc].apply(args.apply)
        check(label, before)

    try:
        # 0. tls-init refuses a bundle whose first certificate is not caKey's.
        code, out = tls_init.run("dc1", "probe", bundles["old+new"], keys["new"])
        print(f"probe: tls-init with caCert=old+new, caKey=new: exit {code}: "
              + " | ".join(line.strip() for line in out.splitlines() if "rror" in line))

        # 1. Baseline: both on the old CA, WAN-joined.
        for dc, s in servers.items():
            s.write_config()
            print(f"start {dc}: caCert=old, caKey=old: {set_dc(dc, 'old', 'old')}")
            s.start()
        check("start", {dc: 0 for dc in servers})

        # 2. The naive change: dc1 moved to the new CA alone while dc2 trusts only the old one.
        step("naive", "dc1", "new", "new")
        print("undo dc1: " + set_dc("dc1", "old", "old"))
        before = tls_errors()
        servers["dc1"].apply("restart")
        check("undo", before)

        # 3. The procedure: trust both everywhere, new certificates everywhere, old CA out.
        for n, (ca_cert, ca_key) in enumerate((("old+new", "old"), ("new+old", "new"), ("new", "new")), 1):
            for dc in servers:
                step(f"step {n} ({dc})", dc, ca_cert, ca_key)
                if (n, dc) == (2, "dc1"):  # dc1 on a new-CA certificate, dc2 still on an old-CA one
                    for name in ("old", "new", "old+new"):
                        print(f"    consul-dataplane -ca-certs={name}: " + ", ".join(
                            f"{d} {dataplane(consul_dataplane, s, bundles[name])}" for d, s in servers.items()))
    finally:
        for s in servers.values():
            s.stop()
        api.shutdown()
        print(f"wall time {time.monotonic() - started:.0f} s")
        for dc, s in servers.items():
            lines = [line for line in s.log_lines() if "x509" in line or "tls" in line.lower() and "ERROR" in line]
            print(f"{dc} log: {len(lines)} TLS error line(s)" + (f"; first: {lines[0][:300]}" if lines else ""))
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
