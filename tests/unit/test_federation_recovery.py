"""federation/recovery.py: what `python -m federation up` does first when an earlier run was
interrupted (a stale lock, pending operations, Helm's half-made record). No engine or cluster runs
here: the stack, its lock files and Helm's records are fakes; the real thing is exercised by
tests/integration/test_faults_state.py."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from federation import backend_locks, recovery, runner as stack_runner

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
        self.env_vars = {"PULUMI_BACKEND_URL": backend or "file:///nonexistent/state"}  # no lock records

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
    assert backend_locks.backend_directory(stack) == "/srv/state"
    monkeypatch.setenv("HOME", str(tmp_path))
    stack.env_vars = {"PULUMI_BACKEND_URL": "file://~"}
    assert backend_locks.backend_directory(stack) == str(tmp_path)
    stack.env_vars = {"PULUMI_BACKEND_URL": "s3://bucket/state"}
    assert backend_locks.backend_directory(stack) is None


# ---- a postgres:// backend: its lock records read with psql -------------------------------------

PG_URL = "postgres://pulumi:s3cr%2Ft@127.0.0.1:5433/pulumi?sslmode=disable"
PG_FOLDER = "pulumi/.pulumi/locks/organization/consul-federation/dc2/"
# What the CLI's refusal says on this backend (pulumi 3.260.0), the password masked.
PG_REFUSAL = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
              "delete the lock file with `pulumi cancel`.\n  postgres://****:****@127.0.0.1:5433/pulumi/.pulumi/"
              "locks/organization/consul-federation/dc2/0b7c.json?sslmode=disable: created by root@ci-7 (pid 4242) "
              "at 2026-12-04T17:40:01Z")

# A stand-in psql: records its arguments, stdin and connection environment, then answers with the
# rows of FAKE_PSQL_ROWS (the JSON array the real query returns), or fails as psql does.
FAKE_PSQL = """#!{python}
import json, os, sys
with open(os.environ["FAKE_PSQL_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read(), "password": os.environ.get("PGPASSWORD"),
                          "connect_timeout": os.environ.get("PGCONNECT_TIMEOUT")}}) + "\\n")
with open(os.environ["FAKE_PSQL_ROWS"]) as rows:
    answer = json.load(rows)
if answer == "refused":
    sys.stderr.write('psql: error: connection to server at "127.0.0.1", port 5433 failed: FATAL:  password '
                     'authentication failed for user "pulumi"\\n')
    sys.exit(2)
print(json.dumps(answer))
"""


def record(pid, hostname, **extra):
    raw = {"pid": pid, "username": "root", "hostname": hostname, "timestamp": "2026-12-04T17:40:01.123Z", **extra}
    return base64.b64encode(json.dumps(raw).encode()).decode()


@pytest.fixture
def psql(project, tmp_path):
    """A postgres-backed FakeStack whose PATH has the stand-in psql; `rows(...)` sets its answer,
    `calls()` what it was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "psql").write_text(FAKE_PSQL.format(python=sys.executable))
    (bin_dir / "psql").chmod(0o755)
    stack = FakeStack([], backend=PG_URL)
    stack.work_dir = str(project)
    stack.env_vars.update({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_PSQL_LOG": str(tmp_path / "log"),
                           "FAKE_PSQL_ROWS": str(tmp_path / "rows.json")})

    def rows(answer):
        (tmp_path / "rows.json").write_text(json.dumps(answer))

    def calls():
        log = tmp_path / "log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    stack.rows, stack.calls = rows, calls
    rows([])
    return stack


def test_a_postgres_lock_left_by_a_dead_process_of_this_host_is_removed(psql):
    import socket
    pid = dead_pid()
    psql.rows([{"key": PG_FOLDER + "0b7c.json", "data": record(pid, socket.gethostname())}])
    said: list[str] = []
    assert recovery.refresh_if_pending(psql, said.append) == "removed a stale lock"
    assert psql.cancelled == 1
    assert said[0] == (f"the stack's lock was left by pulumi (pid {pid}) of root@{socket.gethostname()} since "
                       "2026-12-04T17:40:01.123Z, which is no longer running (killed during an update): removing "
                       "it (pulumi cancel)")
    [call] = psql.calls()
    # The password reaches psql in its environment only; the query is a SELECT of this stack's
    # folders (behind the URL's path, the database name), passed as psql variables.
    assert call["password"] == "s3cr/t" and "s3cr" not in json.dumps(call["argv"])
    assert call["connect_timeout"] == "10"
    argv = call["argv"]
    assert argv[argv.index("-d") + 1] == "postgresql://pulumi@127.0.0.1:5433/pulumi?sslmode=disable"
    assert f"folder1={PG_FOLDER}" in argv and "folder2=pulumi/.pulumi/locks/dc2/" in argv
    assert "ON_ERROR_STOP=1" in argv and argv[-2:] == ["-f", "-"]
    assert call["stdin"].startswith("SELECT ") and "FROM pulumi_state WHERE" in call["stdin"]
    assert ":'folder1'" in call["stdin"] and PG_FOLDER not in call["stdin"]


@pytest.mark.parametrize("holder", ["running", "other host", "no pid", "one of two running"])
def test_a_postgres_lock_that_may_be_live_is_left_to_the_cli(psql, holder):
    import socket
    here = socket.gethostname()
    rows = {"running": [record(os.getpid(), here)], "other host": [record(dead_pid(), "another-host")],
            "no pid": [record(0, here)], "one of two running": [record(dead_pid(), here), record(os.getpid(), here)]}
    psql.rows([{"key": f"{PG_FOLDER}{i}.json", "data": data} for i, data in enumerate(rows[holder])])
    assert recovery.refresh_if_pending(psql, lambda line: None) == ""
    assert psql.cancelled == 0
    assert recovery.lock_advice(psql, PG_REFUSAL) == ""  # readable: the CLI's refusal says it all


def test_postgres_rows_outside_the_stacks_own_folder_are_not_its_locks(psql):
    import socket
    dead = record(dead_pid(), socket.gethostname())
    psql.rows([{"key": PG_FOLDER + "sub/x.json", "data": dead}, {"key": PG_FOLDER + "notes.txt", "data": dead},
               {"key": "pulumi/.pulumi/locks/organization/consul-federation/dc20/a.json", "data": dead}])
    assert backend_locks.stack_locks(psql) == []
    assert recovery.settle_lock(psql, lambda line: None) == recovery.NO_LOCK and psql.cancelled == 0


@pytest.mark.parametrize("case", ["no psql", "psql refused", "not a lock record", "odd table", "s3"])
def test_unreadable_lock_records_are_left_alone_and_the_refusal_names_the_command(psql, case):
    """Nothing is removed that could not be read; when the CLI then refuses the stack for its
    lock, the outcome adds the exact command, to run after checking the holder it names."""
    import socket
    psql.rows([{"key": PG_FOLDER + "0b7c.json", "data": record(dead_pid(), socket.gethostname())}])
    if case == "no psql":
        psql.env_vars["PATH"] = "/nonexistent"
    elif case == "psql refused":
        psql.rows("refused")
    elif case == "not a lock record":
        psql.rows([{"key": PG_FOLDER + "0b7c.json", "data": "not base64!"}])
    elif case == "odd table":
        psql.env_vars["PULUMI_BACKEND_URL"] = PG_URL + "&table=state;drop"
    else:
        psql.env_vars["PULUMI_BACKEND_URL"] = "s3://team-state/consul"
    assert recovery.refresh_if_pending(psql, lambda line: None) == ""
    assert psql.cancelled == 0
    why = {"no psql": "psql (PostgreSQL's client) is not on PATH to read the backend's lock records",
           "psql refused": "psql could not read the backend's table pulumi_state (psql: error: connection to "
                           "server at \"127.0.0.1\", port 5433 failed: FATAL:  password authentication failed for "
                           "user \"pulumi\")",
           "not a lock record": "a lock record in the backend's table pulumi_state is not one pulumi 3.260.0 writes",
           "odd table": "the backend's table name 'state;drop' is not a plain SQL name",
           "s3": "python -m federation reads the lock records of file:// and postgres:// backends, not of s3://"}[case]
    advice = recovery.lock_advice(psql, PG_REFUSAL)
    assert advice.startswith(why), advice
    assert advice.endswith(": python -m federation cannot tell whether that holder still runs. If the process it "
                           "names is gone from its host (a killed run), remove the lock: pulumi cancel -s dc2 --yes; "
                           "then run up again"), advice
    assert recovery.lock_advice(psql, "error: update failed") == ""  # not a lock refusal


class LockedCLI(FakeStack):
    """A stack whose `pulumi up` the CLI refuses for a lock (nothing pending in its state)."""

    def run(self, args, cwd, additional_env, on_output=None, on_error=None):
        if args[0] == "up":
            on_error(PG_REFUSAL)
            raise stack_runner.auto.errors.CommandError(stack_runner.auto.CommandResult("", PG_REFUSAL, 255))
        return super().run(args, cwd, additional_env, on_output, on_error)


def test_up_refused_by_a_lock_it_cannot_read_names_the_command_in_its_outcome(psql):
    import io
    stack = LockedCLI([], backend=PG_URL)
    stack.env_vars = {**psql.env_vars, "PATH": "/nonexistent"}
    runner = stack_runner.Runner(".", out=io.StringIO())
    runner.stack = lambda name, create: stack
    outcome = runner.run("dc2", stack_runner.UP, create=True)
    assert not outcome.ok and stack.cancelled == 0
    assert outcome.error.splitlines() == [*PG_REFUSAL.splitlines(), (
        "psql (PostgreSQL's client) is not on PATH to read the backend's lock records: python -m federation cannot "
        "tell whether that holder still runs. If the process it names is gone from its host (a killed run), remove "
        "the lock: pulumi cancel -s dc2 --yes; then run up again")]


def test_postgres_urls_as_psql_gets_them():
    """The CLI's URL minus what psql must not see: the password (its environment instead) and
    `table=` (the query's table); TLS required unless the URL or PGSSLMODE says otherwise, as the
    CLI's driver does; the URL's path is the key prefix of every record."""
    parse = backend_locks.PostgresBackend.parse
    assert parse(PG_URL + "&table=team_state", {}) == backend_locks.PostgresBackend(
        "postgresql://pulumi@127.0.0.1:5433/pulumi?sslmode=disable", "s3cr/t", "team_state", "pulumi/")
    assert parse("postgres://ci@db.internal/state", {}) == backend_locks.PostgresBackend(
        "postgresql://ci@db.internal/state?sslmode=require", None, "pulumi_state", "state/")
    assert parse("postgres://db.internal/state", {"PGSSLMODE": "verify-full"}).conninfo == "postgresql://db.internal/state"
    assert parse("postgres://", {}) == backend_locks.PostgresBackend(
        "postgresql://?sslmode=require", None, "pulumi_state", "")
    with pytest.raises(backend_locks.LocksUnreadable):  # the CLI cannot use one either (its index's name)
        parse("postgres://u@h/db?table=ops.pulumi_state&sslmode=disable", {})


def test_a_live_lock_leaves_the_interrupted_operations_alone(project):
    """An update that holds the stack may be the one installing the Release: its pending create
    and Helm's pending-install record are its own, so nothing is settled (up is refused by the
    CLI, naming it)."""
    import socket
    write_lock(project, os.getpid(), socket.gethostname())
    helm = FakeHelm([(1, "pending-install")])
    stack = FakeStack([release()], backend=f"file://{project}")
    stack.work_dir = str(project)
    assert recovery.refresh_if_pending(stack, lambda line: None, records=records(helm)) == ""
    assert (stack.commands, stack.refreshed, helm.deleted, stack.cancelled) == ([], [], [], 0)


def test_unreadable_lock_records_refresh_first_then_settle_what_is_left(psql):
    """Where the lock cannot be read, a plain refresh goes first: the CLI refuses it while another
    update holds the stack, before Helm's record is touched; when it runs, the interrupted create
    is settled as on any backend."""
    psql.env_vars["PATH"] = "/nonexistent"
    psql.pending = [release(), op("updating", "dc2-namespace")]
    helm = FakeHelm([(1, "pending-install")])
    said: list[str] = []
    assert recovery.refresh_if_pending(psql, said.append, records=records(helm)) == \
        "recovered from an interrupted run: 1 pending operation(s)"
    assert [r.get("clear_pending_creates") for r in psql.refreshed] == [None, True]
    assert helm.deleted == [("consul", "consul", 1)] and psql.cancelled == 0
    assert said[0] == ("2 pending operation(s) (dc2-consul, dc2-namespace) and lock records that cannot be read "
                       "here: refreshing first (refused if another update holds the stack)")

    class Locked(FakeStack):
        def refresh(self, **kwargs):
            raise stack_runner.auto.errors.CommandError(stack_runner.auto.CommandResult("", PG_REFUSAL, 255))
    locked = Locked([release()], backend="s3://team-state/consul")
    helm = FakeHelm([(1, "pending-install")])
    with pytest.raises(stack_runner.auto.errors.CommandError):
        recovery.refresh_if_pending(locked, lambda line: None, records=records(helm))
    assert helm.deleted == [] and locked.cancelled == 0
