#!/usr/bin/env bash
# The Debian packages the tests and the demo need: the one list, used by .ci/run, by
# `npm run setup` and by `npm run demo` (which runs this first). Installs only what is
# missing (apt-get update first), as root, on Debian 12.
#
#   scripts/setup.sh           install what is missing
#   scripts/setup.sh --check   print what is missing; exit 1 if anything is
set -euo pipefail

PACKAGES=(
  # building dist/snf-image (the native addon) and the Debian package
  gcc libc6-dev libzstd-dev dpkg-dev debhelper lintian fakeroot
  # disks, partitions and file systems (integration tests, test images)
  e2fsprogs util-linux fdisk gdisk parted xfsprogs btrfs-progs lvm2 ntfs-3g makefs
  # image formats and compression
  zstd xz-utils bzip2 gzip lz4 qemu-utils
  # the helper VM and test image builds, booting guests
  qemu-system-x86 debootstrap mmdebstrap squashfs-tools busybox-static cpio kmod
  # Windows guests (registry), passwords (mkpasswd), the rest of the tests
  libhivex-bin whois openssh-client curl procps
  # https (test CAs) and FTP (a real vsftpd) image sources
  openssl vsftpd
)

installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' 2>/dev/null | awk '$2 == "ii" { print $1 }')
missing=()
for p in "${PACKAGES[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done

if [ "${1:-}" = --check ]; then
  [ "${#missing[@]}" -eq 0 ] && exit 0
  echo "missing Debian packages: ${missing[*]}"
  exit 1
fi
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: the ${#PACKAGES[@]} Debian packages the tests and the demo need are installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root to install the missing Debian packages: ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq -o DPkg::Lock::Timeout=600
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
