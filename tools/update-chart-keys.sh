#!/usr/bin/env bash
# Regenerate components/chart_keys/ from the pinned charts (run after changing a chart pin in
# tools/consul-charts.pins; the chart tier fails while the shipped lists differ from the charts).
set -euo pipefail
cd "$(dirname "$0")/.."
out=components/chart_keys
rm -f "$out"/consul-*.txt
while IFS='=' read -r key dir; do
  case "$key" in
    CONSUL_FEDERATION_CHART_*) version=${key#CONSUL_FEDERATION_CHART_}; version=${version//_/.}
                    .venv/bin/python tools/gen_chart_keys.py "$dir" > "$out/consul-$version.txt"
                    echo "wrote $out/consul-$version.txt" >&2 ;;
  esac
done < <(bash tools/ensure.sh chart)
