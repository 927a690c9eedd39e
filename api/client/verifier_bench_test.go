package client_test

import (
	"context"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/client"
)

// benchLog is a log of benchSize entries over loopback, with a checkpoint
// at benchOld entries kept.
const benchOld, benchSize = 1000, 1<<16 + 123

type benchFixture struct {
	key      logKey
	c        *client.Client
	old, cur []byte // signed checkpoints at benchOld and benchSize
	all      []string
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	key := newLogKey("example.com/bench")
	l := newCandorLog(b, key)
	all := entries("entry", 0, benchSize)
	l.add(b, all[:benchOld]...)
	old := l.checkpoint()
	for i := benchOld; i < benchSize; i += 8192 {
		l.add(b, all[i:min(i+8192, benchSize)]...)
	}
	_, c, _ := serveLog(b, l.handler)
	return &benchFixture{key: key, c: c, old: old, cur: l.checkpoint(), all: all}
}

func (f *benchFixture) verifier(b *testing.B) (*client.Verifier, client.Checkpoint) {
	v := newVerifier(b, f.c, f.key, client.VerifierConfig{})
	cp, err := v.Accept(context.Background(), f.cur)
	if err != nil {
		b.Fatal(err)
	}
	return v, cp
}

// BenchmarkInclusion proves and checks the inclusion of entries from the
// log's tiles over loopback: with the tiles cached after the first proofs
// (warm), as a monitor does, and with a new Verifier each time (cold); and
// the offline check of the resulting c2sp.org/tlog-proof bundle, log
// signature included, as `candor verify` does.
func BenchmarkInclusion(b *testing.B) {
	ctx := context.Background()
	f := newBenchFixture(b)
	index := func(i int) uint64 { return uint64(i*7919) % benchSize }
	b.Run("warm", func(b *testing.B) {
		v, cp := f.verifier(b)
		i := 0
		for b.Loop() {
			x := index(i)
			if _, err := v.ProveInclusion(ctx, cp, x, client.LeafHash([]byte(f.all[x]))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("cold", func(b *testing.B) {
		i := 0
		for b.Loop() {
			v, cp := f.verifier(b)
			x := index(i)
			if _, err := v.ProveInclusion(ctx, cp, x, client.LeafHash([]byte(f.all[x]))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("bundle", func(b *testing.B) {
		v, cp := f.verifier(b)
		leaf := client.LeafHash([]byte(f.all[12345]))
		bundle, err := v.ProveInclusion(ctx, cp, 12345, leaf)
		if err != nil {
			b.Fatal(err)
		}
		text := bundle.Marshal()
		for b.Loop() {
			p, err := api.ParseProofBundle(text)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := api.VerifyProofBundle(p, leaf, f.key.verifier.Name(), f.key.verifier); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConsistencyUpdate verifies the log's checkpoint at benchSize
// entries against a last verified one at benchOld: the log's signature,
// and the consistency proof built from its tiles over loopback.
func BenchmarkConsistencyUpdate(b *testing.B) {
	ctx := context.Background()
	f := newBenchFixture(b)
	for b.Loop() {
		s := client.NewMemoryState()
		if err := s.Swap(ctx, f.key.verifier.Name(), nil, f.old); err != nil {
			b.Fatal(err)
		}
		v := newVerifier(b, f.c, f.key, client.VerifierConfig{State: s})
		if cp, err := v.Accept(ctx, f.cur); err != nil || cp.Size != benchSize {
			b.Fatal(err)
		}
	}
}

// BenchmarkEntries reads every entry of the log from its entry bundles
// over loopback and re-hashes it into the verified tree.
func BenchmarkEntries(b *testing.B) {
	ctx := context.Background()
	f := newBenchFixture(b)
	v, cp := f.verifier(b)
	for b.Loop() {
		n := 0
		for _, err := range v.Entries(ctx, cp, 0, cp.Size) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchSize {
			b.Fatalf("%d entries, want %d", n, benchSize)
		}
	}
	b.ReportMetric(float64(b.N)*benchSize/b.Elapsed().Seconds(), "entries/s")
}
