"""Names of the stack outputs: the contract between a primary stack and its secondaries."""

DATACENTER = "datacenter"
ROLE = "role"
NAMESPACE = "namespace"
CHART_VERSION = "chartVersion"
ACLS_ENABLED = "aclsEnabled"
GOSSIP_ENABLED = "gossipEncryptionEnabled"
FEDERATION_SECRET = "federationSecret"
PRIMARY_DATACENTER = "primaryDatacenter"
K8S_AUTH_METHOD_HOST = "k8sAuthMethodHost"
# The primary's: the gossip key's generation and its keys (a secret), for rotate-gossip-key.
GOSSIP_KEYS = "gossipKeys"
# Every stack's: the TLS CA rotation stage its pods were rolled for (a secondary's is its primary's).
TLS_CA_STAGE = "tlsCaStage"

# What a secondary checks in its primary's outputs before any of its Kubernetes resources exists.
REQUIRED_FROM_PRIMARY = (DATACENTER, ACLS_ENABLED, GOSSIP_ENABLED, CHART_VERSION, FEDERATION_SECRET)
