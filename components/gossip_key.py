"""The gossip encryption key of the federation, made in the primary.

32 random bytes, base64-encoded: exactly what ``consul keygen`` prints. It exists only as a Pulumi
secret and inside a Kubernetes Secret; secondaries get it through the federation secret.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .helm_values import GOSSIP_SECRET_KEY


class GossipEncryptionKey(pulumi.ComponentResource):
    """A RandomBytes key stored in Secret ``secret_name`` under key ``key``."""

    def __init__(self, name: str, namespace: pulumi.Input[str], secret_name: str,
                 provider: k8s.Provider, opts: pulumi.ResourceOptions):
        super().__init__("consul-federation:index:GossipEncryptionKey", name, None, opts)
        key = random.RandomBytes(f"{name}-bytes", length=32,
                                 opts=pulumi.ResourceOptions(parent=self))
        # stringData takes the key as text; the API server stores it base64-encoded once, so the
        # servers read the same string `consul keygen` would have printed (no double encoding).
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=secret_name, namespace=namespace),
            type="Opaque",
            string_data={GOSSIP_SECRET_KEY: pulumi.Output.secret(key.base64)},
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.secret_name = self.secret.metadata.name
        self.register_outputs({"secretName": self.secret_name})
