#!/bin/bash
# Set up a single-node Ganeti 3.0.2 cluster inside the network namespace "gnt"
# (see README.md in this directory). Idempotent: re-running it on a working
# sandbox only checks it (and restarts what is missing).
#
# Usage: test/ganeti/sandbox/setup.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

sandbox_require_root
T_TOTAL=$(sandbox_now)
sandbox_lock

# --- 1. packages -------------------------------------------------------------
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_MARK='# temporary: created by snf-image test/ganeti/sandbox/setup.sh'
remove_temp_policy_rc_d() {
  if [[ -f $POLICY_RC_D ]] && grep -qxF "$POLICY_RC_D_MARK" "$POLICY_RC_D"; then
    rm -f "$POLICY_RC_D"
    sandbox_log "removed temporary $POLICY_RC_D"
  fi
}

# Ganeti or sshd processes in the host namespace would be a leak from the
# package install (or from someone else): report them, never kill them.
check_no_host_services() {
  local pid comm found=0
  for pid in $(pgrep -x 'sshd|ganeti-.*' || true); do
    sandbox_pid_in_netns "$pid" && continue
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    sandbox_log "WARNING: $comm (pid $pid) runs in the host network namespace"
    found=1
  done
  return "$found"
}

install_packages() {
  local p missing=()
  for p in "${SANDBOX_PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    sandbox_log "packages already installed: ${SANDBOX_PACKAGES[*]}"
  else
    if [[ -e $POLICY_RC_D ]]; then
      local rc=0
      "$POLICY_RC_D" ganeti start >/dev/null 2>&1 || rc=$?
      ((rc == 101)) || sandbox_die "$POLICY_RC_D exists but exits $rc (not 101): installing would start services in the host namespace"
    else
      printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_RC_D_MARK" >"$POLICY_RC_D"
      chmod 755 "$POLICY_RC_D"
      trap remove_temp_policy_rc_d EXIT
      sandbox_log "created temporary $POLICY_RC_D (exit 101)"
    fi
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    local policy
    policy=$(apt-cache policy ganeti 2>/dev/null || true)
    if [[ $policy != *"Candidate: 3.0.2"* ]]; then
      sandbox_timed "apt-get update" "${apt[@]}" update -q
    fi
    sandbox_log "installing ${missing[*]} (--no-install-recommends)"
    sandbox_timed "apt-get install" env DEBIAN_FRONTEND=noninteractive \
      "${apt[@]}" install -y -q --no-install-recommends "${SANDBOX_PACKAGES[@]}"
    sandbox_state_set packages_installed_by_setup "${missing[*]}"
    remove_temp_policy_rc_d
    trap - EXIT
  fi
  local v
  v=$(dpkg-query -W -f='${Version}' ganeti)
  [[ $v == 3.0.2* ]] || sandbox_log "WARNING: ganeti $v installed, the sandbox was written for 3.0.2"
  check_no_host_services || sandbox_log "WARNING: see above; setup does not stop processes it did not start"
}

# --- 2. network namespace ----------------------------------------------------
setup_netns() {
  if ! sandbox_netns_exists; then
    ip netns add "$SANDBOX_NETNS"
    sandbox_state_set netns_created 1
    sandbox_log "created netns $SANDBOX_NETNS"
  fi
  ip -n "$SANDBOX_NETNS" link set lo up
  if ! ip -n "$SANDBOX_NETNS" link show "$SANDBOX_BRIDGE" >/dev/null 2>&1; then
    # No "dummy" driver in this kernel; a bridge without ports works as well.
    ip -n "$SANDBOX_NETNS" link add "$SANDBOX_BRIDGE" type bridge
  fi
  ip -n "$SANDBOX_NETNS" link set "$SANDBOX_BRIDGE" up
  local addrs
  addrs=$(ip -n "$SANDBOX_NETNS" -4 addr show dev "$SANDBOX_BRIDGE")
  if [[ $addrs != *"inet $SANDBOX_NODE_IP/$SANDBOX_PREFIXLEN "* ]]; then
    ip -n "$SANDBOX_NETNS" addr add "$SANDBOX_NODE_IP/$SANDBOX_PREFIXLEN" dev "$SANDBOX_BRIDGE"
  fi
  # Nothing may leave the namespace: no default route, ever.
  if [[ -n $(ip -n "$SANDBOX_NETNS" route show default) ]]; then
    sandbox_log "removing a default route found in netns $SANDBOX_NETNS"
    ip -n "$SANDBOX_NETNS" route del default
  fi

  # Name resolution inside the netns only (ip netns exec bind-mounts these
  # over /etc/hosts and /etc/resolv.conf); the host's files stay untouched.
  if [[ ! -d $SANDBOX_ETC_NETNS ]]; then
    mkdir -p "$SANDBOX_ETC_NETNS"
    sandbox_state_set etc_netns_created 1
  fi
  local short i
  short=$(hostname -s)
  {
    echo "# written by snf-image test/ganeti/sandbox/setup.sh"
    echo "127.0.0.1	localhost"
    echo "::1	localhost ip6-localhost ip6-loopback"
    if [[ $short == "${SANDBOX_NODE_NAME%%.*}" ]]; then
      echo "$SANDBOX_NODE_IP	$SANDBOX_NODE_NAME"
    else
      echo "$SANDBOX_NODE_IP	$SANDBOX_NODE_NAME $short"
    fi
    echo "$SANDBOX_CLUSTER_IP	$SANDBOX_CLUSTER_NAME"
    for i in 1 2 3 4 5 6 7 8 9; do
      echo "${SANDBOX_NODE_IP%.*}.2$i	inst$i.gnt.test"
    done
  } >"$SANDBOX_ETC_NETNS/hosts"
  printf '# written by snf-image test/ganeti/sandbox/setup.sh\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
    >"$SANDBOX_ETC_NETNS/resolv.conf"
  local fqdn
  fqdn=$(sandbox_in python3 -c 'import socket; print(socket.getfqdn())')
  [[ $fqdn == "$SANDBOX_NODE_NAME" ]] ||
    sandbox_die "inside netns $SANDBOX_NETNS the FQDN is '$fqdn', expected $SANDBOX_NODE_NAME"
}

# --- 3. sshd inside the netns ------------------------------------------------
setup_sshd() {
  local pid
  if pid=$(sandbox_sshd_pid); then
    sandbox_log "sshd already running in netns (pid $pid)"
    return 0
  fi
  if ! compgen -G '/etc/ssh/ssh_host_*_key' >/dev/null; then
    sandbox_log "no ssh host keys: ssh-keygen -A"
    ssh-keygen -A
  fi
  mkdir -p /run/sshd
  chmod 755 /run/sshd
  local k
  {
    echo "# sshd for the snf-image Ganeti sandbox (netns $SANDBOX_NETNS)"
    echo "ListenAddress $SANDBOX_NODE_IP"
    echo "ListenAddress 127.0.0.1"
    echo "PidFile $SANDBOX_SSHD_PIDFILE"
    for k in /etc/ssh/ssh_host_*_key; do echo "HostKey $k"; done
    echo "PermitRootLogin prohibit-password"
    echo "PubkeyAuthentication yes"
    echo "PasswordAuthentication no"
    echo "KbdInteractiveAuthentication no"
    echo "UsePAM no"
    echo "AuthorizedKeysFile .ssh/authorized_keys"
    echo "Subsystem sftp /usr/lib/openssh/sftp-server"
  } >"$SANDBOX_SSHD_CONFIG"
  sandbox_in /usr/sbin/sshd -t -f "$SANDBOX_SSHD_CONFIG"
  rm -f "$SANDBOX_SSHD_PIDFILE"
  sandbox_in /usr/sbin/sshd -f "$SANDBOX_SSHD_CONFIG"
  local i
  for i in $(seq 50); do
    pid=$(sandbox_sshd_pid) && break
    sleep 0.1
  done
  [[ -n ${pid:-} ]] || sandbox_die "sshd did not start in netns $SANDBOX_NETNS"
  sandbox_state_set sshd_pid "$pid"
  sandbox_log "started sshd in netns (pid $pid)"
}

# --- 4. file storage ---------------------------------------------------------
setup_file_storage() {
  mkdir -p "$SANDBOX_FILE_STORAGE_DIR"
  if [[ ! -e $SANDBOX_FILE_STORAGE_PATHS ]]; then
    echo "$SANDBOX_FILE_STORAGE_DIR" >"$SANDBOX_FILE_STORAGE_PATHS"
    sandbox_state_set file_storage_paths_created 1
  elif ! grep -qxF "$SANDBOX_FILE_STORAGE_DIR" "$SANDBOX_FILE_STORAGE_PATHS"; then
    echo "$SANDBOX_FILE_STORAGE_DIR" >>"$SANDBOX_FILE_STORAGE_PATHS"
    sandbox_state_set file_storage_paths_appended 1
  fi
}

# --- 5. cluster --------------------------------------------------------------
ROOT_SSH=/root/.ssh
ssh_snapshot() { [[ -d $ROOT_SSH ]] && (cd "$ROOT_SSH" && ls -A) || true; }

init_cluster() {
  local had_dir=0 before after f new=() added
  [[ -d $ROOT_SSH ]] && had_dir=1
  before=$(ssh_snapshot)
  [[ -f $ROOT_SSH/authorized_keys ]] && cp "$ROOT_SSH/authorized_keys" "$SANDBOX_STATE_DIR/authorized_keys.before"

  sandbox_log "gnt-cluster init $SANDBOX_CLUSTER_NAME"
  sandbox_timed "gnt-cluster init" sandbox_in gnt-cluster init \
    --no-etc-hosts \
    --master-netdev "$SANDBOX_BRIDGE" \
    --enabled-hypervisors kvm,fake \
    --enabled-disk-templates file \
    --file-storage-dir "$SANDBOX_FILE_STORAGE_DIR" \
    -N "mode=bridged,link=$SANDBOX_BRIDGE" \
    -H kvm:kernel_path=,initrd_path= \
    "$SANDBOX_CLUSTER_NAME"
  sandbox_state_set cluster_initialized 1

  # Remember what init did to root's ssh setup, so teardown can undo it.
  ((had_dir)) || sandbox_state_set root_ssh_dir_created 1
  after=$(ssh_snapshot)
  for f in $after; do
    grep -qxF "$f" <<<"$before" || new+=("$f")
  done
  if ((${#new[@]})); then
    local old
    old=$(sandbox_state_get root_ssh_created_files)
    sandbox_state_set root_ssh_created_files "$(printf '%s\n' $old "${new[@]}" | sort -u | xargs)"
  fi
  if [[ -f $SANDBOX_STATE_DIR/authorized_keys.before ]]; then
    added=$(grep -vxF -f "$SANDBOX_STATE_DIR/authorized_keys.before" "$ROOT_SSH/authorized_keys" || true)
    [[ -n $added ]] && printf '%s\n' "$added" >>"$SANDBOX_STATE_DIR/authorized_keys.added"
    rm -f "$SANDBOX_STATE_DIR/authorized_keys.before"
  fi
}

setup_cluster() {
  if sandbox_cluster_configured; then
    sandbox_log "cluster $SANDBOX_CLUSTER_NAME already initialised; checking daemons"
    sandbox_timed "daemons check-and-start" sandbox_ensure_daemons
    local addrs
    addrs=$(ip -n "$SANDBOX_NETNS" -4 addr show)
    if [[ $addrs != *"inet $SANDBOX_CLUSTER_IP/"* ]]; then
      sandbox_in gnt-cluster activate-master-ip
    fi
  else
    init_cluster
  fi
  local master
  master=$(sandbox_in gnt-cluster getmaster)
  [[ $master == "$SANDBOX_NODE_NAME" ]] || sandbox_die "gnt-cluster getmaster says '$master'"
}

sandbox_timed "packages" install_packages
sandbox_timed "netns" setup_netns
sandbox_timed "sshd" setup_sshd
setup_file_storage
sandbox_timed "cluster" setup_cluster

NETNS_PIDS=$(ip netns pids "$SANDBOX_NETNS" | xargs | tr ' ' ,)
sandbox_log "processes in netns $SANDBOX_NETNS:"
[[ -n $NETNS_PIDS ]] && ps -o pid=,user=,args= -p "$NETNS_PIDS" >&2
sandbox_log "ready: run commands with $HERE/run-in.sh gnt-... (master $SANDBOX_NODE_NAME)"
sandbox_log "timing: setup.sh total $(sandbox_elapsed "$T_TOTAL") s"
