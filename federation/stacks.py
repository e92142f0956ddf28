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
            document = yaml.safe_load(handle) or {}
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
