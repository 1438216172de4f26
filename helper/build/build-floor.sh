#!/bin/bash
# Build the "floor" initramfs for boot benchmarks: busybox only, its /init
# writes a marker to ttyS1 (and ttyS0) and powers off at once. Booted with
# the helper's kernel and no disks, it gives the fastest possible boot of that
# kernel on that QEMU, against which the helper boot is compared.
#
# Usage: build-floor.sh --out FILE [--busybox PATH] [--marker TEXT] [--comp none|gzip]
#   --busybox  a static busybox (default: /bin/busybox if static, else the one
#              from Debian's busybox-static package, downloaded with apt-get)
set -euo pipefail

OUT= BUSYBOX= MARKER=FLOOR-OK COMP=none
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2; shift 2 ;;
	--busybox) BUSYBOX=$2; shift 2 ;;
	--marker) MARKER=$2; shift 2 ;;
	--comp) COMP=$2; shift 2 ;;
	-h | --help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done
[ -n "$OUT" ] || { echo "usage: $0 --out FILE [--busybox PATH]" >&2; exit 2; }
case "$MARKER" in *[!A-Za-z0-9_.-]*) echo "marker: [A-Za-z0-9_.-] only" >&2; exit 2 ;; esac

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

is_static() { file -L "$1" 2>/dev/null | grep -q 'statically linked'; }
if [ -z "$BUSYBOX" ]; then
	if [ -x /bin/busybox ] && is_static /bin/busybox; then
		BUSYBOX=/bin/busybox
	else
		(cd "$WORK" && apt-get -q download busybox-static >&2)
		dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/bb"
		BUSYBOX="$WORK/bb/bin/busybox"
	fi
fi

R="$WORK/root"
mkdir -p "$R"/{bin,dev,proc,sys}
cp "$BUSYBOX" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
cat >"$R/init" <<EOF
#!/bin/sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo $MARKER > /dev/ttyS1
echo $MARKER > /dev/ttyS0
/bin/busybox poweroff -f
EOF
chmod 0755 "$R/init"
[ "$(id -u)" = 0 ] && mknod -m 0600 "$R/dev/console" c 5 1
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) >"$WORK/floor.cpio"
case "$COMP" in
none) cp "$WORK/floor.cpio" "$OUT.tmp" ;;
gzip) gzip -9n <"$WORK/floor.cpio" >"$OUT.tmp" ;;
*) echo "bad --comp" >&2; exit 2 ;;
esac
mv "$OUT.tmp" "$OUT"
echo "$OUT: $(stat -c %s "$OUT") bytes, marker $MARKER" >&2
