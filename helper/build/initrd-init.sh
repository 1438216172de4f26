#!/bin/sh
# /init of the snf-image helper initramfs (busybox sh, runs as PID 1).
#
# Loads the few modules listed in /etc/modules.load (paths, already in
# dependency order, computed from modules.dep at build time), finds the
# read-only helper root disk by its virtio serial ("helper-root"), mounts it,
# gives it /dev /proc /sys and tmpfs /tmp /run, and switch_roots into
#   /usr/lib/snf-image/snf-image helper
# (override with snf_image_init=PATH on the kernel command line).
#
# Kernel command line switches understood here:
#   snf_image_init=PATH         program to exec as PID 1 in the root image
#   snf_image_root_serial=S     virtio serial of the root disk (helper-root)
#   snf_image_rootfstype=T      filesystem of the root image (from the build)
#   snf_image_initrd_shell      start a shell on the console instead of failing
#   snf_image_initrd_debug      print timestamps of each step on the console
#
# On any failure "ERROR: ..." is written to ttyS1 (the result port the host
# reads) and the VM powers off at once, so the host does not have to wait for
# its timeout.

export PATH=/bin
umask 022

mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys

init=/usr/lib/snf-image/snf-image
serial=helper-root
read -r fstype < /etc/rootfstype
shell= debug=
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
	case "$arg" in
	snf_image_init=*) init=${arg#*=} ;;
	snf_image_root_serial=*) serial=${arg#*=} ;;
	snf_image_rootfstype=*) fstype=${arg#*=} ;;
	snf_image_initrd_shell) shell=1 ;;
	snf_image_initrd_debug) debug=1 ;;
	esac
done

t() {
	[ -n "$debug" ] || return 0
	read -r up _ < /proc/uptime
	echo "initrd $up $*" > /dev/console
}
t start

fail() {
	echo "snf-image initrd: $*" > /dev/console
	if [ -n "$shell" ]; then
		echo "snf-image initrd: starting a shell" > /dev/console
		setsid cttyhack sh
	fi
	echo "ERROR: helper initrd: $*" > /dev/ttyS1
	poweroff -f
	echo o > /proc/sysrq-trigger
	sleep 5
	exit 1
}

# floppy.ko spends most of its init time sleeping (FDC reset, drive
# detection), and so does the first read of the floppy (400 ms motor spin-up
# wait), so load it and read the first 32 KiB of the config floppy in the
# background while the root disk is set up; the helper then finds the motor
# running and the start of the floppy's archive (config.json) in the page cache.
bg_pid=
if [ -s /etc/modules.bg ]; then
	(
		while read -r m opts; do
			insmod "$m" $opts
			t "bg: ${m##*/}"
			if [ "${m##*/}" = floppy.ko ] && [ -b /dev/fd0 ]; then
				{ dd if=/dev/fd0 of=/dev/null bs=32k count=1 2>/dev/null; t "bg: fd0 read"; } &
			fi
		done < /etc/modules.bg
		wait
	) &
	bg_pid=$!
fi
while read -r m opts; do
	insmod "$m" $opts || fail "cannot load $m"
	t "${m##*/}"
done < /etc/modules.load

# virtio_blk probes synchronously and devtmpfs creates the node before insmod
# returns, but give slow hosts a little slack anyway (~2 s, more under TCG).
root=
i=0
while :; do
	for s in /sys/block/*/serial; do
		[ -r "$s" ] || continue
		v=
		read -r v < "$s" || true
		if [ "$v" = "$serial" ]; then
			d=${s%/serial}
			root=/dev/${d##*/}
			break 2
		fi
	done
	i=$((i + 1))
	[ $i -le 100 ] || fail "no disk with serial '$serial'"
	usleep 20000
done

t "root disk $root"
mkdir -p /newroot
mount -t "$fstype" -o ro "$root" /newroot || fail "cannot mount $root ($fstype)"
[ -x "/newroot$init" ] || fail "$init is missing from the helper root image"

mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /newroot/tmp || fail "cannot mount /tmp"
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /newroot/run || fail "cannot mount /run"
t "root mounted"
[ -z "$bg_pid" ] || wait "$bg_pid"
t "background modules loaded"
mount --move /dev /newroot/dev || fail "cannot move /dev"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys

t "switch_root"
exec switch_root /newroot "$init" helper
echo "ERROR: helper initrd: switch_root failed" > /newroot/dev/ttyS1
echo o > /newroot/proc/sysrq-trigger
