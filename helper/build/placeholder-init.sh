#!/bin/busybox sh
# Placeholder for the snf-image helper PID 1 (the real one is the Node SEA
# binary run as "snf-image helper"). Proves the boot path end to end:
# floppy driver + ext2 config floppy, the result port ttyS1, and power-off.
bb=/bin/busybox
echo "placeholder init: pid $$ args: $*" > /dev/ttyS0
[ -b /dev/fd0 ] || /sbin/modprobe floppy 2> /dev/ttyS0 # the initrd normally loaded it
$bb mkdir -p /tmp/floppy
if $bb mount -t ext2 -o ro /dev/fd0 /tmp/floppy 2> /dev/ttyS0; then
	for f in /tmp/floppy/*; do
		[ -f "$f" ] || continue
		echo "--- floppy: ${f##*/}" > /dev/ttyS0
		$bb cat "$f" > /dev/ttyS0
	done
	$bb umount /tmp/floppy
	echo SUCCESS > /dev/ttyS1
else
	echo "ERROR: placeholder: cannot mount the config floppy" > /dev/ttyS1
fi
$bb poweroff -f
echo o > /proc/sysrq-trigger
