#!/usr/bin/env bash
# Build a real, pinned etcd and kube-apiserver from Go modules into the tool cache (outside the
# repo) and print where they are:
#   ETCD=/abs/path/etcd
#   KUBE_APISERVER=/abs/path/kube-apiserver
# Logs go to stderr. Idempotent: a warm re-run only takes the per-tool locks and checks the
# .done markers (see lib.sh build_once). Cold build times: CONTRIBUTING.md, "Figures".
#
# kube-apiserver: k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces every
# k8s.io/* staging module with ./staging/...), so a throw-away wrapper module is generated in
# the staging dir that requires k8s.io/kubernetes and replaces each staging module with its
# published v0.MINOR.PATCH release. The version is stamped with the same -X ldflags as
# hack/lib/version.sh so /version and discovery report e.g. v1.35.4 (the Consul chart
# declares kubeVersion >=1.22).
# etcd: go.etcd.io/etcd/server/v3 has its own main package; its go.mod has replace lines too,
# so it is built from a wrapper module as well (replace lines of dependencies are ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/lib.sh
source "$here/lib.sh"
export GOWORK=off

# Kubernetes 1.35 ships with etcd 3.6.x (k8s.io/kubernetes v1.35.4 pins client v3.6.5);
# 3.6.16 is the newest 3.6 patch on the proxy. Both build with Go >= 1.26.0.
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16

build_etcd() {
  local out=$1 src="$1/build"
  mkdir -p "$src"
  cat >"$src/go.mod" <<EOF
module consul-federation.local/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  (
    cd "$src"
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  )
  "$out/etcd" --version >&2
}

build_kube_apiserver() {
  local out=$1 src="$1/build" kmod minor staging_version date
  mkdir -p "$src"
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  staging_version="v0.${K8S_VERSION#v1.}"          # v1.35.4 -> v0.35.4
  # The upstream go.mod lists the staging modules as `k8s.io/X => ./staging/src/k8s.io/X`.
  kmod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$kmod" ] || { log "cannot find go.mod of k8s.io/kubernetes@$K8S_VERSION"; return 1; }
  date=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"Time": "\(.*\)",\{0,1\}$/\1/p')
  {
    echo "module consul-federation.local/kube-apiserver-build"
    echo
    echo "go $(sed -n 's/^go //p' "$kmod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's|^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*$|\1|p' "$kmod" |
      while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$src/go.mod"
  grep -q "k8s.io/apiserver => k8s.io/apiserver $staging_version" "$src/go.mod" ||
    { log "no staging replace lines found in $kmod"; return 1; }

  local pkg ldflags=(-s -w)
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=(
      "-X '$pkg.gitVersion=$K8S_VERSION'"
      "-X '$pkg.gitMajor=1'"
      "-X '$pkg.gitMinor=$minor'"
      "-X '$pkg.gitCommit='"
      "-X '$pkg.gitTreeState=clean'"
      "-X '$pkg.buildDate=${date:-1970-01-01T00:00:00Z}'"
    )
  done
  (
    cd "$src"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
    # Same tags as hack/lib/golang.sh; static like the release binaries (CGO_ENABLED=0 in lib.sh).
    go build -trimpath -tags selinux,notest -ldflags "${ldflags[*]}" \
      -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  )
  "$out/kube-apiserver" --version >&2
}

build_once etcd "$ETCD_VERSION" build_etcd >&2
build_once kube-apiserver "$K8S_VERSION" build_kube_apiserver >&2

echo "ETCD=$(tool_dir etcd "$ETCD_VERSION")/etcd"
echo "KUBE_APISERVER=$(tool_dir kube-apiserver "$K8S_VERSION")/kube-apiserver"
