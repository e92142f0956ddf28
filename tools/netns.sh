#!/usr/bin/env bash
# Run a command in a network namespace of its own (only loopback, no route anywhere): the local
# clusters of tests/consul and the demo give their pods addresses there, never on the machine's
# own network. Needs root: as another user (a hosted CI runner) it goes through `sudo -n`,
# keeping the environment and HOME, so the tool cache and .venv are the same.
#   tools/netns.sh CMD [ARG...]
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: tools/netns.sh CMD [ARG...]" >&2; exit 2; }
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null \
    || { echo "tools/netns.sh: needs root, or sudo without a password" >&2; exit 2; }
  as_root=(sudo -n -E "HOME=$HOME" "PATH=$PATH")
fi
exec "${as_root[@]}" unshare --net -- sh -c 'ip link set lo up && exec "$@"' netns "$@"
