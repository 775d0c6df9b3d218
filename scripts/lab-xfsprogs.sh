#!/usr/bin/env bash
# Unpacks Debian 12's xfsprogs (and the libraries the lab guest lacks) into
# bin/lab-xfs, which the guest sees through the checkout's mount: the lab
# image has no mkfs.xfs, and its glibc is the host's (Debian 12), so the
# host's packages run there as they are. Idempotent; needs apt.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$PWD/bin/lab-xfs
[ -x "$dest/sbin/mkfs.xfs" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pkgs=(xfsprogs libinih1 liburcu8 libedit2)
(cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null 2>&1) ||
	{ apt-get update -qq >/dev/null && (cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null); }
mkdir -p "$dest"
for d in "$tmp"/*.deb; do dpkg -x "$d" "$dest"; done
echo "lab-xfsprogs: $(ls "$dest/sbin/mkfs.xfs") ready for the lab guest"
