#!/usr/bin/env bash
# Put the real helm CLI and the pinned Consul Helm charts into the cache (outside the repo).
# Prints HELM=... and CONSUL_CHART_<version>=... (the chart directory holding Chart.yaml).
source "$(dirname "$0")/lib.sh"

HELM_VERSION=3.22.0
# The Consul chart, from the Go module proxy (the only chart source this build can reach).
# Newer charts live in github.com/hashicorp/consul-k8s/charts, which the proxy here refuses (403 for
# every version and commit); the archived chart repository github.com/hashicorp/consul-helm
# (MPL-2.0) is served at v0.32.1. The checksum database has no entry for it, so the module hash
# is pinned here instead: "chart-version module@version h1-hash".
CONSUL_CHARTS=(
  "0.32.1 github.com/hashicorp/consul-helm@v0.32.1 h1:EwNm3+Mnqf4N0RnDNA30Cq/eN/QctMfS6KOoeL13uSs="
)

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

# Uses $chart_version, $chart_module and $chart_sum, set by the loop below.
fetch_chart() {
  local staging=$1 info dir got sum
  # go mod download -json reports failures as JSON on stdout, so keep that off our stdout.
  if ! info=$(GONOSUMDB="${chart_module%@*}" go mod download -json "$chart_module"); then
    log "cannot download $chart_module (chart $chart_version): $info"
    return 1
  fi
  sum=$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$info")
  if [ "$sum" != "$chart_sum" ]; then
    log "$chart_module has hash '$sum', pinned $chart_sum: refusing it"
    return 1
  fi
  dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$info")
  mkdir -p "$staging/consul"
  cp -R "$dir/." "$staging/consul/"
  chmod -R u+w "$staging/consul"  # the module cache is read-only
  got=$(awk '$1 == "version:" { print $2; exit }' "$staging/consul/Chart.yaml")
  if [ "$got" != "$chart_version" ]; then
    log "$chart_module holds chart version '$got', expected $chart_version"
    return 1
  fi
}

# Build everything first so that stdout has either all the lines or none.
build_once helm "$HELM_VERSION" build_helm
for pin in "${CONSUL_CHARTS[@]}"; do
  read -r chart_version chart_module chart_sum <<<"$pin"
  build_once consul-chart "$chart_version" fetch_chart
done
echo "HELM=$(tool_dir helm "$HELM_VERSION")/helm"
for pin in "${CONSUL_CHARTS[@]}"; do
  read -r chart_version _ <<<"$pin"
  echo "CONSUL_CHART_${chart_version//./_}=$(tool_dir consul-chart "$chart_version")/consul"
done
