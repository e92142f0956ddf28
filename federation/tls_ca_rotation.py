"""Rotate the federation's TLS CA: every datacenter moves to a new CA with no moment where a
server, gateway or injected pod meets a certificate it does not trust.

Every datacenter's CA comes from the primary: its Secrets ``<globalName>-ca-cert`` (``tls.crt``,
every reader's CA file) and ``<globalName>-ca-key`` (``tls.key``), which the chart's tls-init made,
and which its create-federation-secret hook copies into the federation secret that the
secondaries' stacks copy. tls-init signs a new server certificate on every Helm upgrade with the
key and the *first* certificate of the CA Secret (``tls_ca.py``); readers trust every certificate
in it, but only from their start. So the rotation is three stages, each written to the primary's
Secrets and then rolled through every datacenter, primary first, by a gated ``up`` that raises
the primary's ``tlsCaStage`` (the servers, mesh gateways and connect injector restart on it):

1. trust: the CA file holds old + new (the old one still signs); every reader restarts.
2. sign: new + old, the key is the new one; every server gets a certificate of the new CA. Before
   it, every injected pod must trust the new CA (the injector copies the CA into a pod when it
   is created, ``CONSUL_CACERT_PEM``): the command names the ones that do not, and stops.
3. retire: the new CA alone; every reader restarts.

The new CA is made in memory and kept, until the rotation ends, in the primary's Secret
``<globalName>-ca-next`` (next to the CA key it replaces); keys are never printed, certificates
only as fingerprints. Every run starts from what it observes (the Secrets, the primary's stack
file and every stack's ``tlsCaStage`` output), so a run stopped at any step is finished by running
the command again; a run that finds no rotation under way starts one.

Exit codes: 0 rotated; 1 a step failed (naming it; run again to go on); 2 refused before anything
changed.
"""

from __future__ import annotations

import argparse
import base64
from dataclasses import dataclass, field
from typing import Optional

from kubernetes import client

from components.constants import CONFIG_NAMESPACE
from components.outputs import TLS_CA_STAGE

from . import cluster_access as access, rollout, rotation_cli
from . import stacks as stack_files
from . import tls_ca
from .runner import Runner
from .stack_plan import Plan
from .tls_ca import CA, certificates, fingerprint, signs

STAGE_KEY = "tlsCaStage"
GENERATE, WRITE, DEPLOY, FORGET, DONE = "generate", "write", "deploy", "forget", "done"
# The Secrets' states, by the stage number (modulo 3) that deploys them.
IDLE, GENERATED, TRUST, SIGN, RETIRE = "idle", "generated", "trust", "sign", "retire"
# The sign stage's CA file written, its key not yet: a run stopped between the two Secrets.
SIGN_HALF = "sign (CA file written, key not yet)"
STAGE_OF = {TRUST: 1, SIGN: 2, RETIRE: 0}
NEXT_WRITE = {GENERATED: TRUST, TRUST: SIGN, SIGN: RETIRE}
INJECT_STATUS = "consul.hashicorp.com/connect-inject-status"
INJECTED_CA_ENV = "CONSUL_CACERT_PEM"


class RotationRefused(Exception):
    """A state this command did not make, or cannot go on from; the message says what to do."""


class StepFailed(Exception):
    """A step that did not complete; running the command again goes on from there."""


@dataclass(frozen=True)
class Observed:
    bundle: list[str]  # the primary's CA file, in order
    key: str = field(repr=False)  # the primary's CA key
    next: Optional[CA]  # the rotation's new CA, while one is under way
    config_stage: int  # tlsCaStage in the primary's stack file
    deployed: dict[str, Optional[int]]  # each stack's tlsCaStage output (None: it predates rotation)


@dataclass(frozen=True)
class Step:
    action: str
    why: str
    state: Optional[str] = None  # what WRITE writes / DEPLOY rolls
    stage: Optional[int] = None  # DEPLOY's tlsCaStage


def secrets_state(o: Observed) -> str:
    """Which stage the primary's CA Secrets hold (RotationRefused for any state this command
    does not make)."""
    if o.next is None:
        if len(o.bundle) == 1 and signs(o.bundle[0], o.key):
            return IDLE
        raise RotationRefused(
            f"the CA file holds {len(o.bundle)} certificate(s) ({', '.join(map(fingerprint, o.bundle)) or 'none'})"
            f"{' and the key signs none of them' if len(o.bundle) == 1 else ''}, and no rotation of this program "
            "is under way (no ca-next Secret): restore one CA and its key, then run again")
    if not signs(o.next.cert, o.next.key):
        raise RotationRefused("the ca-next Secret's key does not sign its certificate; delete that Secret "
                              "(the CA Secrets still hold the old CA alone?) and run again")
    new = o.next.cert
    others = [c for c in o.bundle if c != new]
    key_is_new = signs(new, o.key)
    if len(others) == 1 and len(o.bundle) == 1 and not key_is_new and signs(others[0], o.key):
        return GENERATED
    if len(others) == 1 and o.bundle == [others[0], new] and signs(others[0], o.key):
        return TRUST
    if len(others) == 1 and o.bundle == [new, others[0]] and key_is_new:
        return SIGN
    if len(others) == 1 and o.bundle == [new, others[0]] and signs(others[0], o.key):
        return SIGN_HALF
    if o.bundle == [new] and key_is_new:
        return RETIRE
    raise RotationRefused(
        f"the CA file ({', '.join(map(fingerprint, o.bundle)) or 'empty'}, the key "
        f"{'the new CA' if key_is_new else 'not the new CA'}'s) is no stage of the rotation to "
        f"{fingerprint(new)}: put back the state of a stage (see docs/day-two.md), then run again")


def next_step(o: Observed, started: bool) -> Step:
    """What to do from the observed state; `started`: this run already made a step (so no
    rotation under way means finished, not "start a new one")."""
    missing = sorted(s for s, stage in o.deployed.items() if stage is None)
    if missing:
        raise RotationRefused(f"stack(s) {', '.join(missing)} have no {TLS_CA_STAGE} output (deployed before "
                              "rotation existed): run python -m federation up first")
    if not o.deployed:
        raise RotationRefused("no stack is deployed")
    low, high = min(o.deployed.values()), max(o.deployed.values())
    if not low <= o.config_stage <= low + 1 or high > o.config_stage:
        raise RotationRefused(
            f"{CONFIG_NAMESPACE}:{STAGE_KEY} is {o.config_stage} in the primary's stack file, and the stacks "
            f"deployed stages {low}-{high}: set it to {high} (or {low + 1} to go on with a rotation), never lower")
    state = secrets_state(o)
    everywhere = low == high == o.config_stage
    if state == IDLE:
        if not everywhere or low % 3:
            raise RotationRefused(
                f"{STAGE_KEY} is {o.config_stage} (deployed {low}-{high}) with no rotation under way: this "
                "program only leaves multiples of 3 deployed everywhere; set it to the next multiple of 3 "
                f"({-(-high // 3) * 3}) and run python -m federation up")
        if started:
            return Step(DONE, "one CA, the new one, in every datacenter")
        return Step(GENERATE, "no rotation under way: a new CA")
    if state == GENERATED:
        if not everywhere or low % 3:
            raise RotationRefused(f"a new CA is waiting, but stage {o.config_stage} is not deployed everywhere "
                                  f"(deployed {low}-{high}): run python -m federation up first")
        return Step(WRITE, "the new CA is made; the CA file does not trust it yet", TRUST)
    if state == SIGN_HALF:  # tls-init would refuse this pair: finish writing it before anything else
        if not everywhere or low % 3 != STAGE_OF[TRUST]:
            raise RotationRefused(f"the CA file signs with the new CA but the key is the old one, and the trust "
                                  f"stage is not deployed everywhere (deployed {low}-{high}): see docs/day-two.md")
        return Step(WRITE, "the sign stage was written half (the CA file, not the key)", SIGN)
    if everywhere and low % 3 == STAGE_OF[state]:
        if state == RETIRE:
            return Step(FORGET, "every datacenter runs on the new CA alone")
        return Step(WRITE, f"the {state} stage is deployed in every datacenter", NEXT_WRITE[state])
    if low % 3 == (STAGE_OF[state] - 1) % 3:
        return Step(DEPLOY, f"the {state} stage is written, not yet deployed in every datacenter", state, low + 1)
    raise RotationRefused(f"the CA Secrets hold the {state} stage, but {STAGE_KEY} is {o.config_stage} (deployed "
                          f"{low}-{high}), which this program does not leave with them: see docs/day-two.md")


def written(state: str, o: Observed) -> tuple[str, str]:
    """The CA file and key of a stage, from the state before it (the old CA: the other one)."""
    assert o.next is not None
    new = o.next
    if state == RETIRE:
        return new.cert, new.key
    (old,) = [c for c in o.bundle if c != new.cert]
    return {TRUST: (tls_ca.bundle(old, new.cert), o.key), SIGN: (tls_ca.bundle(new.cert, old), new.key)}[state]


def stale_injected_pods(pods: list[client.V1Pod], new_cert: str) -> list[str]:
    """Injected pods whose copy of the CA (the injector's CONSUL_CACERT_PEM) lacks `new_cert`:
    their dataplanes would fail on a server with a certificate of the new CA."""
    stale = []
    for pod in pods:
        if ((pod.metadata.annotations or {}).get(INJECT_STATUS)) != "injected":
            continue
        containers = [*(pod.spec.init_containers or []), *(pod.spec.containers or [])]
        copies = [e.value or "" for c in containers for e in (c.env or []) if e.name == INJECTED_CA_ENV]
        if copies and not all(new_cert in certificates(v) for v in copies):
            stale.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
    return sorted(stale)


def _secret_text(data: Optional[dict[str, str]], key: str) -> str:
    return base64.b64decode((data or {}).get(key, "")).decode()


class Rotation(rotation_cli.Rotation):
    """The primary's CA Secrets, every stack's stage and every cluster's injected pods, for one run."""

    def __init__(self, p: Plan, runner: Runner, project_dir: str, gate_timeout: float):
        super().__init__(p, runner, project_dir, gate_timeout, RotationRefused)
        self.names = {"cert": self.primary.name("ca-cert"), "key": self.primary.name("ca-key"),
                      "next": self.primary.name("ca-next")}

    def say(self, line: str) -> None:
        print(f"[rotate-ca] {line}", file=self.runner.out, flush=True)

    def observe(self) -> Observed:
        cert_data = self.primary.secret_data(self.names["cert"])
        key_data = self.primary.secret_data(self.names["key"])
        if cert_data is None or key_data is None:
            raise RotationRefused(f"no {self.names['cert']} or {self.names['key']} Secret in {self.primary.ns}: "
                                  "the primary's CA is not the one its chart made (set by global.tls.caCert?), "
                                  "which this command does not rotate")
        nxt = self.primary.secret_data(self.names["next"])
        raw = stack_files.read_stack(self.project_dir, self.p.primary).raw.get(STAGE_KEY, 0)
        try:
            config_stage = int(raw)
        except (TypeError, ValueError) as exc:
            raise RotationRefused(f"{CONFIG_NAMESPACE}:{STAGE_KEY} is {raw!r}; expected a whole number") from exc
        deployed = {}
        for name in self.dcs:
            output = self.runner.stack(name, create=False).outputs().get(TLS_CA_STAGE)
            deployed[name] = None if output is None else int(output.value)
        return Observed(certificates(_secret_text(cert_data, "tls.crt")), _secret_text(key_data, "tls.key"),
                        CA(_secret_text(nxt, "tls.crt"), _secret_text(nxt, "tls.key")) if nxt is not None else None,
                        config_stage, deployed)

    def _put(self, name: str, data: dict[str, str], create: bool = False) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        if create:
            self.primary.core.create_namespaced_secret(self.primary.ns, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/managed-by": "consul-federation"}),
                type="kubernetes.io/tls", data=encoded), _request_timeout=access.TIMEOUT)
        else:
            self.primary.core.patch_namespaced_secret(name, self.primary.ns, {"data": encoded},
                                                      _request_timeout=access.TIMEOUT)

    def generate(self) -> None:
        ca = tls_ca.new_ca()
        self._put(self.names["next"], {"tls.crt": ca.cert, "tls.key": ca.key}, create=True)
        self.say(f"made the new CA {fingerprint(ca.cert)}, kept in {self.primary.ns}/{self.names['next']}")

    def write(self, o: Observed, state: str) -> None:
        """The CA file, then the key (the sign stage's half-written state is one this command
        finishes)."""
        if state == SIGN:
            self.check_injected_pods(o.next.cert)
        cert, key = written(state, o)
        self._put(self.names["cert"], {"tls.crt": cert})
        if key != o.key:
            self._put(self.names["key"], {"tls.key": key})
        self.say(f"wrote the {state} stage: CA file {' + '.join(map(fingerprint, certificates(cert)))}, "
                 f"signing with {fingerprint(certificates(cert)[0])}")

    def check_injected_pods(self, new_cert: str) -> None:
        stale = {name: stale_injected_pods(dc.core.list_pod_for_all_namespaces(_request_timeout=access.TIMEOUT).items,
                                           new_cert)
                 for name, dc in self.dcs.items()}
        stale = {name: pods for name, pods in stale.items() if pods}
        if stale:
            raise StepFailed("these injected pods trust only the old CA (their CONSUL_CACERT_PEM predates the trust "
                             "stage), and would lose their servers once those get certificates of the new CA; "
                             "restart them (kubectl rollout restart of their workloads), then run again:\n"
                             + "\n".join(f"  {name}: {', '.join(pods)}" for name, pods in sorted(stale.items())))

    def deploy(self, o: Observed, stage: int) -> None:
        if not rollout.raise_and_roll(self.p, self.runner, STAGE_KEY, o.config_stage, stage,
                                      self.gate_timeout, self.say):
            raise StepFailed(f"the up of stage {stage} failed or the federation was not healthy after it (above)")

    def run(self) -> int:
        started = False
        while True:
            o = self.observe()
            self.say(f"CA file {' + '.join(map(fingerprint, o.bundle))}; {STAGE_KEY} {o.config_stage} in the stack "
                     f"file, deployed " + ", ".join(f"{s} {v}" for s, v in o.deployed.items()))
            step = next_step(o, started)
            self.say(f"{step.action}{' ' + step.state if step.state else ''}: {step.why}")
            if step.action == DONE:
                return self.finish()
            started = True
            if step.action == GENERATE:
                self.generate()
            elif step.action == WRITE:
                self.write(o, step.state)
            elif step.action == DEPLOY:
                self.deploy(o, step.stage)
            elif step.action == FORGET:
                self.primary.core.delete_namespaced_secret(self.names["next"], self.primary.ns,
                                                           _request_timeout=access.TIMEOUT)
                self.say(f"deleted {self.primary.ns}/{self.names['next']}")

    def finish(self) -> int:
        return self.report_verified(lambda rows: rows, "rotated: every datacenter trusts and uses the new CA alone",
                                    "the CA is rotated, but verify does not pass every row (above)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rotation_cli.add_arguments(parser, "each stage's up")


def run(args: argparse.Namespace) -> int:
    return rotation_cli.run("rotate-tls-ca", args,
                            lambda p, runner: Rotation(p, runner, args.project_dir, args.gate_timeout).run(),
                            refused=(RotationRefused, tls_ca.BadMaterial), stopped=(StepFailed,))
