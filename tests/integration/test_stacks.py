"""`pulumi up -s dc1`, then `pulumi up -s dc2`, for real, on this machine.

REAL: the Pulumi CLI (3.260.0, built from source) running the real Python SDK's
pulumi-language-python-exec, pulumi-resource-kubernetes (built from the newest source the Go
module proxy serves, a 4.25.0 pre-release) and pulumi-resource-random (terraform-provider-random
bridged with pulumi-random's schema), the file state backend with a passphrase secrets provider, the StackReference between the two stacks, helm's install/uninstall
with hooks inside the kubernetes provider, the Consul chart (0.32.1, the newest the build machine
can fetch), two kube-apiservers with their own etcd (contexts dc1 and dc2 of one kubeconfig),
admission webhooks called by those API servers over TLS.

STAND-IN: the Python language host binary is a small one built by tools/pulumi.sh (the real
host's module is not served here); it starts the real pulumi-language-python-exec.

SIMULATED (tests/integration/harness.py, one ClusterHarness per cluster): what kubelets and
controllers would do for Helm and Consul's hook Jobs: Jobs complete after their side effect
(tls-init writes the CA, create-federation-secret writes <prefix>-federation from the mounted CA
and gossip key, server-acl-init writes the replication token), the webhook-cert-manager patches
the webhook CA bundle, the controller's admission webhook answers, the namespace controller
empties and finalizes deleted namespaces. Nothing becomes Ready (no pods run), so the stacks set
`skipAwait: true`; that is the one setting that differs from a real deployment.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from components import parse_config
from components.helm_values import primary_values, secondary_values
from controlplane import ControlPlane, write_kubeconfig
from harness import ClusterHarness
from pulumi_mocks import ROOT
from real_tools import consul_charts, ensure

pytestmark = pytest.mark.integration

CHART = "0.32.1"
NAMESPACE = "consul"


def record_timing(command: str, stack: str | None, seconds: float) -> None:
    """bench/run.sh sets CONSUL_FEDERATION_TIMINGS to collect how long each CLI command took."""
    path = os.environ.get("CONSUL_FEDERATION_TIMINGS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"command": command, "stack": stack, "seconds": round(seconds, 1)}) + "\n")


class Project:
    """A working copy of the project (same code) with test stack files, and the CLI to drive it."""

    def __init__(self, workdir: Path, tools: dict[str, str], kubeconfig: Path):
        self.dir = workdir / "project"
        self.dir.mkdir()
        (self.dir / "__main__.py").symlink_to(Path(ROOT, "__main__.py"))
        (self.dir / "components").symlink_to(Path(ROOT, "components"))
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump({
            "name": "consul-federation",
            "runtime": {"name": "python", "options": {"toolchain": "pip",
                                                      "virtualenv": str(Path(ROOT, ".venv"))}},
        }))
        self.state = workdir / "state"
        self.state.mkdir()
        self.passphrase = secrets.token_urlsafe(24)
        path_dirs = [tools[k] for k in ("PULUMI_BIN_DIR", "KUBERNETES_PROVIDER_DIR", "RANDOM_PROVIDER_DIR")]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBECONFIG"))},
            "PATH": os.pathsep.join(path_dirs + [os.environ.get("PATH", "")]),
            "PULUMI_HOME": str(workdir / "pulumi-home"),
            "PULUMI_BACKEND_URL": f"file://{self.state}",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        }
        self.kubeconfig = kubeconfig
        self.chart = consul_charts()[CHART]

    def config(self, stack: str) -> dict[str, Any]:
        # Chart 0.32.1's PodDisruptionBudget is policy/v1beta1, gone since Kubernetes 1.25.
        common = {"kubeContext": stack, "kubeconfig": str(self.kubeconfig), "chartPath": self.chart,
                  "skipAwait": True, "helmValues": {"server": {"disruptionBudget": {"enabled": False}}}}
        if stack == "dc1":
            return {"role": "primary", "datacenter": "dc1", **common,
                    "meshGateway": {"serviceType": "NodePort", "nodePort": 30001}}
        return {"role": "secondary", "datacenter": stack, **common,
                "primaryStack": "organization/consul-federation/dc1",
                "meshGateway": {"serviceType": "NodePort", "nodePort": 30002}}

    def write_stack(self, stack: str) -> None:
        config = {"pulumi:disable-default-providers": ["kubernetes"], "kubernetes:strictMode": "true"}
        config.update({f"consul-federation:{k}": v for k, v in self.config(stack).items()})
        path = self.dir / f"Pulumi.{stack}.yaml"
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
        existing["config"] = config
        path.write_text(yaml.safe_dump(existing))

    def run(self, *args: str, stack: str | None = None, check: bool = True,
            timeout: int = 900) -> subprocess.CompletedProcess:
        cmd = [shutil.which("pulumi", path=self.env["PATH"]) or "pulumi", *args, "--non-interactive"]
        if stack:
            cmd += ["--stack", stack]
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        record_timing(" ".join(args), stack, time.monotonic() - started)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[1:])} failed ({done.returncode}):\n"
                                 f"{done.stdout[-6000:]}\n{done.stderr[-4000:]}")
        return done

    def outputs(self, stack: str, show_secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "output", "--json"] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.run(*args, stack=stack).stdout)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tools = {**ensure("chart"), **ensure("engine"), **ensure("cluster")}
    work = tmp_path_factory.mktemp("fed")
    with ControlPlane("dc1", work, tools["ETCD"], tools["KUBE_APISERVER"]) as dc1, \
            ControlPlane("dc2", work, tools["ETCD"], tools["KUBE_APISERVER"]) as dc2:
        kubeconfig = work / "kubeconfig"
        write_kubeconfig(kubeconfig, [dc1, dc2])
        with ClusterHarness(kubeconfig, "dc1", dc1.egress_socket) as h1, \
                ClusterHarness(kubeconfig, "dc2", dc2.egress_socket) as h2:
            project = Project(work, tools, kubeconfig)
            yield {"project": project, "kubeconfig": kubeconfig, "harness": {"dc1": h1, "dc2": h2}}
            assert not h1.errors() and not h2.errors(), (h1.errors(), h2.errors())


def api(env, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(env["kubeconfig"]), context=context)


def secret_data(env, context: str, name: str) -> dict[str, str]:
    """The secret's data map as the API server returns it: base64 text, untouched."""
    raw = client.CoreV1Api(api(env, context)).read_namespaced_secret(name, NAMESPACE, _preload_content=False)
    return json.loads(raw.data)["data"]


def helm_values(env, context: str, release: str = "consul") -> dict[str, Any]:
    """The user-supplied values of the newest revision, from Helm's own release record."""
    core = client.CoreV1Api(api(env, context))
    records = core.list_namespaced_secret(NAMESPACE, label_selector=f"owner=helm,name={release}").items
    newest = max(records, key=lambda s: int(s.metadata.labels["version"]))
    blob = base64.b64decode(base64.b64decode(newest.data["release"]))
    return json.loads(gzip.decompress(blob))["config"]


def proxy_defaults(env, context: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api(env, context)).get_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults", "global")


# The tests below run in order and share the two clusters and the state backend.

def init_stack(project: Project, stack: str) -> None:
    project.write_stack(stack)
    project.run("stack", "init", stack)
    project.write_stack(stack)  # stack init added the encryption salt; keep our config


def test_secondary_before_primary_stack_exists(env):
    """No dc1 stack at all: the engine's StackReference read fails first, naming the stack."""
    project = env["project"]
    init_stack(project, "dc2")
    done = project.run("preview", stack="dc2", check=False)
    assert done.returncode != 0
    assert 'unknown stack "organization/consul-federation/dc1"' in done.stdout + done.stderr


def test_secondary_before_primary_fails_clearly(env):
    """dc1 created (as `pulumi stack init` leaves it) but never deployed: our own message."""
    project = env["project"]
    init_stack(project, "dc1")
    done = project.run("preview", stack="dc2", check=False)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "deploy the primary first: pulumi up -s dc1" in text, text[-3000:]
    assert "Traceback" not in text


def test_first_preview_of_the_primary(env):
    done = env["project"].run("preview", "--diff", stack="dc1")
    assert "consul-federation:index:PrimaryDatacenter" in done.stdout
    assert "kubernetes:helm.sh/v3:Release" in done.stdout


def test_up_primary(env):
    project = env["project"]
    project.run("up", "--yes", "--skip-preview", stack="dc1", timeout=1200)
    cfg = parse_config(project.config("dc1"))
    assert helm_values(env, "dc1") == primary_values(cfg)
    gossip = secret_data(env, "dc1", cfg.gossip_secret_name)
    key = base64.b64decode(gossip["key"])
    assert len(base64.b64decode(key)) == 32  # the secret holds `consul keygen` text, once encoded
    assert proxy_defaults(env, "dc1")["spec"] == {"meshGateway": {"mode": "local"}}
    assert any(a.kind == "ProxyDefaults" for a in env["harness"]["dc1"].admissions())
    outputs = project.outputs("dc1")
    assert outputs["federationSecret"] == "[secret]"
    assert {k: outputs[k] for k in ("datacenter", "role", "aclsEnabled", "gossipEncryptionEnabled",
                                    "chartVersion", "namespace")} == {
        "datacenter": "dc1", "role": "primary", "aclsEnabled": True, "gossipEncryptionEnabled": True,
        "chartVersion": CHART, "namespace": NAMESPACE}
    federation = secret_data(env, "dc1", cfg.federation_secret_name)
    assert project.outputs("dc1", show_secrets=True)["federationSecret"] == federation
    assert sorted(federation) == ["caCert", "caKey", "gossipEncryptionKey", "replicationToken", "serverConfigJSON"]
    assert base64.b64decode(federation["gossipEncryptionKey"]) == key


def test_up_secondary(env):
    project = env["project"]
    project.run("up", "--yes", "--skip-preview", stack="dc2", timeout=1200)
    cfg = parse_config(project.config("dc2"))
    assert secret_data(env, "dc2", cfg.federation_secret_name) == \
        secret_data(env, "dc1", "consul-federation")  # byte for byte
    assert helm_values(env, "dc2") == secondary_values(cfg, "dc1", None)
    assert proxy_defaults(env, "dc2")["spec"] == {"meshGateway": {"mode": "local"}}
    outputs = project.outputs("dc2")
    assert outputs["primaryDatacenter"] == "dc1" and "federationSecret" not in outputs
    # The secondary's tls-init signed its server certificate with the primary's CA.
    assert secret_data(env, "dc2", "consul-server-cert")


@pytest.mark.parametrize("stack", ["dc1", "dc2"])
def test_second_up_changes_nothing(env, stack):
    done = env["project"].run("up", "--yes", "--expect-no-changes", stack=stack, timeout=1200)
    assert "unchanged" in done.stdout


def test_preview_diff_shows_only_the_mode_change(env):
    project = env["project"]
    project.run("config", "set", "--path", "consul-federation:meshGateway.mode", "remote", stack="dc1")
    try:
        done = project.run("preview", "--diff", "--json", stack="dc1")
    finally:
        project.run("config", "set", "--path", "consul-federation:meshGateway.mode", "local", stack="dc1")
    preview = json.loads(done.stdout)
    # "read" is the federation secret read of every run, not a change.
    changed = [s for s in preview["steps"] if s["op"] not in ("same", "read")]
    assert [s["op"] for s in changed] == ["update"], changed
    (step,) = changed
    assert step["urn"].endswith("::dc1-proxy-defaults")
    assert list(step["detailedDiff"]) == ["spec.meshGateway.mode"]


def test_state_holds_no_plaintext_secrets(env):
    project = env["project"]
    federation = secret_data(env, "dc1", "consul-federation")
    plain = {name: base64.b64decode(federation[name]).decode()
             for name in ("gossipEncryptionKey", "caKey", "replicationToken")}
    needles = set(plain.values()) | {federation[n] for n in plain}
    needles |= {line for line in plain["caKey"].splitlines() if len(line) > 40}  # PEM body lines
    files = list(project.state.rglob("*.json")) + list(project.state.rglob("*.json.gz"))
    assert files
    texts = [project.run("stack", "export", stack=s).stdout for s in ("dc1", "dc2")]
    for path in files:
        data = path.read_bytes()
        texts.append(gzip.decompress(data).decode() if path.suffix == ".gz" else data.decode())
    for text in texts:
        for needle in needles:
            assert needle not in text


def test_destroy_secondary_then_primary(env):
    project = env["project"]
    for stack in ("dc2", "dc1"):
        project.run("destroy", "--yes", "--skip-preview", stack=stack, timeout=1200)
    for context in ("dc1", "dc2"):
        core = client.CoreV1Api(api(env, context))
        assert NAMESPACE not in [n.metadata.name for n in core.list_namespace().items]
        assert not [s for s in core.list_secret_for_all_namespaces().items
                    if s.metadata.namespace == NAMESPACE]
        crds = client.ApiextensionsV1Api(api(env, context)).list_custom_resource_definition().items
        assert not [c for c in crds if c.spec.group == "consul.hashicorp.com"]
        rbac = client.RbacAuthorizationV1Api(api(env, context))
        assert not [r for r in rbac.list_cluster_role().items if r.metadata.name.startswith("consul-")]
        hooks = client.AdmissionregistrationV1Api(api(env, context)).list_mutating_webhook_configuration().items
        assert not [h for h in hooks if h.metadata.name.startswith("consul-")]
