#!/usr/bin/env bash
# Put actionlint (the GitHub Actions workflow checker) into the cache (outside the repo), built
# from its Go module through the module proxy. Prints ACTIONLINT=<path>.
# actionlint checks the shell of `run:` steps with shellcheck only when shellcheck is on PATH.
source "$(dirname "$0")/lib.sh"

ACTIONLINT_VERSION=1.7.12

build_actionlint() {
  local staging=$1
  (cd "$staging" && GOBIN="$staging" go install -ldflags "-s -w" \
    "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION")
  "$staging/actionlint" -version >&2
}

build_once actionlint "$ACTIONLINT_VERSION" build_actionlint
echo "ACTIONLINT=$(tool_dir actionlint "$ACTIONLINT_VERSION")/actionlint"
