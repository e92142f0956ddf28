"""What each container image is here: the binaries built by ``tools/consul.sh`` that its
``/usr/local/bin`` holds, and its entrypoint.

Only chart 1.2.1's images have binaries here (Consul 1.16.1 is the newest MPL-2.0 Consul); a pod
with any other image fails at once, naming the image (``ImageUnknown``), never runs a stand-in.

The consul image's ``docker-entrypoint.sh`` is the one script played: with
``CONSUL_DISABLE_PERM_MGMT`` set (as the chart sets it) and a first argument ``consul`` the real
script only ``exec``s its arguments, so the shim does that and refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Image", "IMAGES", "ImageUnknown", "image_of", "ENTRYPOINT_SHIM"]

ENTRYPOINT_SHIM = """#!/bin/sh
# Played: hashicorp/consul's docker-entrypoint.sh for the chart's use (see localcluster/images.py).
if [ "$1" != consul ] || [ -z "${CONSUL_DISABLE_PERM_MGMT+x}" ]; then
  echo "docker-entrypoint.sh: only 'consul ...' with CONSUL_DISABLE_PERM_MGMT is played here" >&2
  exit 127
fi
exec "$@"
"""


class ImageUnknown(RuntimeError):
    """A container's image has no binaries here."""


@dataclass(frozen=True)
class Image:
    binaries: tuple[str, ...]          # names in the tool cache's CONSUL_BIN_DIR
    entrypoint: tuple[str, ...]        # what runs when a container gives no command
    shims: tuple[tuple[str, str], ...] = ()  # (name in /usr/local/bin, script text)


IMAGES: dict[str, Image] = {
    "hashicorp/consul:1.16.1": Image(
        binaries=("consul",), entrypoint=("docker-entrypoint.sh",),
        shims=(("docker-entrypoint.sh", ENTRYPOINT_SHIM),)),
    "hashicorp/consul-k8s-control-plane:1.2.1": Image(
        binaries=("consul-k8s-control-plane",), entrypoint=("consul-k8s-control-plane",)),
    "hashicorp/consul-dataplane:1.2.1": Image(
        binaries=("consul-dataplane", "envoy"), entrypoint=("consul-dataplane",)),
}


def image_of(name: str) -> Image:
    """The image, with or without a ``docker.io/`` prefix; ImageUnknown otherwise."""
    bare = name.removeprefix("docker.io/")
    if bare not in IMAGES:
        raise ImageUnknown(f"image {name} cannot run here: only {', '.join(sorted(IMAGES))} "
                           "have binaries (tools/ensure.sh consul)")
    return IMAGES[bare]
