"""A stack's settings, read from where they live: the engine's config (the program, under
``pulumi up``) or the Automation API (the operator commands). Both give (raw values, the keys set
as secrets) with each value as ``settings.setting_value`` makes it, for ``config.parse_config``
(``parse_with_cluster`` under the engine, which also resolves the kubeconfig); the stack files
read by the operator commands (``federation/stacks.py``) follow the same rule.
"""

from __future__ import annotations

from typing import Any

import pulumi

from .config import parse_with_cluster
from .kube_cluster import KubeCluster
from .constants import CONFIG_NAMESPACE
from .settings import KEYS, DatacenterConfig, setting_value

_PREFIX = f"{CONFIG_NAMESPACE}:"


def read_stack_config() -> tuple[dict[str, Any], frozenset[str]]:
    """This stack's ``consul-federation:*`` values under the engine, and which are secrets.

    Values come through the public ``pulumi.Config`` (as text; ``setting_value`` decodes
    objects as ``get_object`` would). Which keys exist, and which are secret, come from
    ``pulumi.runtime.get_config_env`` and ``pulumi.runtime.is_config_secret`` (public:
    ``pulumi.runtime.__all__``); ``Config`` itself can list neither, and its ``get_secret*`` wrap
    every value, secret in the stack or not.
    """
    config = pulumi.Config(CONFIG_NAMESPACE)
    present = {key[len(_PREFIX):] for key in pulumi.runtime.get_config_env() if key.startswith(_PREFIX)}
    raw: dict[str, Any] = {}
    for key in sorted(present | set(KEYS)):
        value = config.get(key)
        if value is not None:
            raw[key] = setting_value(key, value)
    secret = frozenset(key for key in raw if pulumi.runtime.is_config_secret(_PREFIX + key))
    return raw, secret


def load_config() -> tuple[DatacenterConfig, KubeCluster]:
    """Read and validate this stack's configuration, and resolve its cluster from the kubeconfig
    (raises ConfigError with every problem of both)."""
    return parse_with_cluster(*read_stack_config())


def automation_config(stack: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """The same from an Automation API stack (``stack.get_all_config()``; secrets decrypted)."""
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in stack.get_all_config().items():
        if key.startswith(_PREFIX):
            raw[key[len(_PREFIX):]] = setting_value(key[len(_PREFIX):], value.value)
            if value.secret:
                secret.add(key[len(_PREFIX):])
    return raw, frozenset(secret)
