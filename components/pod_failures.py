"""Which containers of a release's pods are failing, and the last thing each one logged.

Helm's "context deadline exceeded" (or a Job's BackoffLimitExceeded) says nothing of why; the
reason is in the failing container's log: a secondary's mesh gateway and connect injector that
cannot log in because the primary's servers cannot reach the secondary's API server at
k8sAuthMethodHost, a server-acl-init that cannot reach the servers. So after a failed Release,
the error names each container that holds a pod back and quotes its last log lines, read
through the API server as `kubectl logs` reads them, with what to change when the line is a
failure users meet (KNOWN_CAUSES).

A quoted line is a log line, not a value: anything in it shaped like a token (a UUID, a long
base64 run) is replaced with <redacted> before it is printed.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Optional

from .kube_cluster import error_summary

# How many log lines to read, and how many non-empty ones to quote, per failing container.
LOG_TAIL_LINES = 20
QUOTED_LINES = 2
MAX_LINE = 400
_TOKEN_SHAPED = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|[A-Za-z0-9+/_-]{40,}={0,2}")

# Waiting reasons of a container that has not run yet: it has no log and holds nothing back itself.
NOT_STARTED = ("PodInitializing", "ContainerCreating")
# Log text of failures users meet -> what to change.
KNOWN_CAUSES = [
    (re.compile(r"tokenreviews.*(connection refused|i/o timeout|no such host|no route to host|"
                r"certificate|context deadline exceeded)"),
     "the login's token review failed: the primary's servers call this cluster's API server at "
     "k8sAuthMethodHost (the URL in the line) and could not reach or trust it; set "
     "consul-federation:k8sAuthMethodHost to an https URL of this API server that the primary's "
     "servers can reach (consul-k8s#2138)"),
]

# (pod name, container name) -> its log text, or None when it cannot be read; LogUnreadable
# when the API server said why
LogReader = Callable[[str, str], Optional[str]]


class LogUnreadable(Exception):
    """The API server refused a container's log (an RBAC 403, say); the message says why."""


def redact(line: str) -> str:
    """The line with token-shaped strings replaced, cut to MAX_LINE characters."""
    line = _TOKEN_SHAPED.sub("<redacted>", line.strip())
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + "..."


def _how(cs: Mapping[str, Any], init: bool) -> Optional[str]:
    """How a container that holds its pod back is doing, or None if it does not."""
    state = cs.get("state") or {}
    restarts = cs.get("restartCount") or 0
    again = f" after {restarts} restarts" if restarts else ""
    if "terminated" in state:
        code = state["terminated"].get("exitCode", 0)
        return None if code == 0 else f"exited {code}{again}"
    if "waiting" in state:
        reason = state["waiting"].get("reason", "")
        if reason in NOT_STARTED:
            return None
        last = (cs.get("lastState") or {}).get("terminated") or {}
        return f"{reason or 'waiting'}{again}" + (f", last exit {last['exitCode']}" if "exitCode" in last else "")
    if init:
        return f"init container still running{again}"
    return None if cs.get("ready") else f"running, not ready{again}"


def failing_containers(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(container, how) for each container that holds the pod back: exited with an error,
    waiting to restart, an init container still running, a container running but not ready.
    Init containers first, as the kubelet runs them; containers not started yet are left out."""
    status = pod.get("status") or {}
    found = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in status.get(key) or []:
            how = _how(cs, init)
            if how is not None:
                found.append((cs["name"], how))
    return found


def likely_cause(text: str) -> Optional[str]:
    """What a log line means for this program's settings, when it is a failure users meet."""
    for pattern, cause in KNOWN_CAUSES:
        if pattern.search(text):
            return cause
    return None


def quote_log(text: Optional[str]) -> str:
    """The last QUOTED_LINES non-empty lines of a log, redacted, or why there are none."""
    if text is None:
        return "its log could not be read"
    lines = [redact(line) for line in text.splitlines() if line.strip()]
    if not lines:
        return "it logged nothing"
    return "its log ends: " + " | ".join(f'"{line}"' for line in lines[-QUOTED_LINES:])


def pod_failure_lines(pods: list[Mapping[str, Any]], read_log: LogReader) -> list[str]:
    """One line per failing container of these pods: pod, container, how it fails, its log."""
    lines = []
    for pod in pods:
        name = pod["metadata"]["name"]
        for container, how in failing_containers(pod):
            try:
                quoted = quote_log(read_log(name, container))
            except LogUnreadable as exc:
                quoted = f"its log could not be read ({exc})"
            line = f"pod {name}, container {container} ({how}); {quoted}"
            cause = likely_cause(quoted)
            lines.append(line + (f"; likely: {cause}" if cause else ""))
    return lines


def api_log_reader(core: Any, namespace: str) -> LogReader:
    """A LogReader on a kubernetes CoreV1Api: the container's current log, or the previous
    instance's when the current one has none yet (a container waiting to restart). When neither
    has text and the current one was refused, LogUnreadable with the server's reason (a missing
    previous instance, one that never restarted, says nothing)."""
    from kubernetes.client.rest import ApiException

    def read(pod: str, container: str) -> Optional[str]:
        refused: Optional[ApiException] = None
        for previous in (False, True):
            try:
                text = core.read_namespaced_pod_log(pod, namespace, container=container,
                                                    tail_lines=LOG_TAIL_LINES, previous=previous)
            except ApiException as exc:
                refused = refused if previous else exc
                continue
            if text and text.strip():
                return text
        if refused is not None:
            raise LogUnreadable(error_summary(refused))
        return None

    return read
