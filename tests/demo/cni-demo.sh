#!/usr/bin/env bash
# The CNI demo: one node (a network namespace), two pods, edgelink-cni
# driven by cnitool (the reference CNI runtime) with host-local IPAM. Shows
# the pods' addresses, pings both ways, then DELs and tears everything down.
# KEEP=1 leaves the namespaces up and prints how to poke at them.
#
# Needs root. Touches nothing outside the namespaces and a temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $EUID -eq 0 ]] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }

bin="$PWD/bin"
[[ -x $bin/edgelink && -x $bin/edgelink-cni ]] || make build >/dev/null
eval "$(tests/tools/build.sh cnitool host-local | sed 's/^\([a-z-]*\)=/tool_\1=/; s/^tool_host-local=/tool_hostlocal=/')"

work=$(mktemp -d /tmp/edgelink-demo.XXXXXX)
node=eldemo-node; pods=(eldemo-pod1 eldemo-pod2)
cleanup() {
	if [[ "${KEEP:-}" == 1 ]]; then return; fi
	for p in "${pods[@]}"; do
		ip netns exec $node env CNI_PATH="$work/bin" NETCONFPATH="$work/net.d" CNI_IFNAME=eth0 \
			"$tool_cnitool" del edgelink "/run/netns/$p" >/dev/null 2>&1 || true
		ip netns del "$p" 2>/dev/null || true
	done
	ip netns del $node 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add $node
ip -n $node link set lo up
for p in "${pods[@]}"; do ip netns add "$p"; ip -n "$p" link set lo up; done

mkdir -p "$work/bin"
ln -s "$tool_hostlocal" "$work/bin/host-local"
"$bin/edgelink" cni install --plugin "$bin/edgelink-cni" --bin-dir "$work/bin" --conf-dir "$work/net.d" \
	--data-dir "$work/state" --ipam host-local --subnet 10.244.5.0/24 --mtu 1400
echo; echo "--- conflist"; cat "$work/net.d/10-edgelink.conflist"

cni() { ip netns exec $node env CNI_PATH="$work/bin" NETCONFPATH="$work/net.d" CNI_IFNAME=eth0 "$tool_cnitool" "$@"; }
declare -A addr
for p in "${pods[@]}"; do
	cni add edgelink "/run/netns/$p" >/dev/null
	addr[$p]=$(ip -n "$p" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
	echo "--- $p: eth0 ${addr[$p]}, $(ip -n "$p" route show default)"
done
echo "--- node bridge: $(ip -n $node -4 -o addr show edgelink-br0 | awk '{print $2, $4}')"
echo
ip netns exec "${pods[0]}" ping -c 3 -i 0.2 "${addr[${pods[1]}]}"
ip netns exec "${pods[1]}" ping -c 3 -i 0.2 "${addr[${pods[0]}]}"
cni check edgelink "/run/netns/${pods[0]}" && echo "--- CNI CHECK ok"
cni status edgelink "/run/netns/${pods[0]}" && echo "--- CNI STATUS ok"
echo
if [[ "${KEEP:-}" == 1 ]]; then
	cat <<MSG
Kept. Try:
  ip netns exec ${pods[0]} ping ${addr[${pods[1]}]}
  ip -n $node link show master edgelink-br0
  ip netns exec $node env CNI_PATH=$work/bin NETCONFPATH=$work/net.d $tool_cnitool del edgelink /run/netns/${pods[0]}
Remove with: ip netns del $node; ip netns del ${pods[0]}; ip netns del ${pods[1]}; rm -rf $work
MSG
else
	echo "demo done: two pods on one node reached each other through edgelink-cni; tearing down"
fi
