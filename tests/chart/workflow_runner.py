"""A GitHub Actions job run here as a runner runs it, for the steps that call the project.

Real: each `run:` script, executed by `bash --noprofile --norc -eo pipefail` (the runner's
default shell) in a checkout of a real git repository, with `${{ }}` expressions substituted,
the job's and the step's `env:`, `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `RUNNER_TEMP`, step
outputs and `if:` conditions; Python and every package come only from what the job's own steps
install (pip from PyPI into a fresh virtual environment).

Played (the runner's actions; `PLAYED` lists them with the majors accepted): `actions/checkout`
clones the repository (shallow unless `fetch-depth: 0`), `actions/setup-python` puts a fresh
virtual environment of this machine's Python of that version first on PATH (no packages but
pip), `azure/setup-helm` puts the helm of the tool cache first on PATH (its version must be the
one asked for). The GitHub context is given by the test.

Fails closed: any other action, an expression or `if:` it cannot evaluate, a context name it
does not have, or a Python version it cannot provide raises WorkflowError.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

# action -> the majors that run on Node 24 (GitHub removed Node 20 from its runners in
# September 2026): actions/checkout v5, setup-python v6, setup-go v6, cache v5 (their release
# notes), azure/setup-helm v5 (its v5.0.0 notes), pulumi/actions v7 (pulumi/actions#1404 moved
# to node24, released as the next major).
NODE24_MAJORS = {
    "actions/checkout": 5, "actions/setup-python": 6, "actions/setup-go": 6, "actions/cache": 5,
    "azure/setup-helm": 5, "pulumi/actions": 7,
}
PLAYED = ("actions/checkout", "actions/setup-python", "azure/setup-helm")

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_COMPARISON = re.compile(r"^(.+?)\s*(==|!=)\s*(.+)$")


class WorkflowError(Exception):
    """What the runner here does not know how to run."""


def load(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def action_of(uses: str) -> tuple[str, int]:
    """('actions/checkout', 5) of 'actions/checkout@v5'; a pin that is no major tag fails."""
    name, _, ref = uses.partition("@")
    match = re.fullmatch(r"v(\d+)", ref)
    if not match:
        raise WorkflowError(f"{uses}: pinned by {ref!r}, not by a major tag this runner knows")
    return name, int(match[1])


@dataclass
class StepResult:
    name: str
    skipped: bool
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class JobRun:
    """One job of a workflow, run step by step in `home` (a fresh directory)."""

    workflow: dict[str, Any]
    job: str
    repository: Path
    home: Path
    context: dict[str, Any]
    helm: Optional[str] = None
    extra_env: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.spec = self.workflow["jobs"][self.job]
        self.workspace = self.home / "workspace"
        self.temp = self.home / "runner-temp"
        self.tools = self.home / "tools"
        for d in (self.temp, self.tools):
            d.mkdir(parents=True)
        self.path = ["/usr/local/bin", "/usr/bin", "/bin"]
        self.summary = self.temp / "step-summary.md"
        self.summary.touch()

    # ---- expressions ---------------------------------------------------------------------------

    def value(self, expression: str) -> Any:
        expression = expression.strip()
        if len(expression) >= 2 and expression[0] == expression[-1] == "'":
            return expression[1:-1]
        comparison = _COMPARISON.match(expression)
        if comparison:
            left, op, right = comparison.groups()
            equal = str(self.value(left)) == str(self.value(right))
            return equal if op == "==" else not equal
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+)*", expression):
            raise WorkflowError(f"cannot evaluate {expression!r} (only names, 'strings', == and !=)")
        head, *rest = expression.split(".")
        scope: Any = {"steps": {k: {"outputs": v} for k, v in self.outputs.items()},
                      "runner": {"temp": str(self.temp), "os": "Linux"}, **self.context}
        found: Any = scope
        for part in [head, *rest]:
            if not isinstance(found, dict) or part not in found:
                raise WorkflowError(f"{expression}: the context has no {part!r}")
            found = found[part]
        return found

    def substitute(self, text: str) -> str:
        return _EXPRESSION.sub(lambda m: str(self.value(m.group(1))), text)

    def condition(self, text: Optional[str]) -> bool:
        if text is None:
            return True
        text = text.strip()
        match = _EXPRESSION.fullmatch(text)
        result = self.value(match.group(1) if match else text)
        if not isinstance(result, bool):
            raise WorkflowError(f"if: {text!r} is not a comparison")
        return result

    # ---- steps ---------------------------------------------------------------------------------

    def run(self) -> list[StepResult]:
        if not self.condition(self.spec.get("if")):
            raise WorkflowError(f"job {self.job} would be skipped by its if: {self.spec['if']!r}")
        for number, step in enumerate(self.spec["steps"]):
            name = step.get("name") or step.get("uses") or f"step {number}"
            if not self.condition(step.get("if")):
                self.results.append(StepResult(name, skipped=True))
                continue
            if "uses" in step:
                self._action(step)
                self.results.append(StepResult(name, skipped=False))
                continue
            result = self._script(name, step)
            self.results.append(result)
            if result.returncode != 0:
                break
        return self.results

    def _env(self, step: dict[str, Any]) -> dict[str, str]:
        env = {
            "PATH": os.pathsep.join(self.path), "HOME": str(self.home), "CI": "true",
            "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp), "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_REPOSITORY": str(self.context["github"]["repository"]),
            "LANG": "C.UTF-8", **self.extra_env,
        }
        for scope in (self.workflow.get("env") or {}, self.spec.get("env") or {}, step.get("env") or {}):
            env.update({k: self.substitute(str(v)) for k, v in scope.items()})
        return env

    def _script(self, name: str, step: dict[str, Any]) -> StepResult:
        output = self.temp / f"output-{len(self.results)}"
        output.touch()
        script = self.temp / f"step-{len(self.results)}.sh"
        script.write_text(self.substitute(step["run"]))
        env = {**self._env(step), "GITHUB_OUTPUT": str(output)}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=self.workspace, env=env, capture_output=True, text=True, timeout=1800)
        if "id" in step:
            self.outputs[step["id"]] = _outputs(output.read_text())
        return StepResult(name, False, done.returncode, done.stdout, done.stderr)

    def _action(self, step: dict[str, Any]) -> None:
        name, major = action_of(step["uses"])
        given = {k: self.substitute(str(v)) for k, v in (step.get("with") or {}).items()}
        if name == "actions/checkout":
            depth = [] if given.pop("fetch-depth", "1") == "0" else ["--depth", "1"]
            _no_more(step, given)
            head = self.context["github"]["sha"]
            subprocess.run(["git", "init", "-q", str(self.workspace)], check=True)
            subprocess.run(["git", "-C", str(self.workspace), "fetch", "-q", *depth,
                            f"file://{self.repository}", head], check=True, capture_output=True)
            subprocess.run(["git", "-C", str(self.workspace), "checkout", "-q", "FETCH_HEAD"], check=True)
        elif name == "actions/setup-python":
            version = given.pop("python-version", "")
            _no_more(step, given)
            if f"{sys.version_info.major}.{sys.version_info.minor}" != version:
                raise WorkflowError(f"setup-python {version!r}: this machine has Python "
                                    f"{sys.version_info.major}.{sys.version_info.minor} only")
            venv = self.tools / f"python-{version}"
            subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
            self.path.insert(0, str(venv / "bin"))
        elif name == "azure/setup-helm":
            version = given.pop("version", "")
            _no_more(step, given)
            if not self.helm:
                raise WorkflowError("azure/setup-helm: the test gave no helm")
            have = subprocess.run([self.helm, "version", "--short"], capture_output=True, text=True).stdout
            if not have.startswith(version + "+") and have.strip() != version:
                raise WorkflowError(f"azure/setup-helm {version}: the tool cache's helm is {have.strip()}")
            bindir = self.tools / "helm"
            bindir.mkdir()
            os.symlink(self.helm, bindir / "helm")
            self.path.insert(0, str(bindir))
        else:
            raise WorkflowError(f"{step['uses']}: not an action this runner plays ({', '.join(PLAYED)})")


def _no_more(step: dict[str, Any], given: dict[str, str]) -> None:
    if given:
        raise WorkflowError(f"{step['uses']}: inputs {sorted(given)} are not played here")


def _outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT's name=value lines (the heredoc form is not used by these workflows)."""
    found = {}
    for line in text.splitlines():
        if "<<" in line.split("=", 1)[0]:
            raise WorkflowError(f"GITHUB_OUTPUT heredoc form not played: {line!r}")
        key, sep, value = line.partition("=")
        if not sep:
            raise WorkflowError(f"GITHUB_OUTPUT line without '=': {line!r}")
        found[key] = value
    return found


def _base_python() -> str:
    """The interpreter this virtual environment was made from, so the job's venv sees no
    package of this one."""
    path = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if not os.access(path, os.X_OK):
        raise WorkflowError(f"no base Python at {path}")
    return path
