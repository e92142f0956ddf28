"""Recovering a stack from an interrupted ``pulumi up`` before ``python -m federation up`` runs it.

What an interrupted run leaves behind (measured by tests/integration/test_faults_state.py with
pulumi 3.260.0, pulumi-kubernetes 4.x and its embedded Helm 3.18):

- **Ctrl-C (SIGINT)**: the engine cancels the provider, Helm marks the release ``failed``, the
  Release is saved in the state with an initialization error, the lock is released. Nothing to
  recover here: the next ``up`` upgrades the failed release.
- **SIGKILL** of the CLI and its plugins (a killed CI job, container or machine): the stack's lock
  file stays, the Release is a pending CREATE in the state, and Helm's release record stays
  ``pending-install`` for ever. A plain ``pulumi up`` is refused by the lock; after ``pulumi
  cancel`` it re-creates the Release and Helm refuses ("cannot re-use a name that is still in
  use"). ``pulumi refresh --import-pending-creates`` does not help: pulumi 3.260.0 drops the
  pending operation without importing it.
- **SIGKILL of the CLI alone** (seen while writing that test, not one of its cases): the same,
  except that its plugins keep running (reparented to init) and the orphaned provider finishes
  the Helm install in the background (``deployed`` about ten seconds later).

``refresh_if_pending`` (called before every ``up``) undoes that, and says what it does:

1. a lock whose process is gone (same host, pid not running) is removed (``pulumi cancel``); a
   lock held by a running process, or by another host, is left alone, and so is everything else
   (the pending operations and Helm's record may be that update's own): the CLI refuses with its
   own message, naming the holder. Lock records are read from a local-directory backend (``file://``)
   and from a PostgreSQL one (``postgres://``, with psql: backend_locks.py); where they cannot be
   read (S3, GCS, Azure, or no psql on PATH, or the database refusing psql), nothing is removed, a
   plain ``pulumi refresh`` goes before anything else is settled (the CLI refuses it while the
   stack is locked), and the CLI's refusal is followed by the exact command for a person, after
   checking the holder (``lock_advice``);
2. for an interrupted CREATE of the Helm Release (a first install, which nothing else can depend
   on yet: the stack has no outputs from it), Helm's record of that one revision is deleted, not
   the objects: the next install adopts the objects the interrupted one made (Helm adopts objects
   annotated with its release name) and runs the hooks again;
3. ``pulumi refresh`` (with ``--clear-pending-creates`` when every interrupted create is of a kind
   that is safe to create again: Kubernetes objects, which the provider's server-side apply
   upserts, the Helm Release settled in 2, random values and providers); otherwise the run stops
   with what to do by hand (``InterruptedCreates``).

A Release whose *upgrade* was interrupted stays in Helm's ``pending-upgrade``; Helm refuses every
later operation ("another operation (install/upgrade/rollback) is in progress") until it is
rolled back, which is left to a person (``InterruptedCreates`` names the command).
"""

from __future__ import annotations

import json
from typing import Callable, Optional

from pulumi import automation as auto

from components.stack_ref import StackRef

from . import stacks as stack_files
from .backend_locks import LocksUnreadable, is_stale, stack_locks
from .helm_records import ClusterHelmRecords, HelmRecords

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
# Interrupted creates of these kinds are safe to drop from the state and create again: the
# kubernetes provider creates with server-side apply (an upsert of an object that exists), a
# random value that never reached the state was never used, a provider is no object at all. The
# Helm Release is safe once its half-made record is settled (below).
_RECREATABLE = ("kubernetes:", "random:", "pulumi:providers:")
_PENDING_HELM = ("pending-install", "pending-upgrade", "pending-rollback")


class InterruptedCreates(Exception):
    """What an interrupted run left that only a person can settle (the message says how)."""


# ---- the state ---------------------------------------------------------------------------------

def stack_cli(stack: auto.Stack, args: list[str], on_output: Optional[Callable[[str], None]] = None,
              env: Optional[dict[str, str]] = None) -> str:
    """A pulumi command on this stack's workspace, through the Automation API's PulumiCommand."""
    workspace = stack.workspace
    return workspace.pulumi_command.run([*args, "--stack", stack.name], workspace.work_dir,
                                        {**workspace.env_vars, **(env or {})},
                                        on_output=on_output, on_error=on_output).stdout


def _pending(stack: auto.Stack) -> list[dict]:
    """The state's pending operations. Exported without --show-secrets: the check needs no
    decryption (each decrypting command pays the passphrase's key derivation)."""
    deployment = json.loads(stack_cli(stack, ["stack", "export"])).get("deployment") or {}
    return list(deployment.get("pending_operations") or [])


def _name(op: dict) -> str:
    return op.get("resource", {}).get("urn", "?").rsplit("::", 1)[-1]


def _type(op: dict) -> str:
    return str(op.get("resource", {}).get("type", ""))


# ---- the lock ----------------------------------------------------------------------------------

# How the self-managed backends' refusal starts (pulumi 3.260.0, every diy backend).
LOCKED = "the stack is currently locked by"


# What settle_lock found: no lock, a stale one it removed, one that may be live (a running
# process, another host's, a record without a pid), or records it cannot read.
NO_LOCK, REMOVED, HELD, UNREADABLE = "", "removed", "held", "unreadable"


def settle_lock(stack: auto.Stack, on_output: Callable[[str], None]) -> str:
    """Remove the stack's lock when every holder is a dead process of this host (REMOVED); leave
    any other lock alone (HELD), and records that cannot be read (UNREADABLE; see lock_advice)."""
    try:
        locks = stack_locks(stack)
    except LocksUnreadable:
        return UNREADABLE
    if not locks:
        return NO_LOCK
    if not all(is_stale(lock) for lock in locks):
        return HELD
    on_output(f"the stack's lock was left by {', '.join(lock.describe() for lock in locks)}, which is no "
              f"longer running (killed during an update): removing it (pulumi cancel)")
    stack.cancel()
    return REMOVED


def lock_advice(stack: auto.Stack, failure: str) -> str:
    """When the CLI refused the stack for its lock (`failure`) and the lock records cannot be read
    from here, what a person does: check the holder the refusal names, then the exact command.
    Empty otherwise (a lock this command can read and judged live is the CLI's refusal alone)."""
    if LOCKED not in failure:
        return ""
    try:
        stack_locks(stack)
    except LocksUnreadable as exc:
        return (f"{exc}: python -m federation cannot tell whether that holder still runs. If the process it "
                f"names is gone from its host (a killed run), remove the lock: pulumi cancel -s {stack.name} "
                f"--yes; then run up again")
    return ""


# ---- Helm's record of the release --------------------------------------------------------------

def cluster_records(stack: auto.Stack) -> tuple[HelmRecords, str]:
    """Helm's records in the stack's cluster, and its context's name (from the stack file)."""
    from kubernetes import client  # only when a run was interrupted

    from components.kube_cluster import resolve_cluster
    raw = stack_files.read_stack(stack.workspace.work_dir, StackRef.parse(stack.name).stack).raw
    context = str(raw.get("kubeContext", ""))
    api = resolve_cluster(raw.get("kubeconfig") or None, context).api_client()
    return ClusterHelmRecords(client.CoreV1Api(api)), context


def _plain(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None


def settle_helm_release(op: dict, records: HelmRecords, context: str,
                        on_output: Callable[[str], None]) -> Optional[str]:
    """Settle Helm's side of one interrupted Release operation; returns what a person must do
    instead, if anything."""
    inputs = op.get("resource", {}).get("inputs") or {}
    namespace, name = _plain(inputs.get("namespace")), _plain(inputs.get("name"))
    if not namespace or not name:
        return f"{_name(op)}: the interrupted Release has no plain name/namespace in the state"
    where = f"Helm release {namespace}/{name} in context {context}"
    try:
        history = records.revisions(namespace, name)
    except Exception as exc:  # an API server down, a kubeconfig gone: say so, settle nothing
        return f"{where}: could not read Helm's record of it ({exc.__class__.__name__}: {exc})"
    if op.get("type") == "creating":
        if not history:
            return None  # the install never reached the cluster
        if len(history) == 1:
            revision, status = history[0]
            on_output(f"{where}: revision {revision} ({status}) is the record of the interrupted first "
                      f"install; deleting that record (not its objects) so that the install runs again "
                      f"and adopts them")
            records.delete(namespace, name, revision)
            return None
        return (f"{where} has {len(history)} revisions ({', '.join(f'{r} {s}' for r, s in history)}) but the "
                f"state has never recorded it: it was installed by something else; remove it (helm "
                f"uninstall {name} -n {namespace} --kube-context {context}) or adopt it "
                f"(docs/operations.md, \"Adopting an existing Consul install\")")
    if history and history[-1][1] in _PENDING_HELM:
        revision, status = history[-1]
        return (f"{where} is stuck in {status} (revision {revision}), left by the interrupted run; Helm "
                f"refuses every other operation until it is rolled back: helm rollback {name} -n "
                f"{namespace} --kube-context {context} (to the last deployed revision)")
    return None


# ---- before up ---------------------------------------------------------------------------------

def refresh_if_pending(stack: auto.Stack, on_output: Callable[[str], None],
                       records: Optional[Callable[[auto.Stack], tuple[HelmRecords, str]]] = None) -> str:
    """An interrupted run leaves a lock and pending operations in the state; settle them (see the
    module's docstring) before up, instead of up failing on (or recreating) half-made resources."""
    lock = settle_lock(stack, on_output)
    if lock == HELD:  # an update may be running: touch nothing; up is refused by the CLI, naming the holder
        return ""
    unlocked = lock == REMOVED
    pending = _pending(stack)
    if pending and lock == UNREADABLE:
        # Whether an update holds the stack is unknown, and Helm's record must not be settled under
        # a running one: a plain refresh first, which the CLI refuses while the stack is locked
        # (its refusal then gets the exact command: lock_advice). It settles all but interrupted creates.
        on_output(f"{len(pending)} pending operation(s) ({', '.join(map(_name, pending))}) and lock records "
                  "that cannot be read here: refreshing first (refused if another update holds the stack)")
        stack.refresh(on_output=on_output, on_error=on_output, color="never")
        left = _pending(stack)
        if not left:
            return f"recovered from an interrupted run: {len(pending)} pending operation(s)"
        pending = left
    if not pending:
        return "removed a stale lock" if unlocked else ""
    on_output(f"{len(pending)} pending operation(s) from an interrupted run ({', '.join(map(_name, pending))}): "
              "settling them before up")
    problems: list[str] = []
    releases = [op for op in pending if _type(op) == RELEASE_TYPE]
    if releases:
        try:
            helm, context = (records or cluster_records)(stack)
        except Exception as exc:  # no stack file, no kubeconfig: nothing can be checked
            problems.append(f"cannot reach the stack's cluster to check Helm's record of the interrupted "
                            f"release ({exc.__class__.__name__}: {exc})")
        else:
            problems += [p for p in (settle_helm_release(op, helm, context, on_output) for op in releases) if p]
    if problems:  # the state is left as it is: the next run checks again
        raise InterruptedCreates("; ".join(problems) + ". Then run up again")
    creates = [op for op in pending if op.get("type") == "creating"]
    clear = bool(creates) and all(_type(op).startswith(_RECREATABLE) for op in creates)
    on_output("refreshing the stack" + (f" and clearing {len(creates)} interrupted create(s), which up "
                                        "creates again" if clear else ""))
    stack.refresh(on_output=on_output, on_error=on_output, color="never", clear_pending_creates=clear or None)
    left = [op for op in _pending(stack) if op.get("type") == "creating"]
    if left:
        raise InterruptedCreates(
            f"{len(left)} interrupted create(s) remain after refresh ({', '.join(map(_name, left))}): the "
            f"object may exist without the state knowing. If it exists, delete it or bring it under the "
            f"stack with pulumi import; then pulumi refresh -s {stack.name} --yes --clear-pending-creates, "
            f"and run up again")
    return (f"recovered from an interrupted run: {len(pending)} pending operation(s)"
            + (", a stale lock" if unlocked else ""))
