#!/bin/busybox sh
# Placeholder for the snf-image helper PID 1 (the real one is the Node SEA
# binary run as "snf-image helper"). Proves the boot path end to end:
# floppy driver + the config floppy (a tar archive), the result port ttyS1,
# and power-off.
bb=/bin/busybox
echo "placeholder init: pid $$ args: $*" > /dev/ttyS0
[ -b /dev/fd0 ] || /sbin/modprobe floppy 2> /dev/ttyS0 # the initrd normally loaded it
echo "--- floppy: config.json" > /dev/ttyS0
if $bb tar -xOf /dev/fd0 config.json > /dev/ttyS0 2>&1; then
	echo SUCCESS > /dev/ttyS1
else
	echo "ERROR: placeholder: cannot read config.json from the config floppy" > /dev/ttyS1
fi
$bb poweroff -f
echo o > /proc/sysrq-trigger
