#!/usr/bin/env bash
# Runs Vigil's whole test suite on a fresh machine with Go: installs what the tests
# need that the Go toolchain does not fetch by itself (Debian packages for the real
# syslog senders), then vets and tests every package. Go tools the tests start as
# processes (nats-server, VictoriaLogs, …) are pinned in go.mod and built by `go tool`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages used by the tests as real peers (apache2: the file source follows its access log).
packages=(rsyslog bsdutils apache2)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "test.sh: installing Debian packages: ${missing[*]}"
	SUDO=""
	if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# moto is the AWS API emulator (S3, SQS, SNS) of the s3 and sqs sources' tests; it sends
# real S3 event notifications to a queue. PyPI's package, installed only when missing.
if ! command -v moto_server >/dev/null 2>&1; then
	echo "test.sh: installing moto[server] (pip)"
	# A Debian python3 refuses pip installs outside a venv (PEP 668) unless told.
	python3 -m pip install --quiet "moto[server]" ||
		python3 -m pip install --quiet --break-system-packages "moto[server]"
fi

# kinesalite is the Kinesis emulator of the kinesis source's resharding and
# two-node tests (moto's SplitShard never closes the parent shard). npm's package,
# pinned, into .cache/kinesalite; testutil.StartKinesalite looks there.
if [ ! -d .cache/kinesalite/node_modules/kinesalite ]; then
	echo "test.sh: installing kinesalite@3.3.3 (npm)"
	npm install --silent --no-audit --no-fund --prefix .cache/kinesalite kinesalite@3.3.3
fi

# OpenSearch for the elasticsearch/opensearch sink's tests and the delivery crash test:
# one node put together from the server and module jars on Maven Central by
# tools/opensearch-launcher (Maven, Java 17), built into .cache/opensearch-launcher;
# testutil.StartOpenSearch looks there.
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
	echo "test.sh: installing Debian packages: maven openjdk-17-jdk-headless"
	SUDO=""
	if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq maven openjdk-17-jdk-headless >/dev/null
fi
if [ ! -f .cache/opensearch-launcher/opensearch-launcher.jar ]; then
	echo "test.sh: building the OpenSearch launcher (Maven)"
	rm -rf .cache/opensearch-launcher.build
	mvn -q -B -f tools/opensearch-launcher/pom.xml package -Dlauncher.out="$PWD/.cache/opensearch-launcher.build"
	mv .cache/opensearch-launcher.build .cache/opensearch-launcher
fi

echo "test.sh: go vet"
go vet ./...
echo "test.sh: building the pinned Go tools"
# Build them once up front (versitygw takes minutes on a new machine) so no test
# spends its own time limit on it; `go tool` reuses the build cache afterwards.
tooldir="$(mktemp -d)"
go build -o "$tooldir/" tool
rm -rf "$tooldir"
# Some tests read fixtures from ../shared (peers' parses of the same log lines, Sigma
# rules) in place; on a clone without it they skip, and say so here too.
if [ ! -d ../shared/conformance ]; then
	echo "test.sh: NOTE: ../shared is absent: the conformance suite and the tests on shared fixtures will be skipped, not run"
	if [ "${VIGIL_REQUIRE_SHARED:-}" = 1 ]; then
		echo "test.sh: VIGIL_REQUIRE_SHARED=1 but ../shared is absent" >&2
		exit 1
	fi
fi
# The peer benchmark in smoke mode (200k lines per scenario, 1 run, no thresholds) so
# that the harness cannot rot: it installs its peers itself (rsyslog from apt,
# syslog-ng unpacked from Debian's packages, Benthos built into .cache/bench) and
# fails when one is missing or a line does not arrive. Skip with VIGIL_SKIP_BENCH=1.
if [ "${VIGIL_SKIP_BENCH:-}" != 1 ]; then
	echo "test.sh: peer benchmark, smoke mode (go run ./bench -smoke)"
	go run ./bench -smoke
fi
echo "test.sh: go test"
go test -count=1 -timeout 25m "$@" ./...
