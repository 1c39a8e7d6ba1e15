#!/usr/bin/env bash
# `make demo`: the simulated cloud-edge cluster (tests/simcluster) brought
# up, shown working, torn down. On a fresh Debian machine, as root.
#
#   make demo            # up, pings, status per node, throughput, down
#   KEEP=1 make demo     # same, then stays up until Ctrl-C
#
# Installs what it needs (iproute2, iptables, ping, containerd and runc for
# c1's edged; apt, no recommends),
# builds the test peers (etcd, kube-apiserver, cloudcore, edgecore, CNI
# plugins, spiderpool; cached under ~/.cache/edgelink-tools, ~8 min the
# first time) and runs tests/demo as a plain binary, so Ctrl-C reaches it
# and it tears everything down. Nothing leaves the machine: every address
# is in namespaces it makes (198.18.0.0/15, 192.168.n.0/24, 10.244/16).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $EUID -eq 0 ]] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }

need=()
for c in ip:iproute2 iptables:iptables ping:iputils-ping containerd:containerd runc:runc nsenter:util-linux; do
	command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
done
if [[ ${#need[@]} -gt 0 ]]; then
	echo "==> installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export GONOSUMDB="${GONOSUMDB:-github.com/kubeedge,github.com/spidernet-io,k8s.io,sigs.k8s.io}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

echo "==> building edgelink and the test peers (cached after the first run)"
make -s build
tests/tools/build.sh cnitool host-local bridge spiderpool etcd kube-apiserver cloudcore edgecore >/dev/null
go test -c -o bin/demo.test ./tests/demo

export EDGELINK_DEMO=1 EDGELINK_BIN_DIR="$PWD/bin"
exec bin/demo.test -test.run '^TestDemo$' -test.timeout 0
