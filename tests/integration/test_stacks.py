"""`pulumi up -s dc1`, then dc2 and dc3, for real, on this machine, with the default chart 2.0.3
and Helm's wait on: what a user runs.

REAL: the Pulumi CLI (3.260.0, built from source) and its Python language host (built from its
pinned v3.259.0 source against 3.260.0's modules) running the real Python SDK's
pulumi-language-python-exec; the project's policy pack where `python -m federation` runs it
(test_policy_pack.py); pulumi-resource-kubernetes (built from source; it runs Helm
in-process: install, upgrade and uninstall with hooks and Helm's wait for readiness) and
pulumi-resource-random; the file state backend with a passphrase secrets provider; the
StackReferences between the stacks; the Consul chart 2.0.3 from ../shared/charts (sha256 pinned);
three kube-apiservers with their own etcd (contexts dc1, dc2, dc3 of one kubeconfig), their
RBAC (hook Jobs act with their own ServiceAccount's token) and admission webhooks called over TLS.

PLAYED (tests/integration/harness, one ClusterHarness per cluster; its docstrings say how):
kubelets and controllers, so that workloads become ready only when every Secret, key and
ConfigMap their pods reference exists; Consul's Jobs (tls-init, create-federation-secret,
server-acl-init, ...) by their side effects on the Kubernetes API; the connect injector's
webhooks; a load balancer controller; the default/kubernetes Endpoints. No Consul process runs:
WAN gossip between the datacenters is not exercised here.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import secrets
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.rest import ApiException

from components.config import parse_config
from components.helm_values import primary_values, secondary_values
from federation_env import CHART, DATACENTERS, LB_ADDRESS, NAMESPACE, Federation, federation

pytestmark = pytest.mark.integration

SECONDARIES = ("dc2", "dc3")
# A chart value the user sets with `pulumi config set --secret --path`: it must reach the Release
# and never the state in plaintext.
LICENSE_NOTE = json.dumps({"license_note": secrets.token_hex(16)})
# Every API group whose objects the chart (or this program) creates cluster-wide.
CRD_GROUPS = {"consul.hashicorp.com", "auth.consul.hashicorp.com", "gateway.networking.k8s.io"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with federation(tmp_path_factory.mktemp("fed")) as fed:
        yield fed
        assert not fed.errors(), fed.errors()


def proxy_defaults(env: Federation, context: str) -> dict:
    return client.CustomObjectsApi(env.api(context)).get_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults", "global")


def decoded(data: dict[str, str], key: str) -> bytes:
    return base64.b64decode(data[key])


# The tests below run in order and share the three clusters and the state backend.

def test_secondary_before_primary_stack_exists(env):
    """No dc1 stack at all: the engine's StackReference read fails first, naming the stack."""
    project = env.project
    project.init_stack("dc2")
    done = project.run("preview", stack="dc2", check=False)
    assert done.returncode != 0
    assert 'unknown stack "organization/consul-federation/dc1"' in done.stdout + done.stderr


def test_secondary_before_primary_is_deployed_creates_nothing(env):
    """dc1 created (as `pulumi stack init` leaves it) but never deployed: our own message, and
    nothing at all in dc2's cluster."""
    project = env.project
    project.init_stack("dc1")
    done = project.run("up", "--yes", "--skip-preview", stack="dc2", check=False)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "deploy the primary first: pulumi up -s dc1" in text, text[-3000:]
    assert "Traceback" not in text
    assert NAMESPACE not in env.namespaces("dc2")


def test_first_preview_of_the_primary(env):
    done = env.project.run("preview", "--diff", stack="dc1")
    assert "consul-federation:index:PrimaryDatacenter" in done.stdout
    assert "kubernetes:helm.sh/v3:Release" in done.stdout


def test_up_primary(env):
    project = env.project
    project.run("config", "set", "--secret", "--path", "consul-federation:helmValues.server.extraConfig",
                LICENSE_NOTE, stack="dc1")
    project.run("up", "--yes", "--skip-preview", stack="dc1", timeout=1200)
    cfg = parse_config({**project.config("dc1"), "helmValues": {"server": {"extraConfig": LICENSE_NOTE}}})
    assert env.helm_values("dc1") == primary_values(cfg)
    assert env.helm_values("dc1")["server"]["extraConfig"] == LICENSE_NOTE
    gossip = env.secret_data("dc1", cfg.gossip_secret_name)
    key = decoded(gossip, "key")
    assert len(base64.b64decode(key)) == 32  # the secret holds `consul keygen` text, once encoded
    assert proxy_defaults(env, "dc1")["spec"] == {"meshGateway": {"mode": "local"}}
    admitted = [a for a in env.harness["dc1"].admissions() if a.kind == "ProxyDefaults"]
    assert admitted and all(a.allowed for a in admitted)
    outputs = project.outputs("dc1")
    assert outputs["federationSecret"] == "[secret]"
    assert {k: outputs[k] for k in ("datacenter", "role", "aclsEnabled", "gossipEncryptionEnabled",
                                    "chartVersion", "namespace")} == {
        "datacenter": "dc1", "role": "primary", "aclsEnabled": True, "gossipEncryptionEnabled": True,
        "chartVersion": CHART, "namespace": NAMESPACE}
    federation_secret = env.secret_data("dc1", cfg.federation_secret_name)
    assert project.outputs("dc1", show_secrets=True)["federationSecret"] == federation_secret
    assert sorted(federation_secret) == ["caCert", "caKey", "gossipEncryptionKey", "replicationToken",
                                         "serverConfigJSON"]
    assert decoded(federation_secret, "gossipEncryptionKey") == key
    # The primary's gateway, a LoadBalancer, is advertised at its load balancer's address.
    assert json.loads(decoded(federation_secret, "serverConfigJSON")) == {
        "primary_datacenter": "dc1", "primary_gateways": [f"{LB_ADDRESS['dc1']}:443"]}


def test_up_secondaries_in_parallel(env):
    project = env.project
    for stack in SECONDARIES:
        if stack != "dc2":
            project.init_stack(stack)
    with concurrent.futures.ThreadPoolExecutor(len(SECONDARIES)) as pool:
        runs = [pool.submit(project.run, "up", "--yes", "--skip-preview", stack=s, timeout=1200)
                for s in SECONDARIES]
        for run in runs:
            run.result()


@pytest.mark.parametrize("stack", SECONDARIES)
def test_secondary_joins_the_primary(env, stack):
    project = env.project
    cfg = parse_config(project.config(stack))
    primary_secret = env.secret_data("dc1", "consul-federation")
    assert env.secret_data(stack, cfg.federation_secret_name) == primary_secret  # byte for byte
    assert env.helm_values(stack) == secondary_values(cfg, "dc1", env.auth_method_host(stack))
    # ProxyDefaults is the primary's alone: Consul replicates it (tests/consul shows it for real)
    assert proxy_defaults(env, "dc1")["spec"] == {"meshGateway": {"mode": "local"}}
    with pytest.raises(ApiException) as missing:
        proxy_defaults(env, stack)
    assert missing.value.status == 404
    outputs = project.outputs(stack)
    assert outputs["primaryDatacenter"] == "dc1" and "federationSecret" not in outputs
    # The servers join dc1 as their primary, through dc1's gateway.
    server_config = json.loads(decoded(primary_secret, "serverConfigJSON"))
    assert server_config["primary_datacenter"] == "dc1"
    assert server_config["primary_gateways"] == [f"{LB_ADDRESS['dc1']}:443"]
    # tls-init signed this datacenter's server certificate with dc1's CA, and made no CA here.
    ca = x509.load_pem_x509_certificate(decoded(env.secret_data("dc1", "consul-ca-cert"), "tls.crt"))
    cert = x509.load_pem_x509_certificate(decoded(env.secret_data(stack, "consul-server-cert"), "tls.crt"))
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"server.{stack}.consul" in sans.get_values_for_type(x509.DNSName)
    secrets_here = [s.metadata.name for s in env.core(stack).list_namespaced_secret(NAMESPACE).items]
    assert "consul-ca-cert" not in secrets_here and "consul-ca-key" not in secrets_here


@pytest.mark.parametrize("stack", DATACENTERS)
def test_second_up_changes_nothing(env, stack):
    done = env.project.run("up", "--yes", "--expect-no-changes", stack=stack, timeout=1200)
    assert "unchanged" in done.stdout


def test_preview_diff_shows_only_the_mode_change(env):
    project = env.project
    project.run("config", "set", "--path", "consul-federation:meshGateway.mode", "remote", stack="dc1")
    try:
        done = project.run("preview", "--diff", "--json", stack="dc1")
    finally:
        project.run("config", "rm", "--path", "consul-federation:meshGateway.mode", stack="dc1")
    preview = json.loads(done.stdout)
    # "read" is the federation secret read of every run, not a change.
    changed = [s for s in preview["steps"] if s["op"] not in ("same", "read")]
    assert [s["op"] for s in changed] == ["update"], changed
    (step,) = changed
    assert step["urn"].endswith("::dc1-proxy-defaults")
    assert list(step["detailedDiff"]) == ["spec.meshGateway.mode"]


def test_a_broken_secondary_fails_soon_naming_the_unready_workload(env):
    """A program whose secondary values mount a key the federation secret does not have: the
    servers can never start, and `up` says so within a minute (releaseTimeoutSeconds), naming
    the StatefulSet. The real program then repairs the datacenter."""
    project = env.project
    broken = project.sibling(env.workdir, "broken")
    (broken.dir / "components").unlink()
    shutil.copytree(Path(project.dir / "components").resolve(), broken.dir / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(broken.dir / "components" / "helm_values.py", "a", encoding="utf-8") as handle:
        handle.write(
            "\n\n_secondary_values = secondary_values\n\n\n"
            "def secondary_values(*args, **kwargs):  # the mutation under test\n"
            "    values = _secondary_values(*args, **kwargs)\n"
            "    values['server']['extraVolumes'][0]['items'][0]['key'] = 'serverConfig'\n"
            "    return values\n")
    project.overrides["dc3"] = {"releaseTimeoutSeconds": 30}
    shutil.copy(project.dir / "Pulumi.dc3.yaml", broken.dir / "Pulumi.dc3.yaml")
    broken.write_stack("dc3")
    try:
        done = broken.run("up", "--yes", "--skip-preview", stack="dc3", check=False, timeout=300)
    finally:
        del project.overrides["dc3"]
    assert done.returncode != 0
    text = done.stdout + done.stderr
    # 30 s of Helm's wait, plus the engine, the provider's own preparation of the upgrade and the
    # pre-upgrade hook: 50-85 s on this 2-core machine depending on load; without the setting,
    # Helm would wait the default 900 s.
    assert done.seconds < 90, f"took {done.seconds:.0f} s"
    assert "consul-server" in text and "StatefulSet" in text, text[-4000:]
    assert env.harness["dc3"].unready().get(f"StatefulSet/{NAMESPACE}/consul-server")
    project.write_stack("dc3")
    project.run("up", "--yes", "--skip-preview", stack="dc3", timeout=1200)
    assert not env.harness["dc3"].unready()
    project.run("up", "--yes", "--expect-no-changes", stack="dc3", timeout=1200)


def test_state_holds_no_plaintext_secrets(env):
    license_note = json.loads(LICENSE_NOTE)["license_note"]  # set with --secret under helmValues
    env.assert_no_plaintext([env.secret_data("dc1", "consul-federation")], DATACENTERS, frozenset({license_note}))


def test_destroy_in_reverse_order_leaves_nothing(env):
    project = env.project
    for stack in ("dc3", "dc2", "dc1"):
        project.run("destroy", "--yes", "--skip-preview", stack=stack, timeout=1200)
    for context in DATACENTERS:
        api = env.api(context)
        assert NAMESPACE not in env.namespaces(context)
        assert not [f"{s.metadata.namespace}/{s.metadata.name}"
                    for s in env.core(context).list_secret_for_all_namespaces().items
                    if s.metadata.name.startswith("consul-") or s.metadata.namespace == NAMESPACE]
        crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
        assert not [c.metadata.name for c in crds if c.spec.group in CRD_GROUPS]
        rbac = client.RbacAuthorizationV1Api(api)
        cluster_wide = rbac.list_cluster_role().items + rbac.list_cluster_role_binding().items
        assert not [r.metadata.name for r in cluster_wide if r.metadata.name.startswith("consul-")]
        admission = client.AdmissionregistrationV1Api(api)
        hooks = (admission.list_mutating_webhook_configuration().items
                 + admission.list_validating_webhook_configuration().items)
        assert not [h.metadata.name for h in hooks if h.metadata.name.startswith("consul-")]
