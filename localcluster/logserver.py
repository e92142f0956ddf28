"""The kubelet's log endpoint, so ``kubectl logs`` (the API server's ``pods/log``) works: HTTPS on
the node address, port 10250, ``GET /containerLogs/<namespace>/<pod>/<container>`` with
``tailLines``, answered from the stand-in kubelet's log files. One file holds every instance of a
container, so ``previous=true`` (the instance before the current one) is refused, as are query
parameters it does not know (``follow``, ``sinceSeconds``, ...). Only that path is served (exec,
attach, port-forward and the rest answer 404, loudly in the log); the API server calls it without
client certificates (none are configured on these API servers), and does not verify its
certificate (no ``--kubelet-certificate-authority``)."""

from __future__ import annotations

import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

from .pki import issue_cert, make_ca

if TYPE_CHECKING:
    from .cluster import LocalCluster

__all__ = ["LogServer", "KUBELET_PORT"]

KUBELET_PORT = 10250


class LogServer:
    def __init__(self, cluster: "LocalCluster"):
        self.c = cluster
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        cluster = self.c

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    cluster.log.warning("kubelet: %s is not served here", url.path)
                    self.send_error(404, "only /containerLogs is served by this kubelet")
                    return
                _, namespace, pod, container = parts
                run = cluster.kubelet.run_of(namespace, pod)
                if run is None:
                    self.send_error(404, f"pod {namespace}/{pod} does not run on this node")
                    return
                query = parse_qs(url.query)
                unknown = sorted(set(query) - {"tailLines", "previous"})
                if unknown or query.get("previous", ["false"])[0] != "false":
                    cluster.log.warning("kubelet: log query %s is not served here", url.query)
                    self.send_error(400, f"this kubelet serves tailLines only, not {unknown or 'previous'}")
                    return
                tail = int((query.get("tailLines") or ["100000"])[0])
                body = (run.log_tail(container, tail, notes=False) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                cluster.log.debug("kubelet log server: " + fmt, *args)

        address = cluster.addresses.node_ip
        ca = make_ca(f"{cluster.name}-kubelet-ca")
        cert, key = issue_cert(*ca, cluster.node_name, [address])
        self._files = tempfile.TemporaryDirectory(prefix="kubelet-", dir=cluster.workdir)
        cert_file, key_file = f"{self._files.name}/tls.crt", f"{self._files.name}/tls.key"
        open(cert_file, "wb").write(cert)
        open(key_file, "wb").write(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        self.server = ThreadingHTTPServer((address, KUBELET_PORT), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, name=f"kubelet-logs-{cluster.name}",
                         daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
