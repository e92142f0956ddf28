"""Helm's release records in a cluster, read and settled in one place.

Helm 3 (its default Secret storage driver, also inside pulumi-kubernetes) keeps one Secret per
revision, ``sh.helm.release.v1.<name>.v<N>``, labelled ``owner=helm,name=<name>,version=<N>,
status=<status>``; its ``release`` key holds the release as gzipped JSON in base64. ``recovery``
reads the revisions and deletes the record of an interrupted first install; the integration
tests read the revisions and the values Helm was given.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any, Protocol

_TIMEOUT = (5, 30)  # connect, read (seconds): an API server that hangs must not hang the run


def record_name(name: str, revision: int) -> str:
    """The Secret that holds one revision of a release."""
    return f"sh.helm.release.v1.{name}.v{revision}"


def label_selector(name: str) -> str:
    """The labels of every record of a release, whatever its revision or status."""
    return f"owner=helm,name={name}"


def decode_release(data: str) -> dict[str, Any]:
    """A record's ``release`` key as the API returns Secret data (base64 of Helm's base64 of
    gzipped JSON), as the release it holds: ``config`` is the user-supplied values."""
    return json.loads(gzip.decompress(base64.b64decode(base64.b64decode(data))))


class HelmRecords(Protocol):
    """Helm's release records in one cluster."""

    def revisions(self, namespace: str, name: str) -> list[tuple[int, str]]:
        """[(revision, status)], oldest first."""

    def delete(self, namespace: str, name: str, revision: int) -> None:
        ...


class ClusterHelmRecords:
    """HelmRecords through the Kubernetes API (a ``kubernetes.client.CoreV1Api``)."""

    def __init__(self, core: Any):
        self.core = core

    def _records(self, namespace: str, name: str) -> list[Any]:
        from kubernetes.client.exceptions import ApiException  # only when records are read
        try:
            return self.core.list_namespaced_secret(namespace, label_selector=label_selector(name),
                                                    _request_timeout=_TIMEOUT).items
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise

    def revisions(self, namespace: str, name: str) -> list[tuple[int, str]]:
        return sorted((int(s.metadata.labels.get("version", 0)), s.metadata.labels.get("status", "?"))
                      for s in self._records(namespace, name))

    def newest(self, namespace: str, name: str) -> dict[str, Any]:
        """The release of the highest revision, decoded."""
        newest = max(self._records(namespace, name), key=lambda s: int(s.metadata.labels.get("version", 0)))
        return decode_release(newest.data["release"])

    def delete(self, namespace: str, name: str, revision: int) -> None:
        self.core.delete_namespaced_secret(record_name(name, revision), namespace, _request_timeout=_TIMEOUT)
