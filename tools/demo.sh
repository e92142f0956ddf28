#!/usr/bin/env bash
# Watch the federation come up on this machine: two local control planes, `python -m federation up`
# with the real Pulumi engine and Consul chart, then `verify`. Ctrl-C tears it down.
#   tools/demo.sh            # stays up until Ctrl-C
#   tools/demo.sh --down     # exits after verify
# On a fresh machine the first run builds the real tools (about an hour on 2 cores; cached after).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/venv.sh
echo "[demo] checking (or building) the real tools: tools/ensure.sh all" >&2
bash tools/ensure.sh all >/dev/null
exec .venv/bin/python -m federation demo "$@"
