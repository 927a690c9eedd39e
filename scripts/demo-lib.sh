# demo-lib.sh: what the demo scripts share. Source it after setting DEMO
# (the script's name, for messages): it makes the temporary directory
# $dir, removed on exit with every process start started.

dir=$(mktemp -d "${TMPDIR:-/tmp}/candor-$DEMO.XXXXXX")
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo "$DEMO: interrupted" >&2; exit 130' INT TERM

# value FILE PREFIX: waits (up to 30 s) for a line of FILE that starts
# with PREFIX and prints the rest of it.
value() {
	i=0
	while [ $i -lt 300 ]; do
		v=$(sed -n "s|^$2||p" "$1" 2>/dev/null | head -n 1)
		if [ -n "$v" ]; then echo "$v"; return 0; fi
		i=$((i + 1))
		sleep 0.1
	done
	echo "$DEMO: no \"$2\" line in $1; its stderr:" >&2
	cat "${1%.out}.err" >&2
	return 1
}

# start NAME ARGS...: starts a process in the background, its output in
# $dir/NAME.out and $dir/NAME.err. Not in a command substitution: its
# process must be known to cleanup.
start() {
	name=$1
	shift
	"$@" >"$dir/$name.out" 2>"$dir/$name.err" &
	pids="$pids $!"
}
