"""federation/recovery.py: what `python -m federation up` does first when an earlier run was
interrupted (a stale lock, pending operations, Helm's half-made record). No engine or cluster runs
here: the stack, its lock files and Helm's records are fakes; the real thing is exercised by
tests/integration/test_faults_state.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from federation import recovery, runner as stack_runner

pytestmark = pytest.mark.unit

RELEASE_URN = "urn:pulumi:dc2::consul-federation::consul-federation:index:SecondaryDatacenter$kubernetes:helm.sh/v3:Release::dc2-consul"


class FakeStack:
    """`pulumi stack export`, refresh and cancel of a stack whose state has `pending` operations;
    refresh clears all but interrupted creates (unless told to clear those too), as a
    non-interactive `pulumi refresh` does."""

    name = "dc2"

    def __init__(self, pending, backend: str = ""):
        self.pending = pending
        self.refreshed: list[dict] = []
        self.cancelled = 0
        self.commands: list[list[str]] = []
        self.workspace = self  # work_dir, env_vars and pulumi_command, as LocalWorkspace has them
        self.work_dir, self.pulumi_command = ".", self
        self.env_vars = {"PULUMI_BACKEND_URL": backend or "s3://not-a-file-backend"}

    def run(self, args, cwd, additional_env, on_output=None, on_error=None):
        self.commands.append(args)
        assert args == ["stack", "export", "--stack", "dc2"], args
        state = {"version": 3, "deployment": {"resources": [], "pending_operations": self.pending}}
        return stack_runner.auto.CommandResult(stdout=json.dumps(state), stderr="", code=0)

    def refresh(self, **kwargs):
        self.refreshed.append(kwargs)
        clear = kwargs.get("clear_pending_creates")
        self.pending = [op for op in self.pending if op["type"] == "creating" and not clear]

    def cancel(self):
        self.cancelled += 1


class FakeHelm:
    def __init__(self, history):
        self.history = list(history)
        self.deleted: list[tuple[str, str, int]] = []

    def revisions(self, namespace, name):
        assert (namespace, name) == ("consul", "consul")
        return list(self.history)

    def delete(self, namespace, name, revision):
        self.deleted.append((namespace, name, revision))
        self.history = [h for h in self.history if h[0] != revision]


def op(op_type, name, kind="kubernetes:core/v1:Namespace"):
    inputs = {"name": "consul", "namespace": "consul"} if kind == recovery.RELEASE_TYPE else {}
    return {"type": op_type, "resource": {
        "urn": f"urn:pulumi:dc2::consul-federation::{kind}::{name}", "type": kind, "inputs": inputs}}


def release(op_type="creating"):
    return op(op_type, "dc2-consul", recovery.RELEASE_TYPE)


def records(helm):
    return lambda stack: (helm, "dc2")


def test_a_stack_with_pending_operations_is_refreshed_before_up_and_says_so():
    said: list[str] = []
    stack = FakeStack([op("updating", "dc2-namespace")])
    assert recovery.refresh_if_pending(stack, said.append) == \
        "recovered from an interrupted run: 1 pending operation(s)"
    assert [r.get("clear_pending_creates") for r in stack.refreshed] == [None]
    assert stack.commands == [["stack", "export", "--stack", "dc2"]] * 2  # before and after; no --show-secrets
    assert said == ["1 pending operation(s) from an interrupted run (dc2-namespace): settling them before up",
                    "refreshing the stack"]
    clean = FakeStack([])
    assert recovery.refresh_if_pending(clean, said.append) == "" and not clean.refreshed


def test_the_runner_runs_up_through_the_recovery():
    assert stack_runner.refresh_if_pending is recovery.refresh_if_pending
    assert stack_runner.InterruptedCreates is recovery.InterruptedCreates


@pytest.mark.parametrize("status", ["pending-install", "failed", "deployed"])
def test_an_interrupted_first_install_loses_its_helm_record_and_is_created_again(status):
    """SIGKILL during the first install: Helm's one record stays pending-install (or failed, or
    deployed when the orphaned provider finished it); deleting it lets the next install adopt
    the objects, and refresh drops the pending create."""
    said: list[str] = []
    helm = FakeHelm([(1, status)])
    stack = FakeStack([release()])
    note = recovery.refresh_if_pending(stack, said.append, records=records(helm))
    assert note == "recovered from an interrupted run: 1 pending operation(s)"
    assert helm.deleted == [("consul", "consul", 1)]
    assert [r.get("clear_pending_creates") for r in stack.refreshed] == [True]
    assert said[1] == (f"Helm release consul/consul in context dc2: revision 1 ({status}) is the record of the "
                       "interrupted first install; deleting that record (not its objects) so that the install "
                       "runs again and adopts them")
    assert said[2] == "refreshing the stack and clearing 1 interrupted create(s), which up creates again"


def test_an_interrupted_create_that_never_reached_helm_is_just_cleared():
    helm = FakeHelm([])
    stack = FakeStack([release(), op("creating", "dc2-proxy-defaults",
                                     "kubernetes:consul.hashicorp.com/v1alpha1:ProxyDefaults")])
    recovery.refresh_if_pending(stack, lambda line: None, records=records(helm))
    assert not helm.deleted and stack.refreshed[0]["clear_pending_creates"] is True and not stack.pending


def test_a_release_with_history_the_state_never_knew_is_left_to_a_person():
    helm = FakeHelm([(1, "superseded"), (2, "deployed")])
    stack = FakeStack([release()])
    with pytest.raises(recovery.InterruptedCreates) as stopped:
        recovery.refresh_if_pending(stack, lambda line: None, records=records(helm))
    assert "has 2 revisions (1 superseded, 2 deployed) but the state has never recorded it" in str(stopped.value)
    assert "helm uninstall consul -n consul --kube-context dc2" in str(stopped.value)
    assert not helm.deleted and not stack.refreshed  # nothing was changed


def test_an_interrupted_upgrade_stuck_in_helm_names_the_rollback():
    helm = FakeHelm([(1, "superseded"), (2, "deployed"), (3, "pending-upgrade")])
    stack = FakeStack([release("updating")])
    with pytest.raises(recovery.InterruptedCreates) as stopped:
        recovery.refresh_if_pending(stack, lambda line: None, records=records(helm))
    assert str(stopped.value) == (
        "Helm release consul/consul in context dc2 is stuck in pending-upgrade (revision 3), left by the "
        "interrupted run; Helm refuses every other operation until it is rolled back: helm rollback consul "
        "-n consul --kube-context dc2 (to the last deployed revision). Then run up again")
    assert not stack.refreshed


def test_an_unreadable_cluster_settles_nothing():
    class Down(FakeHelm):
        def revisions(self, namespace, name):
            raise ConnectionRefusedError("connection refused")
    stack = FakeStack([release()])
    with pytest.raises(recovery.InterruptedCreates) as stopped:
        recovery.refresh_if_pending(stack, lambda line: None, records=records(Down([])))
    assert "could not read Helm's record of it (ConnectionRefusedError: connection refused)" in str(stopped.value)
    assert not stack.refreshed


def test_a_cluster_that_cannot_even_be_named_settles_nothing():
    """No stack file or kubeconfig to reach the cluster with: up stops, saying so."""
    def unreachable(stack):
        raise FileNotFoundError("no Pulumi.dc2.yaml")
    stack = FakeStack([release()])
    with pytest.raises(recovery.InterruptedCreates) as stopped:
        recovery.refresh_if_pending(stack, lambda line: None, records=unreachable)
    assert str(stopped.value) == ("cannot reach the stack's cluster to check Helm's record of the interrupted "
                                  "release (FileNotFoundError: no Pulumi.dc2.yaml). Then run up again")
    assert not stack.refreshed


def test_an_interrupted_create_of_an_unknown_kind_stops_up_with_what_to_do():
    stack = FakeStack([op("creating", "dc2-thing", "aws:s3/bucket:Bucket"), op("updating", "dc2-namespace")])
    with pytest.raises(recovery.InterruptedCreates) as stopped:
        recovery.refresh_if_pending(stack, lambda line: None)
    message = str(stopped.value)
    assert message.startswith("1 interrupted create(s) remain after refresh (dc2-thing)")
    assert "pulumi refresh -s dc2 --yes --clear-pending-creates" in message
    assert [r.get("clear_pending_creates") for r in stack.refreshed] == [None]


def write_lock(tmp_path, pid, hostname):
    folder = tmp_path / ".pulumi" / "locks" / "organization" / "consul-federation" / "dc2"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"lock-{pid}.json").write_text(json.dumps(
        {"pid": pid, "username": "root", "hostname": hostname, "timestamp": "2026-11-27T10:18:42Z"}))


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: consul-federation\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_lock_left_by_a_dead_process_of_this_host_is_removed(project):
    import socket
    write_lock(project, dead_pid(), socket.gethostname())
    stack = FakeStack([], backend=f"file://{project}")
    stack.work_dir = str(project)
    said: list[str] = []
    assert recovery.refresh_if_pending(stack, said.append) == "removed a stale lock"
    assert stack.cancelled == 1
    assert said[0].startswith("the stack's lock was left by pulumi (pid ")
    assert said[0].endswith("which is no longer running (killed during an update): removing it (pulumi cancel)")


@pytest.mark.parametrize("holder", ["running", "other host", "no pid", "one of two running"])
def test_a_lock_that_may_be_live_is_left_to_the_cli(project, holder):
    import socket
    if holder == "running":
        write_lock(project, os.getpid(), socket.gethostname())
    elif holder == "other host":
        write_lock(project, dead_pid(), "another-host")
    elif holder == "no pid":  # a lock file without a pid says nothing of its holder
        write_lock(project, 0, socket.gethostname())
    else:
        write_lock(project, dead_pid(), socket.gethostname())
        write_lock(project, os.getpid(), socket.gethostname())
    stack = FakeStack([], backend=f"file://{project}")
    stack.work_dir = str(project)
    assert recovery.refresh_if_pending(stack, lambda line: None) == ""
    assert stack.cancelled == 0


def test_backend_directory_of_file_urls(tmp_path, monkeypatch):
    stack = FakeStack([], backend="file:///srv/state?no_tmp_dir=true")
    assert recovery.backend_directory(stack) == "/srv/state"
    monkeypatch.setenv("HOME", str(tmp_path))
    stack.env_vars = {"PULUMI_BACKEND_URL": "file://~"}
    assert recovery.backend_directory(stack) == str(tmp_path)
    stack.env_vars = {"PULUMI_BACKEND_URL": "s3://bucket/state"}
    assert recovery.backend_directory(stack) is None
