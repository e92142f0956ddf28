#!/usr/bin/env bash
# The one command that sets up and runs every test tier: unit, chart, integration.
#   tools/test.sh                 # everything (what CI runs)
#   tools/test.sh -m unit         # extra arguments go to pytest
# It creates .venv from requirements-dev.txt, starts building the real tools (helm, charts,
# Pulumi CLI and providers, etcd, kube-apiserver) in the background into the cache outside the
# repo, and runs the tiers in order; each tier's fixtures wait for the tools they need.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[test] installing Python dependencies into .venv" >&2
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

cache="${CONSUL_FEDERATION_CACHE:-$HOME/.cache/consul-federation}"
mkdir -p "$cache"
tools_log="$cache/ensure-all.log"
if [ "${SKIP_TOOL_BUILD:-}" != 1 ]; then
  echo "[test] building missing tools in the background (log: $tools_log)" >&2
  bash tools/ensure.sh all >/dev/null 2>"$tools_log" &
  builder=$!
  trap 'kill "$builder" 2>/dev/null || true' EXIT
fi

if [ $# -eq 0 ]; then
  set -- tests/unit tests/chart tests/integration
fi
.venv/bin/python -m pytest "$@"
