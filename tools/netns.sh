#!/usr/bin/env bash
# Run a command in a network namespace of its own (only loopback, no route anywhere): the local
# clusters of tests/consul and the demo give their pods addresses there, never on the machine's
# own network. Needs root (or user namespaces).   tools/netns.sh CMD [ARG...]
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: tools/netns.sh CMD [ARG...]" >&2; exit 2; }
exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' netns "$@"
