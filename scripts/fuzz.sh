#!/usr/bin/env bash
# Runs every fuzz target in the module for a set time each (default 30s):
#   ./scripts/fuzz.sh            # all targets, 30s each
#   FUZZTIME=5m ./scripts/fuzz.sh ./internal/parse/...
# Crashers are written to the package's testdata/fuzz/ and should be committed as
# regression seeds after the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
pkgs=("${@:-./...}")
status=0
for pkg in $(go list "${pkgs[@]}"); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			status=1
		fi
	done
done
exit $status
