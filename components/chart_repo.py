"""Whether the chart repository serves the configured ``chartVersion``, checked before anything of
the datacenter is registered: a version the repository lacks would otherwise pass the preview and
fail at the Release, half-way through ``up``, with Helm's "not found" and no list of what exists.

Only Helm HTTP repositories are checked (their ``index.yaml``); ``oci://`` registries and
``chartPath`` are not (the first has no index to read, the second is checked by the parser). A
repository that does not answer is a warning, not an error: ``up`` fetches the chart itself, and a
preview must not fail for a slow mirror. A ``chartRepo`` set with ``--secret`` (it may carry
credentials) is never printed.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Callable, Optional
from urllib.parse import urlsplit, urlunsplit

import yaml

from .chart_version import fmt, parse_version
from .config import ConfigError
from .settings import DatacenterConfig

CHART = "consul"
TIMEOUT = 15
SHOWN_VERSIONS = 8
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the index of a busy repository is megabytes


class RepositoryUnavailable(Exception):
    """The repository's index could not be read: no answer, an HTTP error, or no index."""


def index_url(repo: str) -> tuple[str, dict[str, str]]:
    """The index URL of a Helm repository, and the headers its credentials (user:password@) need."""
    parts = urlsplit(repo)
    headers = {}
    if parts.username is not None:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/index.yaml", "", "")), headers


def fetch_versions(repo: str, timeout: float = TIMEOUT) -> list[str]:
    """The versions of the consul chart the repository's index lists (RepositoryUnavailable if
    it cannot be read; the message never holds the URL's credentials)."""
    url, headers = index_url(repo)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as answer:
            index = yaml.load(answer.read(), Loader=_Loader)
    except urllib.error.HTTPError as exc:
        raise RepositoryUnavailable(f"HTTP {exc.code} for its index.yaml") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RepositoryUnavailable(str(getattr(exc, "reason", exc))) from None
    except yaml.YAMLError:
        raise RepositoryUnavailable("its index.yaml is not YAML") from None
    if not isinstance(index, dict) or not isinstance(index.get("entries"), dict):
        raise RepositoryUnavailable("its index.yaml has no entries")
    return [str(entry.get("version")) for entry in index["entries"].get(CHART) or []
            if isinstance(entry, dict) and entry.get("version")]


def newest_first(versions: list[str]) -> list[str]:
    """Release versions, newest first (pre-releases and unparsable ones left out)."""
    parsed = {parse_version(v): v for v in versions if "-" not in v and "+" not in v and parse_version(v) is not None}
    return [fmt(p) for p in sorted(parsed, reverse=True)]


def chart_version_warning(cfg: DatacenterConfig,
                          fetch: Optional[Callable[[str], list[str]]] = None) -> Optional[str]:
    """None when the chart comes from chartPath or an OCI registry, or when the repository lists
    chartVersion; a warning when the repository could not be read. Raises ConfigError, naming the
    versions the repository does have, when it lacks chartVersion."""
    if cfg.chart_path or not cfg.chart_repo.startswith(("http://", "https://")):
        return None
    shown = "the chartRepo (set as a secret)" if cfg.is_secret("chartRepo") else cfg.chart_repo
    try:
        versions = (fetch or fetch_versions)(cfg.chart_repo)
    except RepositoryUnavailable as exc:
        return (f"consul-federation:chartVersion {cfg.chart_version!r} not checked: {shown} did not answer "
                f"({exc}); pulumi up fetches the chart from there")
    if cfg.chart_version in versions:
        return None
    newest = newest_first(versions)[:SHOWN_VERSIONS]
    offer = f"its newest: {', '.join(newest)}" if newest else f"it has no {CHART} chart at all"
    raise ConfigError([f"consul-federation:chartVersion: {cfg.chart_version!r} is not a version {shown} serves; "
                       f"{offer}; pick one of them, or set chartRepo or chartPath"])
