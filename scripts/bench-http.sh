#!/bin/sh
# bench-http.sh: the log's HTTP figures on this machine, as the README
# reports them. It starts a fresh log on loopback in a temporary directory
# and runs candor bench against it: submissions as fast as possible,
# submissions at $RATE/s, then inclusion proofs and tiles (with wrk, if it
# is installed, as candor bench costs about as much CPU per read as the log
# serving it). After each run it prints the log's CPU time per request.
# Everything is stopped and removed on exit. Run it with `make bench-http`
# (which builds ./bin first), or as scripts/bench-http.sh with the binaries
# in $BIN (default bin).
set -eu

BIN=${BIN:-bin}
COUNT=${COUNT:-100000}     # submissions as fast as possible
RATE=${RATE:-5000}         # submissions/s of the fixed-rate run, for 20 s
READS=${READS:-10}         # seconds of each wrk read run

for b in candor-log candor; do
	[ -x "$BIN/$b" ] || { echo "bench-http: $BIN/$b is missing: run make build" >&2; exit 1; }
done
[ -r /proc/self/stat ] || { echo "bench-http: needs Linux's /proc to measure the log's CPU time" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/candor-bench.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo "bench-http: interrupted" >&2; exit 130' INT TERM

"$BIN/candor-log" --data "$dir/log" --listen 127.0.0.1:0 --origin bench.example/log --log-level warn \
	>"$dir/log.out" 2>"$dir/log.err" &
pid=$!
i=0
until grep -q '^candor-log: listening on ' "$dir/log.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "bench-http: the log did not start; its stderr:" >&2
		cat "$dir/log.err" >&2
		exit 1
	fi
	sleep 0.1
done
url=$(sed -n 's|^candor-log: listening on ||p' "$dir/log.out")
vkey=$(sed -n 's|^candor-log: verifier key ||p' "$dir/log.out")
tck=$(getconf CLK_TCK)

# ticks: the log's user + system CPU time so far, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# run WHAT N CMD...: runs CMD, prints its summary and the log's CPU time
# for each of its N requests.
run() {
	what=$1
	n=$2
	shift 2
	echo "== $what: $*"
	t0=$(ticks)
	"$@"
	t1=$(ticks)
	echo "   log CPU: $(((t1 - t0) * 1000000 / tck / n)) µs per request"
	echo
}

size() { curl -s "$url/checkpoint" | sed -n 2p; }

run "submissions, as fast as possible" "$COUNT" \
	"$BIN/candor" bench --url "$url" --verifier-key "$vkey" --count "$COUNT" --concurrency 256
before=$(size)
echo "== submissions at $RATE/s for 20 s"
t0=$(ticks)
"$BIN/candor" bench --url "$url" --verifier-key "$vkey" --count $((RATE * 20)) --rate "$RATE" \
	--concurrency 1024 --duration 20s
t1=$(ticks)
echo "   log CPU: $(((t1 - t0) * 1000000 / tck / ($(size) - before))) µs per submission"
echo

for mode in proofs tiles; do
	if command -v wrk >/dev/null; then
		"$BIN/candor" bench --url "$url" --mode "$mode" --count 20000 --print-paths >"$dir/$mode.txt"
		echo "== $mode with wrk for ${READS}s"
		t0=$(ticks)
		PATHS="$dir/$mode.txt" wrk -t1 -c64 -d"${READS}s" -s scripts/wrk-paths.lua "$url" >"$dir/wrk.out"
		t1=$(ticks)
		grep -E 'Requests/sec|Non-2xx' "$dir/wrk.out"
		n=$(awk '/requests in/ {print $1}' "$dir/wrk.out")
		echo "   log CPU: $(((t1 - t0) * 1000000 / tck / n)) µs per request"
		echo
	else
		run "$mode" 100000 "$BIN/candor" bench --url "$url" --verifier-key "$vkey" --mode "$mode" --count 100000
	fi
done

if command -v go >/dev/null; then
	echo "== this machine's speed now: crypto/ed25519 verification (52 µs on the reference 2-core machine)"
	go test crypto/ed25519 -run '^$' -bench '^BenchmarkVerification$' -count 3 | grep '^Benchmark'
fi
