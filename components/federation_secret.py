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


def read_federation_secret(name: str, namespace: str, secret_name: str, release: k8s.helm.v3.Release,
                           opts: pulumi.ResourceOptions) -> pulumi.Output[Mapping[str, str]]:
    """The `data` of the primary's federation secret, read after the Release's hook wrote it.

    The id is built from the Release's status, which is unknown until the Release exists: so the
    first preview skips the read instead of failing on a secret that does not exist yet
    (pulumi-kubernetes#2358), and the read always follows the hook.

    Output.secret although the provider lists `data` as a secret output: that marking comes from
    the engine (`additional_secret_outputs`), and this value becomes the stack output every
    secondary reads, so it is marked here as well.
    """
    secret_id = release.status.apply(lambda _: f"{namespace}/{secret_name}")
    secret = k8s.core.v1.Secret.get(
        name, secret_id, opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[release])))
    return pulumi.Output.secret(secret.data)


def copy_federation_secret(name: str, secret_name: str, namespace: pulumi.Input[str],
                           data: pulumi.Input[Mapping[str, Any]], opts: pulumi.ResourceOptions
                           ) -> k8s.core.v1.Secret:
    """The primary's federation secret, as `secret_name` in this secondary's namespace (the SDK
    makes a Secret's `data` a Pulumi secret whatever the stack reference says).

    `pulumi.com/patchForce`: the copy is the program's alone. A hand edit (kubectl edit, a
    client's patch) makes its field manager own the keys it touched, and without force the
    `pulumi up --refresh` that puts the primary's values back fails with a Server-Side Apply
    conflict; the consul tier restores a drifted replication token this way."""
    return k8s.core.v1.Secret(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=secret_name, namespace=namespace,
            labels={"app.kubernetes.io/managed-by": "pulumi",
                    "consul-federation/imported-from": "primary"},
            annotations={"pulumi.com/patchForce": "true"}),
        type="Opaque",
        data=data,
        opts=opts,
    )
