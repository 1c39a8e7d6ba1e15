#!/usr/bin/env bash
# Builds the real test peers from the Go module proxy, once per version, and
# prints one "name=path" line per tool asked for.
#
#   tests/tools/build.sh cnitool host-local bridge spiderpool
#   tests/tools/build.sh spiderpool-agent                       # tests/e2e/spiderpool_agent_test.go
#   tests/tools/build.sh spiderpool-controller                  # tests/e2e/spiderpool_webhook_test.go
#   tests/tools/build.sh etcd kube-apiserver cloudcore edgecore   # tests/cluster
#   tests/tools/build.sh kube-controller-manager kube-scheduler   # tests/cluster (authorization, scheduling)
#   tests/tools/build.sh wireguard-go nebula nebula-cert        # tests/bench/dataplane
#   tests/tools/build.sh helm                                   # tests/e2e/helm_test.go
#   tests/tools/build.sh gremlins                               # make mutate (tests/mutate.sh)
#   tests/tools/build.sh flanneld flannel                       # tests/e2e/flannel_test.go (daemon, CNI plugin)
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
	loopback) echo "cni github.com/containernetworking/plugins github.com/containernetworking/plugins/plugins/main/loopback" ;;
	spiderpool) echo "spiderpool github.com/spidernet-io/spiderpool github.com/spidernet-io/spiderpool/cmd/spiderpool" ;;
	spiderpool-agent) echo "spiderpool github.com/spidernet-io/spiderpool github.com/spidernet-io/spiderpool/cmd/spiderpool-agent" ;;
	spiderpool-controller) echo "spiderpool github.com/spidernet-io/spiderpool github.com/spidernet-io/spiderpool/cmd/spiderpool-controller" ;;
	etcd) echo "etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3" ;;
	kube-apiserver) echo "kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver" ;;
	kube-controller-manager) echo "kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-controller-manager" ;;
	kube-scheduler) echo "kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-scheduler" ;;
	cloudcore) echo "kubeedge github.com/kubeedge/kubeedge github.com/kubeedge/kubeedge/cloud/cmd/cloudcore" ;;
	edgecore) echo "kubeedge github.com/kubeedge/kubeedge github.com/kubeedge/kubeedge/edge/cmd/edgecore" ;;
	wireguard-go) echo "wireguard golang.zx2c4.com/wireguard golang.zx2c4.com/wireguard" ;;
	nebula) echo "nebula github.com/slackhq/nebula github.com/slackhq/nebula/cmd/nebula" ;;
	nebula-cert) echo "nebula github.com/slackhq/nebula github.com/slackhq/nebula/cmd/nebula-cert" ;;
	helm) echo "helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm" ;;
	gremlins) echo "gremlins github.com/go-gremlins/gremlins github.com/go-gremlins/gremlins/cmd/gremlins" ;;
	flanneld) echo "flannel github.com/flannel-io/flannel github.com/flannel-io/flannel" ;;
	flannel) echo "flannel-cni github.com/containernetworking/plugins github.com/containernetworking/plugins/plugins/meta/flannel" ;;
	*) echo "unknown tool $1 (known: cnitool host-local bridge loopback spiderpool spiderpool-agent spiderpool-controller etcd kube-apiserver kube-controller-manager kube-scheduler cloudcore edgecore wireguard-go nebula nebula-cert helm gremlins flanneld flannel)" >&2; return 1 ;;
	esac
}

# tool, version -> extra -ldflags (version stamps, so /version and
# `--version` report the real release instead of v0.0.0-master)
ldflags() {
	case "$1" in
	kube-apiserver | kube-controller-manager | kube-scheduler)
		local v="${2#v}"
		echo "-X k8s.io/component-base/version.gitVersion=$2 -X k8s.io/component-base/version.gitMajor=${v%%.*} -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$v") -X k8s.io/component-base/version.gitTreeState=clean"
		;;
	cloudcore | edgecore)
		local v="${2#v}"
		echo "-X github.com/kubeedge/kubeedge/pkg/version.gitVersion=$2 -X github.com/kubeedge/kubeedge/pkg/version.gitMajor=${v%%.*} -X github.com/kubeedge/kubeedge/pkg/version.gitMinor=$(cut -d. -f2 <<<"$v") -X github.com/kubeedge/kubeedge/pkg/version.gitTreeState=clean"
		;;
	flanneld)
		echo "-X github.com/flannel-io/flannel/pkg/version.Version=$2"
		;;
	nebula | nebula-cert)
		echo "-X main.Build=${2#v}"
		;;
	helm)
		# as helm's Makefile: the default Kubernetes version (--kube-version,
		# .Capabilities.KubeVersion, lint deprecations) is client-go's 0.x + 1
		local cg major minor
		cg="$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)"
		cg="${cg#v}"
		major=$(($(cut -d. -f1 <<<"$cg") + 1))
		minor="$(cut -d. -f2 <<<"$cg")"
		echo "-X helm.sh/helm/v3/internal/version.version=$2 -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
		;;
	esac
}

for tool in "$@"; do
	read -r dir module pkg < <(spec "$tool")
	ver="$(cd "$here/$dir" && go list -m -f '{{.Version}}' "$module")"
	out="$cache/$tool-$ver/$tool"
	if [[ ! -x "$out" ]]; then
		mkdir -p "$(dirname "$out")"
		# test packages run in parallel: one builds, the others wait for it
		exec {lock}>"$out.lock"
		flock "$lock"
		if [[ ! -x "$out" ]]; then
			echo "building $tool $ver ..." >&2
			(cd "$here/$dir" && go build -trimpath -ldflags "$(ldflags "$tool" "$ver")" -o "$out.tmp" "$pkg")
			mv "$out.tmp" "$out"
		fi
		exec {lock}>&-
	fi
	echo "$tool=$out"
done
