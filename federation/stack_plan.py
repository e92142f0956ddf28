"""Which stacks a federation command runs, and in which order, from the project's stack files.

A federation has one primary (``role: primary``) and secondaries whose ``primaryStack`` names it.
``plan`` checks that layout before anything runs and refuses it, listing every problem, when it
does not hold; ``up_stages`` orders ``up`` (the primary first), ``destroy_refusal`` guards
``destroy`` (the secondaries first). Reads files only: no backend, no cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from components.settings import ROLES
from components.stack_ref import StackRef

from . import stacks as stack_files


class Refused(Exception):
    """Input that cannot run as given; each problem says what to change."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Plan:
    """The project's federation: its primary, its secondaries, and the stacks this run touches."""

    project: str
    primary: str
    secondaries: tuple[str, ...]
    selected: frozenset[str]

    @property
    def run_primary(self) -> bool:
        return self.primary in self.selected

    @property
    def run_secondaries(self) -> list[str]:
        return [s for s in self.secondaries if s in self.selected]


def _primary_ref_problem(name: str, ref: object, project: str, primary: str) -> Optional[str]:
    """Why a secondary's primaryStack does not name the primary's stack, if it does not."""
    expected = StackRef(primary).qualified(project)
    if not isinstance(ref, str) or not ref:
        return (f"Pulumi.{name}.yaml: consul-federation:primaryStack is missing; set it to {expected}")
    try:
        names_primary = StackRef.parse(ref).names(project, primary)
    except ValueError:
        names_primary = False
    if not names_primary:
        return (f"Pulumi.{name}.yaml: consul-federation:primaryStack is {ref!r}, but the primary of "
                f"this project is stack {primary!r}; set it to {expected}")
    return None


def _shared_datacenter_problem(datacenter: str, stacks: list[str]) -> str:
    """Consul routes between datacenters by name (WAN federation, mesh gateways), so two of one
    name cannot both be reached; each stack is one program run, so only the plan sees them all."""
    files = [f"Pulumi.{s}.yaml" for s in stacks]
    files_text = f"{', '.join(files[:-1])} and {files[-1]}"
    return (f"{files_text}: consul-federation:datacenter is {datacenter!r} in {len(stacks)} stacks; every "
            "datacenter of a federation needs its own name: give each stack its own")


def plan(project_dir: str, only: Optional[Iterable[str]] = None) -> Plan:
    """Check the stack files before anything runs; raises Refused listing every problem."""
    try:
        names = stack_files.stack_names(project_dir)
        project = stack_files.project_name(project_dir)
    except OSError as exc:
        raise Refused([f"cannot read the project in {project_dir}: {exc}"]) from exc
    if not names:
        raise Refused([f"no Pulumi.<stack>.yaml in {project_dir}; --project-dir is the directory of Pulumi.yaml"])
    problems: list[str] = []
    only = list(only or [])
    unknown = [s for s in only if s not in names]
    if unknown:
        problems.append(f"--stacks names {', '.join(unknown)}, which has no stack file; "
                        f"the stacks of this project are {', '.join(names)}")
    roles: dict[str, str] = {}
    refs: dict[str, object] = {}
    datacenters: dict[str, list[str]] = {}  # datacenter name -> the stacks that set it
    for name in names:
        try:
            stack = stack_files.read_stack(project_dir, name)
        except stack_files.StackFileError as exc:
            problems.append(str(exc))
            continue
        raw = stack.raw
        if isinstance(raw.get("datacenter"), str) and raw["datacenter"]:
            datacenters.setdefault(raw["datacenter"], []).append(name)
        role = raw.get("role")
        if "role" in stack.secret_keys:
            problems.append(f"Pulumi.{name}.yaml: consul-federation:role is set as a secret; set it without "
                            "--secret (pulumi config set role primary, or secondary): the operator commands "
                            "read it without the passphrase")
            continue
        if role not in ROLES:
            problems.append(f"Pulumi.{name}.yaml: consul-federation:role is {role!r}; set it to primary "
                            "(one stack) or secondary")
            continue
        roles[name] = role
        refs[name] = raw.get("primaryStack")
    primaries = [n for n, r in roles.items() if r == "primary"]
    secondaries = tuple(n for n, r in roles.items() if r == "secondary")
    if not primaries and len(roles) == len(names):
        problems.append("no primary: set consul-federation:role: primary in the stack file of the "
                        f"datacenter that creates the federation secret (one of {', '.join(names)})")
    if len(primaries) > 1:
        problems.append(f"{len(primaries)} primaries ({', '.join(primaries)}): a federation has one; keep "
                        "role: primary in one of them and make the others role: secondary with "
                        f"primaryStack: organization/{project}/<the primary>")
    if len(primaries) == 1:
        problems.extend(p for p in (_primary_ref_problem(s, refs[s], project, primaries[0])
                                    for s in secondaries) if p)
    problems.extend(_shared_datacenter_problem(dc, stacks) for dc, stacks in datacenters.items() if len(stacks) > 1)
    if problems:
        raise Refused(problems)
    return Plan(project, primaries[0], secondaries, frozenset(only or names))


def up_stages(p: Plan, deployed: Iterable[str] = (), gated: bool = False) -> list[tuple[str, list[str]]]:
    """The primary, then the secondaries: with a gate, each secondary that already runs alone
    (HashiCorp's federated upgrade order: a change checked in one datacenter before the next),
    then the new ones together (they have nothing running to break)."""
    stages = [("the primary", [p.primary])] if p.run_primary else []
    if not gated:
        return stages + ([("the secondaries", p.run_secondaries)] if p.run_secondaries else [])
    existing = [s for s in p.run_secondaries if s in set(deployed)]
    new = [s for s in p.run_secondaries if s not in set(deployed)]
    stages += [(f"the secondary {s}", [s]) for s in existing]
    return stages + ([("the new secondaries", new)] if new else [])


def destroy_refusal(p: Plan, counts: dict[str, int]) -> Optional[str]:
    """Destroying the primary would strand secondaries that still run on its federation secret."""
    if not p.run_primary:
        return None
    left = [f"{s} ({counts[s]} resources)" for s in p.secondaries
            if s not in p.selected and counts.get(s, 0) > 0]
    if not left:
        return None
    return (f"refusing to destroy the primary {p.primary}: secondary stack(s) {', '.join(left)} still "
            f"have resources and were left out by --stacks; destroy them first (or include them)")
