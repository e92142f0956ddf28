#!/usr/bin/env bash
# Put PostgreSQL 15 (server, initdb, psql) into the tool cache, from the distribution's own
# packages: `apt-get download` of the pinned version, unpacked with `dpkg-deb -x` (nothing is
# installed on the machine, no root needed unless the package lists are stale). Prints:
#   POSTGRES_BIN_DIR=<dir>   initdb, postgres, pg_ctl, pg_isready, psql (wrappers that find the
#                            unpacked libraries; initdb finds the real postgres next to itself)
# Logs go to stderr. Idempotent (lib.sh build_once). The integration tier runs a throw-away server
# from it as a shared Pulumi backend (tests/integration/postgres_server.py); the operator command
# reads stack locks with psql (federation/recovery.py).
#
# Why these packages: postgresql-15 and postgresql-client-15 are the binaries; libpq5, libicu72,
# libxml2 and libreadline8 are the libraries they link that a machine without PostgreSQL may lack
# (the rest, libssl3, libgssapi-krb5-2, libzstd1 and the like, come with any Debian that has git
# and Python). The unpacked binaries are checked with ldd: a library missing here is named.
source "$(dirname "$0")/lib.sh"

# Debian 12's PostgreSQL 15 as `apt-cache policy postgresql-15` offers it (bookworm-security).
# When the archive drops it (a newer security release), bump it to what apt-cache madison shows.
POSTGRES_DEB_VERSION=15.20-0+deb12u1
# Bump when the packages below or the wrappers change, so that the cache is rebuilt.
REVISION=1
LIBRARY_PACKAGES="libpq5 libicu72 libxml2 libreadline8"
PROGRAMS="initdb postgres pg_ctl pg_isready psql"

# fetch_debs DIR: the packages' .deb files into DIR
fetch_debs() {
  # shellcheck disable=SC2086 # a list of package names
  (cd "$1" && apt-get download -q "postgresql-15=$POSTGRES_DEB_VERSION" \
    "postgresql-client-15=$POSTGRES_DEB_VERSION" $LIBRARY_PACKAGES)
}

build_postgres() {
  local out=$1 work deb multiarch missing="" program
  work=$(mktemp -d)
  # apt-get writes the .debs into the working directory (its _apt sandbox user cannot, which it
  # only warns about).
  if ! fetch_debs "$work" >&2 2>"$work/apt.err"; then
    cat "$work/apt.err" >&2
    if [ "$(id -u)" = 0 ]; then
      log "apt-get download failed: refreshing the package lists (apt-get update) and trying again"
      apt-get update -q >&2 || true
    fi
    if ! fetch_debs "$work" >&2; then
      log "postgresql-15 $POSTGRES_DEB_VERSION is not offered by apt here (as root, apt-get update first); it offers:"
      apt-cache madison postgresql-15 >&2 || true
      log "bump POSTGRES_DEB_VERSION in tools/postgres.sh to one of those"
      rm -rf "$work"
      return 1
    fi
  fi
  for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$out/root"
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$out/PACKAGES"
  done
  multiarch=$(cd "$out/root/usr/lib" && ls -d ./*-linux-gnu* | head -1)
  multiarch=${multiarch#./}
  mkdir -p "$out/bin"
  for program in $PROGRAMS; do
    cat >"$out/bin/$program" <<EOF
#!/bin/sh
# The unpacked $program with the unpacked libraries first (tools/postgres.sh).
root=\$(cd "\$(dirname "\$0")/../root" && pwd)
LD_LIBRARY_PATH="\$root/usr/lib/$multiarch\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$root/usr/lib/postgresql/15/bin/$program" "\$@"
EOF
    chmod 0755 "$out/bin/$program"
    missing+=$(LD_LIBRARY_PATH="$out/root/usr/lib/$multiarch" ldd "$out/root/usr/lib/postgresql/15/bin/$program" |
      awk '/not found/ {print " " $1}')
  done
  rm -rf "$work"
  if [ -n "$missing" ]; then
    log "shared libraries missing on this machine:$missing (add their packages to LIBRARY_PACKAGES)"
    return 1
  fi
  "$out/bin/postgres" --version >&2
  "$out/bin/psql" --version >&2
}

build_once postgres "$POSTGRES_DEB_VERSION-r$REVISION" build_postgres
echo "POSTGRES_BIN_DIR=$(tool_dir postgres "$POSTGRES_DEB_VERSION-r$REVISION")/bin"
