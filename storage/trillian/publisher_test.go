package trillian_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/storage/trillian"
)

// TestRecordSwap: the shared record is replaced only from the note it
// holds; of writers racing from one note, exactly one wins.
func TestRecordSwap(t *testing.T) {
	tt := newTrillianTree(t)
	ctx := context.Background()
	open := func() *trillian.Record {
		r, err := trillian.OpenRecord(ctx, tt.env.DSN, tt.treeID, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b := open(), open()
	if n, err := a.Load(ctx); n != nil || err != nil {
		t.Fatalf("a new record: %q, %v", n, err)
	}
	swap := func(r *trillian.Record, old, new string, size uint64, want bool) {
		t.Helper()
		var o []byte
		if old != "" {
			o = []byte(old)
		}
		if ok, err := r.Swap(ctx, o, []byte(new), size); ok != want || err != nil {
			t.Fatalf("swap %q for %q: %v, %v; want %v", old, new, ok, err, want)
		}
	}
	swap(a, "", "one", 1, true)
	swap(b, "", "other one", 1, false)
	swap(b, "one", "two", 2, true)
	swap(a, "one", "three", 3, false)
	if n, err := a.Load(ctx); string(n) != "two" || err != nil {
		t.Fatalf("the record holds %q, %v; want two", n, err)
	}
	// Racing writers: each reads, and swaps in its own next note.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for w := range 8 {
		r := []*trillian.Record{a, b}[w%2]
		wg.Go(func() {
			for i := range 20 {
				old, err := r.Load(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				ok, err := r.Swap(ctx, old, []byte(fmt.Sprintf("%s/%d.%d", old, w, i)), 0)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	n, err := a.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every win appended one step to the note it replaced.
	if got := strings.Count(string(n), "/"); got != wins || wins == 0 {
		t.Errorf("%d swaps won, the note has %d steps: %q", wins, got, n)
	}
	if _, err := trillian.OpenRecord(ctx, "candor@tcp(127.0.0.1:1)/", 1, nil); err == nil || !strings.Contains(err.Error(), "names no database") {
		t.Errorf("a DSN without a database: %v", err)
	}
}

// TestPublisherMonotonic: a client that got a checkpoint from front end A
// (a submission's reply) and then reads /checkpoint from front end B gets
// one at least as large, of the same tree.
func TestPublisherMonotonic(t *testing.T) {
	tt := newTrillianTree(t)
	a, b := tt.startTwo(t)
	s := apitest.NewBuildSigner()
	for i := range 12 {
		from, other := a, b
		if i%2 == 1 {
			from, other = b, a
		}
		code, r, msg := from.submit(s.Submission(fmt.Sprintf("monotonic-%d", i), fmt.Sprintf("%064x", i)))
		if code != http.StatusCreated {
			t.Fatalf("submission %d: %d %s", i, code, msg)
		}
		pb, err := api.ParseProofBundle([]byte(r.Proof))
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := api.OpenCheckpoint(pb.Checkpoint, testOrigin, tt.verifier)
		if err != nil {
			t.Fatal(err)
		}
		c := other.httpCheckpoint(tt)
		if c.Size < got.Size {
			t.Fatalf("submission %d: front end A answered with size %d, then B served size %d", i, got.Size, c.Size)
		}
	}
	waitMirrors(t, tt, 12, a, b)
	adopted := testutil.ToFloat64(a.pub.Metric("adopted")) + testutil.ToFloat64(b.pub.Metric("adopted"))
	if adopted == 0 {
		t.Errorf("no front end published a checkpoint of the other's")
	}
}

// TestPublisherConflict: a front end of another tree that publishes
// through this tree's record (a misconfiguration, or a tree restored from
// an old backup) finds the record's checkpoint is not of its tree: it
// publishes nothing more and is not ready, and the record keeps the
// checkpoint of the tree.
func TestPublisherConflict(t *testing.T) {
	tt := newTrillianTree(t)
	good, err := tt.start(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := apitest.NewBuildSigner()
	for i := range 3 {
		if code, _, msg := good.submit(s.Submission(fmt.Sprintf("good-%d", i), fmt.Sprintf("%064x", i))); code != http.StatusCreated {
			t.Fatalf("%d %s", code, msg)
		}
	}
	other := tt.newTree(t)
	bad, err := tt.startWith(t, t.TempDir(), other, tt.treeID)
	if err != nil {
		t.Fatal(err)
	}
	// More entries than the record's checkpoint has, at once: none is
	// acknowledged with a proof, as no checkpoint of them is published.
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			code, _, msg := bad.submit(s.Submission(fmt.Sprintf("other-%d", i), fmt.Sprintf("%064x", 100+i)))
			if code == http.StatusCreated {
				t.Errorf("submission %d to the conflicting front end: %d %s", i, code, msg)
			}
		})
	}
	wg.Wait()
	if got := testutil.ToFloat64(bad.pub.ConflictMetric()); got != 1 {
		t.Errorf("candor_log_trillian_checkpoint_conflict %v", got)
	}
	resp, err := http.Get(bad.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not of the tree this front end mirrors") {
		t.Errorf("/readyz of the conflicting front end: %d %s", resp.StatusCode, body)
	}
	if c := good.httpCheckpoint(tt); c.Size != 3 {
		t.Errorf("the tree's front end serves size %d, want 3", c.Size)
	}
	if code, r, msg := good.submit(s.Submission("good-3", fmt.Sprintf("%064x", 3))); code != http.StatusCreated || r.Index != 3 {
		t.Errorf("the tree's front end after the conflict: %d %s", code, msg)
	}
}

// httpCheckpoint returns GET /checkpoint of the front end, verified.
func (fe *frontEnd) httpCheckpoint(tt *trillianTree) api.Checkpoint {
	fe.t.Helper()
	c, err := getCheckpoint(fe, tt)
	if err != nil {
		fe.t.Fatal(err)
	}
	return c
}

// newTree creates another tree on the same Trillian.
func (tt *trillianTree) newTree(t testing.TB) int64 {
	conn, err := trillian.Dial(trillian.Options{Address: tt.env.Addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tree, err := trillian.CreateTree(context.Background(), conn, "other", "")
	if err != nil {
		t.Fatal(err)
	}
	return tree.TreeId
}

// TestDatabaseKilled: the database under Trillian and the checkpoint
// record is killed with SIGKILL under load through two front ends, and
// started again. Submissions fail while it is away (none is acknowledged
// without being in the tree); afterwards both front ends take entries
// again and publish the whole tree, every acknowledged entry in it at its
// index, and a client reading both in turn never went back or saw a
// fork.
func TestDatabaseKilled(t *testing.T) {
	tt := newTrillianTree(t)
	a, b := tt.startTwo(t)
	fes := []*frontEnd{a, b}
	s := apitest.NewBuildSigner()
	type ack struct {
		index    uint64
		leafHash []byte
	}
	var (
		mu        sync.Mutex
		acks      []ack
		failed    int
		seen      []api.Checkpoint
		backwards []string
		wg        sync.WaitGroup
		stop      = make(chan struct{})
	)
	writing := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				select {
				case <-writing:
					return
				default:
				}
				body := s.Submission(fmt.Sprintf("db-killed-%d-%d", w, i), fmt.Sprintf("%064x", 1000*w+i))
				code, r, _, err := fes[(w+i)%2].post(body)
				mu.Lock()
				if err != nil || code != http.StatusCreated {
					failed++
				} else {
					acks = append(acks, ack{r.Index, r.LeafHash})
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	reader := sync.WaitGroup{}
	reader.Go(func() {
		var last uint64
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			c, err := getCheckpoint(fes[i%2], tt)
			if err != nil {
				continue // 503 while the database is away
			}
			mu.Lock()
			seen = append(seen, c)
			if c.Size < last {
				backwards = append(backwards, fmt.Sprintf("size %d after %d", c.Size, last))
			}
			mu.Unlock()
			last = max(last, c.Size)
		}
	})
	time.Sleep(time.Second)
	tt.env.MariaDB.Kill()
	time.Sleep(1500 * time.Millisecond)
	tt.env.MariaDB.Restart()
	time.Sleep(time.Second)
	close(writing)
	wg.Wait()
	// Both take entries again.
	for i, fe := range fes {
		body := s.Submission(fmt.Sprintf("after-%d", i), fmt.Sprintf("%064x", 9000+i))
		deadline := time.Now().Add(time.Minute)
		for {
			code, r, _, err := fe.post(body)
			if err == nil && (code == http.StatusCreated || code == http.StatusOK) {
				acks = append(acks, ack{r.Index, r.LeafHash})
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("front end %d after the database came back: %d %v", i, code, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	root := waitMirrors(t, tt, uint64(len(acks)), a, b)
	close(stop)
	reader.Wait()
	for _, ack := range acks {
		for _, fe := range fes {
			got, err := fe.log.LeafHash(context.Background(), ack.index)
			if err != nil || !bytes.Equal(got, ack.leafHash) {
				t.Fatalf("acknowledged entry %d: leaf hash %x, %v in the tree of %d; want %x", ack.index, got, err, root.TreeSize, ack.leafHash)
			}
		}
	}
	for _, c := range seen {
		var err error
		switch {
		case c.Size == 0:
			if !bytes.Equal(c.Hash[:], rfc6962.DefaultHasher.EmptyRoot()) {
				err = errors.New("not the empty tree's root")
			}
		case c.Size > root.TreeSize:
			err = errors.New("larger than the tree")
		case c.Size == root.TreeSize:
			if !bytes.Equal(c.Hash[:], root.RootHash) {
				err = errors.New("another root")
			}
		default:
			var hashes [][]byte
			if hashes, err = a.log.ConsistencyProof(context.Background(), c.Size, root.TreeSize); err == nil {
				err = proof.VerifyConsistency(rfc6962.DefaultHasher, c.Size, root.TreeSize, hashes, c.Hash[:], root.RootHash)
			}
		}
		if err != nil {
			t.Fatalf("a checkpoint of size %d read during the test is not of the tree of %d: %v", c.Size, root.TreeSize, err)
		}
	}
	if len(backwards) > 0 {
		t.Errorf("a client reading both front ends went back %d times: %s", len(backwards), strings.Join(backwards[:min(5, len(backwards))], "; "))
	}
	if failed == 0 {
		t.Errorf("no submission failed while the database was away")
	}
	t.Logf("%d entries acknowledged, %d refused while the database was away; %d checkpoints read, none going back", len(acks), failed, len(seen))
}

// getCheckpoint returns GET /checkpoint of fe, verified.
func getCheckpoint(fe *frontEnd, tt *trillianTree) (api.Checkpoint, error) {
	resp, err := http.Get(fe.srv.URL + "/checkpoint")
	if err != nil {
		return api.Checkpoint{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return api.Checkpoint{}, fmt.Errorf("GET /checkpoint: %d %s", resp.StatusCode, b)
	}
	c, _, err := api.OpenCheckpoint(b, testOrigin, tt.verifier)
	return c, err
}

// TestRecordWithoutCreate: a database user that may only read and write
// the record's table (as the README grants) opens the record once the
// table is there, and is told to create it when it is not.
func TestRecordWithoutCreate(t *testing.T) {
	tt := newTrillianTree(t)
	ctx := context.Background()
	admin, err := sql.Open("mysql", tt.env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var db string
	if err := admin.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE USER 'candor'@'localhost' IDENTIFIED BY 'pw'"); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("candor:pw@unix(%s)/%s", tt.env.MariaDB.Socket, db)
	if _, err := trillian.OpenRecord(ctx, dsn, tt.treeID, nil); err == nil || !strings.Contains(err.Error(), "create it as the README says") {
		t.Fatalf("no table, no right to create it: %v", err)
	}
	// As the README says: the table, then the grants.
	r, err := trillian.OpenRecord(ctx, tt.env.DSN, tt.treeID, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("GRANT SELECT, INSERT, UPDATE ON `%s`.CandorCheckpoint TO 'candor'@'localhost'", db)); err != nil {
		t.Fatal(err)
	}
	r, err = trillian.OpenRecord(ctx, dsn, tt.treeID, nil)
	if err != nil {
		t.Fatalf("with the grants: %v", err)
	}
	defer r.Close()
	if ok, err := r.Swap(ctx, nil, []byte("one"), 1); !ok || err != nil {
		t.Fatalf("swap: %v, %v", ok, err)
	}
	if n, err := r.Load(ctx); string(n) != "one" || err != nil {
		t.Fatalf("load: %q, %v", n, err)
	}
}
