#!/bin/bash
# Prove the sandbox works end to end with a throw-away OS definition
# "envtest" whose scripts only dump their environment:
#   installs /srv/ganeti/os/envtest, runs gnt-os diagnose/info, gnt-instance add,
#   gnt-backup export, gnt-backup import, gnt-instance remove, checks the
#   dumps, and removes /srv/ganeti/os/envtest again (also on failure).
# Needs a running sandbox (setup.sh). Dumps go to $ENVTEST_DUMP_DIR
# (default /tmp/envtest), kept for inspection.
#
# Usage: test/ganeti/sandbox/envtest-check.sh [--keep-export]
#   --keep-export  leave the export of inst1.gnt.test (to exercise teardown.sh)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

KEEP_EXPORT=0
[[ ${1:-} == --keep-export ]] && KEEP_EXPORT=1
OS_DIR=/srv/ganeti/os/envtest
DUMP_DIR=${ENVTEST_DUMP_DIR:-/tmp/envtest}
NODE=$SANDBOX_NODE_NAME
PASS=0
FAIL=0

sandbox_require_root
sandbox_netns_exists || sandbox_die "no netns $SANDBOX_NETNS: run setup.sh first"
[[ -e $OS_DIR ]] && sandbox_die "$OS_DIR already exists; not overwriting it"

ok()  { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
gnt() {  # gnt LABEL CMD... : run in the netns, timed, output shown
  local label=$1; shift
  echo "\$ $*"
  if sandbox_timed "$label" sandbox_in "$@"; then ok "$label"; else bad "$label"; return 1; fi
}
# expect FILE-GLOB PATTERN DESCRIPTION : newest file matching has a line matching PATTERN
expect() {
  local f
  f=$(ls -t $1 2>/dev/null | head -n1)
  if [[ -n $f ]] && grep -qE -- "$2" "$f"; then ok "$3"; else bad "$3 (${f:-no file $1})"; fi
}
# expect_any GLOB PATTERN DESCRIPTION : some file matching GLOB has such a line
expect_any() {
  if grep -qhE -- "$2" $1 2>/dev/null; then ok "$3"; else bad "$3 (in $1)"; fi
}
expect_not() {
  local f
  f=$(ls -t $1 2>/dev/null | head -n1)
  if [[ -n $f ]] && ! grep -qE -- "$2" "$f"; then ok "$3"; else bad "$3 (${f:-no file $1})"; fi
}

OS_PARENT_CREATED=0
[[ -d ${OS_DIR%/*} ]] || OS_PARENT_CREATED=1
cleanup() {
  rm -rf "$OS_DIR"
  ((OS_PARENT_CREATED)) && rmdir "${OS_DIR%/*}" 2>/dev/null
  return 0
}
trap cleanup EXIT

# --- the OS definition ----------------------------------------------------------
mkdir -p "$OS_DIR" "$DUMP_DIR"
rm -f "$DUMP_DIR"/*.env
echo 20 >"$OS_DIR/ganeti_api_version"
echo default >"$OS_DIR/variants.list"
printf '%s\n' \
  'img_id Image identifier (test parameter)' \
  'img_format Image format: diskdump, qemu or tarball (test parameter)' \
  'img_passwd Root password (test parameter; pass with --os-parameters-secret)' \
  >"$OS_DIR/parameters.list"
cat >"$OS_DIR/common.sh" <<EOF
# sourced by the envtest scripts: dump argv, fds and the environment
dump_env() {
  local script=\${0##*/} fd out
  out=$DUMP_DIR/\$script.\${INSTANCE_NAME:-none}.\$(date +%s.%N).env
  {
    echo "# script=\$script args=\$* cwd=\$PWD uid=\$(id -u)"
    for fd in /proc/\$\$/fd/*; do echo "# fd \${fd##*/} -> \$(readlink "\$fd")"; done
    env | LC_ALL=C sort
  } >"\$out"
}
EOF
cat >"$OS_DIR/create" <<'EOF'
#!/bin/bash
. "$(dirname "$0")/common.sh"; dump_env "$@"
printf 'envtest:%s:%s\n' "$INSTANCE_NAME" "${OSP_IMG_ID:-}" |
  dd of="$DISK_0_PATH" conv=notrunc status=none
echo "envtest create done for $INSTANCE_NAME"
EOF
cat >"$OS_DIR/export" <<'EOF'
#!/bin/bash
. "$(dirname "$0")/common.sh"; dump_env "$@"
stat -L -c %s "$EXPORT_DEVICE" >&"$EXP_SIZE_FD"
exec dd if="$EXPORT_DEVICE" bs=1M status=none
EOF
cat >"$OS_DIR/import" <<'EOF'
#!/bin/bash
. "$(dirname "$0")/common.sh"; dump_env "$@"
exec dd of="$IMPORT_DEVICE" bs=1M conv=notrunc,sparse iflag=fullblock status=none
EOF
cat >"$OS_DIR/rename" <<'EOF'
#!/bin/bash
. "$(dirname "$0")/common.sh"; dump_env "$@"
EOF
cat >"$OS_DIR/verify" <<'EOF'
#!/bin/bash
. "$(dirname "$0")/common.sh"; dump_env "$@"
[[ ${1:-} == parameters ]] || { echo "usage: verify parameters" >&2; exit 1; }
case ${OSP_IMG_FORMAT:-} in
  diskdump|qemu|tarball|'') ;;
  *) echo "Invalid img_format '$OSP_IMG_FORMAT' (want diskdump, qemu or tarball)"; exit 1 ;;
esac
EOF
chmod 755 "$OS_DIR"/{create,export,import,rename,verify}

# --- the commands ------------------------------------------------------------------
T0=$(sandbox_now)
gnt "gnt-os diagnose" gnt-os diagnose
gnt "gnt-os info" gnt-os info envtest
gnt "gnt-instance add" gnt-instance add -n "$NODE" -o envtest+default -t file --disk 0:size=1G \
  -O img_id=x,img_format=diskdump --os-parameters-secret img_passwd=s3cret \
  --no-start --no-ip-check --no-name-check inst1.gnt.test
gnt "gnt-backup export" gnt-backup export -n "$NODE" inst1.gnt.test
gnt "gnt-backup list" gnt-backup list
gnt "gnt-backup import" gnt-backup import -n "$NODE" --src-node "$NODE" \
  --src-dir /var/lib/ganeti/export/inst1.gnt.test -t file --disk 0:size=1G \
  --net 0:mac=generate --no-ip-check --no-name-check inst2.gnt.test
gnt "gnt-instance list" gnt-instance list -o name,os,status,disk_template,osparams
# The data went create -> export -> import: the imported disk starts with create's marker.
IMPORTED_HEAD=
import_dump=$(ls -t "$DUMP_DIR"/import.inst2.gnt.test.* 2>/dev/null | head -n1)
if [[ -n $import_dump ]]; then
  dev=$(sed -n 's/^IMPORT_DEVICE=//p' "$import_dump")
  IMPORTED_HEAD=$(head -c 64 "$dev" 2>/dev/null | head -n1 | tr -d '\0' | grep -E '^envtest:inst1.gnt.test:x$')
fi
gnt "gnt-instance remove inst1" gnt-instance remove -f inst1.gnt.test
gnt "gnt-instance remove inst2" gnt-instance remove -f inst2.gnt.test
((KEEP_EXPORT)) || gnt "gnt-backup remove" gnt-backup remove inst1.gnt.test
sandbox_log "timing: envtest commands total $(sandbox_elapsed "$T0") s"

# --- what the scripts saw ------------------------------------------------------------
D=$DUMP_DIR
expect "$D/verify.none.*" '^# script=verify args=parameters ' "verify called with argv 'parameters'"
expect_any "$D/verify.none.*" '^OSP_IMG_PASSWD=s3cret$' "verify (of the add) sees the secret parameter"
expect_not "$D/verify.none.*" '^(INSTANCE_NAME|DISK_COUNT)=' "verify gets no instance variables"
expect "$D/create.inst1.gnt.test.*" '^OSP_IMG_ID=x$' "create sees OSP_IMG_ID"
expect "$D/create.inst1.gnt.test.*" '^OSP_IMG_FORMAT=diskdump$' "create sees OSP_IMG_FORMAT"
expect "$D/create.inst1.gnt.test.*" '^OSP_IMG_PASSWD=s3cret$' "create sees the secret parameter"
expect "$D/create.inst1.gnt.test.*" '^OS_VARIANT=default$' "create sees OS_VARIANT"
expect "$D/create.inst1.gnt.test.*" '^DISK_0_PATH=/srv/ganeti/file-storage/inst1.gnt.test/' "create sees DISK_0_PATH"
expect "$D/create.inst1.gnt.test.*" '^HYPERVISOR=kvm$' "create runs with the kvm hypervisor"
expect_not "$D/create.inst1.gnt.test.*" '^(HOME|TERM|LANG)=' "create runs with a reset environment"
expect "$D/export.inst1.gnt.test.*" '^EXP_SIZE_FD=[0-9]+$' "export sees EXP_SIZE_FD"
expect "$D/export.inst1.gnt.test.*" '^EXPORT_DEVICE=/srv/ganeti/file-storage/' "export sees EXPORT_DEVICE"
expect_not "$D/export.inst1.gnt.test.*" '^OSP_IMG_PASSWD=' "export does not see the secret"
expect "$D/export.inst1.gnt.test.*" '^TERM=dumb$' "export inherits noded's clean env (TERM=dumb)"
expect_not "$D/export.inst1.gnt.test.*" '^(SSH_|USER=|MAIL=|SUDO_)' "export env has nothing from the caller's shell"
expect "$D/import.inst2.gnt.test.*" '^IMPORT_DEVICE=/srv/ganeti/file-storage/inst2.gnt.test/' "import sees IMPORT_DEVICE"
expect "$D/import.inst2.gnt.test.*" '^OSP_IMG_ID=x$' "import sees the public params from the export"
expect "$D/rename.inst2.gnt.test.*" '^OLD_INSTANCE_NAME=inst1.gnt.test$' "rename after import sees OLD_INSTANCE_NAME"
[[ -n $IMPORTED_HEAD ]] && ok "imported disk starts with: $IMPORTED_HEAD" ||
  bad "imported disk does not start with the marker create wrote"
echo "envtest: $PASS passed, $FAIL failed"
((FAIL == 0))
