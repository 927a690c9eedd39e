#!/bin/sh
# demo.sh: a Candor log and three witnesses on loopback, with a 2-of-3
# witness policy. It submits a few entries and prints the log's checkpoint,
# cosigned by the witnesses. Everything runs in a temporary directory and is
# stopped and removed on exit. Run it with `make demo` (which builds ./bin
# first), or as scripts/demo.sh with the binaries in $BIN (default bin).
set -eu

BIN=${BIN:-bin}
ORIGIN=demo.example/log
ENTRIES=${ENTRIES:-5}

for b in candor-log candor-witness candor; do
	[ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing: run make build" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "demo: curl is needed" >&2; exit 1; }

DEMO=demo
. "$(dirname "$0")/demo-lib.sh"

# 1. The log's key: a first start without witnesses creates it.
start log0 "$BIN/candor-log" --data "$dir/log" --listen 127.0.0.1:0 --origin "$ORIGIN"
vkey=$(value "$dir/log0.out" "candor-log: verifier key ")
value "$dir/log0.out" "candor-log: listening on " >/dev/null
kill "$!"
wait "$!" 2>/dev/null || true

# 2. Three witnesses that follow the log and gossip with each other, and
#    the policy that names them. Gossip is encrypted and authenticated with
#    a secret the three share, as every production witness should have:
#    without one, anyone who can reach the gossip port can join. A first
#    start creates each witness's key, so that each can list the other two
#    as its trusted peers.
secret=$(head -c 32 /dev/urandom | base64)
for i in 1 2 3; do
	printf 'name: demo.example/witness%s\nlogs:\n  - origin: %s\n    key: %s\n' "$i" "$ORIGIN" "$vkey" >"$dir/w$i.yaml"
	start "w$i.key" "$BIN/candor-witness" --data "$dir/w$i" --listen 127.0.0.1:0 --config "$dir/w$i.yaml" --log-level warn
	value "$dir/w$i.key.out" "candor-witness: verifier key " >"$dir/w$i.vkey"
	value "$dir/w$i.key.out" "candor-witness: listening on " >/dev/null
	kill "$!"
	wait "$!" 2>/dev/null || true
done
policy="$dir/policy.txt"
echo "# c2sp.org/tlog-policy: the witnesses the log pushes to; 2 of 3 must cosign" >"$policy"
join=
for i in 1 2 3; do
	{
		printf 'gossip:\n  listen: 127.0.0.1:0\n'
		[ -z "$join" ] || printf '  join: ["%s"]\n' "$join"
		printf '  secret: "%s"\npeers:\n' "$secret"
		for j in 1 2 3; do
			[ "$j" = "$i" ] || printf '  - name: demo.example/witness%s\n    key: %s\n' "$j" "$(cat "$dir/w$j.vkey")"
		done
	} >>"$dir/w$i.yaml"
	start "w$i" "$BIN/candor-witness" --data "$dir/w$i" --listen 127.0.0.1:0 --config "$dir/w$i.yaml" --log-level warn
	wurl=$(value "$dir/w$i.out" "candor-witness: listening on ")
	gossip=$(value "$dir/w$i.out" "candor-witness: gossip on ")
	[ -n "$join" ] || join=${gossip%%,*}
	echo "witness w$i $(cat "$dir/w$i.vkey") $wurl" >>"$policy"
	[ "$i" != 1 ] || w1url=$wurl
	echo "== w$i: $wurl, gossip on $gossip"
done
echo
echo "group demo 2 w1 w2 w3" >>"$policy"
echo "quorum demo" >>"$policy"
echo "== $policy"
cat "$policy"

# 3. The log, with the policy.
start log "$BIN/candor-log" --data "$dir/log" --listen 127.0.0.1:0 --policy "$policy" --log-level warn
url=$(value "$dir/log.out" "candor-log: listening on ")
echo
echo "== candor-log on $url, verifier key $vkey"

# 4. A few entries, once the witnesses cosigned the empty tree (before
#    that /checkpoint is 503: nothing is cosigned yet).
i=0
until curl -fsS -o /dev/null "$url/checkpoint" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -ge 100 ]; then echo "demo: the log published no cosigned checkpoint within 10s" >&2; cat "$dir/log.err" >&2; exit 1; fi
	sleep 0.1
done
echo
echo "== candor bench --count $ENTRIES (signed in-toto statements)"
"$BIN/candor" bench --url "$url" --count "$ENTRIES" --concurrency 1 --signers 1 --verify "$ENTRIES" --verifier-key "$vkey" 2>&1 |
	grep -E 'status|requests|verified|error' || true

# 5. The cosigned checkpoint: wait (up to 10 s) for all entries and the
#    third cosignature, which may come just after the quorum's two.
i=0
while :; do
	cp=$(curl -fsS "$url/checkpoint" || true)
	size=$(printf '%s\n' "$cp" | sed -n 2p)
	cosigs=$(printf '%s\n' "$cp" | grep -c '^— demo.example/witness' || true)
	if [ "$size" = "$ENTRIES" ] && [ "$cosigs" -ge 3 ]; then break; fi
	i=$((i + 1))
	if [ $i -ge 100 ]; then break; fi
	sleep 0.1
done
echo
echo "== GET $url/checkpoint: size $size, $cosigs witness cosignatures"
printf '%s\n' "$cp"
echo
echo "== GET $url/metrics (witnessing)"
curl -fsS "$url/metrics" | grep -E '^candor_log_(witnessed_size|tree_size|witness_requests_total\{result="cosigned")' || true
echo
echo "== GET $w1url/metrics (gossip: messages from the other witnesses)"
curl -fsS "$w1url/metrics" | grep -E '^candor_witness_gossip_messages_total' | grep -v ' 0$' || true
if [ "$size" != "$ENTRIES" ] || [ "$cosigs" -lt 2 ]; then
	echo "demo: FAILED: want size $ENTRIES with at least 2 cosignatures" >&2
	exit 1
fi
echo
echo "demo: ok, stopping everything"
