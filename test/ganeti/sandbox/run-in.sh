#!/bin/bash
# Run a command inside the sandbox netns with the clean environment, e.g.
#   test/ganeti/sandbox/run-in.sh gnt-os diagnose
# Extra variables can be passed the env way: run-in.sh FOO=bar cmd ...
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if (($# == 0)); then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi
sandbox_require_root
sandbox_netns_exists || sandbox_die "netns $SANDBOX_NETNS does not exist: run $HERE/setup.sh first"
# Only fds 0-2 are passed on (see sandbox_exec_clean in lib.sh).
sandbox_exec_clean "$@"
