#!/usr/bin/env bash
# Runs each native Go fuzz test of the module for $FUZZTIME (default 5000x:
# an execution count; durations race the coordinator, golang/go#75804).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5000x}
# New inputs are minimized for a bounded count, not the default 60 s each,
# so that a short run spends its time fuzzing.
FUZZMINIMIZE=${FUZZMINIMIZE:-100x}
n=0
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "fuzz $pkg $f ($FUZZTIME)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" "$pkg" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; rm -f /tmp/fuzz.$$.log; exit 1; }
		n=$((n + 1))
	done
done
rm -f /tmp/fuzz.$$.log
echo "fuzz: $n fuzz tests ran for $FUZZTIME each, no failures"
