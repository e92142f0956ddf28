"""The Helm values of stacks, computed by the program's own code of one project directory.

Run as a script in a fresh interpreter (``python -P evaluate.py PROJECT_DIR``) so that the
``components`` package imported is the one of that directory: the base revision's code for the
base side, the working tree's for the other. Stdlib only besides ``components``, for the same
reason. Reads ``{"stacks": [{"name", "raw", "primary_datacenter", "primary_problem"}]}`` on stdin,
writes ``{"stacks": {name: {...} | {"error": text}}}`` or ``{"error": text}`` on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

# What a secondary's k8sAuthMethodHost is rendered as when the stack does not set it: the program
# derives it at deploy time from the cluster, which the diff does not talk to.
AUTH_HOST_PLACEHOLDER = "https://<derived-at-deploy>"


def _decode_objects(raw: dict[str, Any], object_keys: tuple[str, ...]) -> dict[str, Any]:
    """Object settings given as JSON text, decoded as ``Config.get_object`` does."""
    decoded = dict(raw)
    for key in object_keys:
        if isinstance(decoded.get(key), str):
            try:
                decoded[key] = json.loads(decoded[key])
            except ValueError:
                pass  # not JSON: parse_config reports that it is not an object
    return decoded


def evaluate(request: dict[str, Any], config: Any, helm_values: Any) -> dict[str, Any]:
    """One stack: its chart, release and values, or the error the program would raise."""
    raw = _decode_objects(request["raw"], getattr(config, "OBJECT_KEYS", ()))
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
        auth_host = cfg.k8s_auth_method_host or AUTH_HOST_PLACEHOLDER
        values = helm_values.secondary_values(cfg, request["primary_datacenter"], auth_host)
    return {
        "role": cfg.role,
        "chart_version": cfg.chart_version,
        "chart_repo": cfg.chart_repo,
        "chart_path": cfg.chart_path,
        "release": cfg.release_name,
        "namespace": cfg.namespace,
        "auth_host_derived": auth_host == AUTH_HOST_PLACEHOLDER,
        "values": values,
    }


def main() -> int:
    project = os.path.abspath(sys.argv[1])
    sys.path.insert(0, project)
    os.chdir(project)  # a relative chartPath is relative to the project, as under `pulumi up`
    requests = json.load(sys.stdin)["stacks"]
    try:
        from components import config, helm_values
    except Exception as exc:  # the code of that revision does not import: nothing can be computed
        json.dump({"error": f"the program's components do not import: {type(exc).__name__}: {exc}"},
                  sys.stdout)
        return 1
    if os.path.dirname(os.path.dirname(os.path.abspath(config.__file__))) != project:
        # No components/ in this tree, and another one on PYTHONPATH: not this revision's code.
        json.dump({"error": f"no components package in {project} (imported {config.__file__})"}, sys.stdout)
        return 1
    results = {}
    for request in requests:
        try:
            results[request["name"]] = evaluate(request, config, helm_values)
        except Exception as exc:  # a bug in that revision's value code, reported per stack
            results[request["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump({"stacks": results}, sys.stdout, default=str)  # a YAML date in helmValues
    return 0


if __name__ == "__main__":
    sys.exit(main())
