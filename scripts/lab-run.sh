#!/usr/bin/env bash
# lab-run.sh LAB SCRIPT: runs a guest test script in the lab VM (LAB/vm-run),
# streaming its output. Under TCG the guest kernel now and then hangs while
# booting, before the script starts; vm-run then times out (124) or reports a
# lab failure (125). When that happens before the script printed its first
# step (a line starting "== ["), the run is tried once more; any other
# failure is the script's and fails at once.
set -uo pipefail
lab=$1 script=$2
for try in 1 2; do
	log=$(mktemp)
	LAB_TIMEOUT=${LAB_TIMEOUT:-900} "$lab/vm-run" "$script" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	started=$(grep -c '^== \[' "$log")
	rm -f "$log"
	[ "$rc" = 0 ] && exit 0
	if [ "$try" = 1 ] && [ "$started" = 0 ] && { [ "$rc" = 124 ] || [ "$rc" = 125 ]; }; then
		echo "interop: $script: the lab VM never started the script (vm-run exit $rc): trying once more" >&2
		continue
	fi
	exit "$rc"
done
