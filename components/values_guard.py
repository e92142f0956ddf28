"""Values guard: the Consul chart has no values schema, so we bring our own.

A misspelt or mis-nested key is silently ignored by the chart (the most common federation support
issue upstream). The key paths of each pinned chart's ``values.yaml`` ship with this package as
data (``chart_keys/consul-<version>.txt``, made by ``tools/gen_chart_keys.py``), so the check
works offline at preview time. A line ending in ``.*`` marks a free-form map (annotations,
labels, extraConfig, ...): anything below it is accepted.
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Any, Iterator, Mapping, Optional

from .chart_version import line, parse_version
from .constants import CONFIG_NAMESPACE, OWNED_PATHS

KEY_DIR = os.path.join(os.path.dirname(__file__), "chart_keys")

# Federation values users most often put at the top level instead of under global:
# the chart ignores them there without a word (consul-k8s#3796).
GLOBAL_ONLY = ("tls", "federation", "acls", "gossipEncryption")


def shipped_versions() -> list[str]:
    names = sorted(os.listdir(KEY_DIR)) if os.path.isdir(KEY_DIR) else []
    return [n[len("consul-"):-len(".txt")] for n in names if n.startswith("consul-") and n.endswith(".txt")]


def has_key_list(version: str) -> bool:
    return os.path.exists(_key_file(version))


def rendered_lines() -> list[tuple[int, int]]:
    """The chart lines CI renders and installs: one pinned chart, with a key list, per line."""
    return sorted({line(parse_version(v)) for v in shipped_versions()})


def rendered_lines_text() -> str:
    """The rendered lines as users write them, e.g. "1.8, 1.9, 2.0"."""
    return ", ".join(f"{major}.{minor}" for major, minor in rendered_lines())


def key_list_version(version: str) -> Optional[str]:
    """The shipped key list to check a chart version against: its own, else the newest of the
    same release line (patch releases do not change values.yaml's keys), else None."""
    if has_key_list(version):
        return version
    parsed = parse_version(version)
    same_line = [v for v in shipped_versions() if parsed and line(parse_version(v)) == line(parsed)]
    return max(same_line, key=parse_version) if same_line else None


def _key_file(version: str) -> str:
    return os.path.join(KEY_DIR, f"consul-{version}.txt")


@functools.lru_cache(maxsize=None)
def chart_keys(version: str) -> tuple[frozenset[str], frozenset[str]]:
    """(every key path, the free-form prefixes) of a pinned chart version."""
    with open(_key_file(version), encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    free = frozenset(line[:-2] for line in lines if line.endswith(".*"))
    keys = frozenset(line[:-2] if line.endswith(".*") else line for line in lines)
    return keys, free


def leaf_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every non-mapping value (lists count as leaves, as Helm merges them whole)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


def unknown_paths(values: Mapping[str, Any], version: str) -> list[tuple[str, str]]:
    """(path, message) for every path in `values` that the chart's values.yaml does not have (nothing
    when no key list of the chart's line ships)."""
    listed = key_list_version(version)
    if listed is None:
        return []
    keys, free = chart_keys(listed)
    problems = []
    for path in leaf_paths(values):
        parts = path.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
        if path in keys or any(p in free for p in prefixes):
            continue
        near = difflib.get_close_matches(path, keys, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}?" if near else "no similar key exists"
        problems.append((path, f"{path!r} is not a value of the Consul chart {listed}; {hint}"))
    return problems


def _overlaps(path: str, owned: str) -> bool:
    return path == owned or path.startswith(owned + ".") or owned.startswith(path + ".")


def check_user_values(values: Mapping[str, Any], version: str) -> list[str]:
    """Configuration errors for a stack's helmValues. Messages name paths, never the values, so
    a value set as a secret cannot end up in an error."""
    key = "helmValues"
    where = f"{CONFIG_NAMESPACE}:{key}"
    errors = []
    misplaced = [k for k in GLOBAL_ONLY if k in values]
    for k in misplaced:
        errors.append(
            f"{where}.{k}: {k!r} belongs under 'global' "
            f"({key}.global.{k}); at the top level the chart ignores it silently")
    rest = {k: v for k, v in values.items() if k not in misplaced}
    owned_paths = set()
    for path in leaf_paths(rest):
        owned = next((o for o in OWNED_PATHS if _overlaps(path, o)), None)
        if owned is not None:
            owned_paths.add(path)
            errors.append(
                f"{where}.{path}: {owned} is set by this program for federation; "
                "use the matching setting (role, datacenter, globalName, acls, gossipEncryption, "
                f"meshGateway.*) instead of {key}")
    admin = rest.get("global", {}).get("adminPartitions", {}) if isinstance(rest.get("global"), Mapping) else {}
    if isinstance(admin, Mapping) and admin.get("enabled") is True:
        errors.append(f"{where}.global.adminPartitions.enabled: True is not allowed; "
                      "WAN federation cannot be combined with admin partitions (the chart refuses it)")
    # An owned path is reported once, as owned, even where the chart only reads it in templates.
    errors.extend(f"{where}: {problem}"
                  for path, problem in unknown_paths(rest, version) if path not in owned_paths)
    return errors
