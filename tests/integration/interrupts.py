"""Running, interrupting and racing the pulumi CLI as people and machines do, for the integration
tests that break a run on purpose (test_faults_state.py on a file backend, test_backend_postgres.py
on a PostgreSQL one): background runs in their own process group, SIGKILL of a run and every
process under it, two `up`s of one stack at once, and the moment Helm's first install of dc1 is
under way (the window in which a kill leaves a pending-install record)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from federation_env import NAMESPACE, Federation, Project

LOCKED = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
          "or delete the lock file with `pulumi cancel`.")


def start(project: Project, *args: str, stack: str = "dc1") -> subprocess.Popen:
    """`pulumi <args> -s <stack>` as Project.run runs it, but in the background, in its own
    process group (a terminal's foreground job)."""
    cmd = [shutil.which("pulumi", path=project.env["PATH"]) or "pulumi", *args, "--non-interactive",
           "--stack", stack]
    proc = subprocess.Popen(cmd, cwd=project.dir, env=project.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.started = time.monotonic()  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def finish_all(procs: list[subprocess.Popen], timeout: float = 1200) -> tuple[list[str], list[float]]:
    """Each process's output and seconds from its start to its exit, read as they run."""
    outs, ends = [""] * len(procs), [0.0] * len(procs)

    def read(i: int) -> None:
        outs[i] = finish(procs[i], timeout)
        ends[i] = time.monotonic() - procs[i].started  # type: ignore[attr-defined]
    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(procs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outs, ends


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(proc: subprocess.Popen) -> list[int]:
    """SIGKILL to the CLI and every process under it (its plugins have process groups of their
    own, so a group kill would miss them), all at once."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=60)
    return pids


def orphans(project: Project) -> list[int]:
    """Processes started for this project's PULUMI_HOME (only this module's) still running."""
    mine = f"PULUMI_HOME={project.env['PULUMI_HOME']}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if mine in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found



@contextmanager
def module_federation(fed: Federation, stacks: tuple[str, ...], timed: dict) -> Iterator[Federation]:
    """A module's federation with the stack files of `stacks` written; at the end, every process this module
    started and left running (an interrupted up's plugins) is killed and fails the module, as
    does any error the harness saw, and the module's timings are printed."""
    for stack in stacks:
        fed.project.write_stack(stack)
    try:
        yield fed
    finally:
        left = orphans(fed.project)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        print("\n[timing] summary: " + json.dumps(timed))
    assert not left, f"processes of this module still running at its end: {left}"
    assert not fed.errors(), fed.errors()


def two_ups_at_once(project: Project, stack: str = "dc1") -> tuple[list[str], list[float], int, int]:
    """Two `pulumi up` of one stack started together: one runs, the other is refused by the lock.
    The lock is written, then the folder checked again, so two runs started at the same instant
    could both see the other's lock and both be refused (never both run); then they race again
    (three times at most). Returns both outputs and durations, the index of the run that applied
    and of the one refused."""
    for attempt in range(3):
        runs = [start(project, "up", "--yes", "--skip-preview", stack=stack) for _ in range(2)]
        outs, seconds = finish_all(runs)
        codes = [run.returncode for run in runs]
        refused = [i for i, out in enumerate(outs) if LOCKED in out]
        print(f"\nattempt {attempt + 1}: exit codes {codes}, refused {refused}, seconds {[round(s, 1) for s in seconds]}")
        assert codes.count(0) <= 1 and all(codes[i] != 0 for i in refused), (codes, outs)
        assert len(refused) + codes.count(0) == 2, outs  # the one that did not run was refused by the lock
        if codes.count(0) == 1:
            return (outs, seconds, *((0, 1) if codes[0] == 0 else (1, 0)))
    raise AssertionError("three attempts, each with both runs refused")


def export(project: Project, stack: str) -> dict:
    return json.loads(project.run("stack", "export", stack=stack).stdout)["deployment"]


def pending(project: Project, stack: str) -> list[tuple[str, str]]:
    return [(op["type"], op["resource"]["urn"].rsplit("::", 1)[-1])
            for op in export(project, stack).get("pending_operations") or []]


def wait_installing(env: Federation, proc: subprocess.Popen, timeout: float = 300) -> float:
    """Seconds from the start of `up` until Helm's install of dc1 is under way: its record
    pending-install and the chart's objects created (Helm is waiting for them to be ready)."""
    deadline = time.monotonic() + timeout
    apps = env.harness["dc1"].apps()
    while time.monotonic() < deadline:
        assert proc.poll() is None, "up ended before the install was seen:\n" + finish(proc)[-4000:]
        try:
            if dict(env.helm_history("dc1")).get(1) == "pending-install":
                apps.read_namespaced_stateful_set("consul-server", NAMESPACE)
                return time.monotonic() - proc.started  # type: ignore[attr-defined]
        except Exception as exc:  # namespace, record or StatefulSet not there yet
            if getattr(exc, "status", 404) != 404:
                raise
        time.sleep(0.2)
    raise AssertionError("the Release never was pending-install with its objects created")
