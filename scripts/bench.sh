#!/usr/bin/env bash
# Runs every benchmark once and prints the results with the CPU they ran on. The
# figures in docs/performance.md come from this script. The machines are shared and
# noisy: compare figures of one run with each other, as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime="${BENCHTIME:-2s}"
grep -m1 "model name" /proc/cpuinfo || true
echo "cores: $(nproc)"
go test -run '^$' -bench . -benchtime "$benchtime" "${@:-./...}" 2>&1 | grep -E '^(Benchmark|ok|FAIL|pkg:)'
