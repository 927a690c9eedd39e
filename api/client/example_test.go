package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/witnessing"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// exampleLog is a Candor log for the examples: pebble in a temporary
// directory, served over HTTP.
type exampleLog struct {
	url  string
	vkey string
	log  *log.Log
	stop func()
}

func startExampleLog(origin string, signer note.Signer, verifier note.Verifier, vkey string) *exampleLog {
	dir, err := os.MkdirTemp("", "candor-example-")
	if err != nil {
		panic(err)
	}
	store, err := pebble.Open(dir, pebble.Options{Logger: quiet})
	if err != nil {
		panic(err)
	}
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet}))
	return &exampleLog{url: srv.URL, vkey: vkey, log: l, stop: func() {
		srv.Close()
		l.Close()
		store.Close()
		os.RemoveAll(dir)
	}}
}

func (e *exampleLog) add(entries ...string) {
	for _, s := range entries {
		if _, err := e.log.Add(context.Background(), []byte(s)); err != nil {
			panic(err)
		}
	}
}

func newExampleLog(origin string) *exampleLog {
	s, v, vkey := newNoteKey(origin)
	return startExampleLog(origin, s, v, vkey)
}

func newNoteKey(origin string) (note.Signer, note.Verifier, string) {
	k := newLogKey(origin)
	return k.signer, k.verifier, k.vkey
}

// A Verifier follows a log: each Update verifies the log's new checkpoint
// and that it extends the last one; proofs and entries are checked
// against a verified checkpoint.
func ExampleVerifier() {
	ctx := context.Background()
	l := newExampleLog("example.com/log")
	defer l.stop()
	l.add("hello", "world")

	// What a client knows of the log: its URL and its verifier key.
	logKey, err := note.NewVerifier(l.vkey)
	if err != nil {
		panic(err)
	}
	v, err := client.NewVerifier(client.New(l.url, nil), client.VerifierConfig{
		Origin:      "example.com/log",
		LogVerifier: logKey,
	})
	if err != nil {
		panic(err)
	}
	cp, err := v.Update(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("verified the tree of size", cp.Size)

	l.add("again")
	if cp, err = v.Update(ctx); err != nil {
		panic(err)
	}
	fmt.Println("verified the tree of size", cp.Size, "and that it extends the last one")

	// An inclusion proof, built from the log's tiles, as an offline
	// c2sp.org/tlog-proof bundle.
	bundle, err := v.ProveInclusion(ctx, cp, 1, client.LeafHash([]byte("world")))
	if err != nil {
		panic(err)
	}
	if _, err := api.VerifyProofBundle(bundle, client.LeafHash([]byte("world")), "example.com/log", logKey); err != nil {
		panic(err)
	}
	fmt.Printf("\"world\" is at index %d, with a proof of %d hashes\n", bundle.Index, len(bundle.Hashes))

	// Every entry, re-hashed into the verified tree.
	for e, err := range v.Entries(ctx, cp, 0, cp.Size) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d: %s\n", e.Index, e.Data)
	}
	// Output:
	// verified the tree of size 2
	// verified the tree of size 3 and that it extends the last one
	// "world" is at index 1, with a proof of 2 hashes
	// 0: hello
	// 1: world
	// 2: again
}

// A log that shows another tree of the same size to a Verifier than it
// did before is caught, and the two checkpoints are evidence that
// `candor verify-evidence` accepts. Here the log's key signs two logs.
func ExampleForkError() {
	ctx := context.Background()
	signer, verifier, vkey := newNoteKey("example.com/forked")
	honest := startExampleLog("example.com/forked", signer, verifier, vkey)
	defer honest.stop()
	forked := startExampleLog("example.com/forked", signer, verifier, vkey)
	defer forked.stop()
	honest.add("a", "b")
	forked.add("a", "c")

	// The client sees the honest log first, then the forked one; its
	// state, in a file, remembers what it verified.
	dir, err := os.MkdirTemp("", "candor-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	state, err := client.NewFileState(filepath.Join(dir, "state.json"))
	if err != nil {
		panic(err)
	}
	cfg := client.VerifierConfig{Origin: "example.com/forked", LogVerifier: verifier, State: state}
	v, err := client.NewVerifier(client.New(honest.url, nil), cfg)
	if err != nil {
		panic(err)
	}
	if _, err := v.Update(ctx); err != nil {
		panic(err)
	}
	v, err = client.NewVerifier(client.New(forked.url, nil), cfg)
	if err != nil {
		panic(err)
	}
	_, err = v.Update(ctx)
	var fork *client.ForkError
	if !errors.As(err, &fork) {
		panic(err)
	}
	fmt.Println(fork.Reason)
	evidence, err := fork.Evidence()
	if err != nil {
		panic(err)
	}
	cps, err := evidence.VerifyCanonical(verifier)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s evidence: two trees of size %d\n", evidence.Kind, cps[0].Size)
	// Output:
	// the log signed two different trees of the same size
	// equivocation evidence: two trees of size 2
}

// With a c2sp.org/tlog-policy, a checkpoint is verified only if enough of
// the policy's witnesses cosigned it, recently enough. Here the log gets
// its checkpoints cosigned by one witness, which the policy requires.
func ExampleVerifierConfig_policy() {
	ctx := context.Background()
	const origin = "example.com/witnessed"
	signer, verifier, vkey := newNoteKey(origin)

	// A witness, on its own state, that cosigns the log's checkpoints.
	dir, err := os.MkdirTemp("", "candor-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	wstate, err := pebble.OpenWitnessState(filepath.Join(dir, "witness"), pebble.Options{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer wstate.Close()
	skey, wvkey, err := api.GenerateCosignerKey(rand.Reader, "witness.example/w1")
	if err != nil {
		panic(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		panic(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: wstate, Logger: quiet,
		Logs: []witness.Log{{Origin: origin, Verifier: verifier}}})
	if err != nil {
		panic(err)
	}
	wh, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		panic(err)
	}
	wsrv := httptest.NewServer(wh)
	defer wsrv.Close()

	// The policy: this log, this witness, whose cosignature is required.
	policy, err := api.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w1 %s %s\nquorum w1\n", vkey, wvkey, wsrv.URL))
	if err != nil {
		panic(err)
	}

	// The log publishes only checkpoints that the policy's quorum cosigned.
	coll, err := witnessing.New(witnessing.Config{Policy: policy, Verifier: verifier, Logger: quiet})
	if err != nil {
		panic(err)
	}
	store, err := pebble.Open(filepath.Join(dir, "log"), pebble.Options{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	l, err := log.New(ctx, log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet, Witnessing: coll})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	srv := httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet}))
	defer srv.Close()
	r, err := l.Add(ctx, []byte("hello"))
	if err != nil {
		panic(err)
	}
	if _, _, err := l.WaitWitnessed(ctx, r.Index); err != nil {
		panic(err)
	}

	v, err := client.NewVerifier(client.New(srv.URL, nil), client.VerifierConfig{
		Origin:            origin,
		LogVerifier:       verifier,
		Policy:            policy,
		MaxCosignatureAge: time.Hour,
	})
	if err != nil {
		panic(err)
	}
	cp, err := v.Update(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("verified the tree of size", cp.Size, "cosigned by quorum", policy.Quorum())

	// An hour and a minute later, the same cosignature is too old.
	late, err := client.NewVerifier(client.New(srv.URL, nil), client.VerifierConfig{
		Origin:            origin,
		LogVerifier:       verifier,
		Policy:            policy,
		MaxCosignatureAge: time.Hour,
		Now:               func() time.Time { return time.Now().Add(61 * time.Minute) },
	})
	if err != nil {
		panic(err)
	}
	_, err = late.Update(ctx)
	fmt.Println("later:", errors.Is(err, client.ErrStaleCosignatures))
	// Output:
	// verified the tree of size 1 cosigned by quorum w1
	// later: true
}
