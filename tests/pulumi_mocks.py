"""Run the whole Pulumi program (``__main__.py``) under Pulumi mocks and record what it did.

Everything is collected while the program runs and inspected only after it has finished (all
outputs resolved), so an assertion can never sit in an ``apply`` callback that did not run.
The recorder keeps the raw protobuf of each registration to see which values travelled as
secrets, and the parent, provider and dependencies the engine would have been told.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import runpy
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "__main__.py")
PROJECT = "consul-federation"
SECRET_SIG = "4dabf18193072939515e22adb298388d"

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
    """One resource the program registered (or read), as the engine would have seen it."""

    type: str
    name: str
    urn: str
    parent: str
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]
    raw: dict[str, Any]
    read_id: Optional[str] = None
    custom: bool = True

    def secret_paths(self) -> set[str]:
        """Dotted input paths whose value was sent to the engine marked secret."""
        found: set[str] = set()

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                if node.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
                    found.add(path)
                    return
                for key, value in node.items():
                    walk(value, f"{path}.{key}" if path else key)
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{path}[{index}]")

        walk(self.raw, "")
        return found


def unwrap_secrets(node: Any) -> Any:
    """The values of an input tree with the engine's secret wrappers taken off."""
    if isinstance(node, dict):
        if node.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return unwrap_secrets(node.get("value"))
        return {k: unwrap_secrets(v) for k, v in node.items()}
    if isinstance(node, list):
        return [unwrap_secrets(v) for v in node]
    return node


class Recorder(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: "FederationMocks"):
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self._lock = threading.Lock()

    def _record(self, request, read_id=None, custom=True, props=None):
        # Called from the SDK's executor threads: build everything from this request alone.
        struct = props if props is not None else request.object
        _ensure_event_loop()
        reg = Registration(
            type=request.type, name=request.name,
            urn=self.make_urn(request.parent, request.type, request.name),
            parent=request.parent, provider=request.provider,
            dependencies=list(request.dependencies),
            inputs=unwrap_secrets(rpc.deserialize_properties(struct)),
            raw=json_format.MessageToDict(struct), read_id=read_id, custom=custom)
        with self._lock:
            self.registrations.append(reg)

    def RegisterResource(self, request):
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        self._record(request, custom=request.custom)
        return super().RegisterResource(request)

    def ReadResource(self, request):
        self._record(request, read_id=request.id, props=request.properties)
        return super().ReadResource(request)


class FederationMocks(pulumi.runtime.Mocks):
    """Answers like a cluster and a backend holding the primary stack would."""

    def __init__(self, stacks: dict[str, dict[str, Any]], federation: dict[str, dict[str, str]],
                 endpoints: Optional[list[dict[str, Any]]], mark_secret_outputs: bool = True):
        self.stacks = stacks
        self.mark_secret_outputs = mark_secret_outputs
        self.federation = federation
        self.endpoints = endpoints

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        state = unwrap_secrets(dict(args.inputs))
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

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}


class _Logs(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@dataclass
class Run:
    """What one program run registered, exported and logged."""

    registrations: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def all(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.all(type_)
        assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)

    def provider_urn(self, reg: Registration) -> str:
        return reg.provider.rsplit("::", 1)[0]


class ProgramFailed(Exception):
    """The program raised `error` after registering `registrations`."""

    def __init__(self, error: BaseException, registrations: list[Registration]):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.registrations = registrations

    def types(self) -> list[str]:
        return [r.type for r in self.registrations]


def run_program(config: dict[str, Any], stack: str = "dc1", *,
                stacks: Optional[dict[str, dict[str, Any]]] = None,
                federation: Optional[dict[str, dict[str, str]]] = None,
                endpoints: Optional[list[dict[str, Any]]] = None,
                env: Optional[dict[str, str]] = None, mark_secret_outputs: bool = True) -> Run:
    """Run __main__.py once with `config` (keys without the project prefix).

    Raises ProgramFailed (with what was registered) if the program raises.
    """
    mocks = FederationMocks(stacks or {}, federation if federation is not None else
                            {"consul/consul-federation": federation_data()}, endpoints,
                            mark_secret_outputs)
    recorder = Recorder(mocks)
    logs = _Logs()
    logger = logging.getLogger(f"pulumi-mocks-{id(logs)}")
    logger.addHandler(logs)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    settings.reset_options(project=PROJECT, stack=stack)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False,
                             logger=logger, monitor=recorder)
    pulumi.runtime.set_all_config({
        (k if ":" in k else f"{PROJECT}:{k}"): v if isinstance(v, str) else json.dumps(v)
        for k, v in config.items()})
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        try:
            _sync_await(run_pulumi_func(lambda: runpy.run_path(MAIN, run_name="__main__")))
        except Exception as exc:
            raise ProgramFailed(exc, recorder.registrations) from exc
        run = Run(registrations=recorder.registrations)
        root = settings.get_root_resource()
        for name, value in root.outputs.items():
            output = pulumi.Output.from_input(value)
            run.outputs[name] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                run.secret_outputs.add(name)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    run.warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    return run
