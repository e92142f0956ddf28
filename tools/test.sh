#!/usr/bin/env bash
# The one command that sets up and runs every test tier: unit, chart, integration, consul.
#   tools/test.sh                 # everything (what CI runs)
#   tools/test.sh -m unit         # extra arguments go to pytest
# The consul tier (tests/consul: chart 1.2.1's pods run for real) needs root and runs in a
# network namespace of its own (tools/netns.sh), after the others.
# It creates .venv from requirements-dev.txt and runs the tiers in order. The real tools (helm,
# the chart, Pulumi CLI and providers, etcd, kube-apiserver) are built into the cache outside the
# repo by tools/ensure.sh, idempotently: a warm cache makes that a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/venv.sh

if [ $# -eq 0 ]; then
  # Every tier: start the slow tool builds now, so they overlap the unit and chart tiers (each
  # tier's fixtures then wait on the per-tool locks for what they need).
  cache="${CONSUL_FEDERATION_CACHE:-$HOME/.cache/consul-federation}"
  mkdir -p "$cache"
  echo "[test] building missing tools in the background (log: $cache/ensure-all.log)" >&2
  setsid bash tools/ensure.sh all >/dev/null 2>"$cache/ensure-all.log" &
  builder=$!
  trap 'kill -- -"$builder" 2>/dev/null || true' EXIT
  .venv/bin/python -m pytest tests/unit tests/chart tests/integration
  # Built outside the namespace (it has no network); a no-op once the builder above is done.
  bash tools/ensure.sh chart cluster consul engine >/dev/null
  exec tools/netns.sh .venv/bin/python -m pytest tests/consul
fi
.venv/bin/python -m pytest "$@"
