#!/usr/bin/env bash
# Measure the figures quoted in CONTRIBUTING.md, 'Figures'. Not a test: it prints numbers.
#   bench/run.sh          warm tool check, each test tier, each Pulumi command of the integration tier
#   bench/run.sh --cold   also a cold build of every tool into a scratch cache (about an hour on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/venv.sh

seconds() { local start=$SECONDS; "$@" >/dev/null 2>&1; echo $((SECONDS - start)); }

if [ "${1:-}" = --cold ]; then
  scratch=$(mktemp -d)
  for group in chart pulumi providers cluster; do
    echo "cold build, $group: $(CONSUL_FEDERATION_CACHE=$scratch seconds bash tools/ensure.sh "$group") s"
  done
  rm -rf "$scratch"
fi
echo "warm tool check (tools/ensure.sh all): $(seconds bash tools/ensure.sh all) s"

for tier in unit chart; do
  echo "tier $tier: $(seconds .venv/bin/python -m pytest -q "tests/$tier") s"
done

timings=$(mktemp)
start=$SECONDS
CONSUL_FEDERATION_TIMINGS=$timings .venv/bin/python -m pytest -q tests/integration >/dev/null 2>&1 || echo "integration tier FAILED"
echo "tier integration: $((SECONDS - start)) s"
.venv/bin/python - "$timings" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    print(f"  pulumi {t['command']:<45} {t['stack'] or '':<4} {t['seconds']:>7.1f} s")
PY
rm -f "$timings"
