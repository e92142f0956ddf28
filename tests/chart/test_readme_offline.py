"""README's offline quick start, run exactly as written in a fresh copy of the working tree:
its own virtual environment from PyPI, then `python -m federation validate` of the shipped stack
files. Real: the commands, venv, pip and the program's parser; nothing else is needed (no
cluster, no backend, no helm)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_mocks import ROOT

pytestmark = pytest.mark.chart

SECTION = "## Quick start, offline: no cluster, no backend"


def offline_commands() -> str:
    readme = (Path(ROOT) / "README.md").read_text(encoding="utf-8")
    assert SECTION in readme, "README lost its offline quick start"
    block = re.search(r"```sh\n(.*?)```", readme.split(SECTION, 1)[1], re.S)
    assert block and block.group(1).strip(), "the offline quick start has no sh block"
    return block.group(1)


def working_tree_copy(dest: Path) -> None:
    """The files git tracks or would (not ignored), as they are in the working tree: no .venv, no state."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = Path(ROOT) / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def test_the_offline_quick_start_runs_as_written(tmp_path):
    commands = offline_commands()
    assert "federation validate" in commands
    working_tree_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "VIRTUAL_ENV", "KUBECONFIG"))}
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or os.path.expanduser("~/.cache/pip")
    env["HOME"] = str(tmp_path / "home")  # no ~/.pulumi, no ~/.kube: nothing outside the copy
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", commands], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == (
        "validate: every stack is valid; pulumi preview also checks the kubeconfig contexts, the "
        "clusters, the chart repository and the primary's outputs"), done.stdout
    assert not (tmp_path / "home" / ".pulumi").exists()
