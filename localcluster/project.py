"""A working copy of this Pulumi project for local clusters: the same ``__main__.py`` and
``components/`` (linked, not copied), stack files of its own, a file state backend (or the
backend URL it is given) and a passphrase of its own, and the environment the pulumi CLI needs to drive it (the CLI and
providers that ``tools/ensure.sh engine`` built, no plugin downloads). The demo and the
integration and consul tiers each drive one; the repository's own stacks are never touched."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from .tools import REPO_ROOT

# What every stack of a local project sets besides the program's own settings: no default
# provider, and the kubernetes provider's strict mode (an explicit provider everywhere).
PROVIDER_SETTINGS = {"pulumi:disable-default-providers": ["kubernetes"], "kubernetes:strictMode": "true"}
# The primary's stack as a secondary names it on a file backend.
PRIMARY_REF = "organization/consul-federation/dc1"


class ScratchProject:
    def __init__(self, workdir: Path, tools: dict[str, str], name: str = "project",
                 state: Path | None = None, passphrase: str | None = None, backend_url: str | None = None):
        self.dir = workdir / name
        self.dir.mkdir()
        (self.dir / "__main__.py").symlink_to(Path(REPO_ROOT, "__main__.py"))
        (self.dir / "components").symlink_to(Path(REPO_ROOT, "components"))
        # The policy pack, and the .venv its PulumiPolicy.yaml names (../.venv from policy/).
        (self.dir / "policy").symlink_to(Path(REPO_ROOT, "policy"))
        (self.dir / ".venv").symlink_to(Path(REPO_ROOT, ".venv"))
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump({
            "name": "consul-federation",
            "runtime": {"name": "python", "options": {"toolchain": "pip",
                                                      "virtualenv": str(Path(REPO_ROOT, ".venv"))}},
        }))
        # A file backend in `state` (workdir/state by default), unless another backend's URL is given
        # (then no state directory is made: the state is wherever that URL says).
        self.state: Path | None = None
        if backend_url is None:
            self.state = state or workdir / "state"
            self.state.mkdir(exist_ok=True)
            backend_url = f"file://{self.state}"
        self.backend_url = backend_url
        self.passphrase = passphrase or secrets.token_urlsafe(24)
        self.tools = tools
        path_dirs = [tools[k] for k in ("PULUMI_BIN_DIR", "KUBERNETES_PROVIDER_DIR", "RANDOM_PROVIDER_DIR")]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBECONFIG"))},
            "PATH": os.pathsep.join(path_dirs + [os.environ.get("PATH", "")]),
            "PULUMI_HOME": str(workdir / "pulumi-home"),
            "PULUMI_BACKEND_URL": backend_url,
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        }

    def write_stack_settings(self, stack: str, settings: dict[str, Any]) -> None:
        """Pulumi.<stack>.yaml with these consul-federation settings (keys without the
        namespace), keeping what else the file holds (the encryption salt)."""
        config = dict(PROVIDER_SETTINGS)
        config.update({f"consul-federation:{k}": v for k, v in settings.items()})
        path = self.dir / f"Pulumi.{stack}.yaml"
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
        existing["config"] = config
        path.write_text(yaml.safe_dump(existing))
