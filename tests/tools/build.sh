#!/usr/bin/env bash
# Builds the real test peers from the Go module proxy, once per version, and
# prints one "name=path" line per tool asked for.
#
#   tests/tools/build.sh cnitool host-local bridge spiderpool
#
# Binaries are cached in ${EDGELINK_TOOLS_CACHE:-~/.cache/edgelink-tools}/
# <tool>-<module version>/<tool>; a cached binary is reused without building.
# Each group of tools has its own go.mod here, outside the product's module
# graph.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${EDGELINK_TOOLS_CACHE:-$HOME/.cache/edgelink-tools}"
export GONOSUMDB="${GONOSUMDB:-github.com/kubeedge,github.com/spidernet-io,k8s.io,sigs.k8s.io}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

# tool -> "module-dir module package"
spec() {
	case "$1" in
	cnitool) echo "cni github.com/containernetworking/cni github.com/containernetworking/cni/cnitool" ;;
	host-local) echo "cni github.com/containernetworking/plugins github.com/containernetworking/plugins/plugins/ipam/host-local" ;;
	bridge) echo "cni github.com/containernetworking/plugins github.com/containernetworking/plugins/plugins/main/bridge" ;;
	spiderpool) echo "spiderpool github.com/spidernet-io/spiderpool github.com/spidernet-io/spiderpool/cmd/spiderpool" ;;
	*) echo "unknown tool $1 (known: cnitool host-local bridge spiderpool)" >&2; return 1 ;;
	esac
}

for tool in "$@"; do
	read -r dir module pkg < <(spec "$tool")
	ver="$(cd "$here/$dir" && go list -m -f '{{.Version}}' "$module")"
	out="$cache/$tool-$ver/$tool"
	if [[ ! -x "$out" ]]; then
		echo "building $tool $ver ..." >&2
		mkdir -p "$(dirname "$out")"
		(cd "$here/$dir" && go build -trimpath -o "$out.tmp" "$pkg")
		mv "$out.tmp" "$out"
	fi
	echo "$tool=$out"
done
