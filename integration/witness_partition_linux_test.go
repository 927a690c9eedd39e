//go:build linux

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// The partition test runs itself again in a network namespace of its own
// (unshare --net), which routes between two namespaces it creates; these
// variables carry what the outer run passes to the inner one.
const (
	netnsInnerEnv   = "CANDOR_NETNS_INNER"
	netnsWitnessEnv = "CANDOR_NETNS_WITNESS"
)

// TestWitnessNetworkPartition runs four candor-witness processes, two in
// each of two network namespaces that the test creates and routes between,
// and cuts the route for longer than memberlist takes to declare the other
// side dead and then to forget it. While apart, each side cosigns one of
// two forks of a log. Once the route is back, every witness must hold
// verified evidence within 3 s, and the cluster must be whole again.
//
// It needs root (CI runs as root), unshare and ip; it skips otherwise.
// It talks only to the addresses of the namespaces it creates
// (198.18.1.0/24 and 198.18.2.0/24, a range set aside for such tests).
func TestWitnessNetworkPartition(t *testing.T) {
	requireBinaries(t)
	if os.Getenv(netnsInnerEnv) == "" {
		runInOwnNetns(t)
		return
	}
	bin := os.Getenv(netnsWitnessEnv)
	sides := makeRoutedNetns(t, 2)

	const n = 4
	const origin = "example.com/byzantine-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)
	members := newWitnessMembers(t, n, "part")
	secret := make([]byte, 32)
	rand.Read(secret)
	side := func(i int) netnsSide { return sides[i*len(sides)/n] }
	gossipAddr := func(i int) string { return fmt.Sprintf("%s:%d", side(i).addr, 7946+i) }
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ws := make([]*witnessServer, n)
	for i, m := range members {
		var join []string
		if i > 0 {
			join = []string{gossipAddr(0)}
		}
		cfg := writeWitnessConfig(t, members, i, logsYAML(origin, logVkey), secret, gossipAddr(i), join)
		w, err := startWitnessServerIn(t, []string{"ip", "netns", "exec", side(i).name}, bin, m.dir,
			"--config", cfg, "--listen", side(i).addr+":0")
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	waitForMembers(t, ctx, ws, func(int) int { return n }, time.Minute, "the start")

	// The cut: the namespace the test runs in drops what one side sends
	// the other, silently, as a real network does (no ICMP error that
	// would end a connection attempt at once).
	cutBetween(t, sides, true)
	cut := time.Now()
	waitForMembers(t, ctx, ws, func(int) int { return n / len(sides) }, time.Minute, "the cut")
	dead := time.Now()
	t.Logf("each side sees only itself %s after the cut", dead.Sub(cut).Round(time.Millisecond))

	viewA, viewB := forkedView(t, logSigner, "A"), forkedView(t, logSigner, "B")
	for i, w := range ws {
		cp := viewA
		if side(i) != sides[0] {
			cp = viewB
		}
		if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp}); err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint: %d %s, %v", i, code, body, err)
		}
	}
	// memberlist gossips to dead members for a while, which would let it
	// heal by itself; past that, only the witnesses' rejoining can.
	time.Sleep(time.Until(dead.Add(memberlist.DefaultLANConfig().GossipToTheDeadTime + time.Second)))
	for i, w := range ws {
		if e, err := evidenceOf(ctx, w, origin); err != nil || e != nil {
			t.Fatalf("witness %d holds evidence before the heal (%v): the sides were not apart", i, err)
		}
	}

	cutBetween(t, sides, false)
	heal := time.Now()
	t.Logf("the cut lasted %s", heal.Sub(cut).Round(time.Millisecond))
	waitForEvidence(t, ctx, ws, origin, logVerifier, heal, evidenceLimit(), "the heal")
	t.Logf("all %d witnesses hold verified evidence %s after the heal", n, time.Since(heal).Round(time.Millisecond))
	waitForMembers(t, ctx, ws, func(int) int { return n }, time.Minute, "the heal")
	t.Logf("every witness sees all %d members %s after the heal", n, time.Since(heal).Round(time.Millisecond))
}

// runInOwnNetns runs the calling test again, under unshare --net, with
// the candor-witness binary built here, and fails if it fails.
func runInOwnNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to create network namespaces: %v", tool, err)
		}
	}
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	race := "0"
	if binaryRace {
		race = "1"
	}
	cmd := exec.Command("unshare", "--net", "--", os.Args[0],
		"-test.run", "^"+t.Name()+"$", "-test.count", "1", "-test.v", "-test.timeout", "10m")
	cmd.Env = append(os.Environ(), netnsInnerEnv+"=1", netnsWitnessEnv+"="+bin, "CANDOR_BINARY_RACE="+race)
	cmd.SysProcAttr = procAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test in its own network namespace failed: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "    ") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("the test in its own network namespace did not pass:\n%s", out)
	}
}

// netnsSide is a network namespace that the test created, and its
// address.
type netnsSide struct{ name, addr, subnet string }

// sideVeth names the test namespace's end of the veth pair to side i.
func sideVeth(i int) string { return fmt.Sprintf("candor%d", i) }

// makeRoutedNetns creates n network namespaces, each joined to the
// namespace the test runs in by a veth pair and routed through it, and
// deletes them when the test ends. The test must run in a namespace of
// its own: it turns on forwarding there, and cutBetween adds its rules
// there.
func makeRoutedNetns(t *testing.T, n int) []netnsSide {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "link", "set", "lo", "up")
	sides := make([]netnsSide, n)
	for i := range sides {
		name := fmt.Sprintf("candor-test-%d-%d", os.Getpid(), i)
		router, addr := fmt.Sprintf("198.18.%d.1", i+1), fmt.Sprintf("198.18.%d.2", i+1)
		veth := sideVeth(i)
		run("ip", "netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
		run("ip", "addr", "add", router+"/24", "dev", veth)
		run("ip", "link", "set", veth, "up")
		run("ip", "-n", name, "link", "set", "lo", "up")
		run("ip", "-n", name, "addr", "add", addr+"/24", "dev", "eth0")
		run("ip", "-n", name, "link", "set", "eth0", "up")
		run("ip", "-n", name, "route", "add", "default", "via", router)
		sides[i] = netnsSide{name, addr, fmt.Sprintf("198.18.%d.0/24", i+1)}
	}
	setForwarding(t)
	return sides
}

// setForwarding turns routing between the test's namespaces on.
func setForwarding(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		t.Fatalf("couldn't turn on forwarding: %v", err)
	}
}

// cutBetween drops (cut) or routes again (!cut) every packet that one of
// sides sends to another, with blackhole rules for what arrives from a
// side's veth addressed to another side's subnet; what the test itself
// sends to a side, and the replies, still pass.
func cutBetween(t *testing.T, sides []netnsSide, cut bool) {
	t.Helper()
	verb := "del"
	if cut {
		verb = "add"
	}
	for i := range sides {
		for j, to := range sides {
			if i == j {
				continue
			}
			args := []string{"rule", verb, "iif", sideVeth(i), "to", to.subnet, "blackhole"}
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
}
