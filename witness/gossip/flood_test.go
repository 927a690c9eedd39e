package gossip_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/witness/gossip"
)

// TestFloodFromOneMember has a member that is not a trusted witness send
// the witnesses thousands of distinct checkpoints, each with a forged
// cosignature line of a trusted witness, as fast as it can over UDP,
// while the honest witnesses cosign a new checkpoint: their gossip must
// still arrive (every witness serves every cosignature), and most of the
// flood must be dropped at the transport.
func TestFloodFromOneMember(t *testing.T) {
	const n = 3
	l := newTestLog("example.com/log")
	keys := newCosignerKeys(t, n, "f")
	nodes := make([]*node, n)
	for i := range nodes {
		// Each honest member on an address of its own, at the default
		// per-source limits.
		cfg := gossip.Config{Listen: fmt.Sprintf("127.0.0.%d:0", 2+i), Expect: n,
			PacketRate: gossip.DefaultPacketRate, StreamRate: gossip.DefaultStreamRate}
		if i > 0 {
			cfg.Join = []string{nodes[0].g.Addr()}
		}
		nodes[i] = startNodeAt(t, t.TempDir(), keys[i], keys, []*testLog{l}, cfg)
	}
	waitFor(t, 30*time.Second, "one cluster", func() bool {
		for _, nd := range nodes {
			if nd.g.Members() != n {
				return false
			}
		}
		return true
	})

	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "flooder", "127.0.0.99", 0
	mc.Delegate, mc.LogOutput = nopDelegate{}, io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{nodes[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the flooder known", func() bool { return ml.NumMembers() == n+1 })

	// The flood: distinct checkpoints signed by the log, each with a
	// forged line of witness 1 (its name and key ID, another signature).
	const floodSize = 5000
	cosigner, err := api.NewCosigner(keys[0].skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	flood := make([][]byte, floodSize)
	for i := range flood {
		cp := l.sign(t, uint64(1000+i), "flood")
		flood[i] = append([]byte{'o'}, forgeLine(t, cosign(t, cp, cosigner), nodes[0].name, nodes[1].name, nodes[1].verifier.KeyHash())...)
	}
	flooded := make(chan int, 1)
	var floodTime time.Duration
	go func() {
		start := time.Now()
		sent := 0
		defer func() {
			floodTime = time.Since(start)
			flooded <- sent
		}()
		for _, msg := range flood {
			for _, m := range ml.Members() {
				if m.Name == ml.LocalNode().Name {
					continue
				}
				if err := ml.SendBestEffort(m, msg); err == nil {
					sent++
				}
			}
		}
	}()

	// Meanwhile, the honest gossip: every witness cosigns a checkpoint.
	cp := l.sign(t, 7, "honest")
	for i, nd := range nodes {
		if code, body := addCheckpoint(t, nd.url, 0, cp); code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint = %d %q", i, code, body)
		}
	}
	d := waitFor(t, 30*time.Second, "every cosignature at every witness despite the flood", func() bool {
		for _, nd := range nodes {
			if bytes.Count(served(t, nd.url, l.origin), []byte("\n— ")) != n+1 {
				return false
			}
		}
		return true
	})
	sent := <-flooded       // the flood is bounded: it ends by itself
	time.Sleep(time.Second) // the last of the flood is handled
	var limited, untrusted float64
	for _, nd := range nodes {
		limited += gossipCount(t, nd.reg, "packet", "limited")
		untrusted += gossipCount(t, nd.reg, "own", "untrusted") + gossipCount(t, nd.reg, "own", "invalid")
	}
	t.Logf("honest gossip merged after %v; the flooder sent %d packets: %.0f dropped at the transport, %.0f checked and refused",
		d.Round(time.Millisecond), sent, limited, untrusted)
	// Past twice the limit a second, to each witness, some must be dropped
	// (a slow machine, or the race detector, may not send that fast).
	if perNode := float64(sent) / n / floodTime.Seconds(); perNode > 2*gossip.DefaultPacketRate && limited == 0 {
		t.Fatalf("%.0f packets a second from one source to each witness, none dropped at the transport", perNode)
	}
	for i, nd := range nodes {
		if evs := evidence(t, nd.url); len(evs) != 0 {
			t.Fatalf("witness %d holds evidence after the flood", i)
		}
	}
}
