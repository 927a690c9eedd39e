package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// TestTrillianFrontEnds runs the log on a Trillian tree (Trillian's real
// log server and signer, on a private MariaDB) with two candor-log
// processes in front of it, sharing the log's key. Clients submit to both
// and read checkpoints alternately from both while one front end is killed
// with SIGKILL and started again, twice. Then: every acknowledged entry is
// in the tree at its index; every checkpoint read, from either, is a
// checkpoint of that one tree (no fork); a client reading A then B never
// saw a smaller tree than before; both front ends serve the whole tree.
func TestTrillianFrontEnds(t *testing.T) {
	requireBinaries(t)
	env := trilliantest.Start(t, trilliantest.Options{})
	runFrontEnds(t, env.Addr, env.DSN, func(round int) {})
}

// TestTrillianSignerKilled is TestTrillianFrontEnds with Trillian as it is
// deployed, trillian_log_server and trillian_log_signer processes: the
// signer is killed with SIGKILL under the load, with front end A, and
// started again a second later.
func TestTrillianSignerKilled(t *testing.T) {
	requireBinaries(t)
	c := trilliantest.StartCluster(t, trilliantest.Options{})
	runFrontEnds(t, c.Addr, c.DSN, func(round int) {
		c.KillSigner()
		time.Sleep(time.Second)
		c.StartSigner()
	})
}

// runFrontEnds runs the test of TestTrillianFrontEnds on the Trillian log
// server at addr, calling disrupt each time it kills front end A.
func runFrontEnds(t *testing.T, addr, dsn string, disrupt func(round int)) {
	ctx := context.Background()

	treeID := trillianInit(t, addr)
	const origin = "example.com/candor-trillian"
	key := filepath.Join(t.TempDir(), "log.key")
	dirs := []string{t.TempDir(), t.TempDir()}
	start := func(i int) *server {
		return mustStartServer(t, fmt.Sprintf("front end %c", 'A'+i), dirs[i], "--key", key, "--origin", origin,
			"--storage", "trillian", "--trillian", addr, "--trillian-tree", treeID, "--trillian-db", dsn, "--trillian-plaintext",
			"--trillian-poll", "200ms")
	}
	var mu sync.Mutex
	fronts := []*server{start(0)}
	fronts = append(fronts, start(1)) // after A created the key
	front := func(i int) *server {
		mu.Lock()
		defer mu.Unlock()
		return fronts[i%2]
	}

	type ack struct {
		index    uint64
		leafHash []byte
	}
	type seen struct {
		size uint64
		hash [32]byte
		from string
	}
	var (
		acks      []ack
		cps       []seen
		backwards []string
		sent      atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	signer := apitest.NewBuildSigner()
	const workers, perWorker = 8, 40
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := sent.Add(1)
				sub := signer.Submission(fmt.Sprintf("trillian-%d-%d", w, i), fmt.Sprintf("%064x", n))
				fe := front(w + i)
				code, resp, _, err := fe.submit(ctx, sub)
				if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
					// A front end killed under the request, or 503 while it
					// starts: not acknowledged.
					continue
				}
				entry, _, err := api.AdmitEntry(sub)
				if err != nil {
					t.Error(err)
					return
				}
				pb, err := api.ParseProofBundle([]byte(resp.Proof))
				if err == nil {
					_, err = api.VerifyProofBundle(pb, rfc6962.DefaultHasher.HashLeaf(entry), origin, fe.verifier)
				}
				if err != nil {
					t.Errorf("%s: the reply's proof: %v", fe.name, err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{resp.Index, resp.LeafHash})
				mu.Unlock()
			}
		})
	}
	// A client reading checkpoints from A, then B, then A...
	wg.Go(func() {
		var last uint64
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			fe := front(i)
			_, c, err := fe.checkpoint(ctx, origin)
			if err != nil {
				continue // killed, or starting
			}
			mu.Lock()
			cps = append(cps, seen{c.Size, c.Hash, fe.name})
			if c.Size < last {
				backwards = append(backwards, fmt.Sprintf("%s served size %d after %d", fe.name, c.Size, last))
			}
			mu.Unlock()
			last = max(last, c.Size)
		}
	})
	// Front end A killed and started again, twice, under the load.
	for round := range 2 {
		time.Sleep(700 * time.Millisecond)
		a := front(0)
		a.kill9(t)
		disrupt(round)
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		fronts[0] = start(0)
		mu.Unlock()
	}
	// The writers end by themselves; then the reader.
	done := make(chan struct{})
	go func() {
		for sent.Load() < workers*perWorker {
			time.Sleep(10 * time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the load did not end")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if len(acks) < workers*perWorker/2 {
		t.Fatalf("only %d of %d submissions acknowledged", len(acks), workers*perWorker)
	}
	// Both front ends catch up with the tree, and serve all of it.
	var size uint64
	var leaves [][]byte
	for i := range 2 {
		fe := front(i)
		deadline := time.Now().Add(time.Minute)
		for {
			_, c, err := fe.checkpoint(ctx, origin)
			if err == nil && c.Size >= uint64(len(acks)) && (i == 0 || c.Size == size) {
				size = c.Size
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: checkpoint %v, %v; want at least %d entries", fe.name, c, err, len(acks))
			}
			time.Sleep(50 * time.Millisecond)
		}
		got := readLeafHashes(t, fe, size)
		if i == 0 {
			leaves = got
		} else {
			for j := range leaves {
				if !bytes.Equal(leaves[j], got[j]) {
					t.Fatalf("entry %d: front end A serves leaf hash %x, B %x", j, leaves[j], got[j])
				}
			}
		}
	}
	for _, a := range acks {
		if a.index >= size || !bytes.Equal(leaves[a.index], a.leafHash) {
			t.Fatalf("acknowledged entry %d (%x) is not in the tree of %d entries", a.index, a.leafHash, size)
		}
	}
	// Every checkpoint read is of the one tree.
	roots := prefixRoots(t, leaves)
	for _, c := range cps {
		if c.size > size || !bytes.Equal(roots[c.size], c.hash[:]) {
			t.Fatalf("%s served a checkpoint of size %d with root %x that is not of the log's tree", c.from, c.size, c.hash)
		}
	}
	// Each front end says what it mirrors.
	for i := range 2 {
		fe := front(i)
		code, _, b, err := fe.do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s: GET /metrics: %d %v", fe.name, code, err)
		}
		for _, want := range []string{fmt.Sprintf("candor_log_trillian_tree_size %d\n", size), "candor_log_trillian_mirror_lag_entries 0\n", "candor_log_trillian_mirror_stopped 0\n", `candor_log_trillian_rounds_total{result="ok"}`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: /metrics lacks %q", fe.name, want)
			}
		}
	}
	if len(backwards) > 0 {
		t.Errorf("a client reading both front ends went backwards %d times: %s", len(backwards), strings.Join(backwards[:min(5, len(backwards))], "; "))
	}
	t.Logf("%d of %d submissions acknowledged, tree of %d entries, %d checkpoints read, all of one tree", len(acks), workers*perWorker, size, len(cps))
}

// trillianInit creates a tree on the Trillian log server at addr with
// candor-log trillian init and returns its ID as printed.
func trillianInit(t *testing.T, addr string) string {
	t.Helper()
	p := startProcess(t, "trillian init", "trillian", "init", "--trillian", addr, "--plaintext")
	if ok, err := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("trillian init: %v\n%s", err, p.stderr)
	}
	m := regexp.MustCompile(`created tree (\d+) `).FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("trillian init printed %q", p.stdout)
	}
	return m[1]
}

// readLeafHashes returns the leaf hashes of the first size entries the
// server serves, from its entry bundles.
func readLeafHashes(t *testing.T, s *server, size uint64) [][]byte {
	t.Helper()
	var out [][]byte
	for bi := uint64(0); bi*api.TileWidth < size; bi++ {
		tile, _ := api.TileForSize(api.EntriesLevel, bi, size)
		code, _, b, err := s.do(context.Background(), http.MethodGet, "/"+tile.Path(), nil, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s: GET %s: %d %v", s.name, tile.Path(), code, err)
		}
		entries, err := api.ParseEntryBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, rfc6962.DefaultHasher.HashLeaf(e))
		}
	}
	return out[:size]
}

// prefixRoots returns the root hash of every prefix of the tree of leaves.
func prefixRoots(t *testing.T, leaves [][]byte) [][]byte {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	roots := [][]byte{rfc6962.DefaultHasher.EmptyRoot()}
	for _, l := range leaves {
		if err := r.Append(l, nil); err != nil {
			t.Fatal(err)
		}
		h, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, h)
	}
	return roots
}

// TestTrillianServerDown: Trillian's log server killed under a front end
// and started again. Meanwhile submissions and /checkpoint get 503 at
// once (not after a timeout), tiles and entries are still served; once it
// is back, the front end takes entries again by itself, and every entry
// acknowledged before is there.
func TestTrillianServerDown(t *testing.T) {
	requireBinaries(t)
	c := trilliantest.StartCluster(t, trilliantest.Options{SequencerInterval: 50 * time.Millisecond})
	ctx := context.Background()
	const origin = "example.com/trillian-down"
	fe := mustStartServer(t, "front end", t.TempDir(), "--origin", origin, "--storage", "trillian", "--trillian", c.Addr,
		"--trillian-tree", trillianInit(t, c.Addr), "--trillian-db", c.DSN, "--trillian-plaintext", "--trillian-poll", "100ms")
	signer := apitest.NewBuildSigner()
	acked := map[uint64][]byte{}
	submit := func(i int) (int, []byte) {
		t.Helper()
		sub := signer.Submission(fmt.Sprintf("down-%d", i), fmt.Sprintf("%064x", i))
		code, resp, body, err := fe.submit(ctx, sub)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if code == http.StatusCreated {
			acked[resp.Index] = resp.LeafHash
		}
		return code, body
	}
	for i := range 10 {
		if code, body := submit(i); code != http.StatusCreated {
			t.Fatalf("entry %d: %d %s", i, code, body)
		}
	}
	c.KillServer()
	start := time.Now()
	if code, body := submit(10); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "Trillian") {
		t.Errorf("with Trillian down: %d %s; want 503 naming Trillian", code, body)
	}
	if code, _, body, err := fe.do(ctx, http.MethodGet, "/checkpoint", nil, nil); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("GET /checkpoint with Trillian down: %d %s %v; want 503", code, body, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusals took %s", d)
	}
	tile, _ := api.TileForSize(api.EntriesLevel, 0, 10)
	if code, _, body, err := fe.do(ctx, http.MethodGet, "/"+tile.Path(), nil, nil); err != nil || code != http.StatusOK {
		t.Errorf("GET %s with Trillian down: %d %s %v", tile.Path(), code, body, err)
	}
	c.StartServer()
	deadline := time.Now().Add(time.Minute)
	for i := 11; ; i++ {
		code, body := submit(i)
		if code == http.StatusCreated {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after Trillian came back: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, cp, err := fe.checkpoint(ctx, origin)
	if err != nil {
		t.Fatal(err)
	}
	leaves := readLeafHashes(t, fe, cp.Size)
	for idx, h := range acked {
		if idx >= cp.Size || !bytes.Equal(leaves[idx], h) {
			t.Fatalf("acknowledged entry %d is not in the tree of %d", idx, cp.Size)
		}
	}
	t.Logf("%d entries acknowledged around the outage, tree of %d", len(acked), cp.Size)
}

// TestTrillianFrontEndsWitnessed: two front ends on one Trillian tree
// under a witness policy, pushing to the same witness. Both take entries
// (201, or 202 while not cosigned yet) and both end up publishing the
// whole tree, cosigned.
func TestTrillianFrontEndsWitnessed(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	env := trilliantest.Start(t, trilliantest.Options{SequencerInterval: 50 * time.Millisecond})
	ctx := context.Background()
	conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tree, err := trillian.CreateTree(ctx, conn, "witnessed", "")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/trillian-witnessed"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "log.key")
	if err := os.WriteFile(key, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wconfig := filepath.Join(t.TempDir(), "witness.yaml")
	if err := os.WriteFile(wconfig, []byte(fmt.Sprintf("name: witness.example/t1\nlogs:\n  - origin: %s\n    key: %s\n", origin, vkey)), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := startWitnessServer(t, bin, t.TempDir(), "--config", wconfig)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.txt")
	if err := os.WriteFile(policy, []byte(fmt.Sprintf("witness w1 %s %s\nquorum w1\n", w.vkey, w.url)), 0o600); err != nil {
		t.Fatal(err)
	}
	var fes []*server
	for i := range 2 {
		fes = append(fes, mustStartServer(t, fmt.Sprintf("front end %c", 'A'+i), t.TempDir(), "--key", key, "--policy", policy,
			"--witness-wait", "2s", "--witness-retry-max", "200ms", "--storage", "trillian", "--trillian", env.Addr,
			"--trillian-tree", fmt.Sprint(tree.TreeId), "--trillian-db", env.DSN, "--trillian-plaintext", "--trillian-poll", "100ms"))
	}
	signer := apitest.NewBuildSigner()
	const n = 60
	var wg sync.WaitGroup
	// A client reading checkpoints from A, then B, then A... under the
	// load: never a smaller tree than before, and all of one tree.
	type seen struct {
		size uint64
		hash [32]byte
		from string
	}
	var (
		cps       []seen
		backwards []string
		stop      = make(chan struct{})
		reader    sync.WaitGroup
	)
	reader.Go(func() {
		var last uint64
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			fe := fes[i%2]
			_, c, err := fe.checkpoint(ctx, origin)
			if err != nil {
				continue // none cosigned yet
			}
			cps = append(cps, seen{c.Size, c.Hash, fe.name})
			if c.Size < last {
				backwards = append(backwards, fmt.Sprintf("%s served size %d after %d", fe.name, c.Size, last))
			}
			last = max(last, c.Size)
		}
	})
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				fe := fes[i%2]
				code, _, body, err := fe.submit(ctx, signer.Submission(fmt.Sprintf("witnessed-%d", i), fmt.Sprintf("%064x", i)))
				if err != nil || (code != http.StatusCreated && code != http.StatusAccepted) {
					t.Errorf("%s: entry %d: %d %s %v", fe.name, i, code, body, err)
				}
			}
		})
	}
	wg.Wait()
	for _, fe := range fes {
		deadline := time.Now().Add(time.Minute)
		for {
			_, c, err := fe.checkpoint(ctx, origin)
			if err == nil && c.Size == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s publishes %v (%v), want size %d cosigned", fe.name, c.Size, err, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		raw, _, _ := fe.checkpoint(ctx, origin)
		if !strings.Contains(string(raw), "— witness.example/t1 ") {
			t.Errorf("%s's checkpoint is not cosigned:\n%s", fe.name, raw)
		}
	}
	close(stop)
	reader.Wait()
	if len(backwards) > 0 {
		t.Errorf("a client reading both front ends went backwards %d times: %s", len(backwards), strings.Join(backwards[:min(5, len(backwards))], "; "))
	}
	roots := prefixRoots(t, readLeafHashes(t, fes[0], n))
	for _, c := range cps {
		if c.size > n || !bytes.Equal(roots[c.size], c.hash[:]) {
			t.Fatalf("%s served a checkpoint of size %d with root %x that is not of the log's tree", c.from, c.size, c.hash)
		}
	}
	t.Logf("%d checkpoints read alternately, all of one tree, never going back", len(cps))
	for _, fe := range fes {
		_, _, b, err := fe.do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "candor_log_trillian_checkpoints_total") || strings.HasPrefix(line, "candor_log_witness_requests_total") {
				got = append(got, line)
			}
		}
		t.Logf("%s: %s", fe.name, strings.Join(got, ", "))
	}
	// A witness ahead of one front end (another's) is no error there.
	for _, fe := range fes {
		if n := strings.Count(fe.stderr.String(), "level=ERROR"); n > 0 {
			t.Errorf("%s logged %d errors:\n%s", fe.name, n, fe.stderr)
		}
		t.Logf("%s: %d times a witness was ahead of it", fe.name, strings.Count(fe.stderr.String(), "another front end's"))
	}
}
