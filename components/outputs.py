"""Names of the stack outputs: the contract between a primary stack and its secondaries."""

DATACENTER = "datacenter"
ROLE = "role"
NAMESPACE = "namespace"
CHART_VERSION = "chartVersion"
ACLS_ENABLED = "aclsEnabled"
GOSSIP_ENABLED = "gossipEncryptionEnabled"
FEDERATION_SECRET = "federationSecret"
PRIMARY_DATACENTER = "primaryDatacenter"

# What a secondary reads from its primary before it registers anything else.
REQUIRED_FROM_PRIMARY = (DATACENTER, ACLS_ENABLED, GOSSIP_ENABLED, CHART_VERSION, FEDERATION_SECRET)
