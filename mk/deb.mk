# The Debian package (scripts/deb.sh, dpkg-deb): bin/flashpath as `make
# build` builds it, the systemd units, example configurations, the system
# user, man pages and completions. The top Makefile includes mk/*.mk.

# systemd-analyze, for the units' sandbox test in cmd/flashpath (skipped
# where it is missing).
APT_PKGS += systemd

DEB_VERSION ?= $(shell scripts/deb.sh --version)

.PHONY: deb lab-debs lab-systemd

# bin/deb/flashpath_VERSION_ARCH.deb (only this one: dpkg -i bin/deb/*.deb)
deb: build
	rm -f $(BIN)/deb/flashpath_*.deb
	scripts/deb.sh $(BIN)/flashpath $(BIN)/deb $(DEB_VERSION)

# For test/lab/package.sh: this checkout's package and a rebuild of it
# with a later version (the upgrade), in bin/lab-deb/.
lab-debs: build
	rm -rf $(BIN)/lab-deb
	scripts/deb.sh $(BIN)/flashpath $(BIN)/lab-deb $(DEB_VERSION)
	$(GO) build -ldflags '-X main.version=$(VERSION)+rebuild1' -o $(BIN)/lab-deb/flashpath ./cmd/flashpath
	scripts/deb.sh $(BIN)/lab-deb/flashpath $(BIN)/lab-deb $(DEB_VERSION)+rebuild1
	rm $(BIN)/lab-deb/flashpath

# For test/lab/package-systemd.sh: Debian 12's systemd, for the lab guest
# (which has no init system), in bin/lab-systemd/ (apt-get download).
lab-systemd:
	scripts/lab-systemd-debs.sh $(BIN)/lab-systemd

# Where there is a lab (interop skips itself where there is none).
interop: lab-debs $(if $(wildcard $(LAB)/vm-run),lab-systemd)
