#!/usr/bin/env bash
# `make bench`: runs every benchmark, prints tables, writes bench-results.json.
# BENCH_QUICK=1 runs one short pass. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $EUID -eq 0 ]] || { echo "benchmarks create network namespaces: run as root" >&2; exit 1; }
runs=3; cycles=100
if [[ "${BENCH_QUICK:-}" == 1 ]]; then runs=1; cycles=20; fi
rm -f bench-results.json
eval "$(tests/tools/build.sh host-local bridge spiderpool | sed 's/^host-local=/HOSTLOCAL=/; s/^bridge=/BRIDGE=/; s/^spiderpool=/SPIDERPOOL=/')"

echo "=== bench cni+ipam: pod ADD+DEL through libcni, and IPAM alone, each beside its baseline"
go run ./tests/bench/cni -bin bin -host-local "$HOSTLOCAL" -bridge "$BRIDGE" -spiderpool "$SPIDERPOOL" -runs $runs -cycles $cycles
echo
echo "=== bench metasync: kube-apiserver -> snapshot delay (edge via metaServer, cloud node), agent memory"
tests/tools/build.sh etcd kube-apiserver cloudcore edgecore >/dev/null
EDGELINK_BENCH=1 BENCH_JSON="$PWD/bench-results.json" EDGELINK_BIN_DIR="$PWD/bin" \
	go test -count=1 -timeout 30m -run TestBenchMetasync -v ./tests/bench/metasync 2>&1 \
	| grep -vE '^\s*(I|W|E)[0-9]{4} |^=== RUN|^--- PASS|^PASS|^ok' || true
echo
echo "=== bench dataplane: pod-to-pod TCP/UDP/RTT and tunnel CPU per data path, beside veth (kernel routing) and wireguard-go"
command -v iperf3 >/dev/null && command -v ping >/dev/null ||
	(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iperf3 iputils-ping) >&2
tests/tools/build.sh wireguard-go nebula nebula-cert >/dev/null
EDGELINK_BENCH=1 BENCH_JSON="$PWD/bench-results.json" EDGELINK_BIN_DIR="$PWD/bin" \
	go test -count=1 -timeout 15m -run TestBenchDataplane -v ./tests/bench/dataplane 2>&1 \
	| grep -vE '^\s*(=== RUN|--- PASS)|^PASS|^ok' || true
echo
echo "=== bench hostile member: what a member abusing its streams costs the node it attacks, RSS and Go heap per phase (MiB)"
EDGELINK_BENCH=1 BENCH_JSON="$PWD/bench-results.json" EDGELINK_BIN_DIR="$PWD/bin" \
	go test -count=1 -timeout 10m -run TestBenchHostileMember -v ./tests/bench/dataplane 2>&1 \
	| grep -vE '^\s*(I|W|E)[0-9]{4} |^\s*(=== RUN|--- PASS)|^PASS|^ok' || true
echo
echo "=== bench cold path: paths on demand, pod A's first ping over an idle path against the warm pings after it"
EDGELINK_BENCH=1 BENCH_JSON="$PWD/bench-results.json" EDGELINK_BIN_DIR="$PWD/bin" \
	go test -count=1 -timeout 10m -run TestBenchColdPath -v ./tests/bench/dataplane 2>&1 \
	| grep -vE '^\s*(I|W|E)[0-9]{4} |^\s*(=== RUN|--- PASS)|^PASS|^ok' || true
echo
echo "results: bench-results.json"
