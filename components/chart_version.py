"""Consul chart versions: which ones the program supports, and which chart line CI renders.

A leaf module (no imports from this package): config and the values guard both build on it.
"""

from __future__ import annotations

import re
from typing import Optional

Version = tuple[int, int, int]

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

# 1.0.0 folded the CRD controller (which syncs ProxyDefaults into Consul) into connect injection,
# and every later chart takes the secondary's values this program writes (primaryDatacenter and
# k8sAuthMethodHost, from 0.42.0). Older charts are refused rather than half-supported.
SUPPORTED_MINIMUM = (1, 0, 0)
# The one chart whose pods CI runs for real (tests/consul): the newest line whose Consul (1.16.1)
# is MPL-2.0. Of the lines before 1.8 it is the only one tested.
REAL_CONSUL_CHART = "1.2.1"
OLD_LINES_END = (1, 8)


def parse_version(text: str) -> Optional[Version]:
    match = _SEMVER.match(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def fmt(version: Version) -> str:
    return ".".join(map(str, version))


def line(version: Version) -> tuple[int, int]:
    """The release line (major, minor) a chart version belongs to, e.g. 1.9.11 -> (1, 9)."""
    return version[0], version[1]
