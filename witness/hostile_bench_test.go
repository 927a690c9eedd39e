package witness_test

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/candorlog/candor/api"
)

// BenchmarkObserveHostile measures the CPU cost per gossiped message of
// Observe, on pebble state, for what a hostile member of the gossip
// network can send, against an honest message. checks/op is the number of
// signatures (the log's and peers') the witness checked per message.
//
//   - replay: a valid checkpoint cosigned by 3 peers, again and again;
//   - forged99: a checkpoint with 99 forged cosignatures under one trusted
//     peer's name and key ID (a few distinct ones in turn);
//   - forged1: distinct messages, one checkpoint with one new forged
//     cosignature of a trusted peer each;
//   - honest: a new checkpoint (larger each time) cosigned by 3 peers,
//     the baseline. The log has no URL, so it is kept unchecked.
func BenchmarkObserveHostile(b *testing.B) {
	l := newTestLog("example.com/bench")
	tr := newTree(b, 20, 20, "")
	peers := cosigners(b, "witness.example/p", 3)
	cp := l.checkpoint(b, tr, 10)
	ctx := context.Background()

	run := func(b *testing.B, next func(i int) []byte, want func(error) bool) {
		o := newObserver(b, "witness.example/self", l, peers...)
		// Observe the honest checkpoint once, as the witness would have.
		if _, err := o.w.Observe(ctx, cosign(b, cp, peers...), true); err != nil {
			b.Fatal(err)
		}
		log0, peers0 := o.checks()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := o.w.Observe(ctx, next(i), true); !want(err) {
				b.Fatalf("Observe: %v", err)
			}
		}
		b.StopTimer()
		logN, peersN := o.checks()
		b.ReportMetric(float64(logN-log0+peersN-peers0)/float64(b.N), "checks/op")
	}
	ok := func(err error) bool { return err == nil }
	refused := func(err error) bool { return err != nil }

	b.Run("replay", func(b *testing.B) {
		msg := cosign(b, cp, peers...)
		run(b, func(int) []byte { return msg }, ok)
	})
	b.Run("forged99", func(b *testing.B) {
		var msgs [][]byte
		for i := range 16 {
			m := cosign(b, cp)
			for j := range 99 {
				m = append(m, forged(peers[0], uint64(i*100+j))...)
			}
			msgs = append(msgs, m)
		}
		run(b, func(i int) []byte { return msgs[i%len(msgs)] }, refused)
	})
	var seed uint64
	b.Run("forged1", func(b *testing.B) {
		run(b, func(int) []byte {
			seed++
			return append(cosign(b, cp), forged(peers[0], seed)...)
		}, refused)
	})
	size := uint64(100)
	b.Run("honest", func(b *testing.B) {
		msgs := make([][]byte, b.N)
		for i := range msgs {
			size++
			c := api.Checkpoint{Origin: l.origin, Size: size}
			if _, err := rand.Read(c.Hash[:]); err != nil {
				b.Fatal(err)
			}
			msgs[i] = cosign(b, l.sign(b, c), peers...)
		}
		run(b, func(i int) []byte { return msgs[i] }, ok)
	})
}
