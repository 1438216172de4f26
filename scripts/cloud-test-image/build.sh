#!/bin/bash
# Build the cloud-style test guest image: Debian 13 (trixie) laid out like Debian's cloud
# images (cloud-init, netplan with the networkd renderer and a catch-all netplan file giving
# DHCP to every en*/eth* NIC, openssh-server, grub on the MBR), from Debian packages only,
# and cache it outside the repository. Same structure as scripts/test-images/build.sh.
#
#   dir=$(scripts/cloud-test-image/build.sh | tail -1)
#
# Output: ${SNF_TEST_CACHE:-/var/cache/snf-image-test}/cloud-images/<key>/ where <key> is
# derived from the contents of scripts/cloud-test-image/ (see README.md). All progress goes
# to stderr; the only stdout line is the cache directory. Needs root (loop devices, mount,
# chroot).
set -euo pipefail

# One compound command: bash parses all of it before running any, so editing this file
# while a build runs cannot derail that build.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${SNF_TEST_CACHE:-/var/cache/snf-image-test}
SUITE=trixie
NAME=debian13-cloud
IMAGE_SIZE=2G
TEMPLATE_PASSWORD=template-pw
TEMPLATE_HOSTNAME=template
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
# What Debian's cloud images have for this purpose: cloud-init (with growpart from
# cloud-guest-utils, sudo for its default user), netplan rendering for systemd-networkd,
# sshd. No ifupdown, no DHCP client package (systemd-networkd, in the systemd package, has its own).
GUEST_PACKAGES=(
    systemd-sysv udev kmod linux-image-amd64 zstd grub-pc
    openssh-server cloud-init cloud-guest-utils netplan.io sudo iproute2
    passwd login procps e2fsprogs
)

exec 3>&1 1>&2

log() { printf '[cloud-test-image %(%T)T] %s\n' -1 "$*"; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cache key
# sha256 over "sha256sum" lines (hash + relative path) of every file in this directory,
# sorted by path; first 16 hex chars.
cache_key() {
    (cd "$HERE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-16
}
KEY=$(cache_key)
IMAGES_DIR=$CACHE_ROOT/cloud-images
FINAL=$IMAGES_DIR/$KEY

manifest_complete() {
    local dir=$1 m=$1/manifest.json name size n=0
    [[ -f $m ]] && grep -q '"complete": true' "$m" || return 1
    while read -r name size; do
        [[ -f $dir/$name && $(stat -c %s "$dir/$name") == "$size" ]] || return 1
        n=$((n + 1))
    done < <(sed -n 's/^ *{"name": "\([^"]*\)", "size": \([0-9]*\),.*/\1 \2/p' "$m")
    ((n > 0))
}

if manifest_complete "$FINAL"; then
    log "cached: $FINAL"
    echo "$FINAL" >&3
    exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (loop devices, mount, chroot)"

# All mounting in a private mount namespace (see scripts/test-images/build.sh).
if [[ -z ${SNF_CLOUD_TEST_IMAGE_NS:-} ]]; then
    export SNF_CLOUD_TEST_IMAGE_NS=1
    exec unshare --mount --propagation private -- "$BASH" "$HERE/build.sh" "$@"
fi

mkdir -p "$IMAGES_DIR" "$CACHE_ROOT/debs"
exec 9>"$IMAGES_DIR/.lock-$KEY"
flock 9
if manifest_complete "$FINAL"; then
    log "cached (built concurrently): $FINAL"
    echo "$FINAL" >&3
    exit 0
fi

START=$SECONDS
log "building $NAME, key $KEY"

# ------------------------------------------------------------ host packages
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have debootstrap || need+=(debootstrap)
have sfdisk || need+=(fdisk)
have mkfs.ext4 || need+=(e2fsprogs)
have partx || need+=(util-linux)
have losetup || need+=(mount)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
    log "installing host packages: ${need[*]}"
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        "${APT[@]}" update
    fi
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${need[@]}"
fi

# ------------------------------------------------------------------ mirrors
apt_site() {
    apt-get indextargets --format '$(SITE) $(RELEASE)' 'Created-By: Packages' 2>/dev/null \
        | awk -v r="$1" '$2 == r { print $1; exit }'
}
# The host may be on another release: take the site of any Debian suite it uses.
MIRROR=${SNF_TEST_MIRROR:-$(apt_site "$SUITE")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SNF_TEST_SECURITY_MIRROR:-$(apt_site "$SUITE-security")}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
log "mirror $MIRROR, security $SECURITY_MIRROR"

# ------------------------------------------------------- workspace, cleanup
TMP=$(mktemp -d "$IMAGES_DIR/.build-$KEY.XXXXXX")
OUT=$TMP/out
ROOTFS=$TMP/rootfs
mkdir -p "$OUT"
LOOPS=()
BGPIDS=()

umount_under() {
    local m
    findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' \
        | sort -r | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" || true
        done
}

kill_tree() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
    kill "$1" 2>/dev/null || true
}

bg_wait() {
    local pid rc=0 p keep=()
    "$@" &
    pid=$!
    BGPIDS+=("$pid")
    wait "$pid" || rc=$?
    for p in "${BGPIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    BGPIDS=(${keep[@]+"${keep[@]}"})
    return "$rc"
}

detach_loop() {
    local i
    for i in $(seq 20); do partx -d "$1" 2>/dev/null && break; sleep 0.5; done
    losetup -d "$1"
}

cleanup() {
    local rc=$? pid loop
    set +e
    for pid in "${BGPIDS[@]}"; do kill_tree "$pid"; done
    wait 2>/dev/null
    umount_under "$TMP"
    for loop in "${LOOPS[@]}"; do detach_loop "$loop" 2>/dev/null; done
    if findmnt -rn -o TARGET | grep -qF "$TMP"; then
        log "WARNING: mounts remain under $TMP; not deleting it"
    else
        rm -rf --one-file-system "$TMP"
    fi
    ((rc == 0)) || log "FAILED (exit $rc) after $((SECONDS - START)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chroot_mounts() { # root [loop]
    local r=$1 loop=${2:-} n p uuid
    mount -t tmpfs -o mode=0755,size=1m snf-test-dev "$r/dev"
    for n in null zero full random urandom tty; do cp -a "/dev/$n" "$r/dev/"; done
    mkdir -p "$r/dev/pts" "$r/dev/shm" "$r/dev/disk/by-uuid"
    ln -s /proc/self/fd "$r/dev/fd"
    if [[ -n $loop ]]; then
        cp -a "$loop" "$r/dev/"
        for p in "$loop"p*; do
            cp -a "$p" "$r/dev/"
            uuid=$(blkid -s UUID -o value "$p" || true)
            [[ -z $uuid ]] || ln -s "../../$(basename "$p")" "$r/dev/disk/by-uuid/$uuid"
        done
    fi
    mount --bind /proc "$r/proc"
    mount --bind /sys "$r/sys"
}
chroot_umounts() {
    umount "$1/sys" "$1/proc" "$1/dev"
}

# ------------------------------------------------------- base root file system
log "debootstrap $SUITE (minbase)"
bg_wait debootstrap --variant=minbase --arch=amd64 --cache-dir="$CACHE_ROOT/debs" \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 \
    || { tail -30 "$TMP/debootstrap.log"; die "debootstrap failed"; }
rm -f "$ROOTFS"/var/cache/apt/archives/*.deb
install -m 0644 "$HERE/dpkg-excludes.cfg" "$ROOTFS/etc/dpkg/dpkg.cfg.d/90snf-test-image"

cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/90snf-test-image" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
echo "$TEMPLATE_HOSTNAME" >"$ROOTFS/etc/hostname"
mkdir -p "$ROOTFS/etc/initramfs-tools/conf.d" "$ROOTFS/etc/default/grub.d"
echo RESUME=none >"$ROOTFS/etc/initramfs-tools/conf.d/resume"
# A small initramfs: only what a virtio (or SCSI / ATA) disk with ext4 needs.
echo MODULES=list >"$ROOTFS/etc/initramfs-tools/conf.d/modules"
printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ata_piix ahci ext4 >>"$ROOTFS/etc/initramfs-tools/modules"

chroot_mounts "$ROOTFS"
# The .deb cache shared with scripts/test-images/build.sh, without its apt lock (held for a
# whole install by another build's apt): hard links in and, for what was downloaded, back.
find "$CACHE_ROOT/debs" -maxdepth 1 -name '*.deb' -exec cp -l -n -t "$ROOTFS/var/cache/apt/archives" {} +
in_root() { chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
in_root debconf-set-selections <<'EOF'
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
EOF
log "apt: ${GUEST_PACKAGES[*]}"
apt_phase() {
    in_root "${APT[@]}" update &&
        in_root "${APT[@]}" -y dist-upgrade &&
        in_root "${APT[@]}" install -y "${GUEST_PACKAGES[@]}"
}
bg_wait apt_phase >"$TMP/apt.log" 2>&1 || { tail -40 "$TMP/apt.log"; die "apt in chroot failed"; }

log "configuring template"
in_root chpasswd <<<"root:$TEMPLATE_PASSWORD"
in_root systemctl enable serial-getty@ttyS0.service ssh.service systemd-networkd.service
in_root systemctl is-enabled ssh.service serial-getty@ttyS0.service systemd-networkd.service >/dev/null
CLOUD_INIT_VERSION=$(in_root dpkg-query -W -f '${Version}' cloud-init)
find "$ROOTFS/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -l -n -t "$CACHE_ROOT/debs" {} +
chroot_umounts "$ROOTFS"

rm -f "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin
rm -rf "$ROOTFS"/var/lib/apt/lists/*
rm -f "$ROOTFS/usr/sbin/policy-rc.d" "$ROOTFS"/etc/ssh/ssh_host_*
rm -f "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old
find "$ROOTFS/usr/share/doc" ! -type d ! -name copyright -delete
find "$ROOTFS/usr/share/doc" -depth -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/*
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
: >"$ROOTFS/etc/machine-id"
# No cloud-init state from the build (Debian's images ship none).
rm -rf "$ROOTFS"/var/lib/cloud/* "$ROOTFS"/var/log/cloud-init*

cat >"$ROOTFS/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$TEMPLATE_HOSTNAME

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
: >"$ROOTFS/etc/resolv.conf"

# Network: netplan for systemd-networkd with the catch-all file Debian's cloud images ship
# (/etc/netplan/90-default.yaml): DHCP on every en* and eth* NIC.
mkdir -p "$ROOTFS/etc/netplan"
install -m 0600 "$HERE/90-default.yaml" "$ROOTFS/etc/netplan/90-default.yaml"

# Under TCG on a loaded host udev may take longer than systemd's default 90 s to announce
# /dev/ttyS0, and serial-getty@ttyS0 (bound to that device) then never starts.
mkdir -p "$ROOTFS/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultDeviceTimeoutSec=900\n' >"$ROOTFS/etc/systemd/system.conf.d/50-snf-test-image.conf"

cat >"$ROOTFS/etc/default/grub.d/50-snf-test-image.cfg" <<'EOF'
GRUB_TIMEOUT=0
GRUB_TIMEOUT_STYLE=hidden
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
# no_timer_check: under TCG on a busy host the kernel's IO-APIC timer self-test can fail.
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200 no_timer_check"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB_DISABLE_OS_PROBER=true
EOF

KERNEL=$(cd "$ROOTFS/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -1)
DEBIAN_VERSION=$(cat "$ROOTFS/etc/debian_version")
log "root fs ready: kernel $KERNEL, Debian $DEBIAN_VERSION, cloud-init $CLOUD_INIT_VERSION, $(du -sm "$ROOTFS" | cut -f1) MiB"

# --------------------------------------------------------------- disk image
wait_for_node() {
    local i
    for i in $(seq 50); do [[ -b $1 ]] && return 0; sleep 0.1; done
    die "$1 did not appear"
}

img=$OUT/$NAME.img
mnt=$TMP/mnt
log "partitioning (msdos)"
truncate -s "$IMAGE_SIZE" "$img"
sfdisk --quiet "$img" <<EOF
label: dos
start=2048, type=83, bootable
EOF
loop=$(losetup -f --show "$img")
LOOPS+=("$loop")
partx -a "$loop"
root_dev=${loop}p1
wait_for_node "$root_dev"
mkfs.ext4 -q -L root "$root_dev"
ROOT_UUID=$(blkid -s UUID -o value "$root_dev")
mkdir -p "$mnt"
mount "$root_dev" "$mnt"
log "copying root fs"
cp -a "$ROOTFS/." "$mnt/"
rm -rf --one-file-system "$ROOTFS"
{
    echo "# <file system> <mount point> <type> <options> <dump> <pass>"
    echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1"
} >"$mnt/etc/fstab"
MACHINE_ID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$MACHINE_ID" >"$mnt/etc/machine-id"

chroot_mounts "$mnt" "$loop"
log "ssh host keys, grub"
: >"$OUT/$NAME.img.hostkeys"
for t in rsa ecdsa ed25519; do
    f=/etc/ssh/ssh_host_${t}_key
    chroot "$mnt" ssh-keygen -q -t "$t" -N '' -C "root@$TEMPLATE_HOSTNAME" -f "$f"
    fp=$(chroot "$mnt" ssh-keygen -l -E sha256 -f "$f.pub" | awk '{print $2}')
    echo "$(awk '{print $1}' "$mnt$f.pub") $fp" >>"$OUT/$NAME.img.hostkeys"
done
chroot "$mnt" grub-install --target=i386-pc --modules="part_msdos ext2" "$loop" >"$TMP/grub.log" 2>&1 \
    || { cat "$TMP/grub.log"; die "grub-install failed"; }
chroot "$mnt" update-grub >>"$TMP/grub.log" 2>&1 || { cat "$TMP/grub.log"; die "update-grub failed"; }
grep -q "root=UUID=$ROOT_UUID " "$mnt/boot/grub/grub.cfg" \
    || die "grub.cfg does not boot root=UUID=$ROOT_UUID"
chroot_umounts "$mnt"
umount "$mnt"
e2fsck -fn "$root_dev" >/dev/null 2>&1 || die "root fs check failed"
detach_loop "$loop"
LOOPS=()
log "$NAME: $(du -m "$img" | cut -f1) MiB allocated"

# ----------------------------------------------------------------- manifest
file_json() { # name format
    printf '{"name": "%s", "size": %s, "sha256": "%s", "format": "%s"}' \
        "$1" "$(stat -c %s "$OUT/$1")" "$(sha256sum "$OUT/$1" | cut -d' ' -f1)" "$2"
}
{
    echo '{'
    echo "  \"key\": \"$KEY\","
    echo "  \"created\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"distribution\": \"debian\", \"suite\": \"$SUITE\", \"debian_version\": \"$DEBIAN_VERSION\","
    echo "  \"kernel\": \"$KERNEL\", \"cloud_init\": \"$CLOUD_INIT_VERSION\","
    echo "  \"mirror\": \"$MIRROR\","
    echo '  "images": {'
    echo "    \"$NAME\": {"
    echo '      "partition_table": "msdos",'
    echo '      "root_partition": 1,'
    echo "      \"root_uuid\": \"$ROOT_UUID\","
    echo '      "filesystem": "ext4",'
    echo "      \"size\": $(stat -c %s "$img"),"
    echo "      \"template_password\": \"$TEMPLATE_PASSWORD\","
    echo "      \"hostname\": \"$TEMPLATE_HOSTNAME\","
    echo "      \"machine_id\": \"$MACHINE_ID\","
    echo '      "network": "netplan",'
    echo '      "serial_console": "ttyS0",'
    echo '      "ssh_host_keys": ['
    awk '{ printf "%s        {\"type\": \"%s\", \"fingerprint\": \"%s\"}", (NR > 1 ? ",\n" : ""), $1, $2 }' \
        "$OUT/$NAME.img.hostkeys"
    echo
    echo '      ],'
    echo "      \"files\": {\"raw\": \"$NAME.img\", \"hostkeys\": \"$NAME.img.hostkeys\"}"
    echo '    }'
    echo '  },'
    echo '  "files": ['
    echo "    $(file_json "$NAME.img" raw),"
    echo "    $(file_json "$NAME.img.hostkeys" hostkeys)"
    echo '  ],'
    echo '  "complete": true'
    echo '}'
} >"$OUT/manifest.json.tmp"
mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
manifest_complete "$OUT" || die "manifest self-check failed"
chmod 0444 "$OUT"/*

if [[ -e $FINAL ]]; then
    mv "$FINAL" "$TMP/stale"
fi
mv "$OUT" "$FINAL"
log "done in $((SECONDS - START)) s"
(cd "$FINAL" && ls -ls --block-size=M) >&2
echo "$FINAL" >&3
exit 0
}
