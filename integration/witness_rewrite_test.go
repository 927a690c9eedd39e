package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// tlogTree is a Merkle tree of tag-named entries, kept as tlog's stored
// hashes.
type tlogTree struct{ hashes []tlog.Hash }

func newTLogTree(t *testing.T, n int64, entry func(i int64) string) *tlogTree {
	t.Helper()
	tr := &tlogTree{}
	for i := range n {
		h, err := tlog.StoredHashes(i, []byte(entry(i)), tr)
		if err != nil {
			t.Fatal(err)
		}
		tr.hashes = append(tr.hashes, h...)
	}
	return tr
}

func (tr *tlogTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for k, x := range idx {
		if x >= int64(len(tr.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[k] = tr.hashes[x]
	}
	return out, nil
}

// byzantineLog serves a tlog-tiles API (checkpoint and hash tiles) of one
// tree, signed with the log's real key, and can be switched to another.
type byzantineLog struct {
	origin string
	signer note.Signer
	mu     sync.Mutex
	tree   *tlogTree
	signed []byte
}

func (b *byzantineLog) serve(t *testing.T, tr *tlogTree, size int64) []byte {
	t.Helper()
	root, err := tlog.TreeHash(size, tr)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := api.SignCheckpoint(api.Checkpoint{Origin: b.origin, Size: uint64(size), Hash: root}, b.signer)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tree, b.signed = tr, signed
	return signed
}

func (b *byzantineLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	tr, signed := b.tree, b.signed
	b.mu.Unlock()
	if r.URL.Path == "/checkpoint" {
		w.Write(signed)
		return
	}
	t, err := api.ParseTilePath(r.URL.Path)
	if err != nil || t.Level < 0 {
		http.NotFound(w, r)
		return
	}
	tile := tlog.Tile{H: api.TileHeight, L: t.Level, N: int64(t.Index), W: t.Width}
	data, err := tlog.ReadTileData(tile, tr)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Write(data)
}

// TestWitnessNetworkRewrittenHistory has a log that, "after a restart",
// serves a tree whose first entries differ from the one the witnesses
// cosigned. One witness follows the log's tiles (pull mode); the others
// only had the old checkpoint pushed to them. The pulling witness proves
// the rewrite from the log's own tiles, and gossip brings the evidence to
// every witness, which then refuse the log.
func TestWitnessNetworkRewrittenHistory(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/rewriting-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)
	bl := &byzantineLog{origin: origin, signer: logSigner}
	honest := newTLogTree(t, 300, func(i int64) string { return fmt.Sprintf("entry %d", i) })
	first := bl.serve(t, honest, 300)
	srv := httptest.NewServer(bl)
	defer srv.Close()

	ws := startWitnessNetwork(t, bin, 3, func(i int) string {
		logs := fmt.Sprintf("pollInterval: 100ms\nlogs:\n  - origin: %s\n    key: %s\n", origin, logVkey)
		if i == 0 {
			logs += fmt.Sprintf("    url: %s\n", srv.URL)
		}
		return logs
	}, false)
	n := len(ws)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, w := range ws[1:] {
		if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: first}); err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint: %d %s, %v", i+1, code, body, err)
		}
	}
	// The pulling witness cosigns the honest tree.
	sum := sha256.Sum256([]byte(origin))
	hash := hex.EncodeToString(sum[:])
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, body, err := ws[0].get(ctx, "/"+hash+"/checkpoint"); err == nil && code == http.StatusOK && strings.HasPrefix(string(body), string(first[:strings.Index(string(first), "\n\n")])) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pulling witness did not cosign the log's first checkpoint within 30s")
		}
	}

	// The log comes back with history rewritten: entries 100 on differ.
	rewritten := newTLogTree(t, 500, func(i int64) string {
		if i < 100 {
			return fmt.Sprintf("entry %d", i)
		}
		return fmt.Sprintf("rewritten entry %d", i)
	})
	start := time.Now()
	bl.serve(t, rewritten, 500)

	// Polls come every 100 ms: the limit counts from the first poll
	// that can see the rewrite.
	waitForEvidence(t, ctx, ws, origin, logVerifier, start, evidenceLimit()+100*time.Millisecond, "the rewrite")
	t.Logf("all %d witnesses hold verified evidence %s after the log rewrote its history", n, time.Since(start).Round(time.Millisecond))
	for i, w := range ws[1:] {
		code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: 300, Checkpoint: first})
		if err != nil || code != http.StatusUnprocessableEntity {
			t.Errorf("witness %d: add-checkpoint after evidence: %d %s, %v; want 422", i+1, code, body, err)
		}
	}
}
