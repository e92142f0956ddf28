"""The Releases of stacks, computed by the program's own code of one project directory.

Run as a script in a fresh interpreter (``python -P evaluate.py PROJECT_DIR``) so that the
``components`` package imported is the one of that directory: the base revision's code for the
base side, the working tree's for the other. Stdlib only besides ``components``, for the same
reason. Reads ``{"stacks": {name: request}}`` on stdin (requests as components/evaluation.py
describes them), writes ``{"contract": n, "stacks": {name: answer}}`` or ``{"error": text}``.

The code of another revision is reached only through a versioned contract, so that refactoring
``components/`` never breaks the diff of a pull request whose base predates the refactor:

  1  ``components.evaluation.evaluate_stack`` (that module's ``CONTRACT = 1``)
  0  revisions from before components/evaluation.py (main up to 8d5a18b): ``contract0_evaluate``,
     an adapter frozen as those revisions are

A revision that declares another contract is refused with the reason, never half understood.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Optional

CONTRACT = 1  # what components/evaluation.py must declare; 0 is the revisions without it


def contract0_evaluate(request: dict[str, Any], config: Any, helm_values: Any) -> dict[str, Any]:
    """Contract 0, FROZEN: one stack through the internals of a revision older than
    components/evaluation.py (``config.parse_config``, ``config.OBJECT_KEYS`` where it exists,
    ``helm_values.primary_values(cfg)`` and ``secondary_values(cfg, datacenter, host)``).

    Those revisions never change, so neither does this: do not edit it when refactoring
    components/ (components/evaluation.py is what changes with the program). The chart and unit
    tiers pin it against the first and the last revision before the seam (fc96c93, 8d5a18b).
    """
    raw = dict(request["settings"])
    for key in getattr(config, "OBJECT_KEYS", ()):  # object settings as JSON text, as get_object
        if isinstance(raw.get(key), str):
            try:
                raw[key] = json.loads(raw[key])
            except ValueError:
                pass  # not JSON: parse_config reports that it is not an object
    try:
        cfg = config.parse_config(raw)
    except config.ConfigError as exc:
        return {"error": str(exc)}
    auth_host: Optional[str] = None
    if cfg.is_primary:
        values = helm_values.primary_values(cfg)
    elif request["primary_datacenter"] is None:
        return {"error": request["primary_problem"]}
    else:
        auth_host = cfg.k8s_auth_method_host or request["auth_host_placeholder"]
        values = helm_values.secondary_values(cfg, request["primary_datacenter"], auth_host)
    return {
        "role": cfg.role,
        "chart_version": cfg.chart_version,
        "chart_repo": cfg.chart_repo,
        "chart_path": cfg.chart_path,
        "release": cfg.release_name,
        "namespace": cfg.namespace,
        "auth_host_derived": auth_host == request["auth_host_placeholder"],
        "values": values,
    }


class Refused(Exception):
    """This directory's code cannot be evaluated (the message says why)."""


def entry_point(project: str) -> tuple[int, Callable[[dict[str, Any]], dict[str, Any]]]:
    """(contract, the function answering one request) of the components package in `project`,
    which must be first on sys.path."""
    try:
        seam = importlib.util.find_spec("components.evaluation") is not None
        if not seam:
            from components import config, helm_values
            contract, module = 0, config
            answer = functools.partial(contract0_evaluate, config=config, helm_values=helm_values)
        else:
            from components import evaluation
            contract, module = getattr(evaluation, "CONTRACT", None), evaluation
            answer = getattr(evaluation, "evaluate_stack", None)
    except Exception as exc:  # the code of that revision does not import: nothing can be computed
        raise Refused(f"the program's components do not import: {type(exc).__name__}: {exc}")
    if os.path.dirname(os.path.dirname(os.path.abspath(module.__file__))) != project:
        # No components/ in this tree, and another one on PYTHONPATH: not this revision's code.
        raise Refused(f"no components package in {project} (imported {module.__file__})")
    if seam and contract != CONTRACT:
        raise Refused(f"{module.__file__} declares CONTRACT = {contract!r}, and this diff knows only "
                      f"contract {CONTRACT} (and 0, the revisions before it): run the diff from a "
                      "revision that knows it")
    return contract, answer


def main() -> int:
    project = os.path.abspath(sys.argv[1])
    sys.path.insert(0, project)
    os.chdir(project)  # a relative chartPath is relative to the project, as under `pulumi up`
    requests = json.load(sys.stdin)["stacks"]
    try:
        contract, evaluate_stack = entry_point(project)
    except Refused as exc:
        json.dump({"error": str(exc)}, sys.stdout)
        return 1
    results = {}
    for name, request in requests.items():
        try:
            results[name] = evaluate_stack(request)
        except Exception as exc:  # a bug in that revision's value code, reported per stack
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump({"contract": contract, "stacks": results}, sys.stdout, default=str)  # a YAML date in helmValues
    return 0


if __name__ == "__main__":
    sys.exit(main())
