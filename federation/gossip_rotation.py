"""Rotate the federation's gossip key: a new key on every member of every datacenter, the old
one gone, with no moment where two members cannot read each other.

The order is Consul's (its Kubernetes operations docs): install the new key in the keyring, make
it the primary key, write it where servers read it at start, remove the old key. Keyring
operations travel to every datacenter over the WAN pool, so they are made once, at the primary's
servers. What servers read at start is the primary's gossip Secret and, in each secondary, its
copy of the federation secret (``gossipEncryptionKey``); the program writes both when the
primary stack's ``gossipKeyGeneration`` goes up (the primary's Release is upgraded, so its
create-federation-secret hook copies the new key), through a gated ``up`` of every stack.

Each key is a Pulumi secret of the primary's stack (``gossip_key.py``: the output
``gossipKeys`` holds the current generation's key, the next and the previous one). Keys are
printed only as fingerprints. Every run starts from what it observes (the keyring, the stack's
generation in the stack file and in the state, the secondaries' copies), so a run that stopped at
any step is finished by running the command again; a run that finds no rotation under way
starts one.

Exit codes: 0 rotated (every member's primary key is the new one, the old one removed); 1 a step
failed (naming it; run again to go on); 2 refused before anything changed.
"""

from __future__ import annotations

import argparse
import base64
from dataclasses import dataclass
from typing import Optional

from kubernetes.client.exceptions import ApiException

from components.constants import CONFIG_NAMESPACE, FED_GOSSIP_KEY
from components.outputs import GOSSIP_KEYS

from . import cli, cluster_access as access, consul_status, rollout, rotation_cli, verify
from .runner import Runner
from .stack_plan import Plan
from . import stacks as stack_files
from .consul_status import Ring, fingerprint, on_every_member

INSTALL, USE, WRITE, REMOVE, DONE = "install", "use", "write", "remove", "done"
GENERATION_KEY = "gossipKeyGeneration"
# Keyring steps whose Serf answers got lost, looked at again before the run stops.
LOST_ANSWERS_RETRIES = 3


class RotationRefused(Exception):
    """A state this command did not make, or cannot go on from; the message says what to do."""


@dataclass(frozen=True)
class Keys:
    """The primary stack's keys around its deployed generation."""

    generation: int
    current: str
    next: str
    previous: Optional[str] = None

    @classmethod
    def from_output(cls, value: object) -> "Keys":
        if not isinstance(value, dict) or not isinstance(value.get("generation"), int) \
                or not all(isinstance(value.get(k), str) for k in ("current", "next")):
            raise RotationRefused(f"the primary's {GOSSIP_KEYS} output is not what this program exports; "
                                  "run python -m federation up first")
        return cls(value["generation"], value["current"], value["next"], value.get("previous"))


@dataclass(frozen=True)
class Observed:
    keys: Keys
    config_generation: int
    rings: list[Ring]
    # the primary's federation secret holds the current key, and every secondary's copy equals it
    copies_current: bool


@dataclass(frozen=True)
class Step:
    action: str
    key: Optional[str]
    why: str


def next_step(o: Observed, started: bool) -> Step:
    """What to do from the observed state; `started`: this run already made a step (so a clean
    keyring means finished, not "start a new rotation")."""
    k = o.keys
    installed = {key for ring in o.rings for key in ring.keys}
    unknown = installed - {k.current, k.next} - ({k.previous} if k.previous else set())
    if not o.rings:
        raise RotationRefused("Consul listed no gossip pool; check verify's rows first")
    if unknown:
        raise RotationRefused(
            f"the keyring holds {len(unknown)} key(s) this stack did not make "
            f"({', '.join(sorted(map(fingerprint, unknown)))}): remove them with consul keyring -remove "
            "(or finish the rotation that installed them), then run again")
    if o.config_generation < k.generation or o.config_generation > k.generation + 1:
        raise RotationRefused(
            f"{CONFIG_NAMESPACE}:{GENERATION_KEY} is {o.config_generation} in the primary's stack file, and the "
            f"deployed key is generation {k.generation}: set it to {k.generation} (or {k.generation + 1}, "
            "to go on with a rotation), never lower: an older key must not come back")
    if k.previous and k.previous in installed:
        if not o.copies_current:
            return Step(WRITE, k.current, "the new key is deployed in the primary, not yet in every secondary's copy")
        if not on_every_member(o.rings, k.current, primary=True):
            return Step(USE, k.current, "the new key is written, but not the primary key of every member")
        return Step(REMOVE, k.previous, "every member uses the new key; the old one is still installed")
    if k.next in installed or o.config_generation == k.generation + 1:
        if not on_every_member(o.rings, k.next):
            return Step(INSTALL, k.next, "the next key is not installed on every member")
        if not on_every_member(o.rings, k.next, primary=True):
            return Step(USE, k.next, "the next key is installed everywhere, but not the primary key of every member")
        return Step(WRITE, k.next, "every member uses the next key; the Secrets still hold the old one")
    if not on_every_member(o.rings, k.current, primary=True):
        raise RotationRefused(
            f"the primary key is not the stack's key {fingerprint(k.current)} on every member, and no rotation "
            "of this program is under way: see verify's keyring row")
    if started:
        return Step(DONE, k.current, "one key, the new one, on every member")
    if not o.copies_current:
        raise RotationRefused("a secondary's federation secret differs from the primary's: run python -m "
                              "federation up (and verify) first, so that every datacenter starts from the same key")
    return Step(INSTALL, k.next, f"rotating from generation {k.generation} to {k.generation + 1}")


def keyring_lines(rings: list[Ring]) -> list[str]:
    """Every pool with its keys as fingerprints: how many members hold each, and use it."""
    lines = []
    for ring in sorted(rings, key=lambda r: (not r.wan, r.datacenter)):
        keys = ", ".join(f"{fingerprint(key)} on {count}/{ring.num_nodes}"
                         f"{' (primary on ' + str(ring.primary_keys[key]) + ')' if key in ring.primary_keys else ''}"
                         for key, count in sorted(ring.keys.items()))
        lines.append(f"{ring.name:<10} {keys}")
    return lines


class Rotation(rotation_cli.Rotation):
    """The primary's cluster, its stack, and every secondary's copy, for one run."""

    def __init__(self, p: Plan, runner: Runner, project_dir: str, gate_timeout: float):
        super().__init__(p, runner, project_dir, gate_timeout, RotationRefused)
        if not self.primary.cfg.gossip_encryption:
            raise RotationRefused(f"the primary {p.primary} has gossipEncryption: false: there is no key to rotate")
        self.token, why = access.bootstrap_token(self.primary)
        if why:
            raise RotationRefused(why)

    def say(self, line: str) -> None:
        print(f"[rotate] {line}", file=self.runner.out, flush=True)

    def observe(self) -> Observed:
        stack = self.runner.stack(self.p.primary, create=False)
        output = stack.outputs().get(GOSSIP_KEYS)
        if output is None:
            raise RotationRefused(f"the primary's stack has no {GOSSIP_KEYS} output (it predates key rotation): "
                                  "run python -m federation up first")
        raw = stack_files.read_stack(self.project_dir, self.p.primary).raw.get(GENERATION_KEY, 0)
        try:
            config_generation = int(raw)
        except (TypeError, ValueError) as exc:
            raise RotationRefused(f"{CONFIG_NAMESPACE}:{GENERATION_KEY} is {raw!r}; expected a whole number") from exc
        keys = Keys.from_output(output.value)
        rings = self.list_keyring()
        return Observed(keys, config_generation, rings, self._copies_current(keys.current))

    def _copies_current(self, key: str) -> bool:
        primary_data = self.primary.secret_data(self.primary.cfg.federation_secret_name) or {}
        if base64.b64decode(primary_data.get(FED_GOSSIP_KEY, "")).decode() != key:
            return False
        digest = access.data_digest(primary_data)
        return all(access.data_digest(dc.secret_data(dc.cfg.federation_secret_name)) == digest
                   for name, dc in self.dcs.items() if name != self.p.primary)

    def list_keyring(self) -> list[Ring]:
        return consul_status.parse_keyring(access.keyring_get(self.primary, access.KEYRING_QUERY, self.token))

    def keyring(self, method: str, key: str) -> None:
        access.consul_request(self.primary, method, access.KEYRING_PATH, access.KEYRING_QUERY, self.token,
                              {"Key": key})

    def write(self, o: Observed) -> bool:
        """The next generation in the stack file (once), then a gated up of every stack."""
        return rollout.raise_and_roll(self.p, self.runner, GENERATION_KEY, o.config_generation,
                                      o.keys.generation + 1, self.gate_timeout, self.say)

    def run(self) -> int:
        started = False
        lost_answers_left = LOST_ANSWERS_RETRIES
        while True:
            o = self.observe()
            for line in keyring_lines(o.rings):
                self.say(f"  {line}")
            step = next_step(o, started)
            self.say(f"{step.action}: {step.why}" + (f" [{fingerprint(step.key)}]" if step.key else ""))
            if step.action == DONE:
                return self.finish()
            started = True
            if step.action == WRITE:
                if not self.write(o):
                    self.say("stopped: the up above failed or the federation was not healthy after it; "
                             "fix that, then run python -m federation rotate-gossip-key again")
                    return cli.EXIT_FAILED
                continue
            method = {INSTALL: "POST", USE: "PUT", REMOVE: "DELETE"}[step.action]
            try:
                self.keyring(method, step.key)
            except ApiException as exc:
                if not access.lost_answers(exc) or not lost_answers_left:
                    raise
                lost_answers_left -= 1  # the step may have reached every member: look again
                self.say(f"{step.action}: Consul answered {access.consul_error(exc)}; looking at the keyring again")
                continue
            self.check(step)

    def check(self, step: Step) -> None:
        """After a keyring step, every member must show it (Consul answers once all did)."""
        rings = self.list_keyring()
        done = {INSTALL: lambda: on_every_member(rings, step.key),
                USE: lambda: on_every_member(rings, step.key, primary=True),
                REMOVE: lambda: not any(step.key in r.keys for r in rings)}[step.action]()
        if not done:
            raise StepFailed(f"{step.action} of {fingerprint(step.key)} did not reach every member:\n"
                             + "\n".join(keyring_lines(rings)))
        self.say(f"{step.action} reached every member of {len(rings)} pool(s)")

    def finish(self) -> int:
        return self.report_verified(lambda rows: [r for r in rows if r.check == verify.GOSSIP_KEYRING],
                                    "rotated: one key on every member of every datacenter, the old one removed",
                                    "the keys are rotated, but verify's keyring row does not pass (above)")


class StepFailed(Exception):
    """A keyring operation Consul accepted, but not every member shows."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rotation_cli.add_arguments(parser, "the up that writes the new key")


def run(args: argparse.Namespace) -> int:
    return rotation_cli.run("rotate-gossip-key", args,
                            lambda p, runner: Rotation(p, runner, args.project_dir, args.gate_timeout).run(),
                            refused=(RotationRefused,), stopped=(StepFailed, consul_status.ConsulOutputError))
