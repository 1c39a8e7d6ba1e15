#!/usr/bin/env bash
# Runs EdgeLink's test suites and prints one summary line per suite.
#
#   tests/run.sh [lint] [unit] [fuzz] [e2e]     (default: all four)
#
# lint  gofmt and go vet (and go vet of the data plane for darwin)
# unit  tests of logic, with the race detector (no root needed)
# fuzz  every fuzz target for FUZZTIME (default 10s) each
# e2e   real network namespaces, binaries and test peers (needs root)
set -uo pipefail
cd "$(dirname "$0")/.."
suites=("$@")
[[ ${#suites[@]} -eq 0 ]] && suites=(lint unit fuzz e2e)
fuzztime="${FUZZTIME:-10s}"
export EDGELINK_BIN_DIR="${EDGELINK_BIN_DIR:-$PWD/bin}"
# The Go toolchain the project is built and tested with (the go command
# fetches it from the module proxy once): 1.27.3 ends fuzz runs cleanly at
# -fuzztime, where 1.26 could fail a clean run (golang/go#75804).
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
# Modules the checksum database does not know.
export GONOSUMDB="${GONOSUMDB:-github.com/kubeedge,github.com/spidernet-io,k8s.io,sigs.k8s.io}"

go build -o bin/testsummary ./tests/testsummary || exit 1
summary=()
rc=0

run_suite() { # name, command...
	local name=$1; shift
	echo "=== suite $name"
	local out
	# tee -a: stderr may be a file (a redirected local run); no truncation.
	out=$("$@" | tee -a /dev/stderr | grep '^SUITE ' | tail -1)
	local code=${PIPESTATUS[0]}
	[[ -z "$out" ]] && out="SUITE $name: $([[ $code -eq 0 ]] && echo PASS || echo FAIL)"
	summary+=("$out")
	[[ $code -ne 0 ]] && rc=1
	return 0
}

lint() {
	local bad
	bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	if [[ -n "$bad" ]]; then
		echo "gofmt needed:"; echo "$bad"
		echo "SUITE lint: FAIL  gofmt"; return 1
	fi
	if ! go vet ./...; then echo "SUITE lint: FAIL  go vet"; return 1; fi
	# The data plane keeps its Linux-only parts in _linux.go files: the
	# rest builds (and vets) elsewhere.
	if ! GOOS=darwin go vet ./pkg/dataplane ./modules/routing; then echo "SUITE lint: FAIL  go vet (GOOS=darwin)"; return 1; fi
	# -mod=mod: this module follows the root module's dependencies (replace
	# directive), which it may lag by a tidy.
	if ! (cd tests/tools/spiderpool-wire && go vet -mod=mod ./...); then echo "SUITE lint: FAIL  go vet (spiderpool-wire)"; return 1; fi
	echo "SUITE lint: PASS  gofmt and go vet clean"
}

unit() {
	# The wire check against SpiderPool's models is its own module.
	{
		# -race: the unit tests run the modules' goroutines for real.
		go test -json -count=1 -race -cover $(go list ./... | grep -v /tests/)
		(cd tests/tools/spiderpool-wire && go test -mod=mod -json -count=1 ./...)
	} | bin/testsummary -suite unit
}

fuzz() {
	local failed=0 n=0 t0=$SECONDS log
	log=$(mktemp)
	while read -r pkg target; do
		n=$((n+1))
		# -fuzzminimizetime: shrinking each new interesting input may take
		# the default 60 s, longer than the whole run (large packets); a
		# failing input is still reported, if less shrunk.
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" >"$log" 2>&1; then
			echo "ok    $pkg $target ($fuzztime, $(grep -o 'execs: [0-9]*' "$log" | tail -1))"
		else
			failed=$((failed+1))
			echo "FAIL  $pkg $target"; tail -30 "$log"
		fi
	done < <(grep -rl --include='*_test.go' '^func Fuzz' cni config pkg modules cmd 2>/dev/null | sort | while read -r f; do
		grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //; s|^|./'"$(dirname "$f")"' |'
	done)
	rm -f "$log"
	local status=PASS; [[ $failed -gt 0 ]] && status=FAIL
	echo "SUITE fuzz: $status  $n targets, $failed failed, $fuzztime each ($((SECONDS-t0))s)"
	[[ $failed -eq 0 ]]
}

e2e() {
	if [[ $EUID -ne 0 ]]; then
		echo "SUITE e2e: SKIP  needs root (network namespaces); run as root or in CI"
		return 0
	fi
	# Build (or take from the cache) every real test peer first, so a cold
	# build (~8 min on 2 cores) is not charged to a test's timeout.
	local t0=$SECONDS
	tests/tools/build.sh cnitool host-local bridge loopback spiderpool spiderpool-agent spiderpool-controller etcd kube-apiserver kube-controller-manager kube-scheduler cloudcore edgecore helm flanneld flannel >/dev/null || return 1
	echo "test peers ready ($((SECONDS-t0))s)"
	# -p 1: packages that start control planes and namespaces run one at a time.
	go test -json -count=1 -p 1 -timeout 30m ./tests/... | bin/testsummary -suite e2e
}

for s in "${suites[@]}"; do
	case "$s" in
	lint|unit|fuzz|e2e) run_suite "$s" "$s" ;;
	*) echo "unknown suite $s (lint unit fuzz e2e)"; exit 2 ;;
	esac
done
echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit $rc
