#!/usr/bin/env bash
# Mutation testing of the unit-tested packages with gremlins (v0.6.0, built
# from the module proxy by tests/tools/build.sh): each small change to the
# code that a unit test covers (a < made <=, a condition negated, a + made
# -) is tried, and the package's unit tests run against it. Prints one line
# per package and a total:
#
#   MUTATE pkg/ipam: caught 160 of 231 (69.3%); efficacy 84.2%  (killed 160, lived 30, timed out 2, not viable 0; not covered 41; 3m12s)
#
# caught = killed / all mutants: the share of small bugs the unit tests
# catch. efficacy = killed / (killed + lived): the share of mutants in code
# the tests run that they notice. "lived" mutants are changes a test runs
# but does not notice; "not covered" ones are in code no unit test runs
# (e2e tests may still cover it: they are not run here). docs/development.md says how to read
# the lines. Not part of `make test` (it takes long).
#
#   tests/mutate.sh                     # the default packages below
#   tests/mutate.sh pkg/controller      # some packages
#   MUTATE_LIVED=1 tests/mutate.sh ...  # also list each lived mutant
set -uo pipefail
cd "$(dirname "$0")/.."
export GONOSUMDB="${GONOSUMDB:-github.com/kubeedge,github.com/spidernet-io,k8s.io,sigs.k8s.io}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
gremlins="$(tests/tools/build.sh gremlins | cut -d= -f2-)" || exit 1

pkgs=("$@")
if [[ ${#pkgs[@]} -eq 0 ]]; then
	# Unit-tested logic. pkg/p2p's tests start libp2p hosts (seconds per
	# run): name it to include it.
	pkgs=(pkg/controller pkg/ipam pkg/membership pkg/dataplane pkg/atomicfile
		config/v1alpha1 cni/netconf cni/plugin modules/routing modules/ipam
		modules/metasync modules/tunnel)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
num() { grep -o "\"$1\":[0-9.]*" "$2" | head -1 | cut -d: -f2; }
tk=0 tl=0 tt=0 tn=0
for p in "${pkgs[@]}"; do
	t0=$SECONDS
	out="$tmp/$(tr / _ <<<"$p").json"
	# One worker and a generous timeout: these machines are small and
	# noisy, and a slow test run must not count as a kill.
	if ! "$gremlins" unleash --workers 1 --test-cpu 2 --timeout-coefficient 10 -o "$out" "./$p" >"$tmp/log" 2>&1 || [[ ! -s "$out" ]]; then
		echo "MUTATE $p: ERROR"; tail -20 "$tmp/log"; continue
	fi
	k=$(num mutants_killed "$out"); l=$(num mutants_lived "$out"); nv=$(num mutants_not_viable "$out")
	nc=$(num mutants_not_covered "$out"); eff=$(num test_efficacy "$out")
	to=$(grep -c '^ *TIMED OUT' "$tmp/log")
	tk=$((tk+k)); tl=$((tl+l)); tt=$((tt+to)); tn=$((tn+nc))
	d=$((SECONDS-t0)) all=$((k+l+nc))
	printf 'MUTATE %s: caught %d of %d (%s); efficacy %.1f%%  (killed %d, lived %d, timed out %d, not viable %d; not covered %d; %dm%02ds)\n' \
		"$p" "$k" "$all" "$(awk "BEGIN{if ($all>0) printf \"%.1f%%\", 100*$k/$all; else print \"-\"}")" "$eff" "$k" "$l" "$to" "$nv" "$nc" $((d/60)) $((d%60))
	if [[ -n "${MUTATE_LIVED:-}" ]]; then
		grep '^ *LIVED' "$tmp/log" | sed "s|^ *|    $p: |"
	fi
done
if [[ $((tk+tl)) -gt 0 ]]; then
	printf 'MUTATE total: caught %d of %d (%.1f%%); efficacy %.1f%%  (killed %d, lived %d, timed out %d, not covered %d)\n' \
		"$tk" "$((tk+tl+tn))" "$(awk "BEGIN{print 100*$tk/($tk+$tl+$tn)}")" "$(awk "BEGIN{print 100*$tk/($tk+$tl)}")" "$tk" "$tl" "$tt" "$tn"
fi
