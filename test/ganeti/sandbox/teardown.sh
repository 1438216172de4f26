#!/bin/bash
# Tear down what setup.sh created: instances and exports of the sandbox
# cluster, the cluster itself (gnt-cluster destroy), the sandbox sshd, the
# netns, /etc/netns/gnt, and root's ssh keys if setup.sh's cluster init created
# them. Stops nothing it did not start; packages stay installed.
#
# Usage: test/ganeti/sandbox/teardown.sh
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

sandbox_require_root
T_TOTAL=$(sandbox_now)
sandbox_lock
RC=0
GNT_TIMEOUT=600   # seconds, per gnt-* command

gnt() { timeout "$GNT_TIMEOUT" bash -c '. "$1/lib.sh"; shift; sandbox_exec_clean "$@"' - "$HERE" "$@"; }

# --- 1. instances, exports, cluster -------------------------------------------
# A gnt-* command, tried up to three times: a master daemon that is restarting or
# still busy with the previous job makes the job submission fail (luxi errors), so
# between tries the daemons are checked (and restarted) and the job queue may drain.
gnt_retry() {
  local label=$1; shift
  local try
  for try in 1 2 3; do
    sandbox_timed "$label" gnt "$@" && return 0
    ((try < 3)) || break
    sandbox_log "$label failed (try $try of 3); checking the daemons and trying again in 10 s"
    sleep 10
    sandbox_ensure_daemons || return 1
  done
  return 1
}

# A failed remove may still have removed the instance (the error came after the job).
instance_exists() { gnt gnt-instance list --no-headers -o name | grep -qxF "$1"; }

destroy_cluster() {
  if ! sandbox_netns_exists; then
    sandbox_log "ERROR: cluster $SANDBOX_CLUSTER_NAME is configured but netns $SANDBOX_NETNS is missing (reboot?);"
    sandbox_log "       run setup.sh (recreates the netns and restarts the daemons), then teardown.sh again"
    return 1
  fi
  sandbox_ensure_daemons || return 1

  local name
  for name in $(gnt gnt-instance list --no-headers -o name); do
    sandbox_log "removing instance $name"
    gnt_retry "remove $name" gnt-instance remove -f --shutdown-timeout=0 "$name" ||
      ! instance_exists "$name" ||
      gnt_retry "remove $name --ignore-failures" \
        gnt-instance remove -f --shutdown-timeout=0 --ignore-failures "$name" ||
      ! instance_exists "$name" || return 1
  done
  for name in $(gnt gnt-backup list --no-headers -o export | sort -u); do
    sandbox_log "removing export $name"
    gnt_retry "export remove $name" gnt-backup remove "$name" || return 1
  done
  sandbox_log "gnt-cluster destroy"
  gnt_retry "gnt-cluster destroy" gnt-cluster destroy --yes-do-it || return 1
  sandbox_state_unset cluster_initialized
}

if sandbox_cluster_configured; then
  destroy_cluster || { sandbox_log "ERROR: cluster teardown failed; stopping here (nothing else touched)"; exit 1; }
else
  sandbox_log "no sandbox cluster configured"
fi

# Ganeti daemons left behind: gnt-cluster destroy stops the master daemons,
# confd, mond, kvmd and noded, but NOT the on-demand ganeti-metad (started by
# the first instance add). Only daemons inside our netns are ours.
left=()
for pid in $(sandbox_ganeti_daemon_pids); do
  sandbox_pid_in_netns "$pid" && left+=("$pid($(cat "/proc/$pid/comm" 2>/dev/null))")
done
if ((${#left[@]})); then
  sandbox_log "stopping leftover Ganeti daemons in netns: ${left[*]}"
  gnt "$GANETI_DAEMON_UTIL" stop-all || true
fi

# --- 2. sshd -----------------------------------------------------------------
if pid=$(sandbox_sshd_pid); then
  sandbox_log "stopping sshd (pid $pid)"
  kill "$pid"
  for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  [[ -d /proc/$pid ]] && { sandbox_log "sshd $pid ignored SIGTERM; SIGKILL"; kill -9 "$pid"; }
fi
sandbox_state_unset sshd_pid
rm -f "$SANDBOX_SSHD_PIDFILE" "$SANDBOX_SSHD_CONFIG"

# --- 3. netns ------------------------------------------------------------------
if sandbox_netns_exists; then
  others=$(ip netns pids "$SANDBOX_NETNS" | xargs)
  if [[ -n $others ]]; then
    sandbox_log "ERROR: processes not started by setup.sh still run in netns $SANDBOX_NETNS; not deleting it:"
    ps -o pid=,user=,args= -p "${others// /,}" >&2 || true
    RC=1
  elif [[ $(sandbox_state_get netns_created) == 1 ]]; then
    sandbox_log "deleting netns $SANDBOX_NETNS"
    ip netns delete "$SANDBOX_NETNS" && sandbox_state_unset netns_created
  else
    sandbox_log "netns $SANDBOX_NETNS was not created by setup.sh; left in place"
  fi
fi
if [[ $(sandbox_state_get etc_netns_created) == 1 ]] && ! sandbox_netns_exists; then
  rm -rf "$SANDBOX_ETC_NETNS"
  rmdir /etc/netns 2>/dev/null || true
  sandbox_state_unset etc_netns_created
fi

# --- 4. file-storage-paths -----------------------------------------------------
if [[ $(sandbox_state_get file_storage_paths_created) == 1 ]]; then
  rm -f "$SANDBOX_FILE_STORAGE_PATHS"
  sandbox_state_unset file_storage_paths_created
elif [[ $(sandbox_state_get file_storage_paths_appended) == 1 ]]; then
  sed -i "\\|^${SANDBOX_FILE_STORAGE_DIR}\$|d" "$SANDBOX_FILE_STORAGE_PATHS"
  sandbox_state_unset file_storage_paths_appended
fi

# --- 5. root's ssh keys (only what setup's cluster init created) ---------------
ROOT_SSH=/root/.ssh
created=$(sandbox_state_get root_ssh_created_files)
for f in $created; do
  [[ $f == */* || -z $f ]] && continue
  sandbox_log "removing $ROOT_SSH/$f (created by the sandbox cluster init)"
  rm -f "$ROOT_SSH/$f"
done
sandbox_state_unset root_ssh_created_files
if [[ -f $SANDBOX_STATE_DIR/authorized_keys.added && -f $ROOT_SSH/authorized_keys ]]; then
  sandbox_log "removing the sandbox key lines from the pre-existing $ROOT_SSH/authorized_keys"
  grep -vxF -f "$SANDBOX_STATE_DIR/authorized_keys.added" "$ROOT_SSH/authorized_keys" >"$ROOT_SSH/authorized_keys.tmp" || true
  cat "$ROOT_SSH/authorized_keys.tmp" >"$ROOT_SSH/authorized_keys"
  rm -f "$ROOT_SSH/authorized_keys.tmp"
fi
rm -f "$SANDBOX_STATE_DIR/authorized_keys.added"
if [[ $(sandbox_state_get root_ssh_dir_created) == 1 ]]; then
  rmdir "$ROOT_SSH" 2>/dev/null && sandbox_log "removed $ROOT_SSH" ||
    sandbox_log "$ROOT_SSH not empty (files not from the sandbox); left in place"
  sandbox_state_unset root_ssh_dir_created
fi

# --- 6. state ------------------------------------------------------------------
if ((RC == 0)); then
  sandbox_state_unset packages_installed_by_setup
  if [[ -f $SANDBOX_STATE_FILE && -s $SANDBOX_STATE_FILE ]]; then
    sandbox_log "state entries left: $(xargs <"$SANDBOX_STATE_FILE")"
  else
    rm -f "$SANDBOX_STATE_FILE"
  fi
fi
sandbox_log "teardown $( ((RC)) && echo "INCOMPLETE" || echo done)"
sandbox_log "timing: teardown.sh total $(sandbox_elapsed "$T_TOTAL") s"
exit "$RC"
