#!/bin/bash
# Build the snf-image helper VM image (kernel, initrd, root.img, manifest.json)
# from Debian packages only. See README.md in this directory.
set -euo pipefail

RECIPE_VERSION=2 # bump when the bootstrap recipe (hook, excludes) changes

usage() {
	cat <<EOF
Usage: $0 --out DIR --init-binary PATH [options]

  --out DIR              output directory (replaced atomically)
  --init-binary PATH     program installed as /usr/lib/snf-image/snf-image
  --suite SUITE          Debian suite (default: bookworm)
  --mirror URL           Debian mirror (default: the one in /etc/apt/sources.list*)
  --rootfs TYPE          squashfs (default) or ext4
  --squashfs-comp C      squashfs compressor: lz4 (default), zstd, xz, gzip, lzo
  --initrd-comp C        none (default), gzip, lz4, zstd
  --kernel-format F      both (default): Debian's vmlinuz as kernel and the
                         uncompressed ELF vmlinux extracted from it as
                         kernel-pvh, which QEMU boots through its PVH entry
                         point without the in-guest XZ decompression (~3 s
                         under TCG; snf-image uses it when the helper runs
                         under TCG); bzimage or pvh: only one, as kernel
  --no-ufs-write         keep Debian's read-only ufs.ko (default: build a
                         write-enabled one from Debian's linux-source for the
                         helper kernel, so BSD images can be customized)
  --extra-file SRC:DEST  also install file SRC as DEST in the root image
                         (repeatable; e.g. test programs)
  --cache-dir DIR        bootstrap cache (default: /var/cache/snf-image-build)
  --no-cache             re-bootstrap even if a cached tree exists (refreshes it)
  -h, --help             this text
EOF
}

OUT= INIT_BIN= SUITE=bookworm MIRROR= ROOTFS=squashfs SQUASHFS_COMP=lz4
INITRD_COMP=none CACHE_DIR=/var/cache/snf-image-build USE_CACHE=1
EXTRA_FILES=() KERNEL_FORMAT=both UFS_WRITE=1
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2; shift 2 ;;
	--init-binary) INIT_BIN=$2; shift 2 ;;
	--suite) SUITE=$2; shift 2 ;;
	--mirror) MIRROR=$2; shift 2 ;;
	--rootfs) ROOTFS=$2; shift 2 ;;
	--squashfs-comp) SQUASHFS_COMP=$2; shift 2 ;;
	--initrd-comp) INITRD_COMP=$2; shift 2 ;;
	--cache-dir) CACHE_DIR=$2; shift 2 ;;
	--extra-file) EXTRA_FILES+=("$2"); shift 2 ;;
	--kernel-format) KERNEL_FORMAT=$2; shift 2 ;;
	--no-cache) USE_CACHE=0; shift ;;
	--no-ufs-write) UFS_WRITE=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
[ -n "$OUT" ] && [ -n "$INIT_BIN" ] || { usage >&2; exit 2; }
[ -f "$INIT_BIN" ] || { echo "no such file: $INIT_BIN" >&2; exit 2; }
case "$ROOTFS" in squashfs | ext4) ;; *) echo "bad --rootfs" >&2; exit 2 ;; esac
case "$INITRD_COMP" in none | gzip | lz4 | zstd) ;; *) echo "bad --initrd-comp" >&2; exit 2 ;; esac
case "$KERNEL_FORMAT" in bzimage | pvh | both) ;; *) echo "bad --kernel-format" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(realpath -m "$OUT")
INIT_BIN=$(realpath "$INIT_BIN")
START=$(date +%s)
log() { echo "[build-helper $(($(date +%s) - START))s] $*" >&2; }

# Tools for the root image. Everything else comes with them (no Recommends).
PACKAGES=(
	btrfs-progs busybox-static dosfstools e2fsprogs fdisk gdisk kmod
	libgcc-s1 libhivex-bin libstdc++6 lvm2 ntfs-3g openssh-client parted
	util-linux whois xfsprogs
)
KERNEL_META=linux-image-amd64
# Removed after installation (dpkg --purge --force-depends): apt is not used
# at run time, python3 is only pulled in by xfsprogs for xfs_scrub_all.
PURGE=(apt libapt-pkg6.0 python3 python3-minimal 'python3.*' 'libpython3*')
# Kernel modules kept in the root image: these directories whole, plus the
# listed modules and everything they depend on.
MODULE_DIRS=(kernel/fs kernel/crypto kernel/lib kernel/arch/x86/crypto kernel/block)
# ... minus the network filesystems (the helper VM has no network)
MODULE_EXCLUDE=(kernel/fs/{nfs,nfsd,nfs_common,lockd,smb,cifs,ceph,9p,afs,coda,dlm,gfs2,ocfs2,orangefs,ksmbd,jffs2,ubifs,vboxsf})
MODULES=(virtio_pci virtio_blk virtio_scsi virtio_console virtio-rng sd_mod sg
	floppy loop dm_mod)
# Loaded by the initrd (in this order, with their dependencies).
INITRD_MODULES=(virtio_pci virtio_blk)
# The config floppy is a tar archive read from the device: no filesystem module.
INITRD_BG_MODULES=(floppy)
case "$ROOTFS" in
squashfs) INITRD_MODULES+=(squashfs) ;;
ext4) INITRD_MODULES+=(crc32c_generic ext4) ;;
esac

# --- host dependencies --------------------------------------------------------
need=()
for t in mmdebstrap:mmdebstrap mksquashfs:squashfs-tools cpio:cpio \
	mke2fs:e2fsprogs depmod:kmod dpkg-deb:dpkg zstd:zstd lz4:lz4 xz:xz-utils \
	sha256sum:coreutils flock:util-linux; do
	command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	log "installing build dependencies: ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
		install -y --no-install-recommends "${need[@]}" >&2
fi

# --- apt sources ----------------------------------------------------------------
# One "deb URI SUITE main" line per line of output, for SUITE, SUITE-updates
# and SUITE-security, taken from the host's configuration (one-line and
# deb822 formats) unless --mirror is given.
host_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
			awk '$1 == "deb" { for (i = 4; i <= NF; i++) print $2, $3, $i }'
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'function flush() {
			if (types ~ /(^| )deb( |$)/ && enabled !~ /^no/) {
				nu = split(uris, u, " "); ns = split(suites, s, " ");
				nc = split(comps, c, " ");
				for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
					for (k = 1; k <= nc; k++) print u[i], s[j], c[k]
			}
			types = uris = suites = comps = enabled = ""
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		{ key = tolower($1); sub(/:$/, "", key); $1 = "" }
		key == "types" { types = $0 } key == "uris" { uris = $0 }
		key == "suites" { suites = $0 } key == "components" { comps = $0 }
		key == "enabled" { enabled = tolower($0); sub(/^ +/, "", enabled) }
		END { flush() }' "$f"
	done
}
sources() {
	local all main upd sec
	all=$(host_sources | awk '$3 == "main"' || true)
	sec=$(awk -v s="$SUITE-security" '$2 == s { print $1; exit }' <<<"$all")
	if [ -n "$MIRROR" ]; then
		main=$MIRROR upd=$MIRROR
	else
		main=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$all")
		upd=$(awk -v s="$SUITE-updates" '$2 == s { print $1; exit }' <<<"$all")
		main=${main:-http://deb.debian.org/debian}
		sec=${sec:-http://deb.debian.org/debian-security}
	fi
	echo "deb $main $SUITE main"
	[ -z "$upd" ] || echo "deb $upd $SUITE-updates main"
	[ -z "$sec" ] || echo "deb $sec $SUITE-security main"
}
mapfile -t SOURCES < <(sources)

# --- bootstrap (cached) ---------------------------------------------------------
KEY=$(printf '%s\n' "recipe=$RECIPE_VERSION" "suite=$SUITE" "${SOURCES[@]}" \
	"kernel=$KERNEL_META" "purge=${PURGE[*]}" $(printf '%s\n' "${PACKAGES[@]}" | sort) |
	sha256sum | cut -c1-16)
CACHE="$CACHE_DIR/$SUITE-$KEY"
mkdir -p "$CACHE_DIR"

bootstrap() {
	local tmp hook
	rm -rf "$CACHE".tmp.* # left over by a failed run (we hold the lock)
	tmp=$(mktemp -d "$CACHE.tmp.XXXX")
	trap "rm -rf '$tmp'" EXIT
	hook="$tmp/customize-hook"
	cat >"$hook" <<EOF
#!/bin/sh
# mmdebstrap customize hook: \$1 = chroot, \$2 = cache staging directory
set -eu
cd "\$2"
kpkg=\$(chroot "\$1" apt-cache depends --important $KERNEL_META |
	awk '/Depends: linux-image-/ { print \$2; exit }')
chroot "\$1" sh -c "cd /root && apt-get -q download \$kpkg" >&2
mv "\$1"/root/*.deb .
purge=\$(chroot "\$1" dpkg-query -W -f '\${Package}\n' ${PURGE[*]} 2>/dev/null || true)
[ -z "\$purge" ] ||
	chroot "\$1" dpkg --purge --force-depends,remove-essential \$purge >&2
rm -rf "\$1"/usr/lib/python3*
EOF
	chmod +x "$hook"
	log "bootstrapping $SUITE (${#PACKAGES[@]} packages + $KERNEL_META) into $CACHE"
	local excl=()
	for p in /usr/share/doc/ /usr/share/man/ /usr/share/info/ /usr/share/locale/ \
		/usr/share/lintian/ /usr/share/linda/ /usr/share/bug/ /usr/share/zsh/ \
		/usr/share/bash-completion/ /usr/share/common-licenses/; do
		excl+=(--dpkgopt="path-exclude=$p*")
	done
	# keep the licence files
	excl+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
	excl+=(--dpkgopt='path-include=/usr/share/common-licenses/*')
	# merged /usr set up by mmdebstrap's hook instead of the usrmerge package
	# (which would drag in the whole of perl)
	local hooks=()
	[ ! -d /usr/share/mmdebstrap/hooks/merged-usr ] ||
		hooks=(--hook-directory=/usr/share/mmdebstrap/hooks/merged-usr)
	mmdebstrap --variant=minbase --mode=root --format=tar "${hooks[@]}" \
		--aptopt='APT::Install-Recommends "false"' \
		--include="$(IFS=,; echo "${PACKAGES[*]}")" "${excl[@]}" \
		--customize-hook="'$hook' \"\$1\" '$tmp'" \
		"$SUITE" "$tmp/rootfs.tar" "${SOURCES[@]}" >&2
	rm "$hook"
	printf '%s\n' "${SOURCES[@]}" >"$tmp/sources"
	date -u +%Y-%m-%dT%H:%M:%SZ >"$tmp/bootstrapped"
	rm -rf "$CACHE.old"
	[ ! -e "$CACHE" ] || mv "$CACHE" "$CACHE.old"
	mv "$tmp" "$CACHE"
	trap - EXIT
	rm -rf "$CACHE.old"
}
prepare_cache() {
	if [ "$USE_CACHE" = 0 ] || [ ! -f "$CACHE/rootfs.tar" ]; then
		bootstrap
	else
		log "using cached bootstrap $CACHE ($(cat "$CACHE/bootstrapped"))"
	fi
	# The kernel package's files plus modules.dep & co., recompressed for
	# fast partial unpacking (the .deb's xz alone takes ~5 s)
	if [ ! -f "$CACHE/kernel.tar.zst" ]; then
		local kx deb kver
		deb=$(ls "$CACHE"/linux-image-*.deb)
		kx=$(mktemp -d "$CACHE/kernel.tmp.XXXX")
		dpkg-deb -x "$deb" "$kx"
		kver=$(ls "$kx/lib/modules")
		depmod -b "$kx" "$kver"
		(cd "$kx" && tar -c ./boot ./lib/modules) | zstd -q -T0 -3 >"$kx.tar.zst"
		echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" \
			"$kver $(sha256sum "$deb" | cut -d' ' -f1)" >"$CACHE/kernel-info"
		mv "$kx.tar.zst" "$CACHE/kernel.tar.zst"
		rm -rf "$kx"
	fi
}
# Shared lock on the cache entry while it is read (until this script exits),
# exclusive while it is created, so a concurrent --no-cache run cannot replace
# it under our feet.
exec 9>"$CACHE.lock"
flock -s 9
if [ "$USE_CACHE" = 0 ] || [ ! -f "$CACHE/rootfs.tar" ] || [ ! -f "$CACHE/kernel.tar.zst" ]; then
	flock 9 # to exclusive (flock(2) converts by unlocking first: no deadlock)
	prepare_cache
	flock -s 9
else
	log "using cached bootstrap $CACHE ($(cat "$CACHE/bootstrapped"))"
fi

# --- write-enabled ufs.ko (cached) ---------------------------------------------------
# Debian builds the ufs module without CONFIG_UFS_FS_WRITE. The same module with
# write support, for exactly the helper kernel, is built from Debian's packages in a
# throw-away chroot: linux-source-X.Y (only fs/ufs is unpacked), linux-headers-KVER
# of the kernel's own version (same ABI and symbol versions), make and the compiler
# those headers depend on. The helper kernel loads it unsigned (Debian does not set
# CONFIG_MODULE_SIG_FORCE).
read -r KPKG_NAME KPKG_VERSION KVER KDEB_SHA <"$CACHE/kernel-info"
UFS_KO="$CACHE/ufs-rw-$KVER-$KPKG_VERSION.ko"
build_ufs_module() {
	local tmp hook series=${KVER%%-*}
	series=${series%.*}
	tmp=$(mktemp -d "$CACHE/ufs.tmp.XXXX")
	trap "rm -rf '$tmp'" EXIT
	hook="$tmp/build-hook"
	cat >"$hook" <<EOF
#!/bin/sh
# mmdebstrap customize hook: \$1 = chroot, \$2 = output directory
set -eu
v=\$(chroot "\$1" dpkg-query -W -f '\${Version}' linux-headers-$KVER)
[ "\$v" = "$KPKG_VERSION" ] || { echo "linux-headers-$KVER is \$v, the helper kernel $KPKG_VERSION: the cached bootstrap is older than the mirror; rebuild with --no-cache (snf-image-update-helper --refresh)" >&2; exit 1; }
chroot "\$1" sh -eu -c '
cd /root
tar -xJf /usr/src/linux-source-$series.tar.xz --wildcards "linux-source-$series/fs/ufs/*"
cd linux-source-$series/fs/ufs
printf "%s\n" "obj-m += ufs.o" "ufs-objs := balloc.o cylinder.o dir.o file.o ialloc.o inode.o namei.o super.o util.o" "ccflags-y += -DCONFIG_UFS_FS_WRITE=1" >Kbuild
make -s -C /usr/src/linux-headers-$KVER M="\$PWD" modules 2>&1 | grep -v "Skipping BTF generation" || true
strip --strip-debug ufs.ko
' >&2
cp "\$1/root/linux-source-$series/fs/ufs/ufs.ko" "\$2/ufs.ko"
EOF
	chmod +x "$hook"
	log "building a write-enabled ufs.ko for $KVER from linux-source-$series (Debian $KPKG_VERSION)"
	mmdebstrap --variant=minbase --mode=root --format=null --quiet \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
		--include="make,xz-utils,binutils,linux-headers-$KVER,linux-source-$series" \
		--customize-hook="'$hook' \"\$1\" '$tmp'" \
		"$SUITE" /dev/null "${SOURCES[@]}" >&2 ||
		{ echo "building ufs.ko failed: if the mirror no longer has linux-headers-$KVER, the cached bootstrap is stale; rebuild with --no-cache (snf-image-update-helper --refresh), or --no-ufs-write" >&2; exit 1; }
	[ "$(modinfo -F vermagic "$tmp/ufs.ko" | cut -d' ' -f1)" = "$KVER" ] ||
		{ echo "the ufs.ko built is not for $KVER" >&2; exit 1; }
	mv "$tmp/ufs.ko" "$UFS_KO"
	rm -rf "$tmp"
	trap - EXIT
}
if [ "$UFS_WRITE" = 1 ] && [ ! -f "$UFS_KO" ]; then
	flock 9 # exclusive while the module is made
	[ -f "$UFS_KO" ] || build_ufs_module
	flock -s 9
fi

# --- assemble -------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "$OUT.tmp.XXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ROOT="$WORK/rootfs" KPKG="$WORK/kpkg" INITRD="$WORK/initrd.d" RES="$WORK/out"
mkdir -p "$ROOT" "$KPKG" "$INITRD" "$RES"

log "unpacking the cached tree"
tar -C "$ROOT" --numeric-owner -xpf "$CACHE/rootfs.tar"
ktar() { zstd -dc "$CACHE/kernel.tar.zst" | tar -C "$KPKG" -x "$@"; }
ktar --wildcards "./boot/vmlinuz-$KVER" "./lib/modules/$KVER/modules.*"
# The uncompressed ELF vmlinux inside a bzImage (QEMU boots it through the PVH entry
# point, Debian sets CONFIG_PVH=y): bzImage boot protocol >= 2.08 puts the compressed
# vmlinux payload_length bytes at payload_offset (0x248) from the protected-mode code,
# which starts after (setup_sects (0x1f1) + 1) * 512 bytes.
extract_vmlinux() {
	local vmlinuz=$1 out=$2 start
	rd() { od -An -t"$1" -j "$(($2))" -N"$3" "$vmlinuz" | tr -d ' '; }
	[ "$(rd c 0x202 4 | tr -d '\n')" = HdrS ] || { echo "$vmlinuz: not a bzImage" >&2; exit 1; }
	start=$((($(rd u1 0x1f1 1) + 1) * 512 + $(rd u4 0x248 4)))
	dd if="$vmlinuz" iflag=skip_bytes,count_bytes skip="$start" \
		count="$(rd u4 0x24c 4)" status=none | xz -dc --single-stream >"$out"
	[ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
		{ echo "could not extract an ELF vmlinux (is the kernel XZ-compressed?)" >&2; exit 1; }
}
case "$KERNEL_FORMAT" in
bzimage) cp "$KPKG/boot/vmlinuz-$KVER" "$RES/kernel" ;;
pvh) extract_vmlinux "$KPKG/boot/vmlinuz-$KVER" "$RES/kernel" ;;
both)
	cp "$KPKG/boot/vmlinuz-$KVER" "$RES/kernel"
	extract_vmlinux "$KPKG/boot/vmlinuz-$KVER" "$RES/kernel-pvh"
	;;
esac

# Print the module paths (relative to lib/modules/KVER) of the named modules
# and of everything they depend on, dependencies first, each path once.
# $1 = modules dir, rest = module names.
mod_closure() {
	local mdir=$1; shift
	awk -v want="$*" '
	function norm(s) { sub(/.*\//, "", s); sub(/\.ko.*$/, "", s); gsub(/-/, "_", s); return s }
	function visit(p,   n, i, d) {
		if (p in seen) return
		seen[p] = 1
		n = split(deps[p], d, " ")
		for (i = 1; i <= n; i++) visit(d[i])
		print p
	}
	FILENAME ~ /modules\.dep$/ {
		p = $1; sub(/:$/, "", p); $1 = ""; deps[p] = $0; path[norm(p)] = p; next
	}
	{ builtin[norm($0)] = 1 }
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) {
			m = w[i]; gsub(/-/, "_", m)
			if (m in path) visit(path[m])
			else if (!(m in builtin)) { print "unknown module " m > "/dev/stderr"; exit 1 }
		}
	}' "$mdir/modules.dep" "$mdir/modules.builtin"
}

log "kernel $KVER: selecting modules"
KSRC="$KPKG/lib/modules/$KVER" KDST="$ROOT/lib/modules/$KVER"
mkdir -p "$KDST"
# names of the modules in MODULE_DIRS but not in MODULE_EXCLUDE
mapfile -t want < <(
	cut -d: -f1 "$KSRC/modules.dep" | awk -v dirs="${MODULE_DIRS[*]}" -v excl="${MODULE_EXCLUDE[*]}" '
	BEGIN { nd = split(dirs, d, " "); ne = split(excl, e, " ") }
	{
		for (i = 1; i <= ne; i++) if (index($0, e[i] "/") == 1) next
		for (i = 1; i <= nd; i++) if (index($0, d[i] "/") == 1) {
			n = $0; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); print n; next
		}
	}'
)
mod_closure "$KSRC" "${want[@]}" "${MODULES[@]}" >"$WORK/modules.list"
sed "s|^|./lib/modules/$KVER/|" "$WORK/modules.list" >"$WORK/modules.tar-list"
ktar -T "$WORK/modules.tar-list"
while read -r m; do
	install -D -m 0644 "$KSRC/$m" "$KDST/$m"
done <"$WORK/modules.list"
cp "$KSRC"/modules.order "$KSRC"/modules.builtin "$KSRC"/modules.builtin.modinfo "$KDST/"
if [ "$UFS_WRITE" = 1 ]; then
	[ -f "$KDST/kernel/fs/ufs/ufs.ko" ] || { echo "the helper kernel has no kernel/fs/ufs/ufs.ko to replace" >&2; exit 1; }
	install -m 0644 "$UFS_KO" "$KDST/kernel/fs/ufs/ufs.ko"
fi
depmod -b "$ROOT" "$KVER"
# Every dependency listed must exist in the trimmed tree.
(cd "$KDST" && tr -s ' :' '\n\n' <modules.dep | sed '/^$/d' | sort -u |
	while read -r m; do [ -e "$m" ] || echo "missing dependency $m"; done) |
	{ if read -r l; then echo "$l" >&2; exit 1; fi; }

log "installing the init binary"
install -D -m 0755 -o root -g root "$INIT_BIN" "$ROOT/usr/lib/snf-image/snf-image"
for x in ${EXTRA_FILES[@]+"${EXTRA_FILES[@]}"}; do
	src=${x%%:*} dst=${x#*:}
	case "$dst" in /*) ;; *) echo "--extra-file $x: DEST must be absolute" >&2; exit 2 ;; esac
	install -D -m "$(stat -c %a "$src")" -o root -g root "$src" "$ROOT$dst"
done
echo snf-image-helper >"$ROOT/etc/hostname"
: >"$ROOT/etc/fstab"
mkdir -p "$ROOT/mnt" "$ROOT/tmp" "$ROOT/run" "$ROOT/dev" "$ROOT/proc" "$ROOT/sys"
# apt was purged in the bootstrap hook; mmdebstrap needs its files until the end
rm -rf "$ROOT"/tmp/* "$ROOT"/run/* "$ROOT"/var/cache/ldconfig/aux-cache \
	"$ROOT"/etc/apt "$ROOT"/var/lib/apt "$ROOT"/var/cache/apt "$ROOT"/var/log/* \
	"$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old

# --- root.img -------------------------------------------------------------------
log "building root.img ($ROOTFS)"
case "$ROOTFS" in
squashfs)
	mksquashfs "$ROOT" "$RES/root.img" -comp "$SQUASHFS_COMP" -noappend \
		-no-progress -quiet -all-root -processors "$(nproc)" >&2
	;;
ext4)
	# size: contents + 10% + 16 MiB, no journal (mounted read-only only)
	kib=$(du -sk --apparent-size "$ROOT" | cut -f1)
	kib=$((kib + kib / 10 + 16384))
	mke2fs -q -t ext4 -O ^has_journal -L helper-root -m 0 -N 0 -I 256 \
		-E root_owner=0:0 -d "$ROOT" "$RES/root.img" "${kib}k"
	e2fsck -fy "$RES/root.img" >/dev/null || [ $? -le 1 ]
	resize2fs -M "$RES/root.img" >/dev/null 2>&1
	e2fsck -fy "$RES/root.img" >/dev/null || [ $? -le 1 ]
	;;
esac

# --- initrd ---------------------------------------------------------------------
log "building the initrd"
mkdir -p "$INITRD"/{bin,dev,proc,sys,etc,newroot,lib/modules}
cp "$ROOT/bin/busybox" "$INITRD/bin/busybox"
# perl-base is Essential in Debian; one process instead of ~270 ln calls
(cd "$INITRD/bin" && ./busybox --list | grep -vx busybox |
	perl -ne 'chomp; symlink("busybox", $_) or die "$_: $!\n"')
install -m 0755 "$HERE/initrd-init.sh" "$INITRD/init"
echo "$ROOTFS" >"$INITRD/etc/rootfstype"
: >"$INITRD/etc/modules.load"
: >"$INITRD/etc/modules.bg"
for m in $(mod_closure "$KDST" "${INITRD_MODULES[@]}"); do
	install -D -m 0644 "$KDST/$m" "$INITRD/lib/modules/$m"
	echo "/lib/modules/$m" >>"$INITRD/etc/modules.load"
done
for m in $(mod_closure "$KDST" "${INITRD_BG_MODULES[@]}"); do
	grep -qx "/lib/modules/$m" "$INITRD/etc/modules.load" && continue
	install -D -m 0644 "$KDST/$m" "$INITRD/lib/modules/$m"
	echo "/lib/modules/$m" >>"$INITRD/etc/modules.bg"
done
mknod -m 0600 "$INITRD/dev/console" c 5 1
(cd "$INITRD" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) >"$WORK/initrd.cpio"
case "$INITRD_COMP" in
none) mv "$WORK/initrd.cpio" "$RES/initrd" ;;
gzip) gzip -9n <"$WORK/initrd.cpio" >"$RES/initrd" ;;
lz4) lz4 -l -9 -q <"$WORK/initrd.cpio" >"$RES/initrd" ;;
zstd) zstd -q -19 <"$WORK/initrd.cpio" >"$RES/initrd" ;;
esac

# --- manifest -------------------------------------------------------------------
log "writing manifest.json"
sha() { sha256sum "$1" | cut -d' ' -f1; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
{
	echo "{"
	echo "  \"suite\": $(json_str "$SUITE"),"
	sep=
	echo "  \"sources\": [$(for s in "${SOURCES[@]}"; do printf '%s' "$sep$(json_str "$s")"; sep=', '; done)],"
	echo "  \"kernelVersion\": $(json_str "$KVER"),"
	echo "  \"kernelFormat\": $(json_str "$KERNEL_FORMAT"),"
	echo "  \"kernelPackage\": {\"name\": $(json_str "$KPKG_NAME"), \"version\": $(json_str "$KPKG_VERSION"), \"debSha256\": $(json_str "$KDEB_SHA")},"
	echo "  \"rootfsType\": $(json_str "$ROOTFS"),"
	echo "  \"ufsWrite\": $([ "$UFS_WRITE" = 1 ] && echo true || echo false),"
	[ "$ROOTFS" != squashfs ] || echo "  \"squashfsCompression\": $(json_str "$SQUASHFS_COMP"),"
	echo "  \"initrdCompression\": $(json_str "$INITRD_COMP"),"
	echo "  \"initrdModules\": [$(sep=; for m in $(cat "$INITRD/etc/modules.load" "$INITRD/etc/modules.bg"); do printf '%s' "$sep$(json_str "$(basename "$m")")"; sep=', '; done)],"
	echo "  \"buildTime\": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
	echo "  \"bootstrapTime\": $(json_str "$(cat "$CACHE/bootstrapped")"),"
	echo "  \"bootstrapKey\": $(json_str "$KEY"),"
	echo "  \"sha256\": {"
	echo "    \"kernel\": $(json_str "$(sha "$RES/kernel")"),"
	[ ! -e "$RES/kernel-pvh" ] || echo "    \"kernel-pvh\": $(json_str "$(sha "$RES/kernel-pvh")"),"
	echo "    \"initrd\": $(json_str "$(sha "$RES/initrd")"),"
	echo "    \"root.img\": $(json_str "$(sha "$RES/root.img")")"
	echo "  },"
	echo "  \"initBinarySha256\": $(json_str "$(sha "$INIT_BIN")"),"
	sep=
	echo "  \"extraFiles\": {$(for x in ${EXTRA_FILES[@]+"${EXTRA_FILES[@]}"}; do printf '%s' "$sep$(json_str "${x#*:}"): $(json_str "$(sha "${x%%:*}")")"; sep=', '; done)},"
	echo "  \"packages\": {"
	dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Package}\t${Version}\n' |
		LC_ALL=C sort | awk -F'\t' '{ gsub(/["\\]/, "\\\\&"); printf "%s    \"%s\": \"%s\"", sep, $1, $2; sep = ",\n" } END { print "" }'
	echo "  }"
	echo "}"
} >"$RES/manifest.json"
chmod 0644 "$RES"/*

# --- atomic replace ---------------------------------------------------------------
if [ -e "$OUT" ]; then
	OLD=$(mktemp -u "$OUT.old.XXXX")
	mv -T "$OUT" "$OLD"
	mv -T "$RES" "$OUT"
	rm -rf "$OLD"
else
	mv -T "$RES" "$OUT"
fi
log "done: $OUT ($(du -sh "$OUT/root.img" | cut -f1) root.img, kernel $KVER)"
