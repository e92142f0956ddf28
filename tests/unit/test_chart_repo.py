"""The program's check that the chart repository serves chartVersion (``components/chart_repo.py``),
against a real Helm repository index served over HTTP on loopback; and, under the mocks, that a
version the repository lacks stops the program before any Kubernetes resource is registered."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

import pytest
import yaml

from components import chart_repo
from components.config import ConfigError, parse_config
from pulumi_mocks import ProgramFailed, run_program
from stack_matrix import primary

pytestmark = pytest.mark.unit

FETCH = chart_repo.fetch_versions  # the real one: the tier's autouse fixture replaces the module's
INDEX = {"apiVersion": "v1", "entries": {
    "consul": [{"version": v} for v in ("1.9.11", "2.0.3", "2.0.2", "1.8.16", "2.1.0-rc1", "1.2.1", "2.0.1",
                                         "1.9.10", "1.9.9", "1.8.15", "1.0.0")],
    "vault": [{"version": "0.30.0"}]}}


class _Handler(http.server.BaseHTTPRequestHandler):
    body: Optional[bytes] = yaml.safe_dump(INDEX).encode()
    seen: list[tuple[str, Optional[str]]] = []

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.body is None or self.path != "/charts/index.yaml":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@contextmanager
def repository(body: Optional[bytes] = _Handler.body) -> Iterator[tuple[str, list]]:
    handler = type("Handler", (_Handler,), {"body": body, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/charts", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def cfg(repo: str, version: str, secret: tuple[str, ...] = (), **more):
    return parse_config({**primary(), "chartRepo": repo, "chartVersion": version, **more}, frozenset(secret))


def test_a_served_version_passes():
    with repository() as (url, seen):
        assert chart_repo.chart_version_warning(cfg(url, "1.9.11"), FETCH) is None
    assert seen == [("/charts/index.yaml", None)]


def test_a_missing_version_names_the_newest_releases_the_repository_has():
    with repository() as (url, _):
        with pytest.raises(ConfigError) as error:
            chart_repo.chart_version_warning(cfg(url, "2.0.9"), FETCH)
    assert error.value.errors == [
        f"consul-federation:chartVersion: '2.0.9' is not a version {url} serves; its newest: 2.0.3, 2.0.2, "
        "2.0.1, 1.9.11, 1.9.10, 1.9.9, 1.8.16, 1.8.15; pick one of them, or set chartRepo or chartPath"]


def test_a_repository_without_the_chart_says_so():
    with repository(yaml.safe_dump({"apiVersion": "v1", "entries": {"vault": [{"version": "1.0.0"}]}}).encode()) \
            as (url, _):
        with pytest.raises(ConfigError) as error:
            chart_repo.chart_version_warning(cfg(url, "2.0.3"), FETCH)
    assert "it has no consul chart at all" in error.value.errors[0]


def test_credentials_are_sent_as_basic_auth_and_never_shown(monkeypatch):
    with repository() as (url, seen):
        with_user = url.replace("http://", "http://ops:s3cret@")
        with pytest.raises(ConfigError) as error:
            chart_repo.chart_version_warning(cfg(with_user, "9.9.9", secret=("chartRepo",)), FETCH)
    assert seen == [("/charts/index.yaml", "Basic b3BzOnMzY3JldA==")]
    assert "s3cret" not in str(error.value) and "the chartRepo (set as a secret) serves" in str(error.value)


@pytest.mark.parametrize("body, why", [(None, "HTTP 404 for its index.yaml"), (b"{{ not yaml", "its index.yaml is not YAML"),
                                       (b"- a list", "its index.yaml has no entries")])
def test_an_index_that_cannot_be_read_is_a_warning(body, why):
    with repository(body) as (url, _):
        warning = chart_repo.chart_version_warning(cfg(url, "2.0.3"), FETCH)
    assert warning == (f"consul-federation:chartVersion '2.0.3' not checked: {url} did not answer ({why}); "
                       "pulumi up fetches the chart from there")


def test_a_repository_that_does_not_answer_is_a_warning():
    with repository() as (url, _):
        pass  # closed again: the port refuses
    warning = chart_repo.chart_version_warning(cfg(url, "2.0.3"), FETCH)
    assert warning is not None and warning.startswith(f"consul-federation:chartVersion '2.0.3' not checked: {url} "
                                                      "did not answer (") and "Connection refused" in warning


def test_oci_registries_and_chart_paths_are_not_asked(tmp_path, chart_repository):
    (tmp_path / "Chart.yaml").write_text("name: consul\nversion: 2.0.3\n")
    assert chart_repo.chart_version_warning(cfg("oci://registry.example.com/charts", "2.0.3")) is None
    assert chart_repo.chart_version_warning(parse_config({**primary(), "chartPath": str(tmp_path)})) is None
    assert chart_repository.asked == []


def test_a_version_the_repository_lacks_stops_the_program_before_any_kubernetes_resource(chart_repository):
    chart_repository.served["https://charts.example.com"] = ["2.0.3", "2.0.2"]
    with pytest.raises(ProgramFailed) as info:
        run_program(primary(chartRepo="https://charts.example.com", chartVersion="2.0.1"))
    assert isinstance(info.value.error, ConfigError)
    assert "'2.0.1' is not a version https://charts.example.com serves; its newest: 2.0.3, 2.0.2" in str(info.value.error)
    assert not [t for t in info.value.types() if t.startswith(("kubernetes:", "pulumi:providers:"))]
