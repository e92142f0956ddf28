"""Consul chart versions, and the chart releases that changed what a datacenter needs."""

from __future__ import annotations

import re
from typing import Optional

Version = tuple[int, int, int]

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

# 0.42.0: with ACLs a secondary's server-acl-init logs in to the primary through an auth method
# that calls the secondary's Kubernetes API, so secondaries name global.federation.primaryDatacenter
# and k8sAuthMethodHost. Earlier charts take the primary from serverConfigJSON alone.
PRIMARY_DATACENTER_VALUES = (0, 42, 0)
# 1.0.0: the CRD controller (which syncs ProxyDefaults into Consul, and whose templates carry the
# CRDs) became part of connect injection; before, it is a separate opt-in `controller`.
CONTROLLER_IN_CONNECT_INJECT = (1, 0, 0)


def parse_version(text: str) -> Optional[Version]:
    match = _SEMVER.match(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def at_least(version: str, floor: Version) -> bool:
    parsed = parse_version(version)
    return parsed is not None and parsed >= floor


def fmt(version: Version) -> str:
    return ".".join(map(str, version))
