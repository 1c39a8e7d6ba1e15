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
echo "results: bench-results.json"
