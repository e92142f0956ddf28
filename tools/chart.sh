#!/usr/bin/env bash
# Put the real helm CLI and the pinned Consul Helm charts into the cache (outside the repo).
# Prints HELM=... and CONSUL_FEDERATION_CHART_<version>=... (the chart directory holding
# Chart.yaml): the variable federation/chart_source.py reads first, so the lines, exported, name
# the same charts everywhere. Where each chart comes from (an override, ../shared/charts, helm
# pull; every archive sha256-pinned in tools/consul-charts.pins) is that module's rule.
source "$(dirname "$0")/lib.sh"

HELM_VERSION=3.22.0

build_helm() {
  local staging=$1 src kube_minor
  src=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  # Stamp what helm's Makefile stamps: without it `helm version` says "v3.22" and helm assumes
  # Kubernetes v1.20, which fails the Consul chart's kubeVersion ">=1.22.0-0" in `helm template`.
  # Upstream derives the Kubernetes version from the client-go it builds with (v0.X -> 1.X).
  kube_minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$src/go.mod")
  local pkg=helm.sh/helm/v3
  (cd "$staging" && GOBIN="$staging" go install -ldflags "-s -w \
    -X $pkg/internal/version.version=v$HELM_VERSION \
    -X $pkg/internal/version.gitTreeState=clean \
    -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$kube_minor \
    -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$kube_minor" \
    "$pkg/cmd/helm@v$HELM_VERSION")
  "$staging/helm" version --short >&2
}

build_once helm "$HELM_VERSION" build_helm
helm="$(tool_dir helm "$HELM_VERSION")/helm"
# Either every line or none: the module prints only once every chart is in place.
charts=$(cd "$(dirname "$0")/.." && CONSUL_FEDERATION_CACHE="$CF_CACHE" python3 -m federation.chart_source --helm "$helm")
printf 'HELM=%s\n%s\n' "$helm" "$charts"
