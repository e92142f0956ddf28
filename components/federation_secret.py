"""The federation secret: written by the chart in the primary, copied byte for byte to secondaries.

It holds the CA certificate and key, the replication token, the gossip key and the primary's
server config, so it is a Pulumi secret end to end: read from the primary's cluster, exported as
a secret stack output, and written into each secondary's cluster from that output. It never
touches a file, and its ``data`` map keeps the API server's base64 text untouched so nothing is
decoded and re-encoded on the way.
"""

from __future__ import annotations

from typing import Any, Mapping

import pulumi
import pulumi_kubernetes as k8s

from .config import DatacenterConfig


def read_primary_federation_secret(name: str, cfg: DatacenterConfig, release: k8s.helm.v3.Release,
                                   provider: k8s.Provider, parent: pulumi.Resource
                                   ) -> pulumi.Output[Mapping[str, str]]:
    """The `data` of <prefix>-federation, read after the Release's post-install hook wrote it.

    The id is built from the Release's status, which is unknown until the Release exists: so the
    first preview skips the read instead of failing on a secret that does not exist yet
    (pulumi-kubernetes#2358), and the read always follows the hook.
    """
    secret_id = release.status.apply(lambda _: f"{cfg.namespace}/{cfg.federation_secret_name}")
    secret = k8s.core.v1.Secret.get(
        f"{name}-federation-secret", secret_id,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[release]))
    return pulumi.Output.secret(secret.data)


def copy_federation_secret(name: str, cfg: DatacenterConfig, namespace: pulumi.Input[str],
                           data: pulumi.Output[Mapping[str, str]], provider: k8s.Provider,
                           parent: pulumi.Resource) -> k8s.core.v1.Secret:
    """The primary's federation secret, as <prefix>-federation in this secondary's namespace."""
    return k8s.core.v1.Secret(
        f"{name}-federation-secret",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=cfg.federation_secret_name, namespace=namespace,
            labels={"app.kubernetes.io/managed-by": "pulumi",
                    "consul-federation/imported-from": "primary"}),
        type="Opaque",
        data=pulumi.Output.secret(data),
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )


def missing_keys(data: Any, required: list[str]) -> list[str]:
    present = data.keys() if isinstance(data, Mapping) else ()
    return [key for key in required if key not in present]
