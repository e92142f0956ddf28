"""A stand-in for the WORKLOAD side of a Kubernetes cluster running the Consul Helm chart, for
integration tests against a real kube-apiserver with no kubelet and no controllers (see
``localcluster/controlplane.py``).

``ClusterHarness(kubeconfig_path, context, egress_socket, *, lb_ip="127.0.0.2",
apiserver_endpoint_ip="192.0.2.10", ...)`` runs background threads against one cluster (use
``with``). Everything goes through the real API server, so Helm (hooks, ``--wait``), the
chart's manifests and RBAC, admission and the Pulumi provider all meet real API behaviour.

REAL: kube-apiserver + etcd, Helm, the chart, RBAC (side effects run as the chart's
ServiceAccounts), admission over TLS, Services/ClusterIPs, every certificate.
PLAYED (one module each, each docstring says exactly what and how):

- ``jobs``: the kubelet + job controller + the Job's own command, fail closed;
- ``workloads``: Deployment/ReplicaSet/StatefulSet readiness exactly as Helm's wait reads it,
  ready only when a kubelet could start the pods (ServiceAccount, Secrets, ConfigMaps and keys
  present) and every statement and flag of every container is known;
- ``webhooks``: webhook-cert-manager, the connect injector's admission server, the egress
  CONNECT proxy the apiserver reaches webhooks through;
- ``loadbalancer``: LoadBalancer ingress (loopback) and the ``default/kubernetes`` Endpoints
  (an RFC 5737 placeholder address);
- ``config_entries``: the injector's config-entry controller setting ProxyDefaults Synced
  from its own check of the entry (a running server to write to, a name and mode Consul
  takes), as its ServiceAccount;
- ``deletion``: garbage collector and namespace controller;
- ``faults``: what a test makes go wrong on purpose (``fail_jobs``: Jobs failing as Kubernetes
  fails them, BackoffLimitExceeded).

Fail closed: what the harness does not know (a command, flag, fieldRef, file, webhook) is
refused with the reason, and a loop's pass that meets anything but a dropped connection or a
write conflict is recorded in ``errors()``, which the tests assert empty.

What each chart line runs is data (``chart_table``); ``pod`` is the kubelet's view of a pod
spec; ``commands`` reads container commands as the pod would run them.

NOT played: Pods (Helm's wait does not read them for what the charts render), probes, Consul
itself, Envoy, ``helm test``.
"""

from .chart_table import CHART_LINES, ChartLine, chart_line_of
from .commands import parse_control_plane_invocations, run_script
from .core import ClusterHarness
from .errors import HarnessError
from .records import AdmissionRecord, JobRecord
from .webhooks import server_context
from .workloads import Running

__all__ = ["ClusterHarness", "HarnessError", "AdmissionRecord", "JobRecord", "CHART_LINES",
           "ChartLine", "chart_line_of", "parse_control_plane_invocations", "run_script",
           "server_context", "Running"]
