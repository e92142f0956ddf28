"""`python -m federation diff`: the Kubernetes objects each stack's Release would change.

A Helm Release's preview shows only its inputs (pulumi-kubernetes#1701). The values are a pure
function of the stack file and the program's code, so both sides are computed (the base
revision's stack files with the base revision's ``components``, the working tree's with the
working tree's, each through the program's versioned entry point: see evaluate.py), rendered with each side's chart by `helm template`, and compared object by
object. No cluster, no Pulumi backend.

Exit status: 0 no change, 2 changes, 1 an error (a stack's configuration error on either side,
an unrenderable chart, a bad revision); errors win over changes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from components.settings import secret_refused

from . import evaluate, objdiff, render, report, revision, stacks
from .diff_result import AUTH_HOST_PLACEHOLDER, EXIT_ERROR, Evaluated, Result, StackDiff

_EVALUATE = os.path.abspath(evaluate.__file__)


def _primary_datacenter(project: str, stack: stacks.StackFile) -> tuple[Optional[str], Optional[str]]:
    """(the datacenter of the primary `primaryStack` names, why there is none): read from that
    stack's file in the same tree, as the deployed secondary reads it from the primary's outputs."""
    name = stack.primary_name
    if name is None:
        return None, None
    where = f"primaryStack {stack.raw['primaryStack']!r} names stack {name}, but Pulumi.{name}.yaml"
    try:
        primary = stacks.read_stack(project, name)
    except FileNotFoundError:
        return None, f"{where} does not exist"
    except stacks.StackFileError as exc:
        return None, f"{where} cannot be read: {exc}"
    datacenter = primary.raw.get("datacenter")
    if not isinstance(datacenter, str) or not datacenter:
        return None, f"{where} sets no consul-federation:datacenter"
    return datacenter, None


def _read_side(project: str, names: list[str]) -> tuple[dict[str, stacks.StackFile], dict[str, str], set[str]]:
    """(stack -> its file, stack -> why it cannot be read, stacks without a file) for one side."""
    found, errors, absent = {}, {}, set()
    for name in names:
        try:
            found[name] = stacks.read_stack(project, name)
        except FileNotFoundError:
            absent.add(name)
        except stacks.StackFileError as exc:
            errors[name] = str(exc)
    return found, errors, absent


def _requests(project: str, files: dict[str, stacks.StackFile], hidden: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """stack -> its evaluation request, as components/evaluation.py's contract describes it,
    without the `hidden` settings (set with --secret on either side: the diff has no passphrase,
    and would show them if it had)."""
    requests = {}
    for name, stack in files.items():
        datacenter, problem = _primary_datacenter(project, stack)
        settings = {key: value for key, value in stack.raw.items() if key not in hidden.get(name, ())}
        requests[name] = {"settings": settings, "primary_datacenter": datacenter,
                          "primary_problem": problem, "auth_host_placeholder": AUTH_HOST_PLACEHOLDER}
    return requests


def _start_evaluation(project: str, requests: dict[str, dict[str, Any]]) -> subprocess.Popen:
    """A fresh interpreter that imports `project`'s components (-P: not this package's dir)."""
    process = subprocess.Popen([sys.executable, "-B", "-P", _EVALUATE, project],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdin is not None
    process.stdin.write(json.dumps({"stacks": requests}))
    process.stdin.close()
    return process


def _finish_evaluation(process: subprocess.Popen, side: str) -> dict[str, dict[str, Any]]:
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    process.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        raise RuntimeError(f"{side}: evaluating the stacks failed (exit {process.returncode}):\n{err.strip()}")
    if "error" in answer:
        raise RuntimeError(f"{side}: {answer['error']}")
    return answer["stacks"]


def _evaluated(result: dict[str, Any], charts: render.Charts) -> Evaluated:
    chart = charts.directory(result["chart_version"], result["chart_repo"], result["chart_path"])
    return Evaluated(result["role"], result["chart_version"], result["auth_host_derived"],
                     render.Job.of(chart, result["release"], result["namespace"], result["values"]))


def _render_all(helm: str, jobs: set[render.Job]) -> dict[render.Job, Any]:
    """Every distinct render once, two at a time; a failed render maps to its RenderError."""
    def one(job: render.Job) -> Any:
        try:
            return render.template(helm, job)
        except render.RenderError as exc:
            return exc

    ordered = sorted(jobs, key=lambda j: (j.chart, j.release, j.values_json))
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ordered, pool.map(one, ordered)))


def _compare(stack: StackDiff, rendered: dict[render.Job, Any]) -> None:
    sides = [(label, ev, rendered.get(ev.job)) for label, ev in (("base", stack.base), ("working tree", stack.head))
             if ev is not None]
    stack.errors.extend(f"{label}: {objects}" for label, _, objects in sides
                        if isinstance(objects, Exception))
    if stack.errors:
        return
    if stack.base is not None and stack.head is not None and stack.base.job == stack.head.job:
        return  # the same chart, release and values: the same objects
    old = rendered[stack.base.job] if stack.base is not None else []
    new = rendered[stack.head.job] if stack.head is not None else []
    try:
        stack.changes = objdiff.diff(old, new)
    except objdiff.DuplicateObject as exc:
        stack.errors.append(str(exc))


def _evaluate(result: Result, by_name: dict[str, StackDiff], sides: list[tuple[str, str, str, str]],
              charts: render.Charts) -> list[str]:
    """Each side's stacks evaluated by that side's code (both sides at once) and given a chart;
    problems go to the stack they concern, or to `result` when a whole side fails. Returns each
    missing chart's error once (four times the same helm error said nothing more), for the run."""
    names = list(by_name)
    missing: dict[str, None] = {}
    read = [_read_side(project, names) for _, project, _, _ in sides]
    hidden: dict[str, set[str]] = {}
    for name, stack in by_name.items():
        before, after = ({key: side[0][name].raw[key] for key in side[0][name].secret_keys}
                         if name in side[0] else {} for side in read)
        stack.secrets = {key: before.get(key) != after.get(key) for key in sorted(set(before) | set(after))}
        hidden[name] = set(stack.secrets)
    # A setting that may not be secret is refused by pulumi preview; without its value either
    # side's code would only say that it is missing: such a stack is not evaluated at all.
    refused: set[str] = set()
    for (label, project, attribute, exists), (files, errors, absent) in zip(sides, read):
        for name, error in errors.items():
            by_name[name].errors.append(f"{label}: {error}")
        for name in absent:
            setattr(by_name[name], exists, False)
        for name, stack in files.items():
            messages = [m for m in map(secret_refused, sorted(stack.secret_keys)) if m]
            by_name[name].errors.extend(f"{label}: {message}" for message in messages)
            refused.update([name] if messages else [])
    prepared = []
    for (label, project, attribute, _), (files, _, _) in zip(sides, read):
        evaluated = {name: stack for name, stack in files.items() if name not in refused}
        prepared.append((label, attribute, _start_evaluation(project, _requests(project, evaluated, hidden))))
    for label, attribute, process in prepared:
        try:
            evaluations = _finish_evaluation(process, label)
        except RuntimeError as exc:
            result.errors.append(str(exc))
            continue
        for name, evaluation in evaluations.items():
            if "error" in evaluation:
                by_name[name].errors.append(f"{label}: {evaluation['error']}")
                continue
            try:
                setattr(by_name[name], attribute, _evaluated(evaluation, charts))
            except render.ChartMissing as exc:
                by_name[name].errors.append(f"{label}: no chart {exc.version} (the error above)")
                missing[str(exc)] = None
    return list(missing)


def run_diff(repo: str, base: str, only: Optional[list[str]], charts: render.Charts) -> Result:
    """Evaluate, render and compare every stack (or those in `only`) at `base` and in `repo`'s
    working tree."""
    root = revision.toplevel(repo)
    commit = revision.commit_of(root, base)
    head_label = f"working tree (HEAD {revision.commit_of(root, 'HEAD')[:12]}" + (
        ", with uncommitted changes)" if revision.git(root, "status", "--porcelain").strip() else ")")
    result = Result(f"{base} ({commit[:12]})", head_label, [])
    with tempfile.TemporaryDirectory(prefix="federation-diff-") as base_dir:
        revision.export(root, commit, base_dir)
        names = sorted(set(stacks.stack_names(base_dir)) | set(stacks.stack_names(root)))
        if only:
            result.errors.extend(f"stack {n}: no Pulumi.{n}.yaml at the base or in the working tree"
                                 for n in only if n not in names)
            names = [n for n in names if n in only]
        by_name = {n: StackDiff(n) for n in names}
        result.stacks = list(by_name.values())
        missing_charts = _evaluate(result, by_name, [("base", base_dir, "base", "base_exists"),
                                                     ("working tree", root, "head", "head_exists")], charts)
        if not result.errors:
            # Rendered while the base tree exists: a chartPath inside the repository points into it.
            jobs = {ev.job for s in result.stacks if not s.errors for ev in (s.base, s.head) if ev is not None}
            rendered = _render_all(charts.helm, jobs)
            for stack in result.stacks:
                if not stack.errors:
                    _compare(stack, rendered)
    result.errors.extend(missing_charts)
    return result


def _chart_option(text: str) -> tuple[str, str]:
    version, sep, directory = text.partition("=")
    if not sep or not version or not directory:
        raise argparse.ArgumentTypeError(f"expected VERSION=DIR, got {text!r}")
    return version, directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", help="git revision to compare with (default: origin/main if it exists, else HEAD)")
    parser.add_argument("--stacks", nargs="+", metavar="STACK", help="only these stacks (default: every stack file on either side)")
    parser.add_argument("--markdown", action="store_true", help="Markdown for a pull request comment")
    parser.add_argument("--chart", action="append", type=_chart_option, default=[], metavar="VERSION=DIR",
                        help="render chart VERSION from directory DIR (repeatable)")
    parser.add_argument("--helm", help="helm binary (default: $HELM, else helm on PATH)")
    parser.add_argument("--repo", default=".", help="a directory in the git repository (default: .)")


def run(args: argparse.Namespace) -> int:
    try:
        charts = render.Charts(render.find_helm(args.helm), dict(args.chart))
        base = args.base or revision.default_base(args.repo)
        result = run_diff(args.repo, base, args.stacks, charts)
    except (render.RenderError, revision.GitError) as exc:
        print(f"federation diff: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(report.markdown(result) if args.markdown else report.text(result), end="")
    return result.exit_code
