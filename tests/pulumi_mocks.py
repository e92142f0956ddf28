"""Run the whole program (``__main__.py``) under Pulumi's public mocks and record what it did.

Public SDK only: ``pulumi.runtime.set_mocks`` with a ``pulumi.runtime.Mocks`` subclass (what
reached the engine, in order), a stack transformation (``register_stack_transformation``: each
resource's inputs, parent, provider and explicit dependencies, as the program passed them) and
``@pulumi.runtime.test`` to run the program and wait for it. Inputs are resolved with
``Output.from_input(...).future()`` and their secretness read with ``Output.is_secret()`` after
the program finished, so an assertion never sits in an ``apply`` callback that did not run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import runpy
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

import pulumi

from components.stack_ref import DEFAULT_ORG
from stack_matrix import PRIMARY_REF, Case

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "__main__.py")
PROJECT = "consul-federation"

# A fixed "random" seed, so that tests can follow the gossip key from RandomPassword to the Secret.
GOSSIP_SEED = "s33d" * 16
GOSSIP_KEY = base64.b64encode(hashlib.sha256(GOSSIP_SEED.encode()).digest()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def federation_data(datacenter: str = "dc1", acls: bool = True, gossip: bool = True) -> dict[str, str]:
    """The data map of a federation secret as the API server returns it (base64 values)."""
    data = {
        "caCert": b64("-----BEGIN CERTIFICATE-----\nMIIB-test-ca\n-----END CERTIFICATE-----\n"),
        "caKey": b64("-----BEGIN EC PRIVATE KEY-----\nMHcC-test-key\n-----END EC PRIVATE KEY-----\n"),
        "serverConfigJSON": b64(json.dumps(
            {"primary_datacenter": datacenter, "primary_gateways": ["192.0.2.10:30001"]})),
    }
    if acls:
        data["replicationToken"] = b64("8f7c2a7e-0c5e-4c1e-9f00-5d0a2c1b9e11")
    if gossip:
        data["gossipEncryptionKey"] = b64(GOSSIP_KEY)
    return data


def primary_outputs(datacenter: str = "dc1", acls: bool = True, gossip: bool = True,
                    chart_version: str = "2.0.3") -> dict[str, Any]:
    return {
        "datacenter": datacenter,
        "role": "primary",
        "namespace": "consul",
        "chartVersion": chart_version,
        "aclsEnabled": acls,
        "gossipEncryptionEnabled": gossip,
        "federationSecret": federation_data(datacenter, acls, gossip),
    }


@dataclass
class Registration:
    """One resource the program constructed, as it passed it (inputs use Python names)."""

    type: str
    name: str
    custom: bool
    parent: Optional[str]  # the parent's name; None for the stack
    provider: Optional[str]  # the explicit provider's name
    depends_on: list[str]  # names of explicit dependencies
    inputs: dict[str, Any] = field(default_factory=dict)  # resolved; None-valued inputs left out
    secret_inputs: set[str] = field(default_factory=set)  # inputs that are Pulumi secrets
    read_id: Optional[str] = None
    error_hooks: list[pulumi.ErrorHook] = field(default_factory=list)  # run when an operation fails
    before_update_hooks: list[pulumi.ResourceHook] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """A resolved input with input-type objects (ObjectMetaArgs, ...) as dicts of their fields."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, pulumi.Resource):
        return {k: _plain(v) for k, v in vars(value).items() if v is not None}
    return value


class Recorder:
    """A stack transformation that keeps every constructed resource's arguments."""

    def __init__(self) -> None:
        self.constructed: list[pulumi.ResourceTransformationArgs] = []

    def __call__(self, args: pulumi.ResourceTransformationArgs) -> None:
        self.constructed.append(args)

    async def resolve(self) -> list[Registration]:
        names = {id(a.resource): a.name for a in self.constructed}
        name = lambda resource: names.get(id(resource)) if resource is not None else None  # noqa: E731
        registrations = []
        for args in self.constructed:
            opts = args.opts
            reg = Registration(
                type=args.type_, name=args.name, custom=isinstance(args.resource, pulumi.CustomResource),
                parent=name(opts.parent), provider=name(opts.provider),
                depends_on=[name(d) for d in opts.depends_on or []])
            if opts.hooks is not None:
                reg.error_hooks = list(opts.hooks.on_error or [])
                reg.before_update_hooks = list(opts.hooks.before_update or [])
            if opts.id is not None:
                reg.read_id = await pulumi.Output.from_input(opts.id).future()
            for key, value in (args.props or {}).items():
                if value is None:
                    continue
                output = pulumi.Output.from_input(value)
                reg.inputs[key] = _plain(await output.future())
                if await output.is_secret():
                    reg.secret_inputs.add(key)
            registrations.append(reg)
        return registrations


class FederationMocks(pulumi.runtime.Mocks):
    """Answers like a cluster and a backend holding the primary stack would, and notes every
    resource that reached the engine."""

    def __init__(self, stacks: dict[str, dict[str, Any]], federation: dict[str, dict[str, str]],
                 endpoints: Optional[list[dict[str, Any]]], mark_secret_outputs: bool = True):
        self.stacks = stacks
        self.mark_secret_outputs = mark_secret_outputs
        self.federation = federation
        self.endpoints = endpoints
        self.engine: list[tuple[str, str]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.engine.append((args.typ, args.name))
        state = dict(args.inputs)  # echoed: outputs keep the inputs' secretness
        if args.typ == "pulumi:pulumi:StackReference":
            if args.resource_id not in self.stacks:
                raise Exception(f"unknown stack {args.resource_id!r}")
            outputs = self.stacks[args.resource_id]
            secret = [k for k in ("federationSecret",) if k in outputs and self.mark_secret_outputs]
            return args.resource_id, {"name": args.resource_id, "outputs": outputs,
                                      "secretOutputNames": secret}
        if args.typ == "kubernetes:core/v1:Secret" and args.resource_id:
            if args.resource_id not in self.federation:
                raise Exception(f"secrets {args.resource_id!r} not found")
            return args.resource_id, {"data": self.federation[args.resource_id]}
        if args.typ == "kubernetes:core/v1:Endpoints" and args.resource_id:
            return args.resource_id, {"subsets": self.endpoints or []}
        if args.typ == "random:index/randomPassword:RandomPassword":
            state.update(result=GOSSIP_SEED)
            return "none", state
        if args.typ == "kubernetes:helm.sh/v3:Release":
            state["status"] = {"name": args.inputs.get("name"), "namespace": args.inputs.get("namespace"),
                               "status": "deployed", "version": args.inputs.get("version") or "local"}
            return f"{args.inputs.get('namespace')}/{args.inputs.get('name')}", state
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class _Logs(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@dataclass
class Run:
    """What one program run constructed, sent to the engine, exported and logged."""

    registrations: list[Registration]
    engine: list[tuple[str, str]]  # (type, name) in the order they reached the engine
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def all(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.all(type_)
        assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registration:
        (found,) = [r for r in self.registrations if r.name == name]
        return found


class ProgramFailed(Exception):
    """The program raised `error`; `engine` is what had reached the engine by then."""

    def __init__(self, error: BaseException, engine: list[tuple[str, str]]):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.engine = engine

    def types(self) -> list[str]:
        return [typ for typ, _ in self.engine]


def run_case(c: Case, **kwargs: Any) -> Run:
    """Run one stack case of the matrix; a secondary's primary stack holds what `c.primary`'s
    configuration would have exported, a primary's cluster the federation secret its chart writes."""
    stacks = kwargs.pop("stacks", None)
    if c.role == "secondary" and stacks is None:
        p = c.primary
        stacks = {PRIMARY_REF: primary_outputs(p["datacenter"], p.get("acls", True),
                                               p.get("gossipEncryption", True))}
    federation = None
    if c.role == "primary":
        cfg = c.parsed()
        federation = {f"{cfg.namespace}/{cfg.federation_secret_name}":
                      federation_data(cfg.datacenter, cfg.acls, cfg.gossip_encryption)}
    return run_program(c.config, c.stack, stacks=stacks, federation=federation, **kwargs)


def run_program(config: dict[str, Any], stack: str = "dc1", *,
                stacks: Optional[dict[str, dict[str, Any]]] = None,
                federation: Optional[dict[str, dict[str, str]]] = None,
                endpoints: Optional[list[dict[str, Any]]] = None,
                env: Optional[dict[str, str]] = None, mark_secret_outputs: bool = True,
                secret_keys: tuple[str, ...] = ()) -> Run:
    """Run __main__.py once with `config` (keys without the project prefix; `secret_keys` of
    them as if set with `pulumi config set --secret`).

    Raises ProgramFailed (with what reached the engine) if the program fails.
    """
    mocks = FederationMocks(stacks or {}, federation if federation is not None else
                            {"consul/consul-federation": federation_data()}, endpoints,
                            mark_secret_outputs)
    logs = _Logs()
    logger = logging.getLogger(f"pulumi-mocks-{id(logs)}")
    logger.addHandler(logs)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    # As the language host does: a failed Output nobody awaited is expected when a check fails.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    pulumi.runtime.reset_options(project=PROJECT, stack=stack)
    # The organization a file backend gives every stack (the engine passes it to the program).
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, logger=logger,
                             organization=DEFAULT_ORG)
    full = {(k if ":" in k else f"{PROJECT}:{k}"): v if isinstance(v, str) else json.dumps(v)
            for k, v in config.items()}
    pulumi.runtime.set_all_config(full, [f"{PROJECT}:{k}" for k in secret_keys])
    # The language host hands the program its whole configuration in PULUMI_CONFIG too.
    env = {**(env or {}), "PULUMI_CONFIG": json.dumps(full)}
    recorder = Recorder()
    pulumi.runtime.register_stack_transformation(recorder)
    run = Run(registrations=[], engine=mocks.engine)

    async def collect() -> None:
        run.registrations = await recorder.resolve()
        for name, value in pulumi.runtime.get_root_resource().outputs.items():
            output = pulumi.Output.from_input(value)
            run.outputs[name] = await output.future()
            if await output.is_secret():
                run.secret_outputs.add(name)

    @pulumi.runtime.test
    def program():
        runpy.run_path(MAIN, run_name="__main__")
        return pulumi.Output.from_input(collect())

    saved_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        program()
    except Exception as exc:
        raise ProgramFailed(exc, mocks.engine) from exc
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    run.warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    return run


async def call_hook(hook: Union[pulumi.ResourceHook, pulumi.ErrorHook], args: Any) -> Any:
    """Call a hook as the SDK's callback server does: on the running loop, awaiting what it returns."""
    result = hook.callback(args)
    return await result if isinstance(result, Awaitable) else result


def run_hook(hook: Union[pulumi.ResourceHook, pulumi.ErrorHook], args: Any,
             *alongside: Callable[[], Awaitable[Any]]) -> Any:
    """The hook's result, called on a loop of its own (the program has finished; the current
    loop, which the SDK's registrations use, is left as it is) with the `alongside` coroutines
    started after it on the same loop."""
    async def main() -> Any:
        results = await asyncio.gather(call_hook(hook, args), *(c() for c in alongside))
        return results[0]

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


class LoopProbe:
    """Shows whether a hook leaves its loop free while it calls the cluster: ``read`` (patched in
    for the hook's blocking call) waits until ``alongside``, a coroutine on the hook's loop, has
    run after the read started; ``waited`` records whether it did within 2 s."""

    def __init__(self, answer: Any):
        self.answer = answer
        self.reading, self.other_ran = threading.Event(), threading.Event()
        self.waited: list[bool] = []

    def read(self, *args: Any) -> Any:
        self.reading.set()
        self.waited.append(self.other_ran.wait(timeout=2.0))
        return self.answer

    async def alongside(self) -> None:
        for _ in range(400):
            if self.reading.is_set():
                self.other_ran.set()
                return
            await asyncio.sleep(0.005)
