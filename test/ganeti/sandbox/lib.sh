# shellcheck shell=bash
# Shared settings and helpers for the Ganeti sandbox scripts (sourced by
# setup.sh, teardown.sh and run-in.sh; not meant to be run directly).
#
# Everything Ganeti-related lives inside the network namespace $SANDBOX_NETNS.
# What setup.sh created is recorded in $SANDBOX_STATE_FILE so that teardown.sh
# undoes exactly that and nothing else.

SANDBOX_NETNS=gnt
SANDBOX_BRIDGE=gntbr0
SANDBOX_NODE_IP=198.51.100.10
SANDBOX_PREFIXLEN=24
SANDBOX_NODE_NAME=node1.gnt.test
SANDBOX_CLUSTER_NAME=cluster.gnt.test
SANDBOX_CLUSTER_IP=198.51.100.100
SANDBOX_FILE_STORAGE_DIR=/srv/ganeti/file-storage
SANDBOX_FILE_STORAGE_PATHS=/etc/ganeti/file-storage-paths
SANDBOX_ETC_NETNS=/etc/netns/$SANDBOX_NETNS
SANDBOX_STATE_DIR=/run/snf-image-ganeti-sandbox
SANDBOX_STATE_FILE=$SANDBOX_STATE_DIR/state
SANDBOX_SSHD_CONFIG=$SANDBOX_STATE_DIR/sshd_config
SANDBOX_SSHD_PIDFILE=$SANDBOX_STATE_DIR/sshd.pid
SANDBOX_LOCK=$SANDBOX_STATE_DIR/lock
SANDBOX_PACKAGES=(ganeti openssh-server)
GANETI_CONFIG_DATA=/var/lib/ganeti/config.data
GANETI_DAEMON_UTIL=/usr/lib/ganeti/daemon-util

# The environment every command inside the netns runs with. Ganeti's
# import/export scripts inherit ganeti-noded's environment, so the daemons
# must be started from this clean environment, never from a caller's shell.
SANDBOX_CLEAN_ENV=(env -i
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  LANG=C.UTF-8 HOME=/root TERM=dumb)

sandbox_log() { printf '[ganeti-sandbox] %s\n' "$*" >&2; }
sandbox_die() { sandbox_log "ERROR: $*"; exit 1; }

sandbox_now() { date +%s.%N; }
# sandbox_elapsed START -> seconds since START with one decimal
sandbox_elapsed() { awk -v s="$1" -v e="$(sandbox_now)" 'BEGIN { printf "%.1f", e - s }'; }

# sandbox_timed LABEL CMD... : run CMD, print how long it took (keeps its status)
sandbox_timed() {
  local label=$1; shift
  local t0 rc=0
  t0=$(sandbox_now)
  "$@" || rc=$?
  sandbox_log "timing: $label $(sandbox_elapsed "$t0") s$( ((rc)) && echo " (exit $rc)")"
  return "$rc"
}

sandbox_require_root() {
  [[ $(id -u) -eq 0 ]] || sandbox_die "must run as root"
}

# One sandbox script at a time.
sandbox_lock() {
  mkdir -p "$SANDBOX_STATE_DIR"
  exec 9>"$SANDBOX_LOCK"
  flock -n 9 && return 0
  local p holders=()
  for p in /proc/[0-9]*; do
    [[ $p == "/proc/$$" ]] && continue
    if [[ $(ls -l "$p/fd" 2>/dev/null) == *" -> $SANDBOX_LOCK"* ]]; then
      holders+=("${p#/proc/}($(cat "$p/comm" 2>/dev/null))")
    fi
  done
  sandbox_log "waiting up to 600 s for $SANDBOX_LOCK, open in: ${holders[*]:-?}"
  flock -w 600 9 || sandbox_die "$SANDBOX_LOCK still held by: ${holders[*]:-?}"
}

# --- state file: KEY=VALUE lines -------------------------------------------
sandbox_state_get() {
  [[ -f $SANDBOX_STATE_FILE ]] || return 0
  awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); v = $0 } END { if (v != "") print v }' \
    "$SANDBOX_STATE_FILE"
}

sandbox_state_set() {
  mkdir -p "$SANDBOX_STATE_DIR"
  local tmp=$SANDBOX_STATE_FILE.tmp
  { [[ -f $SANDBOX_STATE_FILE ]] && grep -v "^$1=" "$SANDBOX_STATE_FILE"
    printf '%s=%s\n' "$1" "$2"; } >"$tmp" || true
  mv -f "$tmp" "$SANDBOX_STATE_FILE"
}

sandbox_state_unset() {
  [[ -f $SANDBOX_STATE_FILE ]] || return 0
  local tmp=$SANDBOX_STATE_FILE.tmp
  grep -v "^$1=" "$SANDBOX_STATE_FILE" >"$tmp" || true
  mv -f "$tmp" "$SANDBOX_STATE_FILE"
}

# --- netns helpers -----------------------------------------------------------
# (pipes into "grep -q" are avoided throughout: with pipefail, the writer's
# SIGPIPE after grep's early exit would turn a match into a failure)
sandbox_netns_exists() { [[ -e /run/netns/$SANDBOX_NETNS ]]; }

# Replace the current (sub)shell by CMD inside the netns, with the clean
# environment and no inherited file descriptors besides 0-2. The fds matter:
# Ganeti's Haskell daemons (confd, wconfd, luxid, mond) keep every fd they
# inherit, so a daemon started with our lock fd (or a caller's pipe) open
# would hold it for its whole life.
sandbox_exec_clean() {
  local fd
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
  done
  exec ip netns exec "$SANDBOX_NETNS" "${SANDBOX_CLEAN_ENV[@]}" "$@"
}

# Run a command inside the netns that way (in a subshell; returns its status).
sandbox_in() { (sandbox_exec_clean "$@"); }

# Is PID alive and inside our netns?
sandbox_pid_in_netns() {
  local pid=$1
  [[ -n $pid && -d /proc/$pid ]] || return 1
  [[ $(ip netns identify "$pid" 2>/dev/null) == "$SANDBOX_NETNS" ]]
}

# Our sshd: pid from the pidfile, alive, in the netns, using our config.
sandbox_sshd_pid() {
  local pid
  pid=$(cat "$SANDBOX_SSHD_PIDFILE" 2>/dev/null) || return 1
  sandbox_pid_in_netns "$pid" || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$SANDBOX_SSHD_CONFIG"* ]] || return 1
  echo "$pid"
}

# Cluster config present and it is the sandbox cluster (never touch another one).
sandbox_cluster_configured() {
  [[ -f $GANETI_CONFIG_DATA ]] || return 1
  local name
  name=$(cat /var/lib/ganeti/ssconf_cluster_name 2>/dev/null || true)
  if [[ -n $name && $name != "$SANDBOX_CLUSTER_NAME" ]]; then
    sandbox_die "a Ganeti cluster named '$name' (not $SANDBOX_CLUSTER_NAME) is configured on this machine; refusing to touch it"
  fi
  return 0
}

# Daemons daemon-util starts on this (master) node; kvmd is skipped because it
# exits at once ("User shutdown not enabled").
sandbox_ganeti_daemons() {
  echo ganeti-noded ganeti-confd ganeti-wconfd ganeti-rapi ganeti-luxid ganeti-mond
}

# PIDs of Ganeti daemons from their pidfiles (alive only).
sandbox_ganeti_daemon_pids() {
  local f pid
  for f in /run/ganeti/ganeti-*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    [[ -n $pid && -d /proc/$pid ]] && echo "$pid"
  done
}

# Start any Ganeti daemon that is not running, inside the netns, from a clean
# environment. (daemon-util start-all on a running cluster fails on bookworm:
# start-stop-daemon refuses the non-root pidfile, so go daemon by daemon.)
sandbox_ensure_daemons() {
  local d pid bad=0
  for pid in $(sandbox_ganeti_daemon_pids); do
    if ! sandbox_pid_in_netns "$pid"; then
      sandbox_log "Ganeti daemon pid $pid ($(cat /proc/"$pid"/comm 2>/dev/null)) runs OUTSIDE netns $SANDBOX_NETNS"
      bad=1
    fi
  done
  ((bad)) && sandbox_die "Ganeti daemons are running in the wrong network namespace; stop them first"
  for d in $(sandbox_ganeti_daemons); do
    sandbox_in "$GANETI_DAEMON_UTIL" check-and-start "$d" || sandbox_die "could not start $d"
  done
}
