# The operators' metrics files: deploy/grafana/flashpath.json and
# deploy/prometheus/ (rules, their promtool unit tests, an example
# prometheus.yml). The top Makefile includes mk/*.mk.

# promtool, from Debian's prometheus package: test/e2e's TestPrometheusRules
# and TestDashboardQueriesParse run it under `make unit` (they skip where it
# is missing). The package also brings a Prometheus server, which Debian
# starts where systemd runs (on :9090): `systemctl disable --now prometheus`
# on a build machine that should not keep one.
APT_PKGS += prometheus

.PHONY: rules

# The rules' checks alone, without Go.
rules: deps
	promtool check rules deploy/prometheus/flashpath-rules.yml
	promtool test rules deploy/prometheus/flashpath-rules.test.yml
	promtool check config deploy/prometheus/prometheus.yml
