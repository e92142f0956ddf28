"""Names shared by configuration, the values guard and the chart values (imports nothing).

A leaf module so that the layers above it (config, values_guard, helm_values, the components)
never need each other for a constant.
"""

# The configuration namespace: every setting is consul-federation:<key>.
CONFIG_NAMESPACE = "consul-federation"

# Value paths this program sets for federation. helmValues may not touch them: a user override
# of any of these would silently break federation or disagree with the other datacenters.
OWNED_PATHS = (
    "fullnameOverride",
    "global.name",
    "global.datacenter",
    "global.tls.enabled",
    "global.tls.caCert",
    "global.tls.caKey",
    "global.federation",
    "global.acls.manageSystemACLs",
    "global.acls.createReplicationToken",
    "global.acls.replicationToken",
    "global.gossipEncryption",
    "connectInject.enabled",
    "meshGateway.enabled",
    "meshGateway.replicas",
    "meshGateway.service.type",
    "meshGateway.service.port",
    "meshGateway.service.nodePort",
    "meshGateway.wanAddress",
    "server.extraVolumes",
)

# Keys of the federation secret written by the chart's create-federation-secret job.
FED_CA_CERT = "caCert"
FED_CA_KEY = "caKey"
FED_SERVER_CONFIG = "serverConfigJSON"
FED_REPLICATION_TOKEN = "replicationToken"
FED_GOSSIP_KEY = "gossipEncryptionKey"

# The key of the gossip key in the primary's own gossip Secret.
GOSSIP_SECRET_KEY = "key"
