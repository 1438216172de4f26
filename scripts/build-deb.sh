#!/bin/bash
# Build snf-image_<version>_amd64.deb with Debian's own tools (debhelper,
# dpkg-buildpackage) from the built single executable dist/snf-image.
#
#   - runs `npm run build` when dist/snf-image is missing or older than the
#     sources (src/, helper/, variants/, the build scripts, package*.json);
#   - checks that debian/changelog's top entry is package.json's version;
#   - builds in a temporary copy of the packaging (the repository gets no
#     build leftovers and no .deb next to it), with a snapshot of dist/;
#   - copies the .deb into dist/ (or --out DIR) and prints its path.
#
# Needs dpkg-dev and debhelper (apt-get install dpkg-dev debhelper).
set -euo pipefail

usage() {
	cat <<EOF
Usage: scripts/build-deb.sh [options]

  --version V   package version V instead of debian/changelog's (a temporary
                changelog entry on top; e.g. to test upgrades)
  --out DIR     where to put the .deb (default: dist)
  --fast        quick, larger .deb: xz level 1 instead of 6
  --no-build    never run npm run build (fail if dist/snf-image is missing)
  -h, --help    this text
EOF
}

VERSION= OUT=dist FAST=0 BUILD=1
while [ $# -gt 0 ]; do
	case "$1" in
	--version) VERSION=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--fast) FAST=1; shift ;;
	--no-build) BUILD=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "build-deb: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/node_modules/.bin:$PATH"
START=$(date +%s)
log() { echo "[build-deb $(($(date +%s) - START))s] $*" >&2; }
die() { echo "build-deb: $*" >&2; exit 1; }

for tool in dpkg-buildpackage:dpkg-dev dpkg-parsechangelog:dpkg-dev dh:debhelper; do
	command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing: apt-get install ${tool#*:}"
done

# --- versions ---------------------------------------------------------------------
PKG_VERSION=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' package.json | head -n1)
CL_VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
[ "$CL_VERSION" = "$PKG_VERSION" ] ||
	die "debian/changelog's top entry is $CL_VERSION but package.json says $PKG_VERSION: add a debian/changelog entry for $PKG_VERSION (e.g. dch -v $PKG_VERSION)"
if [ -n "$VERSION" ]; then
	dpkg --validate-version "$VERSION" 2>/dev/null || die "--version $VERSION is not a valid Debian version"
	case "$VERSION" in "$PKG_VERSION" | "$PKG_VERSION"[+~]*) ;;
	*) die "--version $VERSION must be $PKG_VERSION, or $PKG_VERSION followed by + or ~ and more (the executable is $PKG_VERSION)" ;;
	esac
fi
DEB_VERSION=${VERSION:-$CL_VERSION}

# --- the executable ---------------------------------------------------------------
SOURCES=(src helper variants scripts/bundle.ts scripts/build-native.ts scripts/build-sea.ts package.json package-lock.json tsconfig.json)
stale() {
	[ -x dist/snf-image ] || { echo "dist/snf-image is missing"; return 0; }
	local newer
	newer=$(find "${SOURCES[@]}" -type f -newer dist/snf-image -print -quit 2>/dev/null)
	[ -z "$newer" ] || { echo "dist/snf-image is older than $newer"; return 0; }
	return 1
}
if why=$(stale); then
	if [ "$BUILD" = 1 ]; then
		log "$why: npm run build"
		npm run build >&2
	elif [ -x dist/snf-image ]; then
		log "warning: $why (--no-build: packaging it as it is)"
	else
		die "$why (--no-build)"
	fi
fi
BIN_VERSION=$(env -u NODE_EXTRA_CA_CERTS dist/snf-image --version)
[ "$BIN_VERSION" = "$PKG_VERSION" ] || die "dist/snf-image is version $BIN_VERSION, package.json says $PKG_VERSION: run npm run build"

# --- build in a temporary copy ----------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/snf-image-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/snf-image-$DEB_VERSION"
mkdir -p "$SRC/dist" "$SRC/docs"
# the packaging, without leftovers of a dpkg-buildpackage run in the repository
tar -C "$ROOT" -c --exclude=debian/.debhelper --exclude=debian/snf-image \
	--exclude=debian/stage --exclude=debian/files --exclude='debian/*.substvars' \
	--exclude='debian/*.debhelper' --exclude=debian/debhelper-build-stamp debian |
	tar -C "$SRC" -x
cp -a docs/man "$SRC/docs/man"
cp README.md LICENSE "$SRC/"
# a snapshot of the executable and of the bundle it was made from (licences)
cp --reflink=auto dist/snf-image dist/snf-image.cjs "$SRC/dist/"
ln -s "$ROOT/node_modules" "$SRC/node_modules"

if [ -n "$VERSION" ] && [ "$VERSION" != "$CL_VERSION" ]; then
	{
		echo "snf-image ($VERSION) unstable; urgency=medium"
		echo
		echo "  * Build of $VERSION from $PKG_VERSION (scripts/build-deb.sh --version)."
		echo
		echo " -- $(dpkg-parsechangelog -l debian/changelog -S Maintainer)  $(date -R)"
		echo
		cat debian/changelog
	} >"$SRC/debian/changelog"
fi

[ "$FAST" = 0 ] || export DPKG_DEB_COMPRESSOR_LEVEL=1
log "dpkg-buildpackage --build=binary (snf-image $DEB_VERSION)"
(cd "$SRC" && dpkg-buildpackage --build=binary --no-sign) >"$WORK/build.log" 2>&1 || {
	tail -n 40 "$WORK/build.log" >&2
	die "dpkg-buildpackage failed (the last 40 lines of its output are above)"
}

ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
DEB="snf-image_${DEB_VERSION}_$ARCH.deb"
[ -f "$WORK/$DEB" ] || die "dpkg-buildpackage made no $DEB"
mkdir -p "$OUT"
cp "$WORK/$DEB" "$OUT/$DEB.tmp"
mv "$OUT/$DEB.tmp" "$OUT/$DEB"
log "built $OUT/$DEB ($(du -h "$OUT/$DEB" | cut -f1))"
echo "$OUT/$DEB"
