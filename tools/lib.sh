# Shared helpers for the tool scripts. Sourced, never run.
# Everything built or downloaded lives under $CF_CACHE (outside the repo), one directory per
# tool and version, published atomically with a .done marker so that re-runs are no-ops.
set -euo pipefail

CF_CACHE="${CONSUL_FEDERATION_CACHE:-$HOME/.cache/consul-federation}"
export GOMODCACHE="$CF_CACHE/go/mod"
export GOCACHE="$CF_CACHE/go/build"
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED="${CGO_ENABLED:-0}"
mkdir -p "$CF_CACHE" "$GOMODCACHE" "$GOCACHE"

log() { echo "[tools] $*" >&2; }

# tool_dir NAME VERSION -> the directory a tool version is published in
tool_dir() { echo "$CF_CACHE/$1/$2"; }

# is_built NAME VERSION -> true when that version was published completely
is_built() { [ -f "$(tool_dir "$1" "$2")/.done" ]; }

# build_once NAME VERSION FUNCTION: run FUNCTION STAGING_DIR under a per-tool lock unless the
# version is already published; the staging dir is renamed into place only on success.
build_once() {
  local name=$1 version=$2 fn=$3 dest staging
  dest=$(tool_dir "$name" "$version")
  mkdir -p "$CF_CACHE/locks"
  exec {lockfd}>"$CF_CACHE/locks/$name-$version.lock"
  flock "$lockfd"
  if [ ! -f "$dest/.done" ]; then
    staging="$dest.tmp.$$"
    rm -rf "$staging"
    mkdir -p "$staging"
    local started=$SECONDS
    log "building $name $version (cold)"
    # On failure set -e ends the script; the trap removes the half-built staging dir.
    trap 'rm -rf "'"$staging"'"' EXIT
    "$fn" "$staging"
    trap - EXIT
    touch "$staging/.done"
    rm -rf "$dest"
    mv "$staging" "$dest"
    log "built $name $version in $((SECONDS - started))s"
  fi
  exec {lockfd}>&-
}

# The shared sources (../shared next to the repo): what the module proxy does not serve.
SHARED="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared"

# unpack_pinned TARBALL SHA DEST: unpack a shared source tarball after checking its hash
unpack_pinned() {
  local got
  [ -f "$1" ] || { log "missing $1 (the shared sources, see its README)"; return 1; }
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    log "$1 has sha256 $got, pinned is $2: refusing it"
    return 1
  fi
  mkdir -p "$3"
  tar -xzf "$1" -C "$3"
}
