#!/usr/bin/env bash
# Build the pinned Pulumi CLI and its Python language host (from ../shared) into the tool cache.
# Prints PULUMI_BIN_DIR=<dir> on stdout (logs on stderr); a no-op once that version is built.
#
# Why not the releases: only package registries are reachable (no get.pulumi.com, no GitHub).
# Why v3.260.0: it must equal the `pulumi` pin in requirements.txt, and the Go module proxy here
# serves pkg/v3 only at a few versions (..., 3.252.0, 3.260.0, 3.274.0, 3.274.1), of which 3.260.0
# is the newest that PyPI also has.
source "$(dirname "$0")/lib.sh"

PULUMI_VERSION=v3.260.0
# Bump this when the language host's build below changes, so the cache is rebuilt.
HOST_REVISION=3
LDFLAGS="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"

build_pulumi() {
  local out=$1 work gomod
  work=$(mktemp -d)

  # pkg/v3 replaces sdk/v3 with ../sdk, which only works inside the pulumi repo, so build from a
  # throwaway wrapper module that requires pkg/v3 and sdk/v3 at the same version and copies
  # pkg/v3's other (non-local) replace directives.
  gomod=$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  (
    cd "$work"
    go mod init pulumi-build >/dev/null 2>&1
    go mod edit -require="github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" \
      -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
    # single-line and block replace directives, minus the local "=> ../" ones
    awk '/^replace \(/ {b=1; next} b && /^\)/ {b=0; next}
         b {print "replace " $0; next} /^replace / {print}' "$gomod" |
      grep -v '=> \.' >>go.mod || true
    log "compiling pulumi $PULUMI_VERSION"
    go build -ldflags "$LDFLAGS" -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  )
  build_language_host "$out" "$work"

  # The Python side of the host ships inside the sdk/v3 module zip (read-only files there).
  local sdk
  sdk=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/"
  # Python dynamic providers (pulumi.dynamic) run through this script, as in the release archive.
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/"
  "$out/pulumi" version >&2
  rm -rf "$work"
}

# The real host's source (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3,
# which the Go module proxy does not serve at any version) is a pinned tarball in ../shared
# (its README: git archive of pulumi/pulumi v3.259.0). Its go.mod replaces pkg/v3 and sdk/v3 with
# paths inside the pulumi repo: those are dropped and both required at the CLI's version. The real
# host is what runs Python policy packs (RunPlugin) and discovers plugins from installed packages.
LANGUAGE_HOST_SRC="$SHARED/pulumi-language-python/pulumi-language-python-3.259.0-src.tar.gz"
LANGUAGE_HOST_SHA=83ac9e32633e31a6c090747c2a982fea40598871449e0f5146c2eb0ed5d9c445

build_language_host() {
  local out=$1 work=$2/language-host
  unpack_pinned "$LANGUAGE_HOST_SRC" "$LANGUAGE_HOST_SHA" "$work"
  (
    cd "$work"/pulumi-*/sdk/python/cmd/pulumi-language-python
    go mod edit -dropreplace=github.com/pulumi/pulumi/pkg/v3 -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
      -require="github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" \
      -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
    log "compiling pulumi-language-python (pulumi $PULUMI_VERSION's modules)"
    go build -ldflags "$LDFLAGS" -o "$out/pulumi-language-python" .
  )
}

build_once pulumi "$PULUMI_VERSION-host$HOST_REVISION" build_pulumi
echo "PULUMI_BIN_DIR=$(tool_dir pulumi "$PULUMI_VERSION-host$HOST_REVISION")"
