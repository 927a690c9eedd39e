package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
)

const (
	witnessOrigin = "example.com/witnessed-log"
	witnessName   = "witness.example/w1"
)

// witnessServer is a running candor-witness.
type witnessServer struct {
	*process
	url      string
	vkey     string
	verifier note.Verifier
	client   *http.Client
}

// startWitnessServer runs `candor-witness --data data --listen 127.0.0.1:0
// args...` from bin and waits until it prints its verifier key and
// address.
func startWitnessServer(t *testing.T, bin, data string, args ...string) (*witnessServer, error) {
	t.Helper()
	return startWitnessServerIn(t, nil, bin, data, args...)
}

// startWitnessServerIn is startWitnessServer with the command run by
// wrap (for example ip netns exec NAME), which must exec it.
func startWitnessServerIn(t *testing.T, wrap []string, bin, data string, args ...string) (*witnessServer, error) {
	t.Helper()
	args = append([]string{"--data", data, "--listen", "127.0.0.1:0"}, args...)
	argv := append(append(slices.Clip(wrap), bin), args...)
	p, err := launch(t, "candor-witness", argv)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(startTimeout)
	for {
		out := p.stdout.String()
		vkey, okKey := lineValue(out, "candor-witness: verifier key ")
		addr, okAddr := lineValue(out, "candor-witness: listening on ")
		if okKey && okAddr {
			v, err := api.NewCosignatureVerifier(vkey)
			if err != nil {
				return nil, fmt.Errorf("candor-witness printed a bad verifier key %q: %v", vkey, err)
			}
			w := &witnessServer{process: p, url: addr, vkey: vkey, verifier: v, client: newClient()}
			t.Cleanup(w.client.CloseIdleConnections)
			return w, nil
		}
		if ok, err := p.wait(10 * time.Millisecond); ok {
			return nil, fmt.Errorf("candor-witness exited before listening (%v); stderr:\n%s", err, p.stderr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("candor-witness printed no address within %s; stdout:\n%s\nstderr:\n%s", startTimeout, out, p.stderr)
		}
	}
}

// addCheckpoint POSTs an add-checkpoint request.
func (w *witnessServer) addCheckpoint(ctx context.Context, req api.AddCheckpointRequest) (code int, ctype string, body []byte, err error) {
	s := &server{process: w.process, url: w.url, client: w.client}
	code, hdr, body, err := s.do(ctx, http.MethodPost, "/add-checkpoint", req.Marshal(), http.Header{"Content-Type": {"text/plain"}})
	if err != nil {
		return 0, "", nil, err
	}
	return code, hdr.Get("Content-Type"), body, nil
}

func (w *witnessServer) get(ctx context.Context, path string) (int, []byte, error) {
	s := &server{process: w.process, url: w.url, client: w.client}
	code, _, body, err := s.do(ctx, http.MethodGet, path, nil, nil)
	return code, body, err
}

func (w *witnessServer) kill9(t *testing.T) {
	t.Helper()
	(&server{process: w.process, client: w.client}).kill9(t)
}

func (w *witnessServer) stop(t *testing.T) {
	t.Helper()
	(&server{process: w.process, client: w.client}).stop(t)
}

// witnessedLog follows a candor-log: its checkpoints and consistency
// proofs built from its tiles.
type witnessedLog struct {
	srv      *server
	tiles    *client.Client
	verifier note.Verifier
	signer   note.Signer // the log's own key, read from its data directory
}

// latest returns the log's current checkpoint, verified.
func (l *witnessedLog) latest(ctx context.Context) ([]byte, api.Checkpoint, error) {
	return l.srv.checkpoint(ctx, witnessOrigin)
}

// proof returns the consistency proof from old to c, from the log's tiles,
// which tlog checks against c's root.
func (l *witnessedLog) proof(ctx context.Context, old uint64, c api.Checkpoint) ([][]byte, error) {
	if old == 0 || old == c.Size {
		return nil, nil
	}
	hr := tlog.TileHashReader(tlog.Tree{N: int64(c.Size), Hash: c.Hash}, &client.TileReader{Client: l.tiles, Context: ctx})
	p, err := tlog.ProveTree(int64(c.Size), int64(old), hr)
	if err != nil {
		return nil, fmt.Errorf("couldn't prove %d -> %d from the log's tiles: %w", old, c.Size, err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out, nil
}

// root returns the log's root at size, from tiles checked against c.
func (l *witnessedLog) root(ctx context.Context, size uint64, c api.Checkpoint) ([api.HashSize]byte, error) {
	hr := tlog.TileHashReader(tlog.Tree{N: int64(c.Size), Hash: c.Hash}, &client.TileReader{Client: l.tiles, Context: ctx})
	return tlog.TreeHash(int64(size), hr)
}

// witnessAck is a checkpoint the witness cosigned (answered 200).
type witnessAck struct {
	size uint64
	root [api.HashSize]byte
}

// cosignedBy checks a 200 body: one cosignature line by the witness that,
// appended to the checkpoint, opens with the log's and the witness's keys.
func cosignedBy(w *witnessServer, l *witnessedLog, checkpoint, body []byte) error {
	sigs, err := api.ParseCosignatureLines(body)
	if err != nil {
		return err
	}
	if len(sigs) != 1 || sigs[0].Name != witnessName {
		return fmt.Errorf("200 body %q: want one cosignature by %s", body, witnessName)
	}
	signed, err := api.AppendSignatures(checkpoint, body)
	if err != nil {
		return err
	}
	n, err := note.Open(signed, note.VerifierList(l.verifier, w.verifier))
	if err != nil {
		return fmt.Errorf("the cosigned checkpoint does not open: %w\n%s", err, signed)
	}
	if len(n.Sigs) != 2 {
		return fmt.Errorf("the cosigned checkpoint has %d verified signatures, want 2", len(n.Sigs))
	}
	if _, err := api.CosignatureTime(n.Sigs[1]); err != nil {
		return err
	}
	return nil
}

// TestWitness runs a real candor-log and a real candor-witness: entries go
// into the log, its checkpoints and consistency proofs (built from its
// tiles) go to the witness, whose cosignatures must verify. Then the
// witness is killed with SIGKILL again and again while clients race
// add-checkpoint requests: after each restart it must hold a checkpoint at
// least as large as every one it acknowledged, refuse a fork at that size,
// and every checkpoint it ever cosigned must be in the log's one tree.
func TestWitness(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	logData := t.TempDir()
	logSrv := mustStartServer(t, "candor-log", logData, "--origin", witnessOrigin)
	skey, err := os.ReadFile(filepath.Join(logData, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	l := &witnessedLog{srv: logSrv, tiles: client.New(logSrv.url, logSrv.client), verifier: logSrv.verifier, signer: logSigner}
	builder := apitest.NewBuildSigner()
	var submitted atomic.Uint64
	submit := func(n int) {
		t.Helper()
		for range n {
			i := submitted.Add(1)
			digest := sha256.Sum256([]byte(fmt.Sprint("artifact ", i)))
			code, _, body, err := logSrv.submit(ctx, builder.Submission(fmt.Sprint("witnessed/", i), hex.EncodeToString(digest[:])))
			if err != nil || code != http.StatusCreated {
				t.Errorf("submitting entry %d: %d %s %v", i, code, body, err)
				return
			}
		}
	}
	submit(20)

	// The configuration, with the log's verifier key.
	wData := t.TempDir()
	config := filepath.Join(t.TempDir(), "witness.yaml")
	yaml := fmt.Sprintf("name: %s\nlogs:\n  - origin: %s\n    key: %s\n", witnessName, witnessOrigin, logSrv.vkey)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Keys it does not know are refused, not ignored.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(yaml+"gossipers: [127.0.0.1:7946]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := startWitnessServer(t, bin, t.TempDir(), "--config", bad); err == nil || !strings.Contains(err.Error(), "gossipers") {
		t.Fatalf("candor-witness with an unknown config key: %v, want a refusal naming it", err)
	}

	w, err := startWitnessServer(t, bin, wData, "--config", config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.vkey, witnessName+"+") {
		t.Errorf("verifier key %q is not named %s", w.vkey, witnessName)
	}
	if fi, err := os.Stat(filepath.Join(wData, "witness.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("witness key file: %v %v, want mode 0600", fi, err)
	}

	// First contact: old size 0.
	cp, c := logSrv.mustCheckpoint(t, witnessOrigin)
	code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp})
	if err != nil || code != http.StatusOK {
		t.Fatalf("add-checkpoint of size %d: %d %q %v", c.Size, code, body, err)
	}
	if err := cosignedBy(w, l, cp, body); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		acks = []witnessAck{{c.Size, c.Hash}}
	)
	// The monitoring read path serves it, with both signatures.
	sum := sha256.Sum256([]byte(witnessOrigin))
	served := "/" + hex.EncodeToString(sum[:]) + "/checkpoint"
	if code, body, err := w.get(ctx, served); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", served, code, body, err)
	} else if n, err := note.Open(body, note.VerifierList(l.verifier, w.verifier)); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("GET %s: %v\n%s", served, err, body)
	}
	if code, body, err := w.get(ctx, "/metrics"); err != nil || code != http.StatusOK || !bytes.Contains(body, []byte(`candor_witness_add_checkpoint_requests_total{code="200"} 1`)) {
		t.Errorf("GET /metrics: %d %v, want the add-checkpoint counter:\n%s", code, err, body)
	}

	// The kill loop.
	cycles := 6
	if binaryRace {
		cycles = 4
	}
	var cur atomic.Pointer[witnessServer]
	cur.Store(w)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopClients := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer stopClients() // before the processes are killed by t.Cleanup
	var failed atomic.Bool
	fail := func(format string, args ...any) {
		failed.Store(true)
		t.Errorf(format, args...)
	}
	// The log grows while the witness is being killed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			submit(1)
			if failed.Load() {
				return
			}
			// Pace the log: a new checkpoint every few milliseconds is
			// plenty to race the witness.
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	const clients = 4
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var known uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				w := cur.Load()
				cp, c, err := l.latest(ctx)
				if err != nil {
					fail("client %d: %v", i, err)
					return
				}
				if c.Size < known {
					fail("client %d: the log's checkpoint %d is behind the witness's %d", i, c.Size, known)
					return
				}
				p, err := l.proof(ctx, known, c)
				if err != nil {
					fail("client %d: %v", i, err)
					return
				}
				code, ctype, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: known, Proof: p, Checkpoint: cp})
				switch {
				case err != nil:
					// Killed under us: wait for the restart.
					if !w.stopping.Load() {
						fail("client %d: add-checkpoint to a live witness: %v", i, err)
						return
					}
					for cur.Load() == w {
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
					}
				case code == http.StatusOK:
					if err := cosignedBy(w, l, cp, body); err != nil {
						fail("client %d: %v", i, err)
						return
					}
					mu.Lock()
					acks = append(acks, witnessAck{c.Size, c.Hash})
					mu.Unlock()
					known = c.Size
				case code == http.StatusConflict && ctype == api.TlogSizeContentType:
					if known, err = api.ParseTlogSize(body); err != nil {
						fail("client %d: 409 body: %v", i, err)
						return
					}
				default:
					fail("client %d: add-checkpoint %d -> %d: %d %q", i, known, c.Size, code, body)
					return
				}
			}
		}()
	}

	for cycle := range cycles {
		if failed.Load() {
			break
		}
		// Kill once the witness has cosigned a few more checkpoints.
		mu.Lock()
		before := len(acks)
		mu.Unlock()
		target := before + 3 + rand.IntN(5)
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(acks)
			mu.Unlock()
			if n >= target || failed.Load() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no progress in 30s", cycle)
			}
			time.Sleep(2 * time.Millisecond)
		}
		old := cur.Load()
		old.kill9(t)
		mu.Lock()
		var maxAck witnessAck
		for _, a := range acks {
			if a.size > maxAck.size {
				maxAck = a
			}
		}
		mu.Unlock()

		w, err := startWitnessServer(t, bin, wData, "--config", config)
		if err != nil {
			t.Fatal(err)
		}
		// Before any client reaches it: the witness holds at least what it
		// acknowledged, and refuses a fork of it.
		code, ctype, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp})
		if err != nil || code != http.StatusConflict || ctype != api.TlogSizeContentType {
			t.Fatalf("cycle %d: probing the restarted witness: %d %q %q %v", cycle, code, ctype, body, err)
		}
		size, err := api.ParseTlogSize(body)
		if err != nil {
			t.Fatal(err)
		}
		if size < maxAck.size {
			t.Fatalf("cycle %d: after kill -9 the witness is at size %d, but it cosigned size %d", cycle, size, maxAck.size)
		}
		// A fork one entry larger, with a proof that cannot hold. (A fork
		// at the same size would be evidence that the log equivocated,
		// after which the witness refuses the log: see the end.)
		fork, err := api.SignCheckpoint(api.Checkpoint{Origin: witnessOrigin, Size: size + 1, Hash: sha256.Sum256([]byte("fork"))}, l.signer)
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 { // from the empty tree, any tree is consistent
			req := api.AddCheckpointRequest{OldSize: size, Proof: [][]byte{make([]byte, 32)}, Checkpoint: fork}
			if code, _, body, err := w.addCheckpoint(ctx, req); err != nil || code != http.StatusUnprocessableEntity {
				t.Fatalf("cycle %d: a fork signed by the log from the witness's size %d: %d %q %v, want 422", cycle, size, code, body, err)
			}
		}
		t.Logf("cycle %d: killed after %d cosignatures, largest %d; restarted at size %d", cycle, len(acks), maxAck.size, size)
		cur.Store(w)
	}
	stopClients()
	if t.Failed() {
		return
	}

	// Every checkpoint the witness cosigned is in the log's one tree, so
	// any two are consistent.
	_, final := logSrv.mustCheckpoint(t, witnessOrigin)
	for _, a := range acks {
		root, err := l.root(ctx, a.size, final)
		if err != nil {
			t.Fatal(err)
		}
		if root != a.root {
			t.Fatalf("the witness cosigned size %d root %x, but the log's root at that size is %x", a.size, a.root, root)
		}
	}
	// The served checkpoint is consistent with the log too.
	w = cur.Load()
	code, body, err = w.get(ctx, served)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", served, code, body, err)
	}
	n, err := note.Open(body, note.VerifierList(l.verifier, w.verifier))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := api.ParseCheckpoint([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	if root, err := l.root(ctx, sc.Size, final); err != nil || root != sc.Hash {
		t.Fatalf("the witness serves size %d root %x, the log's root is %x (%v)", sc.Size, sc.Hash, root, err)
	}
	// A fork at the size the witness holds, signed by the log: refused,
	// and evidence, after which the witness refuses the log altogether.
	fork, err := api.SignCheckpoint(api.Checkpoint{Origin: witnessOrigin, Size: sc.Size, Hash: sha256.Sum256([]byte("fork"))}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: sc.Size, Checkpoint: fork}); err != nil || code != http.StatusUnprocessableEntity {
		t.Fatalf("a fork signed by the log at the witness's size %d: %d %q %v, want 422", sc.Size, code, body, err)
	}
	if e, err := evidenceOf(ctx, w, witnessOrigin); err != nil || e == nil {
		t.Fatalf("no evidence after a fork at the witness's size: %v", err)
	}
	servedNote := body
	if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: sc.Size, Checkpoint: servedNote}); err != nil || code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "evidence") {
		t.Fatalf("the cosigned checkpoint again, after evidence: %d %q %v, want 422 for the evidence", code, body, err)
	}
	w.stop(t)
	t.Logf("%d cosignatures over %d kills, log size %d", len(acks), cycles, final.Size)
}
