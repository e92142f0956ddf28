"""Faults of the state, survived: an interrupted `pulumi up` (Ctrl-C, and SIGKILL), two `up`s of
one stack at once, the primary destroyed before its secondaries (issue 10, items 1, 4 and 5),
with the real engine against real API servers.

What is real and what is played is as in test_stacks.py: the Pulumi CLI 3.260.0 with its file
backend (and its lock files) and a passphrase, the providers (Helm 3.18 in-process: install with
hooks and wait), the chart 2.0.3 and three kube-apiservers with etcd are real; kubelets,
controllers and Consul's Jobs are played by tests/integration/harness, whose played readiness
leaves the Release in Helm's `pending-install` for 10-25 s after its objects are created: the
window in which these tests interrupt it. The signals are what a person or a machine sends:
SIGINT to the CLI's process group (a terminal's Ctrl-C), SIGKILL to the CLI and every process
under it (a killed CI job, container or machine).

Each test checks what a person would check afterwards: the federation secret of every datacenter
(SHA-256 digests of the data maps, never a value), Helm's release records, the state's pending
operations and lock files, and at the end that every stack converges with no change left and
that no federation secret ever seen (three CAs are made here) is in the state in plaintext. The
tests run in order and build on each other's state. Measured times are printed (pytest -s) and
bounded at about three times what they measured on the 2-core build machine under load.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from federation_env import DATACENTERS, Federation, NAMESPACE, Project, Timings, digest, federation
from interrupts import (LOCKED, export, finish, kill_all, module_federation, pending, start,
                        two_ups_at_once, wait_installing)
from pulumi_mocks import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SECONDARIES = ("dc2", "dc3")
FEDERATION_SECRET = "consul-federation"
RELEASE = "kubernetes:helm.sh/v3:Release"
RECORD_V1 = "sh.helm.release.v1.consul.v1"
NO_PRIMARY = ("consul-federation:primaryStack: stack 'organization/consul-federation/dc1' has no outputs "
              "datacenter, aclsEnabled, gossipEncryptionEnabled, chartVersion, federationSecret yet; deploy the "
              "primary first: pulumi up -s dc1")
# docs/operations.md, "Recovering from an interrupted up": the commands after a kill, as a user with the quick
# start's kind contexts types them (here: context dc1 of the test kubeconfig; `pulumi up` asks
# on a terminal, the test answers --yes).
KILL_RECOVERY = [
    "pulumi cancel -s dc1 --yes",
    "pulumi refresh -s dc1 --yes --clear-pending-creates",
    "kubectl --context kind-dc1 -n consul get secrets -l owner=helm,name=consul -L status",
    "kubectl --context kind-dc1 -n consul delete secret sh.helm.release.v1.consul.v1",
    "pulumi up -s dc1",
]
# docs/operations.md, "Destroyed the primary before its secondaries": the way back.
WRONG_ORDER_RECOVERY = ["python -m federation destroy", "python -m federation up"]
timed = Timings()
SEEN: list[dict[str, str]] = []  # every federation secret seen in a cluster (plaintext check at the end)
CA_AT_KILL: dict[str, str] = {}


def operations_section(title: str) -> str:
    """A section of docs/operations.md, whose commands these tests run as written."""
    text = Path(ROOT, "docs", "operations.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def run_line(env: Federation, line: str) -> subprocess.CompletedProcess:
    """One command line of docs/operations.md, on the test's planes (context kind-dc1 is dc1 here)."""
    argv = shlex.split(line.replace("kind-dc1", "dc1"))
    if argv[:2] == ["pulumi", "up"]:
        argv.append("--yes")
    run_env = {**env.project.env, "KUBECONFIG": str(env.kubeconfig)}
    found = shutil.which(argv[0], path=run_env["PATH"])
    started = time.monotonic()
    if found is None and argv[0] == "kubectl":  # every machine kind here has kubectl; just in case
        done = kubectl_by_api(env, argv)
    else:
        done = subprocess.run([found or argv[0], *argv[1:]], cwd=env.project.dir, env=run_env,
                              capture_output=True, text=True, timeout=1200)
    timed(line, time.monotonic() - started)
    assert done.returncode == 0, f"{line}:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    return done


def kubectl_by_api(env: Federation, argv: list[str]) -> subprocess.CompletedProcess:
    """The two kubectl lines of docs/operations.md through the API, for a machine without kubectl."""
    print(f"\nno kubectl on PATH: {' '.join(argv)} through the Kubernetes API")
    core = env.core("dc1")
    if argv[5:7] == ["get", "secrets"]:
        rows = [f"{s.metadata.name}   {s.type}   1   0s   {s.metadata.labels.get('status')}"
                for s in core.list_namespaced_secret(NAMESPACE, label_selector="owner=helm,name=consul").items]
        return subprocess.CompletedProcess(argv, 0, "NAME   TYPE   DATA   AGE   STATUS\n" + "\n".join(rows) + "\n", "")
    assert argv[5:7] == ["delete", "secret"], argv
    core.delete_namespaced_secret(argv[7], NAMESPACE)
    return subprocess.CompletedProcess(argv, 0, f'secret "{argv[7]}" deleted\n', "")


# ---- what a person checks ----------------------------------------------------------------------

def fed_secret(env: Federation, context: str) -> dict[str, str] | None:
    try:
        data = env.secret_data(context, FEDERATION_SECRET)
    except Exception as exc:  # 404: not there (yet)
        if getattr(exc, "status", None) == 404:
            return None
        raise
    if data not in SEEN:
        SEEN.append(data)
    return data


def digests(env: Federation) -> dict[str, str | None]:
    return {dc: (digest(data) if (data := fed_secret(env, dc)) is not None else None) for dc in DATACENTERS}


def locks(project: Project, stack: str = "dc1") -> list[dict]:
    folder = project.state / ".pulumi" / "locks" / "organization" / "consul-federation" / stack
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def snapshot(env: Federation, context: str) -> dict[str, tuple]:
    """What a person would see changed in a cluster: every object of the Consul namespace (uid,
    and for Secrets and ConfigMaps their resourceVersion), and the namespaces."""
    core, apps = env.core(context), env.harness[context].apps()
    seen: dict[str, tuple] = {f"Namespace/{n}": () for n in env.namespaces(context)}
    if NAMESPACE not in env.namespaces(context):
        return seen
    for kind, items in (("Secret", core.list_namespaced_secret(NAMESPACE).items),
                        ("ConfigMap", core.list_namespaced_config_map(NAMESPACE).items)):
        seen.update({f"{kind}/{o.metadata.name}": (o.metadata.uid, o.metadata.resource_version) for o in items})
    for kind, items in (("Service", core.list_namespaced_service(NAMESPACE).items),
                        ("ServiceAccount", core.list_namespaced_service_account(NAMESPACE).items),
                        ("Deployment", apps.list_namespaced_deployment(NAMESPACE).items),
                        ("StatefulSet", apps.list_namespaced_stateful_set(NAMESPACE).items)):
        seen.update({f"{kind}/{o.metadata.name}": (o.metadata.uid,) for o in items})
    return seen


def release_in_state(project: Project) -> dict | None:
    return next((r for r in export(project, "dc1")["resources"] if r["type"] == RELEASE), None)


def ca_digest(env: Federation) -> str:
    return digest(env.secret_data("dc1", "consul-ca-cert"))


def signed_by_primary_ca(env: Federation, context: str) -> bool:
    ca = x509.load_pem_x509_certificate(base64.b64decode(env.secret_data("dc1", "consul-ca-cert")["tls.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(env.secret_data(context, "consul-server-cert")["tls.crt"]))
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):  # another issuer, or its signature does not verify
        return False
    return True


# ---- the module's federation -------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with federation(tmp_path_factory.mktemp("fs")) as fed, module_federation(fed, DATACENTERS, timed):
        yield fed


# ---- 1. Ctrl-C during the first install ----------------------------------------------------------

def test_ctrl_c_while_the_release_installs_leaves_a_failed_release_that_up_upgrades(env):
    project = env.project
    project.init_stack("dc1")
    # the servers stay unready until the Ctrl-C: Helm is surely waiting when it comes (on a quiet
    # machine the install could otherwise finish between the check and the signal)
    env.harness["dc1"].hold_workloads(["consul-server"])
    proc = start(project, "up", "--yes", "--skip-preview")
    timed("up dc1 until the Release is installing", wait_installing(env, proc))
    signalled = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the CLI's process group
    out = finish(proc, timeout=300)
    env.harness["dc1"].clear_faults()
    timed("Ctrl-C until the CLI exits", time.monotonic() - signalled)
    print(out[-3000:])
    assert proc.returncode != 0
    assert time.monotonic() - signalled < 60
    # The engine cancelled the provider; Helm recorded the install as failed.
    assert 'Helm release "consul/consul" was created, but failed to initialize completely' in out, out[-4000:]
    assert "context canceled" in out
    assert env.helm_history("dc1") == [(1, "failed")]
    # The state is consistent: no lock, no pending operation, the Release with its init error.
    assert locks(project) == [] and pending(project, "dc1") == []
    release = release_in_state(project)
    assert release and release["id"] == "consul/consul"
    assert any("context canceled" in e for e in release.get("initErrors") or []), release.get("initErrors")
    assert fed_secret(env, "dc1") is None  # the post-install hook never ran

    # docs/operations.md: after Ctrl-C, `pulumi up -s dc1` again.
    done = project.run("up", "--yes", "--skip-preview", stack="dc1", timeout=1200)
    timed("recovery: pulumi up -s dc1 after Ctrl-C", done.seconds)
    assert env.helm_history("dc1") == [(1, "superseded"), (2, "deployed")]
    secret = fed_secret(env, "dc1")
    assert secret and sorted(secret) == ["caCert", "caKey", "gossipEncryptionKey", "replicationToken",
                                         "serverConfigJSON"]
    assert project.outputs("dc1", show_secrets=True)["federationSecret"] == secret
    assert done.seconds < 120


def test_the_secondaries_join_the_recovered_primary(env):
    """`python -m federation up`: dc1 has nothing left to change after its recovery."""
    done = env.cli("up", "--gate-timeout", "0")
    timed("python -m federation up (dc1 unchanged, dc2 and dc3 created)", done.seconds)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("up summary:"):]
    assert re.search(r"dc1\s+ok\s+same 9", summary), summary
    for dc in SECONDARIES:
        assert re.search(rf"{dc}\s+ok\s+create", summary), summary
    sums = digests(env)
    assert sums["dc1"] and sums["dc2"] == sums["dc1"] and sums["dc3"] == sums["dc1"]


# ---- 4. two ups of one stack at once --------------------------------------------------------------

def test_two_ups_at_once_one_runs_the_other_is_refused_by_the_lock(env):
    """The file backend locks a stack for every update by default (pulumi 3.260.0: no setting).
    The lock is written, then the folder checked again, so two runs started at the same instant
    could both see the other's lock and both be refused (never both run); then they run again."""
    project = env.project
    before = digests(env)
    project.run("config", "set", "--path", "consul-federation:meshGateway.mode", "remote", stack="dc1")
    outs, seconds, winner, loser = two_ups_at_once(project)
    timed("the second up refused (from its start)", seconds[loser])
    timed("the first up (ProxyDefaults mode change)", seconds[winner])
    assert seconds[loser] < 60
    message = outs[loser]
    assert re.search(r"\.pulumi/locks/organization/consul-federation/dc1/[0-9a-f-]+\.json(\?[^:]*)?: created by "
                     rf"\S+@{re.escape(socket.gethostname())} \(pid \d+\) at \S+", message), message
    print("\n".join(line for line in outs[winner].splitlines() if line.startswith(" ~ ")))
    assert re.search(r"~ \d+ updated", outs[winner]) and "dc1-proxy-defaults" in outs[winner], outs[winner][-3000:]
    # The state is consistent and the change applied once.
    assert pending(project, "dc1") == [] and locks(project) == []
    proxy = env.harness["dc1"].custom().get_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults", "global")
    assert proxy["spec"]["meshGateway"]["mode"] == "remote"
    assert digests(env) == before  # the next test's up and no-change up run on this state


def test_federation_up_beside_a_running_up_is_refused_and_leaves_its_lock(env):
    """`python -m federation up` removes only a lock whose process is gone: a running update's
    lock makes it fail that stack with the CLI's message, and the update goes on. The update is
    paused (SIGSTOP) once it holds the lock, until the operator command is done: a live process
    all along, and no race with how long the update takes."""
    project = env.project
    before = digests(env)
    project.run("config", "set", "--path", "consul-federation:meshGateway.mode", "local", stack="dc1")
    running = start(project, "up", "--yes", "--skip-preview")
    deadline = time.monotonic() + 120
    while not locks(project) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(running.pid, signal.SIGSTOP)
    try:
        holder = locks(project)
        assert holder and holder[0]["pid"] == running.pid
        done = env.cli("up", "--gate-timeout", "0", "--stacks", "dc1", timeout=600)
        timed("python -m federation up refused beside a running up", done.seconds)
        assert locks(project) == holder  # left alone
    finally:
        os.kill(running.pid, signal.SIGCONT)
    out = finish(running, timeout=1200)
    assert running.returncode == 0, out[-4000:]
    assert done.seconds < 60
    assert done.returncode == 1, done.stdout[-4000:]
    assert "the stack's lock was left by" not in done.stdout
    summary = done.stdout[done.stdout.index("up summary:"):]
    assert re.search(r"dc1\s+FAILED\s+" + re.escape(LOCKED), summary), summary
    assert f"(pid {running.pid})" in summary
    assert pending(project, "dc1") == [] and locks(project) == []
    proxy = env.harness["dc1"].custom().get_namespaced_custom_object(
        "consul.hashicorp.com", "v1alpha1", NAMESPACE, "proxydefaults", "global")
    assert proxy["spec"]["meshGateway"]["mode"] == "local"
    done = project.run("up", "--yes", "--expect-no-changes", stack="dc1", timeout=1200)
    timed("up dc1 after the refused operator command (no changes)", done.seconds)
    assert digests(env) == before


# ---- 5. the primary destroyed before its secondaries ----------------------------------------------

def test_federation_destroy_of_the_primary_alone_is_refused_and_touches_nothing(env):
    project = env.project
    clusters = {dc: snapshot(env, dc) for dc in DATACENTERS}
    states = {dc: export(project, dc) for dc in DATACENTERS}
    sums = digests(env)
    done = env.cli("destroy", "--stacks", "dc1", timeout=300)
    timed("python -m federation destroy --stacks dc1 refused", done.seconds)
    assert done.seconds < 60
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "federation destroy: refusing to destroy the primary dc1: secondary stack(s) dc2 (9 resources), "
        "dc3 (9 resources) still have resources and were left out by --stacks; destroy them first "
        "(or include them)"), done.stderr
    assert "[dc1]" not in done.stdout  # no engine ran
    assert {dc: snapshot(env, dc) for dc in DATACENTERS} == clusters
    assert {dc: export(project, dc) for dc in DATACENTERS} == states
    assert digests(env) == sums


def test_plain_destroy_of_the_primary_strands_the_secondaries_whose_next_run_stops(env):
    project = env.project
    old = digests(env)
    secondaries = {dc: snapshot(env, dc) for dc in SECONDARIES}
    outputs = project.outputs("dc2")
    done = project.run("destroy", "--yes", "--skip-preview", stack="dc1", timeout=1200)
    timed("pulumi destroy -s dc1 while dc2 and dc3 exist", done.seconds)
    assert "- 9 deleted" in done.stdout
    assert NAMESPACE not in env.namespaces("dc1") and export(project, "dc1").get("resources") in (None, [])
    # The secondaries: untouched, still on the old federation secret.
    assert {dc: snapshot(env, dc) for dc in SECONDARIES} == secondaries
    assert {dc: digests(env)[dc] for dc in SECONDARIES} == {dc: old[dc] for dc in SECONDARIES}
    # Their next preview and up stop at the program's check, before touching anything.
    for command in (["preview"], ["up", "--yes", "--skip-preview"]):
        failed = project.run(*command, stack="dc2", check=False)
        timed(f"pulumi {command[0]} -s dc2 with dc1 destroyed", failed.seconds)
        assert failed.seconds < 60
        assert failed.returncode != 0
        assert NO_PRIMARY in failed.stdout, failed.stdout[-4000:]
        assert "Traceback" not in failed.stdout + failed.stderr
    assert {dc: snapshot(env, dc) for dc in SECONDARIES} == secondaries
    assert pending(project, "dc2") == []
    after = project.outputs("dc2")
    print(f"\ndc2 outputs before: {sorted(outputs)}, after its failed up: {sorted(after)}")
    assert after == outputs


# ---- 1. SIGKILL during the (re-)install, recovered by hand ----------------------------------------

def test_killed_while_installing_leaves_a_lock_a_pending_create_and_a_stuck_release(env):
    project = env.project
    old = digests(env)
    proc = start(project, "up", "--yes", "--skip-preview")  # the primary again, after the wrong-order destroy
    timed("up dc1 until the Release is installing (re-install)", wait_installing(env, proc))
    killed = kill_all(proc)
    print(f"\nkilled {killed}")
    CA_AT_KILL['re-up'] = ca_digest(env)  # tls-init, a pre-install hook, made the CA before the objects
    time.sleep(3)
    assert env.helm_history("dc1") == [(1, "pending-install")]  # for ever: nothing runs it any more
    held = locks(project)
    assert [lock["pid"] for lock in held] == [proc.pid]
    assert pending(project, "dc1") == [("creating", "dc1-consul")]
    # The next plain up is refused by the dead process's lock.
    refused = project.run("up", "--yes", "--skip-preview", stack="dc1", check=False)
    timed("pulumi up -s dc1 refused by the stale lock", refused.seconds)
    assert refused.seconds < 30
    assert refused.returncode != 0 and LOCKED in refused.stdout + refused.stderr
    assert f"(pid {proc.pid})" in refused.stdout + refused.stderr
    assert {dc: digests(env)[dc] for dc in SECONDARIES} == {dc: old[dc] for dc in SECONDARIES}


def test_the_readme_sequence_recovers_the_killed_install(env):
    project = env.project
    section = operations_section("Recovering from an interrupted up")
    for line in KILL_RECOVERY:
        assert line in section, line
    outputs = {}
    for line in KILL_RECOVERY:
        outputs[line] = run_line(env, line)
    listing = outputs[KILL_RECOVERY[2]].stdout
    assert re.search(rf"^{re.escape(RECORD_V1)}\s+helm\.sh/release\.v1\s+1\s+\S+\s+pending-install$", listing,
                     re.MULTILINE), listing
    assert len(listing.strip().splitlines()) == 2  # header and the one record: a first install
    assert env.helm_history("dc1") == [(1, "deployed")]
    assert ca_digest(env) == CA_AT_KILL['re-up']  # the killed install's CA was kept
    assert pending(project, "dc1") == [] and locks(project) == []
    done = project.run("up", "--yes", "--expect-no-changes", stack="dc1", timeout=1200)
    timed("second up dc1 after the documented sequence (no changes)", done.seconds)


def test_re_up_of_the_secondary_copies_the_new_secret_but_its_servers_keep_the_old_ca(env):
    """What docs/operations.md warns about: dc1 came back with a NEW federation secret; `up` of dc2
    replaces its copy byte for byte, but not the certificate its servers run with."""
    project = env.project
    before = digests(env)
    new = fed_secret(env, "dc1")
    assert before["dc1"] != before["dc2"] and before["dc2"] == before["dc3"]  # dc2, dc3: the old one
    old = env.secret_data("dc2", FEDERATION_SECRET)
    assert {k: new[k] != old[k] for k in new} == {
        "caCert": True, "caKey": True, "gossipEncryptionKey": True, "replicationToken": True,
        "serverConfigJSON": False}  # the same gateway address
    uid = env.core("dc2").read_namespaced_secret(FEDERATION_SECRET, NAMESPACE).metadata.uid
    done = project.run("up", "--yes", "--skip-preview", stack="dc2", timeout=1200)
    timed("pulumi up -s dc2 after dc1 came back", done.seconds)
    changed = [line.strip() for line in done.stdout.splitlines() if re.match(r"^ (~|\+-|-|\+) ", line)]
    print("\n".join(changed))
    assert {line.split()[2] for line in changed} == {"dc2-federation-secret"}, changed  # nothing else
    assert env.secret_data("dc2", FEDERATION_SECRET) == new  # the new secret, byte for byte
    # Updated in place (the provider's enableSecretMutable), the same object: anything watching it
    # sees new data, not a deleted and re-created Secret.
    assert env.core("dc2").read_namespaced_secret(FEDERATION_SECRET, NAMESPACE).metadata.uid == uid
    assert any(line.startswith("~") and "dc2-federation-secret updated" in line for line in changed), changed
    assert env.helm_history("dc2") == [(1, "deployed")]  # the Release was not upgraded...
    assert not signed_by_primary_ca(env, "dc2")  # ...so its servers' certificate is the old CA's
    assert digests(env)["dc3"] == before["dc3"]


# ---- 1 and 5: SIGKILL during the documented way back, recovered by python -m federation up -------------

def test_killed_install_during_the_way_back_is_recovered_by_federation_up(env):
    project = env.project
    section = operations_section("Destroyed the primary before its secondaries")
    for line in WRONG_ORDER_RECOVERY:
        assert line in section, line
    done = env.cli("destroy")
    timed("python -m federation destroy (dc2, dc3, then dc1)", done.seconds)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert all(NAMESPACE not in env.namespaces(dc) for dc in DATACENTERS)
    # The way back's first step is dc1's install: kill it.
    proc = start(project, "up", "--yes", "--skip-preview")
    timed("up dc1 until the Release is installing (way back)", wait_installing(env, proc))
    kill_all(proc)
    ca_at_kill = ca_digest(env)
    assert env.helm_history("dc1") == [(1, "pending-install")] and pending(project, "dc1") == [("creating", "dc1-consul")]
    assert [lock["pid"] for lock in locks(project)] == [proc.pid]

    done = env.cli("up", "--gate-timeout", "0")
    timed("python -m federation up recovering dc1, then dc2 and dc3", done.seconds)
    assert done.seconds < 300
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    said = [line[len("[dc1] "):] for line in done.stdout.splitlines() if line.startswith("[dc1] ")]
    assert re.fullmatch(rf"the stack's lock was left by pulumi \(pid {proc.pid}\) of \S+@{re.escape(socket.gethostname())} "
                        r"since \S+, which is no longer running \(killed during an update\): removing it "
                        r"\(pulumi cancel\)", said[0]), said[0]
    assert said[1:4] == [
        "1 pending operation(s) from an interrupted run (dc1-consul): settling them before up",
        "Helm release consul/consul in context dc1: revision 1 (pending-install) is the record of the "
        "interrupted first install; deleting that record (not its objects) so that the install runs again and "
        "adopts them",
        "refreshing the stack and clearing 1 interrupted create(s), which up creates again"], said[:4]
    summary = done.stdout[done.stdout.index("up summary:"):]
    assert re.search(r"dc1\s+ok\s+create 2, same 7 \(recovered from an interrupted run: 1 pending operation\(s\), "
                     r"a stale lock\)", summary), summary
    assert env.helm_history("dc1") == [(1, "deployed")] and ca_digest(env) == ca_at_kill
    sums = digests(env)
    assert sums["dc1"] and sums["dc2"] == sums["dc1"] and sums["dc3"] == sums["dc1"]
    assert len({digest(s) for s in SEEN}) == 3  # three CAs: the first install, the re-up, the way back
    for dc in SECONDARIES:
        assert signed_by_primary_ca(env, dc)  # reinstalled: their servers run on dc1's CA


# ---- afterwards -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", DATACENTERS)
def test_every_stack_converges_with_nothing_pending(env, stack):
    project = env.project
    done = project.run("up", "--yes", "--expect-no-changes", stack=stack, timeout=1200)
    timed(f"final up {stack} (no changes)", done.seconds)
    assert pending(project, stack) == [] and locks(project, stack) == []


def test_no_federation_secret_ever_seen_is_in_the_state_in_plaintext(env):
    assert len(SEEN) >= 3
    env.assert_no_plaintext(SEEN, DATACENTERS)
