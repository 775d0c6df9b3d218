#!/usr/bin/env bash
# lab-systemd-debs.sh DIR — downloads Debian 12's systemd, and the
# libraries it needs that the lab image lacks, into DIR, for
# test/lab/package-systemd.sh: the lab guest (../shared/lab) has no init
# system, and that test installs systemd in the throwaway guest and boots it
# there. systemd must match the guest's libsystemd0 and udev exactly, so
# those come too, all at the version apt offers now (the one the lab image
# is built from). Runs `apt-get update` once if apt does not know them.
set -euo pipefail
dir=${1:?usage: lab-systemd-debs.sh DIR}
pkgs=(systemd libsystemd-shared libsystemd0 libudev1 udev libfdisk1 libapparmor1 libip4tc2)
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
get() { apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" >apt.log 2>&1; }
if ! get; then
	apt-get update -q >>apt.log 2>&1 || true
	get || { tail -n 20 apt.log >&2; echo "lab-systemd-debs: apt-get download ${pkgs[*]} failed (see above)" >&2; exit 1; }
fi
rm -f apt.log
n=$(ls ./*.deb | wc -l)
[ "$n" = ${#pkgs[@]} ] || { echo "lab-systemd-debs: $n packages in $dir, want ${#pkgs[@]}" >&2; exit 1; }
