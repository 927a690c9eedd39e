package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/internal/tmpfs"
)

const (
	fullDiskOrigin = "example.com/full-disk-log"
	// fullDiskSize is the size of the tmpfs the full-disk tests fill, and
	// fullDiskReserve the servers' minFreeBytes on it.
	fullDiskSize    = 64 << 20
	fullDiskReserve = 8 << 20
	// spaceTimeout bounds the wait for a server to notice that space went
	// or came back (it looks every second).
	spaceTimeout = 20 * time.Second
)

// waitReady polls GET /readyz on url until its status is want, and returns
// the last body.
func waitReady(t *testing.T, s *server, want int) []byte {
	t.Helper()
	deadline := time.Now().Add(spaceTimeout)
	for {
		code, _, body, err := s.do(context.Background(), http.MethodGet, "/readyz", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz is still %d %q after %s, want %d", code, body, spaceTimeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkNoSpace checks a 503 reply that says the disk is below its reserve.
func checkNoSpace(t *testing.T, what string, code int, hdr http.Header, body []byte) {
	t.Helper()
	if code != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("out of disk space")) || !bytes.Contains(body, []byte("below the reserve")) {
		t.Fatalf("%s: %d %q, want 503 saying the disk is below its reserve", what, code, body)
	}
	if hdr != nil && hdr.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", what)
	}
}

// TestFullDiskLog runs candor-log on a real 64 MiB tmpfs with an 8 MiB
// reserve and fills the filesystem: new entries must get 503 with the
// reason, /readyz 503, while the checkpoint, entries, proofs and
// duplicates are still served; once the file is deleted the log takes
// entries again by itself, and every acknowledged entry is served at its
// index, before and after a restart, in checkpoints consistent with each
// other.
func TestFullDiskLog(t *testing.T) {
	requireBinaries(t)
	ctx := context.Background()
	dir := tmpfs.Mount(t, fullDiskSize)
	data := filepath.Join(dir, "log")
	args := []string{"--origin", fullDiskOrigin, "--min-free-bytes", fmt.Sprint(fullDiskReserve), "--cache-mib", "8"}
	srv := mustStartServer(t, "candor-log", data, args...)

	builder := apitest.NewBuildSignerFromSeed([]byte("TestFullDiskLog"))
	sub := func(i int) []byte {
		d := sha256.Sum256([]byte(fmt.Sprint("full disk artifact ", i)))
		return builder.Submission(fmt.Sprint("full-disk/", i), hex.EncodeToString(d[:]))
	}
	acked := make(map[uint64][]byte) // index -> submission acknowledged there
	add := func(s *server, i int) {
		t.Helper()
		code, resp, body, err := s.submit(ctx, sub(i))
		if err != nil || code != http.StatusCreated {
			t.Fatalf("entry %d: %d %s %v", i, code, body, err)
		}
		acked[resp.Index] = sub(i)
	}
	for i := range 20 {
		add(srv, i)
	}
	waitReady(t, srv, http.StatusOK)
	before, c0 := srv.mustCheckpoint(t, fullDiskOrigin)

	fill := filepath.Join(dir, "fill")
	tmpfs.FillTo(t, fill, fullDiskReserve/2)
	body := waitReady(t, srv, http.StatusServiceUnavailable)
	checkNoSpace(t, "GET /readyz", http.StatusServiceUnavailable, nil, body)
	for i := 20; i < 25; i++ {
		code, hdr, body, err := srv.do(ctx, http.MethodPost, "/v1/entries", sub(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		checkNoSpace(t, fmt.Sprintf("new entry %d", i), code, hdr, body)
	}
	// Reads and duplicates need no space.
	if now, _ := srv.mustCheckpoint(t, fullDiskOrigin); !bytes.Equal(now, before) {
		t.Fatalf("the checkpoint changed on a full disk:\n%s\nwas\n%s", now, before)
	}
	if code, _, body, err := srv.submit(ctx, sub(3)); err != nil || code != http.StatusOK {
		t.Fatalf("duplicate on a full disk: %d %s %v, want 200", code, body, err)
	}
	checkEntries(t, srv, acked)
	var incl api.InclusionProofResponse
	if err := srv.getJSON(ctx, "/v1/proof/inclusion?index=7", &incl); err != nil {
		t.Fatalf("inclusion proof on a full disk: %v", err)
	}
	if srv.done() {
		t.Fatalf("candor-log exited on a full disk; stderr:\n%s", srv.stderr)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv, http.StatusOK)
	for i := 20; i < 30; i++ {
		add(srv, i)
	}
	_, c1 := srv.mustCheckpoint(t, fullDiskOrigin)
	checkConsistent(t, srv, c0, c1)
	checkEntries(t, srv, acked)

	srv.stop(t)
	srv = mustStartServer(t, "candor-log", data, args...)
	_, c2 := srv.mustCheckpoint(t, fullDiskOrigin)
	if c2.Size != c1.Size || c2.Hash != c1.Hash {
		t.Fatalf("after a restart the checkpoint is %+v, want %+v", c2, c1)
	}
	checkEntries(t, srv, acked)
	srv.stop(t)
}

// checkEntries checks that every acknowledged submission is served at its
// index, canonically encoded, and within the checkpoint.
func checkEntries(t *testing.T, s *server, acked map[uint64][]byte) {
	t.Helper()
	_, c := s.mustCheckpoint(t, fullDiskOrigin)
	for index, sub := range acked {
		want, err := api.CanonicalEntry(sub)
		if err != nil {
			t.Fatal(err)
		}
		var e api.EntryResponse
		if err := s.getJSON(context.Background(), fmt.Sprintf("/v1/entries/%d", index), &e); err != nil {
			t.Fatalf("acknowledged entry %d: %v", index, err)
		}
		if !bytes.Equal(e.Entry, want) || index >= c.Size {
			t.Fatalf("entry %d is not the acknowledged one, or beyond size %d", index, c.Size)
		}
	}
}

// checkConsistent checks the server's consistency proof from old to new.
func checkConsistent(t *testing.T, s *server, old, new api.Checkpoint) {
	t.Helper()
	var p api.ConsistencyProofResponse
	if err := s.getJSON(context.Background(), fmt.Sprintf("/v1/proof/consistency?old=%d&new=%d", old.Size, new.Size), &p); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, new.Size, p.Hashes, old.Hash[:], new.Hash[:]); err != nil {
		t.Fatalf("checkpoint %d is not consistent with %d: %v", new.Size, old.Size, err)
	}
}

// TestFullDiskWitness runs candor-witness on a real 64 MiB tmpfs with an
// 8 MiB reserve, next to a candor-log on another disk, and fills the
// witness's filesystem: add-checkpoint must get 503 with the reason and
// store nothing, /readyz 503, while the cosigned checkpoint is still
// served; once the file is deleted the witness cosigns again by itself,
// and what it cosigned survives a restart.
func TestFullDiskWitness(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logData := t.TempDir()
	logSrv := mustStartServer(t, "candor-log", logData, "--origin", witnessOrigin)
	l := &witnessedLog{srv: logSrv, tiles: client.New(logSrv.url, logSrv.client), verifier: logSrv.verifier}
	builder := apitest.NewBuildSignerFromSeed([]byte("TestFullDiskWitness"))
	submit := func(from, to int) api.Checkpoint {
		t.Helper()
		for i := from; i < to; i++ {
			d := sha256.Sum256([]byte(fmt.Sprint("artifact ", i)))
			code, _, body, err := logSrv.submit(ctx, builder.Submission(fmt.Sprint("full-disk-witness/", i), hex.EncodeToString(d[:])))
			if err != nil || code != http.StatusCreated {
				t.Fatalf("entry %d: %d %s %v", i, code, body, err)
			}
		}
		_, c := logSrv.mustCheckpoint(t, witnessOrigin)
		return c
	}
	addCheckpoint := func(w *witnessServer, old uint64) (int, []byte, []byte, api.Checkpoint) {
		t.Helper()
		cp, c, err := l.latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.proof(ctx, old, c)
		if err != nil {
			t.Fatal(err)
		}
		code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: old, Proof: p, Checkpoint: cp})
		if err != nil {
			t.Fatal(err)
		}
		return code, cp, body, c
	}
	servedSize := func(w *witnessServer) uint64 {
		t.Helper()
		sum := sha256.Sum256([]byte(witnessOrigin))
		code, body, err := w.get(ctx, "/"+hex.EncodeToString(sum[:])+"/checkpoint")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET the cosigned checkpoint: %d %q %v", code, body, err)
		}
		n, err := note.Open(body, note.VerifierList(l.verifier, w.verifier))
		if err != nil || len(n.Sigs) != 2 {
			t.Fatalf("the served checkpoint does not open with both keys (%v):\n%s", err, body)
		}
		c, err := api.ParseCheckpoint([]byte(n.Text))
		if err != nil {
			t.Fatal(err)
		}
		return c.Size
	}

	dir := tmpfs.Mount(t, fullDiskSize)
	wData := filepath.Join(dir, "witness")
	config := filepath.Join(t.TempDir(), "witness.yaml")
	yaml := fmt.Sprintf("name: %s\nminFreeBytes: %d\nlogs:\n  - origin: %s\n    key: %s\n", witnessName, fullDiskReserve, witnessOrigin, logSrv.vkey)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := startWitnessServer(t, bin, wData, "--config", config)
	if err != nil {
		t.Fatal(err)
	}
	ws := &server{process: w.process, url: w.url, client: w.client}

	c0 := submit(0, 10)
	if code, cp, body, _ := addCheckpoint(w, 0); code != http.StatusOK {
		t.Fatalf("add-checkpoint %d: %d %q", c0.Size, code, body)
	} else if err := cosignedBy(w, l, cp, body); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ws, http.StatusOK)

	fill := filepath.Join(dir, "fill")
	tmpfs.FillTo(t, fill, fullDiskReserve/2)
	body := waitReady(t, ws, http.StatusServiceUnavailable)
	checkNoSpace(t, "GET /readyz", http.StatusServiceUnavailable, nil, body)
	c1 := submit(10, 20)
	for range 3 {
		code, _, body, _ := addCheckpoint(w, c0.Size)
		checkNoSpace(t, fmt.Sprintf("add-checkpoint %d", c1.Size), code, nil, body)
	}
	if got := servedSize(w); got != c0.Size {
		t.Fatalf("the witness serves size %d on a full disk, want %d", got, c0.Size)
	}
	if w.done() {
		t.Fatalf("candor-witness exited on a full disk; stderr:\n%s", w.stderr)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ws, http.StatusOK)
	code, cp, body, c := addCheckpoint(w, c0.Size)
	if code != http.StatusOK || c.Size != c1.Size {
		t.Fatalf("add-checkpoint %d after space was freed: %d %q", c.Size, code, body)
	}
	if err := cosignedBy(w, l, cp, body); err != nil {
		t.Fatal(err)
	}
	w.stop(t)
	w, err = startWitnessServer(t, bin, wData, "--config", config)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSize(w); got != c1.Size {
		t.Fatalf("after a restart the witness serves size %d, want %d", got, c1.Size)
	}
	w.stop(t)
}
