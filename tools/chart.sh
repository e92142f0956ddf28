#!/usr/bin/env bash
# Put the real helm CLI and the pinned Consul Helm charts into the cache (outside the repo).
# Prints HELM=... and CONSUL_CHART_<version>=... (the chart directory holding Chart.yaml).
#
# Where each pinned chart comes from, first match wins:
#   1. $CONSUL_FEDERATION_CHART_<version> (dots as underscores, e.g. ..._2_0_3): a chart directory
#      or a .tgz. A .tgz must have the pinned sha256; a directory must declare the pinned version.
#   2. ../shared/charts/consul-<version>.tgz beside the repository (what CI has), pinned sha256.
#   3. `helm pull consul --repo $CONSUL_FEDERATION_CHART_REPO` (default: HashiCorp's repository,
#      for machines with internet access), pinned sha256.
# A hash mismatch is an error, never a reason to try the next source.
source "$(dirname "$0")/lib.sh"

HELM_VERSION=3.22.0
CHART_REPO="${CONSUL_FEDERATION_CHART_REPO:-https://helm.releases.hashicorp.com}"
SHARED_CHARTS="$(cd "$(dirname "$0")/.." && pwd)/../shared/charts"
# "version sha256 of consul-<version>.tgz" (hashicorp/consul-k8s release tags; see README).
# Each pin has a key list in components/chart_keys/ (tools/update-chart-keys.sh); the chart tier
# checks that the two agree, and the program supports the chart lines listed there.
CONSUL_CHARTS=(
  "2.0.3 2edcf261931437d4fb4f97f28290e1c76e0468e467234afafbd68bb8636640ac"
  "1.9.11 8201e8a904ed1c22529bde41353d04f05383e249d0dc909c51a6c875a858e14e"
  "1.8.16 039117c4a49f707d12ee565471eb877e0cd8b133dd4998f3d300a318f8e388b7"
  # The newest line whose Consul (1.16.1) is MPL-2.0: the consul tier runs its pods for real.
  "1.2.1 18caae43c75bd3b3e6c4c9e22f87cb9c9bb7961fe72038f4f3d45913524b3525"
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

# chart_version_of DIR -> the version its Chart.yaml declares
chart_version_of() { awk '$1 == "version:" { print $2; exit }' "$1/Chart.yaml"; }

# verify_tgz FILE: the pinned hash, or fail naming both hashes
verify_tgz() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$chart_sha" ]; then
    log "$1 has sha256 $got, but chart $chart_version is pinned to $chart_sha: refusing it"
    return 1
  fi
}

# Uses $chart_version, $chart_sha, $chart_tgz (an override, may be empty) and $helm.
unpack_chart() {
  local staging=$1 tgz=$chart_tgz
  local shared="$SHARED_CHARTS/consul-$chart_version.tgz"
  if [ -n "$tgz" ]; then
    log "chart $chart_version from $tgz"
  elif [ -f "$shared" ]; then
    tgz=$shared
    log "chart $chart_version from $shared"
  else
    log "chart $chart_version: $shared not found; helm pull from $CHART_REPO"
    "$helm" pull consul --repo "$CHART_REPO" --version "$chart_version" --destination "$staging"
    tgz="$staging/consul-$chart_version.tgz"
  fi
  verify_tgz "$tgz"
  tar -xzf "$tgz" -C "$staging"
  rm -f "$staging/consul-$chart_version.tgz"
  if [ "$(chart_version_of "$staging/consul")" != "$chart_version" ]; then
    log "$tgz holds chart $(chart_version_of "$staging/consul"), expected $chart_version"
    return 1
  fi
}

# Build everything first so that stdout has either all the lines or none.
build_once helm "$HELM_VERSION" build_helm
helm="$(tool_dir helm "$HELM_VERSION")/helm"
lines=("HELM=$helm")
for pin in "${CONSUL_CHARTS[@]}"; do
  read -r chart_version chart_sha <<<"$pin"
  override="CONSUL_FEDERATION_CHART_${chart_version//./_}"
  chart_tgz=${!override:-}
  if [ -d "$chart_tgz" ]; then
    # A directory is used in place (a chart being developed): only its version is checked.
    if [ "$(chart_version_of "$chart_tgz")" != "$chart_version" ]; then
      log "$override=$chart_tgz holds chart $(chart_version_of "$chart_tgz"), expected $chart_version"
      exit 1
    fi
    dir=$(cd "$chart_tgz" && pwd)
  elif [ -n "$chart_tgz" ] && [ ! -f "$chart_tgz" ]; then
    log "$override=$chart_tgz is neither a chart directory nor a .tgz"
    exit 1
  else
    [ -z "$chart_tgz" ] || verify_tgz "$chart_tgz"  # even when the cache already holds the chart
    # Keyed by the hash too, so a re-pinned chart is never served from an old cache entry.
    build_once consul-chart "$chart_version-$chart_sha" unpack_chart
    dir="$(tool_dir consul-chart "$chart_version-$chart_sha")/consul"
  fi
  lines+=("CONSUL_CHART_${chart_version//./_}=$dir")
done
printf '%s\n' "${lines[@]}"
