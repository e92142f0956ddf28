#!/usr/bin/env bash
# Make sure the pinned real tools exist in the cache, building or downloading what is missing.
# Usage: tools/ensure.sh GROUP...   GROUP: chart (helm, Consul charts), pulumi (CLI, Python host),
# providers (kubernetes, random), cluster (etcd, kube-apiserver), actionlint, engine
# (pulumi+providers), consul (Consul 1.16.1, consul-k8s-control-plane, consul-dataplane, envoy),
# postgres (PostgreSQL 15 from the Debian packages: a shared backend for the integration tier), all
# Prints KEY=/absolute/path lines on stdout (logs go to stderr); idempotent and safe to run
# concurrently (per-tool locks).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- all
for group in "$@"; do
  case "$group" in
    chart|pulumi|providers|cluster|actionlint|consul|postgres) bash "$here/$group.sh" ;;
    engine) for g in pulumi providers; do bash "$here/$g.sh"; done ;;
    # the chart and integration tiers' tools first (they wait on them), the consul tier's last: on a cold
    # cache Consul builds while the integration tier runs; postgres (a 30 MB download, seconds) last, so
    # that a machine whose apt cannot reach the archive still builds the rest
    all) for g in chart cluster pulumi providers actionlint consul postgres; do bash "$here/$g.sh"; done ;;
    *) echo "unknown tool group: $group (chart, pulumi, providers, cluster, consul, postgres, engine, all)" >&2; exit 2 ;;
  esac
done
