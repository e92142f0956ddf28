"""Local Kubernetes clusters whose pods run for real: a stand-in kubelet runs each pod's
containers as processes (Consul, consul-k8s-control-plane, consul-dataplane with Envoy, built by
``tools/ensure.sh consul``), around real kube-apiservers; what Kubernetes' own controllers,
kube-proxy and cluster DNS do is played. Each module's docstring says what is real and what is
played, and fails closed on what it does not know.

Everything runs inside a network namespace the run created (``tools/netns.sh``): pods get
addresses on a bridge there, and no address it uses is reachable from, or routes to, anything
outside it.
"""

from .cluster import LocalCluster
from .dns import add_name
from .network import ClusterAddresses, NodeNetwork, in_private_netns

__all__ = ["LocalCluster", "NodeNetwork", "ClusterAddresses", "add_name", "in_private_netns"]
