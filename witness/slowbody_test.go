package witness_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/httplimit/httplimittest"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// TestHTTPSlowBodies: on add-checkpoint and gossip, clients that send
// headers and one byte of a body get 400 when they hang up and 408 when
// the body does not come in time, and more of them from one address than
// its limit get 429 at once while other addresses are served. None of it
// is logged as an error: each is a debug line.
func TestHTTPSlowBodies(t *testing.T) {
	logs := new(syncBuffer)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newTestLog("example.com/log")
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier}}, State: state, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(o witness.HandlerOptions) *httplimittest.WatchedServer {
		t.Helper()
		o.Logger = logger
		h, err := witness.NewHandler(w, o)
		if err != nil {
			t.Fatal(err)
		}
		return httplimittest.NewWatchedServer(t, h)
	}
	paths := []string{"/add-checkpoint", "/v1/gossip/checkpoint"}

	s := serve(witness.HandlerOptions{BodyTimeout: time.Minute})
	for _, path := range paths {
		c := httplimittest.SlowPost(t, s.Server, "127.0.0.1", path, 'o')
		<-s.Reading
		c.Close()
		<-s.Done
	}
	if got := strings.Count(logs.String(), "code=400"); got != len(paths) {
		t.Errorf("%d debug lines with code=400 for the bodies cut short, want %d:\n%s", got, len(paths), logs)
	}

	s = serve(witness.HandlerOptions{BodyTimeout: 100 * time.Millisecond})
	for _, path := range paths {
		if resp, body := httplimittest.ReadReply(t, httplimittest.SlowPost(t, s.Server, "127.0.0.1", path, 'o')); resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("a slow body to %s: %d %q, want 408", path, resp.StatusCode, body)
		}
	}

	s = serve(witness.HandlerOptions{MaxInFlightPerClient: 2, BodyTimeout: time.Minute})
	for _, path := range paths {
		httplimittest.SlowPost(t, s.Server, "127.0.0.2", path, 'o')
	}
	<-s.Reading
	<-s.Reading
	for _, path := range paths {
		if resp, body := httplimittest.ReadReply(t, httplimittest.SlowPost(t, s.Server, "127.0.0.2", path, 'o')); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("a third slow client from one address to %s: %d %q, want 429", path, resp.StatusCode, body)
		}
	}
	tr := newTree(t, 10, 10, "")
	cp := l.checkpoint(t, tr, 10)
	tw := &testWitness{url: s.URL, vkey: cosigner.VerifierKey(), verifier: cosigner.Verifier()}
	checkCosigned(t, tw, l, cp, post(t, s.URL, addBody(0, nil, cp)))

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
	for _, want := range []string{"code=408", "code=429"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no debug line with %s:\n%s", want, logs)
		}
	}
}
