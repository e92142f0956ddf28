"""The gossip encryption key of the federation, made in the primary.

The key is what ``consul keygen`` prints: 32 random bytes, base64-encoded. It exists only as a
Pulumi secret and inside a Kubernetes Secret; secondaries get it through the federation secret.

Why not ``random.RandomBytes``: pulumi-random uses the bytes themselves as that resource's ID,
and IDs are stored in the state in plaintext (the integration tier found the key there). A
``RandomPassword``'s ID is "none"; its 64 alphanumeric characters (381 bits) go through SHA-256
to give the 32 key bytes.
"""

from __future__ import annotations

import base64
import hashlib

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .constants import GOSSIP_SECRET_KEY

SEED_LENGTH = 64


def gossip_key_from_seed(seed: str) -> str:
    """32 bytes derived from the seed, base64-encoded as `consul keygen` prints them."""
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


class GossipEncryptionKey(pulumi.ComponentResource):
    """A random key stored in Secret ``secret_name`` under key ``key`` (the SDK makes a Secret's
    ``string_data`` a Pulumi secret, and RandomPassword's result is one)."""

    def __init__(self, name: str, namespace: pulumi.Input[str], secret_name: str,
                 provider: k8s.Provider, opts: pulumi.ResourceOptions):
        super().__init__("consul-federation:index:GossipEncryptionKey", name, None, opts)
        seed = random.RandomPassword(f"{name}-seed", length=SEED_LENGTH, special=False,
                                     opts=pulumi.ResourceOptions(parent=self))
        # stringData takes the key as text; the API server stores it base64-encoded once, so the
        # servers read the same string `consul keygen` would have printed (no double encoding).
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=secret_name, namespace=namespace),
            type="Opaque",
            string_data={GOSSIP_SECRET_KEY: seed.result.apply(gossip_key_from_seed)},
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.register_outputs({"secretName": self.secret.metadata.name})
