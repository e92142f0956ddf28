#!/usr/bin/env bash
# Watch a real federation form on this machine: two local clusters whose pods run for real
# (Consul 1.16.1, the chart's control-plane binaries, mesh gateways with Envoy), `python -m
# federation up` with the real Pulumi engine and chart 1.2.1, `verify`, and the primary's
# `consul members -wan`. Ctrl-C tears it down.
#   tools/demo.sh            # stays up until Ctrl-C
#   tools/demo.sh --down     # exits after verify
# Needs root (the clusters live in a network namespace of their own, tools/netns.sh). On a fresh
# machine the first run builds the real tools (most of an hour on 2 cores, see CONTRIBUTING.md,
# "Figures"; cached after).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/venv.sh
echo "[demo] checking (or building) the real tools: tools/ensure.sh chart cluster consul engine" >&2
# outside the namespace: it has no network for a build
bash tools/ensure.sh chart cluster consul engine >/dev/null
exec tools/netns.sh .venv/bin/python -m localcluster.demo "$@"
