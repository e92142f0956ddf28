"""The gossip encryption key of the federation, made in the primary.

The key is what ``consul keygen`` prints: 32 random bytes, base64-encoded. It exists only as a
Pulumi secret and inside a Kubernetes Secret; secondaries get it through the federation secret.

Keys have generations (``gossipKeyGeneration``, raised by ``python -m federation
rotate-gossip-key``): generation 0 is the seed's SHA-256, as before rotation existed; generation
n is an HMAC-SHA256 of n under the seed. So the next key is known (as a secret stack output)
before the Secret holds it, which the rotation needs: Consul's keyring must have the new key on
every member before any server can start with it. The seed never leaves the state, so a key
leaked from a cluster tells nothing of the next one.

Why not ``random.RandomBytes``: pulumi-random uses the bytes themselves as that resource's ID,
and IDs are stored in the state in plaintext (the integration tier found the key there). A
``RandomPassword``'s ID is "none"; its 64 alphanumeric characters (381 bits) go through SHA-256
to give the 32 key bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Mapping

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from .constants import GOSSIP_SECRET_KEY

SEED_LENGTH = 64


def gossip_key_from_seed(seed: str, generation: int = 0) -> str:
    """The key of this generation, 32 bytes base64-encoded as `consul keygen` prints them."""
    if generation < 0:
        raise ValueError(f"gossip key generation {generation} is negative")
    if generation == 0:
        digest = hashlib.sha256(seed.encode()).digest()
    else:
        digest = hmac.new(seed.encode(), f"consul gossip key generation {generation}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def key_generations(seed: str, generation: int) -> Mapping[str, object]:
    """What the rotation needs to recognise the keys of a keyring: this generation's key, the
    next one, and the one before (gone from the keyring once a rotation finished)."""
    keys: dict[str, object] = {"generation": generation, "current": gossip_key_from_seed(seed, generation),
                               "next": gossip_key_from_seed(seed, generation + 1)}
    if generation > 0:
        keys["previous"] = gossip_key_from_seed(seed, generation - 1)
    return keys


class GossipEncryptionKey(pulumi.ComponentResource):
    """A random key stored in Secret ``secret_name`` under key ``key`` (the SDK makes a Secret's
    ``string_data`` a Pulumi secret, and RandomPassword's result is one)."""

    def __init__(self, name: str, namespace: pulumi.Input[str], secret_name: str, generation: int,
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
            string_data={GOSSIP_SECRET_KEY: seed.result.apply(lambda s: gossip_key_from_seed(s, generation))},
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.keys = pulumi.Output.secret(seed.result.apply(lambda s: key_generations(s, generation)))
        self.register_outputs({"secretName": self.secret.metadata.name})
