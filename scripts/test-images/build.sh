#!/bin/bash
# Build the Debian 12 (bookworm) template guest images used by snf-image's
# tests, from Debian packages only, and cache them outside the repository.
#
#   dir=$(scripts/test-images/build.sh | tail -1)
#
# Output: ${SNF_TEST_CACHE:-/var/cache/snf-image-test}/images/<key>/ where
# <key> is derived from the contents of scripts/test-images/ (see README.md).
# All progress goes to stderr; the only stdout line is the cache directory.
# Needs root (loop devices, mount, chroot).
set -euo pipefail

# The whole script is one compound command, so bash parses all of it before
# running any: editing this file while a build runs cannot derail that build.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${SNF_TEST_CACHE:-/var/cache/snf-image-test}
SUITE=bookworm
IMAGE_SIZE=1536M          # 1.5 GiB
TEMPLATE_PASSWORD=template-pw
TEMPLATE_HOSTNAME=template-host
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
GUEST_PACKAGES=(
    systemd-sysv udev kmod linux-image-amd64 zstd grub-pc
    openssh-server ifupdown isc-dhcp-client iproute2
    passwd login procps e2fsprogs
)
BIOS_BOOT_GUID=21686148-6449-6E6F-744E-656564454649
LINUX_FS_GUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# stdout is reserved for the final path: keep it on fd 3, send the rest to stderr.
exec 3>&1 1>&2

log() { printf '[test-images %(%T)T] %s\n' -1 "$*"; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cache key
# sha256 over "sha256sum" lines (hash + relative path) of every file in this
# directory, sorted by path; first 16 hex chars.
cache_key() {
    (cd "$HERE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-16
}
KEY=$(cache_key)
IMAGES_DIR=$CACHE_ROOT/images
FINAL=$IMAGES_DIR/$KEY

# A manifest is complete when it carries the end marker and every file it
# lists exists with the recorded size.
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

# Do all mounting in a private mount namespace: nothing we mount is visible
# to (or gets copied into mount namespaces created by) other processes on
# the host, and everything disappears with the namespace even if we are
# killed. (A mount copied into someone else's namespace would keep the loop
# partitions busy.)
if [[ -z ${SNF_TEST_IMAGES_NS:-} ]]; then
    export SNF_TEST_IMAGES_NS=1
    exec unshare --mount --propagation private -- "$BASH" "$HERE/build.sh" "$@"
fi

mkdir -p "$IMAGES_DIR" "$CACHE_ROOT/debs"
# Serialise concurrent builds of the same key; the loser finds the result.
exec 9>"$IMAGES_DIR/.lock-$KEY"
flock 9
if manifest_complete "$FINAL"; then
    log "cached (built concurrently): $FINAL"
    echo "$FINAL" >&3
    exit 0
fi

START=$SECONDS
log "building images, key $KEY"

# ------------------------------------------------------------ host packages
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have debootstrap || need+=(debootstrap)
have qemu-img || need+=(qemu-utils)
have zstd || need+=(zstd)
have xz || need+=(xz-utils)
have gzip || need+=(gzip)
have sfdisk || need+=(fdisk)
have mkfs.ext4 || need+=(e2fsprogs)
have partx || need+=(util-linux)
have losetup || need+=(mount)
have sha256sum || need+=(coreutils)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
    log "installing host packages: ${need[*]}"
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        "${APT[@]}" update
    fi
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${need[@]}"
fi

# ------------------------------------------------------------------ mirrors
# Use the mirror apt on this machine is configured with (override with
# SNF_TEST_MIRROR / SNF_TEST_SECURITY_MIRROR).
apt_site() {
    apt-get indextargets --format '$(SITE) $(RELEASE)' 'Created-By: Packages' 2>/dev/null \
        | awk -v r="$1" '$2 == r { print $1; exit }'
}
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

umount_under() { # unmount everything at or below $1, deepest first
    local m
    findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' \
        | sort -r | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" || true
        done
}

kill_tree() { # pid: SIGTERM it and all its descendants
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
    kill "$1" 2>/dev/null || true
}

# Run "$@" in the background and wait for it, so that a signal to this
# script is handled at once instead of after a long child finishes.
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

# Minimal private /dev for a chroot: basic nodes plus the given loop device
# and its partitions, and /dev/disk/by-uuid links (grub-mkconfig only emits
# root=UUID=... when that link exists; this host runs no udev, so the host
# /dev has no such links and we do not want to add any there).
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

chroot_mounts "$ROOTFS"
mount --bind "$CACHE_ROOT/debs" "$ROOTFS/var/cache/apt/archives"
in_root() { chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
in_root debconf-set-selections <<'EOF'
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
EOF
log "apt: ${GUEST_PACKAGES[*]}"
apt_phase() { # (set -e does not apply inside "cmd || ...": chain with &&)
    in_root "${APT[@]}" update &&
        in_root "${APT[@]}" -y dist-upgrade &&
        in_root "${APT[@]}" install -y "${GUEST_PACKAGES[@]}"
}
bg_wait apt_phase >"$TMP/apt.log" 2>&1 || { tail -40 "$TMP/apt.log"; die "apt in chroot failed"; }

log "configuring template"
in_root chpasswd <<<"root:$TEMPLATE_PASSWORD"
in_root systemctl enable serial-getty@ttyS0.service ssh.service
in_root systemctl is-enabled ssh.service serial-getty@ttyS0.service >/dev/null
# Faster boots of a throw-away test guest: nothing periodic and no e2scrub clean-up (the
# timers catch up at boot; under TCG every one of them costs seconds).
BOOT_MASKED=(e2scrub_reap.service e2scrub_all.timer fstrim.timer apt-daily.timer
    apt-daily-upgrade.timer dpkg-db-backup.timer)
in_root systemctl mask "${BOOT_MASKED[@]}"
umount "$ROOTFS/var/cache/apt/archives"
chroot_umounts "$ROOTFS"

rm -f "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin
rm -rf "$ROOTFS"/var/lib/apt/lists/*
rm -f "$ROOTFS/usr/sbin/policy-rc.d" "$ROOTFS"/etc/ssh/ssh_host_*
rm -f "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old
# What debootstrap unpacked before dpkg-excludes.cfg was in place.
find "$ROOTFS/usr/share/doc" ! -type d ! -name copyright -delete
find "$ROOTFS/usr/share/doc" -depth -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/*
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
: >"$ROOTFS/etc/machine-id"

cat >"$ROOTFS/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$TEMPLATE_HOSTNAME

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
# Filled in by dhclient; do not ship the build host's resolv.conf.
: >"$ROOTFS/etc/resolv.conf"

# Network: ifupdown (what snf-image's Debian network task writes). The
# template brings up the first NIC with DHCP whatever its predictable name.
cat >"$ROOTFS/etc/network/interfaces" <<'EOF'
# Template network configuration (snf-image test image).
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# DHCP on the first ethernet NIC, whatever it is called. (Interface name
# patterns only work with "auto": the allow-hotplug udev helper does not
# expand them.)
auto /en*/1=nic0 /eth*/1=nic0
iface nic0 inet dhcp
EOF

cat >"$ROOTFS/etc/default/grub.d/50-snf-test-image.cfg" <<'EOF'
GRUB_TIMEOUT=0
GRUB_TIMEOUT_STYLE=hidden
# quiet: kernel and systemd status messages off the serial console (printing them costs
# boot time under TCG, and they interleave with the login prompts).
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
# no_timer_check: under TCG on a busy host the kernel's IO-APIC timer
# self-test can fail and panic ("IO-APIC + timer doesn't work").
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200 no_timer_check"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB_DISABLE_OS_PROBER=true
EOF

KERNEL=$(cd "$ROOTFS/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -1)
DEBIAN_VERSION=$(cat "$ROOTFS/etc/debian_version")
log "base root fs ready: kernel $KERNEL, Debian $DEBIAN_VERSION, $(du -sm "$ROOTFS" | cut -f1) MiB"

# --------------------------------------------------------------- disk images
declare -A ROOT_PART BOOT_PART BIOS_PART LABEL ROOT_UUID BOOT_UUID MACHINE_ID

detach_loop() { # loop: drop partition nodes, detach
    local i
    for i in $(seq 20); do partx -d "$1" 2>/dev/null && break; sleep 0.5; done
    losetup -d "$1"
}

wait_for_node() {
    local i
    for i in $(seq 50); do [[ -b $1 ]] && return 0; sleep 0.1; done
    die "$1 did not appear"
}

build_image() { # name layout(msdos|gpt)
    local name=$1 layout=$2 img=$OUT/$1.img loop mnt=$TMP/mnt-$1 root_dev boot_dev=
    local t f fp
    log "$name: partitioning ($layout)"
    truncate -s "$IMAGE_SIZE" "$img"
    if [[ $layout == msdos ]]; then
        sfdisk --quiet "$img" <<EOF
label: dos
start=2048, type=83, bootable
EOF
        ROOT_PART[$name]=1 BOOT_PART[$name]=null BIOS_PART[$name]=null
    else
        sfdisk --quiet "$img" <<EOF
label: gpt
start=2048, size=2048, type=$BIOS_BOOT_GUID, name="BIOS boot"
size=256MiB, type=$LINUX_FS_GUID, name="boot"
type=$LINUX_FS_GUID, name="root"
EOF
        ROOT_PART[$name]=3 BOOT_PART[$name]=2 BIOS_PART[$name]=1
    fi
    LABEL[$name]=$layout
    loop=$(losetup -f --show "$img")
    LOOPS+=("$loop")
    partx -a "$loop"
    root_dev=${loop}p${ROOT_PART[$name]}
    wait_for_node "$root_dev"
    mkfs.ext4 -q -L root "$root_dev"
    ROOT_UUID[$name]=$(blkid -s UUID -o value "$root_dev")
    mkdir -p "$mnt"
    mount "$root_dev" "$mnt"
    if [[ $layout == gpt ]]; then
        boot_dev=${loop}p${BOOT_PART[$name]}
        wait_for_node "$boot_dev"
        mkfs.ext4 -q -L boot "$boot_dev"
        BOOT_UUID[$name]=$(blkid -s UUID -o value "$boot_dev")
        mkdir "$mnt/boot"
        mount "$boot_dev" "$mnt/boot"
    fi

    log "$name: copying root fs"
    cp -a "$ROOTFS/." "$mnt/"
    {
        echo "# <file system> <mount point> <type> <options> <dump> <pass>"
        echo "UUID=${ROOT_UUID[$name]} / ext4 errors=remount-ro 0 1"
        [[ -z $boot_dev ]] || echo "UUID=${BOOT_UUID[$name]} /boot ext4 defaults 0 2"
    } >"$mnt/etc/fstab"
    MACHINE_ID[$name]=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    echo "${MACHINE_ID[$name]}" >"$mnt/etc/machine-id"

    chroot_mounts "$mnt" "$loop"
    log "$name: ssh host keys, grub"
    : >"$OUT/$name.img.hostkeys"
    for t in rsa ecdsa ed25519; do
        f=/etc/ssh/ssh_host_${t}_key
        chroot "$mnt" ssh-keygen -q -t "$t" -N '' -C "root@$TEMPLATE_HOSTNAME" -f "$f"
        fp=$(chroot "$mnt" ssh-keygen -l -E sha256 -f "$f.pub" | awk '{print $2}')
        echo "$(awk '{print $1}' "$mnt$f.pub") $fp" >>"$OUT/$name.img.hostkeys"
    done
    local mods="part_msdos ext2"
    [[ $layout == gpt ]] && mods="part_gpt ext2"
    chroot "$mnt" grub-install --target=i386-pc --modules="$mods" "$loop" >"$TMP/grub-$name.log" 2>&1 \
        || { cat "$TMP/grub-$name.log"; die "$name: grub-install failed"; }
    chroot "$mnt" update-grub >>"$TMP/grub-$name.log" 2>&1 \
        || { cat "$TMP/grub-$name.log"; die "$name: update-grub failed"; }
    grep -q "root=UUID=${ROOT_UUID[$name]} " "$mnt/boot/grub/grub.cfg" \
        || die "$name: grub.cfg does not boot root=UUID=${ROOT_UUID[$name]}"
    chroot_umounts "$mnt"

    [[ -z $boot_dev ]] || umount "$mnt/boot"
    umount "$mnt"
    rmdir "$mnt"
    e2fsck -fn "$root_dev" >/dev/null 2>&1 || die "$name: root fs check failed"
    [[ -z $boot_dev ]] || e2fsck -fn "$boot_dev" >/dev/null 2>&1 || die "$name: /boot fs check failed"
    detach_loop "$loop"
    local l keep=()
    for l in "${LOOPS[@]}"; do [[ $l == "$loop" ]] || keep+=("$l"); done
    LOOPS=(${keep[@]+"${keep[@]}"})
    log "$name: done ($(du -m "$img" | cut -f1) MiB allocated)"
}

build_image debian-mbr msdos
build_image debian-gpt gpt
rm -rf --one-file-system "$ROOTFS"

# ------------------------------------------------------------ derived forms
# Only the forms the tests and the demo deploy: zstd at a fast level and qcow2 (seconds).
# xz and gzip (minutes at their usual levels) are made on first use by the image bench
# (ensureImageForm in test/support/test-images.ts), beside these files.
log "compressing (zstd -3, qcow2)"
for name in debian-mbr debian-gpt; do
    img=$OUT/$name.img
    zstd -q -3 -T0 -o "$img.zst" "$img" & BGPIDS+=($!)
    qemu-img convert -f raw -O qcow2 "$img" "$OUT/$name.qcow2" & BGPIDS+=($!)
done
for pid in "${BGPIDS[@]}"; do
    wait "$pid" || die "a compression job failed"
done
BGPIDS=()

# ----------------------------------------------------------------- manifest
log "checksumming"
declare -A SHA
while read -r sum file; do SHA[${file##*/}]=$sum; done \
    < <(cd "$OUT" && ls | xargs -P 2 -n 3 sha256sum)

file_json() { # name format
    printf '{"name": "%s", "size": %s, "sha256": "%s", "format": "%s"}' \
        "$1" "$(stat -c %s "$OUT/$1")" "${SHA[$1]}" "$2"
}
json_str_or_null() { [[ $1 == null ]] && echo null || echo "\"$1\""; }

{
    echo '{'
    echo "  \"key\": \"$KEY\","
    echo "  \"created\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"distribution\": \"debian\", \"suite\": \"$SUITE\", \"debian_version\": \"$DEBIAN_VERSION\","
    echo "  \"kernel\": \"$KERNEL\","
    echo "  \"mirror\": \"$MIRROR\","
    echo '  "images": {'
    sep=
    for name in debian-mbr debian-gpt; do
        printf '%s' "$sep"; sep=$',\n'
        echo "    \"$name\": {"
        echo "      \"partition_table\": \"${LABEL[$name]}\","
        echo "      \"root_partition\": ${ROOT_PART[$name]},"
        echo "      \"boot_partition\": ${BOOT_PART[$name]},"
        echo "      \"bios_boot_partition\": ${BIOS_PART[$name]},"
        echo "      \"root_uuid\": \"${ROOT_UUID[$name]}\","
        echo "      \"boot_uuid\": $(json_str_or_null "${BOOT_UUID[$name]:-null}"),"
        echo "      \"filesystem\": \"ext4\","
        echo "      \"size\": $(stat -c %s "$OUT/$name.img"),"
        echo "      \"template_password\": \"$TEMPLATE_PASSWORD\","
        echo "      \"hostname\": \"$TEMPLATE_HOSTNAME\","
        echo "      \"machine_id\": \"${MACHINE_ID[$name]}\","
        echo "      \"network\": \"ifupdown\","
        echo "      \"serial_console\": \"ttyS0\","
        echo "      \"ssh_host_keys\": ["
        awk '{ printf "%s        {\"type\": \"%s\", \"fingerprint\": \"%s\"}", (NR > 1 ? ",\n" : ""), $1, $2 }' \
            "$OUT/$name.img.hostkeys"
        echo
        echo "      ],"
        echo "      \"files\": {"
        echo "        \"raw\": \"$name.img\", \"zst\": \"$name.img.zst\","
        echo "        \"qcow2\": \"$name.qcow2\", \"hostkeys\": \"$name.img.hostkeys\""
        echo "      }"
        printf '    }'
    done
    echo
    echo '  },'
    echo '  "files": ['
    sep=
    for name in debian-mbr debian-gpt; do
        for f in "$name.img:raw" "$name.img.zst:zst" "$name.qcow2:qcow2" "$name.img.hostkeys:hostkeys"; do
            printf '%s    %s' "$sep" "$(file_json "${f%%:*}" "${f##*:}")"; sep=$',\n'
        done
    done
    echo
    echo '  ],'
    echo '  "complete": true'
    echo '}'
} >"$OUT/manifest.json.tmp"
mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
manifest_complete "$OUT" || die "manifest self-check failed"
chmod 0444 "$OUT"/*

# ------------------------------------------------------------------ publish
if [[ -e $FINAL ]]; then # incomplete leftover from an older run
    mv "$FINAL" "$TMP/stale"
fi
mv "$OUT" "$FINAL"
log "done in $((SECONDS - START)) s"
(cd "$FINAL" && ls -ls --block-size=M) >&2
echo "$FINAL" >&3
exit 0
}
