"""The project's stack files (``Pulumi.<stack>.yaml``) read as the program would see them.

Read from a directory rather than through Pulumi, so that any git revision of the project can be
read without a backend or a passphrase.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from components.constants import CONFIG_NAMESPACE
from components.settings import setting_value
from components.stack_ref import StackRef

_STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>.+)\.yaml$")


class StackFileError(Exception):
    """A stack file that cannot be read as YAML stack configuration."""


class _PulumiYaml(yaml.SafeLoader):
    """YAML as the pulumi CLI reads a stack file (Go's yaml.v3), where it matters for settings:
    only true and false are booleans (YAML 1.1's yes, no, on and off stay text, so ``acls: yes``
    is refused by the program under the CLI and here alike), and a key given twice is an error
    (the CLI refuses the whole file: "mapping key ... already defined")."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} already defined at line {seen[key] + 1}", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_PulumiYaml.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_PulumiYaml.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))


@dataclass(frozen=True)
class StackFile:
    """One stack's ``consul-federation:*`` settings (prefix removed)."""

    name: str
    raw: dict[str, Any]
    # Settings holding a ``secure:`` value (encrypted by Pulumi), at any depth.
    secret_keys: frozenset[str] = field(default=frozenset())

    @property
    def primary_name(self) -> Optional[str]:
        """The stack name ``primaryStack`` points at, if it is a reference at all."""
        try:
            return StackRef.parse(self.raw.get("primaryStack")).stack
        except ValueError:
            return None


def project_name(project_dir: str) -> str:
    """The project's name, from its ``Pulumi.yaml`` (OSError when there is none)."""
    with open(os.path.join(project_dir, "Pulumi.yaml"), encoding="utf-8") as handle:
        return str((yaml.safe_load(handle) or {}).get("name", ""))


def stack_file(project_dir: str, name: str) -> str:
    return os.path.join(project_dir, f"Pulumi.{name}.yaml")


def stack_names(project_dir: str) -> list[str]:
    """Every stack that has a file in the project directory, sorted."""
    names = (m.group("stack") for m in map(_STACK_FILE.match, os.listdir(project_dir)) if m)
    return sorted(names)


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _holds_secure(value: Any) -> bool:
    if _is_secure(value):
        return True
    if isinstance(value, dict):
        return any(_holds_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secure(v) for v in value)
    return False


def read_stack(project_dir: str, name: str) -> StackFile:
    """The stack's settings; raises FileNotFoundError or StackFileError."""
    path = stack_file(project_dir, name)
    with open(path, encoding="utf-8") as handle:
        try:
            document = yaml.load(handle, Loader=_PulumiYaml) or {}
        except yaml.YAMLError as exc:
            raise StackFileError(f"{os.path.basename(path)} is not valid YAML: {exc}") from exc
    config = document.get("config") if isinstance(document, dict) else None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise StackFileError(f"{os.path.basename(path)}: 'config' is not a mapping")
    prefix = f"{CONFIG_NAMESPACE}:"
    raw = {key[len(prefix):]: setting_value(key[len(prefix):], value)
           for key, value in config.items() if isinstance(key, str) and key.startswith(prefix)}
    secret = frozenset(key for key, value in raw.items() if _holds_secure(value))
    return StackFile(name, raw, secret)
