#!/bin/sh
# demo-trillian.sh: the log on a Trillian cluster, on loopback: a private
# MariaDB with Trillian's schema, Trillian's log server and log signer
# (built from the Trillian module this repository uses), a tree made by
# candor-log trillian init, and two candor-log front ends sharing the
# log's key. It submits entries to both, shows that both serve the same
# checkpoint, and stops. Everything runs in a temporary directory, removed
# on exit. Run it with `make demo-trillian` (which builds ./bin first), or
# as scripts/demo-trillian.sh with the binaries in $BIN (default bin).
# It needs MariaDB (Debian: apt-get install mariadb-server) and curl.
set -eu

BIN=${BIN:-bin}
GO=${GO:-go}
ORIGIN=demo.example/trillian
ENTRIES=${ENTRIES:-200}

for b in candor-log candor; do
	[ -x "$BIN/$b" ] || { echo "demo-trillian: $BIN/$b is missing: run make build" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "demo-trillian: curl is needed" >&2; exit 1; }
mariadbd=$(command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd 2>/dev/null || true)
[ -n "$mariadbd" ] || { echo "demo-trillian: MariaDB is needed (Debian package mariadb-server)" >&2; exit 1; }

DEMO=demo-trillian
. "$(dirname "$0")/demo-lib.sh"

# free_port: a free TCP port on 127.0.0.1 (without python3: one at
# random, which is free almost always).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
}

# 1. Trillian's servers, built from the module go.mod names.
version=$($GO list -m -f '{{.Version}}' github.com/google/trillian)
moddir=$($GO list -m -f '{{.Dir}}' github.com/google/trillian)
echo "== building Trillian $version's log server and log signer"
GOBIN="$dir/bin" $GO install "github.com/google/trillian/cmd/trillian_log_server@$version" "github.com/google/trillian/cmd/trillian_log_signer@$version"

# 2. MariaDB, on a socket of its own, with Trillian's schema.
echo "== MariaDB in $dir/mariadb"
user=
[ "$(id -u)" != 0 ] || user=--user=root
mariadb-install-db --no-defaults --datadir="$dir/mariadb" --auth-root-authentication-method=normal --skip-test-db $user >"$dir/install.log" 2>&1
sock="$dir/mariadb.sock"
start mariadb "$mariadbd" --no-defaults --datadir="$dir/mariadb" --socket="$sock" --skip-networking $user \
	--log-error="$dir/mariadb.log" --innodb-buffer-pool-size=128M --skip-log-bin
i=0
until mariadb --no-defaults -S "$sock" -uroot -e 'select 1' >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -ge 300 ]; then echo "demo-trillian: MariaDB did not start" >&2; cat "$dir/mariadb.log" >&2; exit 1; fi
	sleep 0.1
done
mariadb --no-defaults -S "$sock" -uroot -e 'CREATE DATABASE trillian'
mariadb --no-defaults -S "$sock" -uroot trillian <"$moddir/storage/mysql/schema/storage.sql"
dsn="root@unix($sock)/trillian"

# 3. Trillian's log server and signer.
rpc=127.0.0.1:$(free_port)
start trillian-server "$dir/bin/trillian_log_server" --storage_system=mysql --quota_system=mysql --mysql_uri="$dsn" \
	--rpc_endpoint="$rpc" --http_endpoint=127.0.0.1:$(free_port)
start trillian-signer "$dir/bin/trillian_log_signer" --storage_system=mysql --quota_system=mysql --mysql_uri="$dsn" \
	--force_master --rpc_endpoint=127.0.0.1:$(free_port) --http_endpoint=127.0.0.1:$(free_port)
echo "== Trillian log server on $rpc"

# 4. The tree.
i=0
until "$BIN/candor-log" trillian init --trillian "$rpc" --plaintext --name demo >"$dir/init.out" 2>"$dir/init.err"; do
	i=$((i + 1))
	if [ $i -ge 30 ]; then echo "demo-trillian: trillian init failed" >&2; cat "$dir/init.err" "$dir/trillian-server.err" >&2; exit 1; fi
	sleep 1
done
cat "$dir/init.out"
tree=$(sed -n 's/^created tree \([0-9]*\) .*/\1/p' "$dir/init.out")

# 5. Two front ends, one key (the first creates it).
front() {
	start "$1" "$BIN/candor-log" --data "$dir/$1" --key "$dir/log.key" --origin "$ORIGIN" --listen 127.0.0.1:0 \
		--storage trillian --trillian "$rpc" --trillian-tree "$tree" --trillian-db "$dsn" --trillian-plaintext --log-level warn
}
front a
url_a=$(value "$dir/a.out" "candor-log: listening on ")
vkey=$(value "$dir/a.out" "candor-log: verifier key ")
front b
url_b=$(value "$dir/b.out" "candor-log: listening on ")
echo "== front ends on $url_a and $url_b, verifier key $vkey"

# 6. Entries through both, then the checkpoint from both.
for url in "$url_a" "$url_b"; do
	echo
	echo "== candor bench --url $url --count $((ENTRIES / 2)) (signed in-toto statements)"
	"$BIN/candor" bench --url "$url" --count $((ENTRIES / 2)) --concurrency 16 --verify 10 --verifier-key "$vkey" 2>&1 |
		grep -E 'status|requests|verified|error|p99' || true
done
echo
for url in "$url_a" "$url_b"; do
	cp=$(curl -fsS "$url/checkpoint")
	echo "== GET $url/checkpoint"
	printf '%s\n' "$cp"
	size=$(printf '%s\n' "$cp" | sed -n 2p)
	if [ "$size" -lt "$ENTRIES" ]; then
		echo "demo-trillian: FAILED: $url serves size $size, want at least $ENTRIES" >&2
		exit 1
	fi
done
echo "demo-trillian: ok, stopping everything"
